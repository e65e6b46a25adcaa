//! End to end for the compose stack: docker-compose.yml's asterisk, callrec
//! and receiver, the callrec image built from this checkout the offline way
//! (docker/callrec/Dockerfile.prebuilt, the host-built release binary). The
//! stack comes up healthy (callrec's healthcheck is its `/readyz`), a real
//! call is recorded and delivered, signed, to the receiver, whose directory
//! on the host then holds it (checked by content, owned by the services'
//! unprivileged user) and whose page lists and plays it; on `docker stop`
//! callrec finishes the recording it is making, delivers it, lets the call
//! go on and exits cleanly.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::audio::{assert_absent, assert_present, digital_silence};
use support::callrec::saved_in;
use support::checks::{assert_between_marks, assert_metadata, assert_onset_complete, PROMPT_MS};
use support::lab::{self, assert_nothing_left, mark};
use support::sipp::Caller;

/// The uid:gid scripts/compose.sh runs the services as under root.
const SERVICE_UID: u32 = 10001;
const RECEIVER: &str = "http://127.0.0.1:8091";
const SECRET: &str = "whsec-compose-test-5be1e2";

#[tokio::test]
async fn the_compose_stack_comes_up_healthy_and_records_into_the_receiver() {
    let _lab = lab::take().await;
    let stack = Stack::up().await;
    stack.wait_healthy(&["callrec-asterisk", "callrec-receiver", "callrec"], Duration::from_secs(150)).await;
    assert_eq!(stack.user("callrec").await, format!("{SERVICE_UID}:{SERVICE_UID}"), "callrec runs unprivileged");
    assert_eq!(stack.user("callrec-receiver").await, format!("{SERVICE_UID}:{SERVICE_UID}"));

    // A bookended section, delivered to the receiver.
    let tag = lab::tag("compose");
    Caller::new("partial", &tag).from("5550123", "Compose Caller").place().finish().await;
    let (meta, audio) = stack.wait_for_recording(1).await.remove(0);
    assert_metadata(&meta, &audio, "partial", "stop");
    assert_eq!(meta["caller_number"], "5550123");
    assert_eq!(meta["caller_name"], "Compose Caller");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&audio);
    assert_present(&audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt the caller hears");
    assert_present(&audio, 1000.0, 0, audio.len() / 8 - 20, 0.98, "what the caller says");
    assert_absent(&audio, 500.0, "the prompt after the stop marker");
    assert_nothing_left().await;

    // Stored by the unprivileged user, nothing by root.
    for entry in std::fs::read_dir(stack.received.path()).unwrap() {
        let metadata = entry.unwrap().metadata().unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (SERVICE_UID, SERVICE_UID), "files on the host are not root's");
    }
    // The page lists it and plays it: the WAV it serves is the recording.
    let id = meta["recording_id"].as_str().unwrap();
    let page = reqwest::get(format!("{RECEIVER}/?q=compose+caller")).await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("data-recording-id=\"{id}\"")), "{page}");
    let wav = reqwest::get(format!("{RECEIVER}/recordings/{id}/audio.wav")).await.unwrap().bytes().await.unwrap();
    assert_eq!(callrec::recording::encode::decode_wav(&wav).unwrap(), vec![audio.clone()]);

    // `docker stop` in the middle of a recording: it is delivered, the call goes on.
    let tag = lab::tag("composestop");
    let call = Caller::new("partial", &tag).tone(700).place();
    mark(&tag, "start").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (exit_code, log) = stack.stop_callrec().await;
    assert_eq!(exit_code, 0, "callrec exits cleanly on SIGTERM; its log:\n{log}");
    let (meta, audio) = stack.wait_for_recording(2).await.remove(1);
    assert_metadata(&meta, &audio, "partial", "shutdown");
    assert_onset_complete(&audio);
    // Up to the stop. Asterisk's snoop may slip a 20 ms frame of digital
    // silence in where its timer finds no audio yet (a container just
    // started, or a busy machine, is where that happens most): the tone may
    // be missing from 60 ms, plus each such stretch and the two 10 ms
    // windows it dims. Audio lost on the way would show as `missing_ms`,
    // which must stay 0, and anything else missing fails.
    let until = audio.len() / 8 - 100;
    assert_eq!(meta["missing_ms"], 0, "no RTP lost before the stop: {meta}");
    let slips = digital_silence(&audio[..until * 8]);
    let allowed: usize = 60 + slips.iter().map(|(_, ms)| ms + 20).sum::<usize>();
    println!("stretches of digital silence slipped in before the stop (at ms, ms long): {slips:?}");
    let fraction = 1.0 - allowed as f64 / until as f64;
    assert_present(&audio, 700.0, 0, until, fraction, "the second caller, until the stop");
    call.finish().await;
    mark(&tag, "end").await;
    assert_nothing_left().await;

    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "a clean run logs no warning:\n{log}");
    assert!(saved_in(stack.recordings.path()).is_empty(), "the receiver took every recording: none fell back");
    let receiver_log = stack.logs("callrec-receiver").await;
    assert!(!receiver_log.contains("WARN") && !receiver_log.contains("ERROR"), "{receiver_log}");
    assert!(!receiver_log.contains(SECRET) && !log.contains(SECRET), "the secret never reaches a log");
}

