//! End to end for the container: the `callrec` service of docker-compose.yml,
//! built from this checkout, records a real call beside the dockerized
//! Asterisk into its mounted output directory (the embedded default, no
//! webhook), and on `docker stop` finishes the recording it is making, lets
//! the call go on and exits cleanly.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::audio::{assert_absent, assert_present};
use support::callrec::saved_in;
use support::checks::{assert_between_marks, assert_metadata, assert_onset_complete, PROMPT_MS};
use support::lab::{self, assert_nothing_left, mark};
use support::sipp::Caller;

#[tokio::test]
async fn the_compose_service_records_beside_asterisk_and_stops_cleanly() {
    let _lab = lab::take().await;
    let service = ComposeService::up().await;
    service.wait_for_log("ARI event WebSocket connected", Duration::from_secs(20)).await;

    // A bookended section, written to the mounted output directory.
    let tag = lab::tag("compose");
    Caller::new("partial", &tag).from("5550123", "Compose Caller").place().finish().await;
    let (meta, audio) = service.wait_for_recording(1).await.remove(0);
    assert_metadata(&meta, &audio, "partial", "stop");
    assert_eq!(meta["caller_number"], "5550123");
    assert_eq!(meta["caller_name"], "Compose Caller");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&audio);
    assert_present(&audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt the caller hears");
    assert_present(&audio, 1000.0, 0, audio.len() / 8 - 20, 0.98, "what the caller says");
    assert_absent(&audio, 500.0, "the prompt after the stop marker");
    assert_nothing_left().await;

    // `docker stop` in the middle of a recording: it is saved, the call goes on.
    let tag = lab::tag("composestop");
    let call = Caller::new("partial", &tag).tone(700).place();
    mark(&tag, "start").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (exit_code, log) = service.stop().await;
    assert_eq!(exit_code, 0, "callrec exits cleanly on SIGTERM; its log:\n{log}");
    let (meta, audio) = service.wait_for_recording(2).await.remove(1);
    assert_metadata(&meta, &audio, "partial", "shutdown");
    assert_onset_complete(&audio);
    // Up to the stop. Asterisk's snoop may slip a 20 ms frame of silence in
    // where its timer finds no audio yet (a container just started is where
    // that happens most); two such slips, each also dimming the 10 ms window
    // it straddles, are 60 ms. Audio lost on the way would show as
    // `missing_ms`, which must stay 0.
    let until = audio.len() / 8 - 100;
    assert_eq!(meta["missing_ms"], 0, "no RTP lost before the stop: {meta}");
    let fraction = 1.0 - 60.0 / until as f64;
    assert_present(&audio, 700.0, 0, until, fraction, "the second caller, until the stop");
    call.finish().await;
    mark(&tag, "end").await;
    assert_nothing_left().await;

    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "a clean run logs no warning:\n{log}");
}

/// The compose `callrec` service, running for one test; removed on drop.
struct ComposeService {
    recordings: tempfile::TempDir,
}

impl ComposeService {
    /// Builds callrec and its image from this checkout, then starts the service
    /// with its output directory in a fresh temporary folder.
    async fn up() -> ComposeService {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(tokio::process::Command::new(cargo).args(["build", "--release", "--locked", "--bin", "callrec"])).await;
        let recordings = tempfile::tempdir().unwrap();
        let service = ComposeService { recordings };
        service.compose(&["build", "callrec"]).await;
        service.compose(&["up", "-d", "--no-deps", "--force-recreate", "callrec"]).await;
        service
    }

    async fn compose(&self, args: &[&str]) -> String {
        let mut command = tokio::process::Command::new(root().join("scripts/compose.sh"));
        command
            .args(args)
            .env("CALLREC_RECORDINGS", self.recordings.path())
            .env("CALLREC_ARI_PASSWORD", lab::ARI_PASSWORD);
        run(&mut command).await
    }

    async fn logs(&self) -> String {
        let output = tokio::process::Command::new("docker").args(["logs", "callrec"]).output().await.unwrap();
        // callrec logs to stderr; docker keeps both streams.
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    }

    async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logs().await.contains(needle) {
            assert!(Instant::now() < deadline, "the container never logged {needle:?}:\n{}", self.logs().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for `count` recordings in the mounted output directory; returns
    /// them (metadata, audio) in the order they started.
    async fn wait_for_recording(&self, count: usize) -> Vec<(serde_json::Value, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut saved = saved_in(self.recordings.path());
            if saved.len() >= count {
                saved.sort_by_key(|(meta, _)| meta["started_at"].as_str().unwrap().to_string());
                return saved;
            }
            assert!(Instant::now() < deadline, "{} of {count} recordings arrived:\n{}", saved.len(), self.logs().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `docker stop` (SIGTERM, then the compose grace period); returns the
    /// container's exit code and its log.
    async fn stop(&self) -> (i64, String) {
        self.compose(&["stop", "callrec"]).await;
        let output = tokio::process::Command::new("docker")
            .args(["inspect", "--format", "{{.State.ExitCode}}", "callrec"])
            .output()
            .await
            .unwrap();
        let code = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(-1);
        (code, self.logs().await)
    }
}

impl Drop for ComposeService {
    fn drop(&mut self) {
        // Leave the lab as the tests found it: no callrec container holding
        // the application, and no callrec image a rebuild left unnamed.
        let _ = std::process::Command::new(root().join("scripts/compose.sh"))
            .args(["rm", "--force", "--stop", "callrec"])
            .env("CALLREC_RECORDINGS", self.recordings.path())
            .output();
        let _ = std::process::Command::new("docker")
            .args(["image", "prune", "--force", "--filter", "label=org.opencontainers.image.title=callrec"])
            .output();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to success; its output is shown when it fails.
async fn run(command: &mut tokio::process::Command) -> String {
    let output = command.current_dir(root()).stdin(std::process::Stdio::null()).output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?} failed ({}):\n{text}", output.status);
    text
}
