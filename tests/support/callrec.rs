//! callrec itself, run as the real binary in a child process, its log kept
//! for the tests to read.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::lab;

pub struct Callrec {
    child: Child,
    log: Arc<Mutex<String>>,
    pub output_dir: tempfile::TempDir,
}

/// What a test may change; everything else is the lab's default.
pub struct Options<'a> {
    pub ari_url: &'a str,
    pub ari_user: &'a str,
    pub ari_password: &'a str,
    pub webhook_url: Option<&'a str>,
    pub extra: Vec<&'a str>,
    /// `--agi-listen` and `--listen`: off unless a test serves markers that way.
    pub agi_listen: &'a str,
    pub listen: &'a str,
    /// More environment for callrec (a fault to inject, storage credentials).
    pub env: Vec<(&'a str, &'a str)>,
    /// Wait for the ARI connection before returning.
    pub wait_connected: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            ari_url: lab::ARI_URL,
            ari_user: lab::ARI_USER,
            ari_password: lab::ARI_PASSWORD,
            webhook_url: None,
            extra: Vec::new(),
            agi_listen: "off",
            listen: "off",
            env: Vec::new(),
            wait_connected: true,
        }
    }
}

impl Callrec {
    pub async fn start(options: Options<'_>) -> Callrec {
        let output_dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_callrec"));
        command
            .arg("run")
            .args(["--ari-url", options.ari_url])
            .args(["--ari-user", options.ari_user])
            .arg("--output-dir")
            .arg(output_dir.path())
            // CALLREC_TEST_LOG=callrec=trace,info shows every ARI event.
            .args(["--log", &log_filter(&options)])
            .args(["--agi-listen", options.agi_listen, "--listen", options.listen])
            .args(&options.extra)
            .env("CALLREC_ARI_PASSWORD", options.ari_password)
            .envs(options.env.iter().copied())
            .env_remove("CALLREC_WEBHOOK_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = options.webhook_url {
            command.args(["--webhook-url", url]);
        }
        let mut child = command.spawn().expect("start callrec");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("CALLREC_TEST_ECHO").is_some() {
                    eprintln!("callrec| {line}");
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let callrec = Callrec { child, log, output_dir };
        if options.wait_connected {
            callrec.wait_for_log("ARI event WebSocket connected", Duration::from_secs(10)).await;
        }
        callrec
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` (counting from the start).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_count(needle, 1, timeout).await;
    }

    /// Waits until the log holds `needle` at least `count` times.
    pub async fn wait_for_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "callrec never logged {needle:?} {count} time(s); its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills callrec outright (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Waits for callrec to exit on its own; returns its exit status and log.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("callrec did not exit within {timeout:?}; its log:\n{}", self.log()))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        (status, self.log())
    }

    /// Stops callrec with SIGTERM, as `docker stop` would; returns its log.
    pub async fn stop(&mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("callrec stops within 30 s of SIGTERM")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log = self.log();
        assert!(status.success(), "callrec exited with {status}; its log:\n{log}");
        log
    }

    pub fn saved_is_empty(&self) -> bool {
        self.saved().is_empty()
    }

    /// Recordings written to the output directory: (metadata, audio) pairs.
    pub fn saved(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        saved_in(self.output_dir.path())
    }
}

/// Recordings in an output directory: (metadata, audio) pairs.
pub fn saved_in(dir: &Path) -> Vec<(serde_json::Value, Vec<u8>)> {
    let mut saved = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return saved };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let metadata: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let audio = std::fs::read(path.with_extension("ul")).unwrap();
            saved.push((metadata, audio));
        }
    }
    saved
}

/// callrec's log filter: CALLREC_LOG given in the options' environment, else
/// CALLREC_TEST_LOG, else debug for callrec.
fn log_filter(options: &Options) -> String {
    let given = options.env.iter().find(|(name, _)| *name == "CALLREC_LOG").map(|(_, value)| value.to_string());
    given.or_else(|| std::env::var("CALLREC_TEST_LOG").ok()).unwrap_or_else(|| "callrec=debug,info".into())
}