/// The compose stack, running for one test; callrec and the receiver are
/// removed on drop (Asterisk, the lab's, stays up).
struct Stack {
    /// callrec's own output directory (where a recording falls back to).
    recordings: tempfile::TempDir,
    /// The receiver's directory.
    received: tempfile::TempDir,
}

impl Stack {
    /// Builds callrec and its image from this checkout, then brings the
    /// whole stack up with fresh directories.
    async fn up() -> Stack {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run(tokio::process::Command::new(cargo).args(["build", "--release", "--locked", "--bin", "callrec"])).await;
        stage_release_binary();
        let stack = Stack { recordings: tempfile::tempdir().unwrap(), received: tempfile::tempdir().unwrap() };
        stack.compose(&["build", "receiver"]).await;
        stack.compose(&["up", "-d", "--no-build", "receiver", "callrec"]).await;
        stack
    }

    async fn compose(&self, args: &[&str]) -> String {
        let mut command = tokio::process::Command::new(root().join("scripts/compose.sh"));
        command
            .args(args)
            .env("CALLREC_DOCKERFILE", "docker/callrec/Dockerfile.prebuilt")
            .env("CALLREC_RECORDINGS", self.recordings.path())
            .env("CALLREC_RECEIVED", self.received.path())
            .env("CALLREC_ARI_PASSWORD", lab::ARI_PASSWORD)
            .env("CALLREC_WEBHOOK_SECRET", SECRET)
            .env_remove("CALLREC_UID")
            .env_remove("CALLREC_GID");
        run(&mut command).await
    }

    /// Waits until every container's healthcheck passes.
    async fn wait_healthy(&self, containers: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut states = Vec::new();
            for container in containers {
                states
                    .push(inspect(container, "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}").await);
            }
            if states.iter().all(|state| state == "healthy") {
                return;
            }
            if Instant::now() > deadline {
                let mut logs = String::new();
                for container in containers {
                    logs += &format!("--- {container}:\n{}\n", self.logs(container).await);
                }
                panic!("not all healthy: {containers:?} are {states:?}\n{logs}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The user a container runs as.
    async fn user(&self, container: &str) -> String {
        let output = tokio::process::Command::new("docker")
            .args(["exec", container, "sh", "-c", "echo $(id -u):$(id -g)"])
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    async fn logs(&self, container: &str) -> String {
        let output = tokio::process::Command::new("docker").args(["logs", container]).output().await.unwrap();
        // callrec logs to stderr; docker keeps both streams.
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    }

    /// Waits for `count` recordings in the receiver's directory; returns
    /// them (metadata, audio) in the order they started.
    async fn wait_for_recording(&self, count: usize) -> Vec<(serde_json::Value, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut saved = saved_in(self.received.path());
            if saved.len() >= count {
                saved.sort_by_key(|(meta, _)| meta["started_at"].as_str().unwrap().to_string());
                return saved;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} recordings arrived:\n{}\n{}",
                saved.len(),
                self.logs("callrec").await,
                self.logs("callrec-receiver").await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `docker stop` (SIGTERM, then the compose file's 30 s grace period),
    /// sent at once (compose itself takes seconds to start on a busy
    /// machine, and the call's stop marker is 2 s away); returns the
    /// container's exit code and its log.
    async fn stop_callrec(&self) -> (i64, String) {
        run(tokio::process::Command::new("docker").args(["stop", "--time", "30", "callrec"])).await;
        let code = inspect("callrec", "{{.State.ExitCode}}").await.parse().unwrap_or(-1);
        (code, self.logs("callrec").await)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Leave the lab as the tests found it: no callrec container holding
        // the application, and no callrec image a rebuild left unnamed.
        let _ = std::process::Command::new(root().join("scripts/compose.sh"))
            .args(["rm", "--force", "--stop", "callrec", "receiver"])
            .env("CALLREC_RECORDINGS", self.recordings.path())
            .env("CALLREC_RECEIVED", self.received.path())
            .output();
        let _ = std::process::Command::new("docker")
            .args(["image", "prune", "--force", "--filter", "label=org.opencontainers.image.title=callrec"])
            .output();
    }
}

async fn inspect(container: &str, format: &str) -> String {
    let output =
        tokio::process::Command::new("docker").args(["inspect", "--format", format, container]).output().await.unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The image copies `target/release/callrec` from the checkout: put the
/// binary just built there when cargo builds elsewhere (CARGO_TARGET_DIR).
fn stage_release_binary() {
    let Some(target) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) else { return };
    let built = target.join("release/callrec");
    let staged = root().join("target/release/callrec");
    if built.canonicalize().ok() != staged.canonicalize().ok() {
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::fs::copy(&built, &staged)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), staged.display()));
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
