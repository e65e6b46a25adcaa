//! The command line as an operator meets it: help that reads well, and one
//! clear line with exit code 2 for anything wrong; and what the README tells
//! a webhook's operator, run as written: its Python receiver and its Rust
//! check of `Callrec-Signature`, against what callrec sends.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use callrec::config::Secret;
use callrec::delivery::webhook_signature::signature_header;
use callrec::delivery::{FinishedRecording, Metadata, Webhook};
use callrec::metrics::Metrics;
use callrec::recording::encode::AudioFormat;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

#[path = "readme/verify_callrec_signature.rs"]
mod readme_rust_verifier;

fn callrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(args)
        .env_remove("CALLREC_ARI_PASSWORD")
        .env_remove("CALLREC_WEBHOOK_URL")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let output = callrec(&["run", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, env) in [
        ("--ari-url", "CALLREC_ARI_URL"),
        ("--ari-user", "CALLREC_ARI_USER"),
        ("--ari-password", "CALLREC_ARI_PASSWORD"),
        ("--app", "CALLREC_APP"),
        ("--media-bind", "CALLREC_MEDIA_BIND"),
        ("--media-advertise", "CALLREC_MEDIA_ADVERTISE"),
        ("--webhook-url", "CALLREC_WEBHOOK_URL"),
        ("--output-dir", "CALLREC_OUTPUT_DIR"),
        ("--agi-listen", "CALLREC_AGI_LISTEN"),
        ("--listen", "CALLREC_LISTEN"),
        ("--api-token", "CALLREC_API_TOKEN"),
        ("--api-token-file", "CALLREC_API_TOKEN_FILE"),
        ("--post-call-url", "CALLREC_POST_CALL_URL"),
        ("--delivery-timeout", "CALLREC_DELIVERY_TIMEOUT"),
        ("--webhook-secret", "CALLREC_WEBHOOK_SECRET"),
        ("--webhook-secret-file", "CALLREC_WEBHOOK_SECRET_FILE"),
        ("--log-format", "CALLREC_LOG_FORMAT"),
        ("--config", "CALLREC_CONFIG"),
    ] {
        assert!(help.contains(flag) && help.contains(env), "{flag} [{env}] missing from:\n{help}");
    }
    assert!(help.contains("--webhook-retry-for"), "the old name is shown as an alias:\n{help}");
    let top = callrec(&["--help"]);
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("Call recording for Asterisk") && top.contains("run"), "{top}");
}

#[test]
fn a_bad_value_is_one_line_and_exit_code_2() {
    for args in [
        &["run", "--ari-password", "x", "--media-bind", "nowhere"][..],
        &["run", "--ari-password", "x", "--ari-url", "ftp://pbx"][..],
        &["run", "--ari-password", "x", "--frobnicate"][..],
        &["run"][..],
    ] {
        let output = callrec(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{args:?} printed:\n{text}");
        assert!(text.starts_with("callrec: "), "{text}");
    }
    let missing = stderr(&callrec(&["run"]));
    assert!(missing.contains("--ari-password"), "names what is missing: {missing}");
}

#[test]
fn a_bad_value_never_echoes_the_password() {
    let output = callrec(&["run", "--ari-password", "hunter2-secret", "--media-bind", "0.0.0.0:7000"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("--media-advertise"), "{text}");
    assert!(!text.contains("hunter2-secret"));
}

#[test]
fn the_control_api_beyond_loopback_without_a_token_is_refused_at_start_up() {
    let output = callrec(&["run", "--ari-password", "x", "--listen", "0.0.0.0:8090"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("--listen 0.0.0.0:8090") && text.contains("--api-token"), "{text}");
    // With a token it goes on (to connecting); the token never shows.
    let help = callrec(&["run", "--help"]);
    let env = [("CALLREC_API_TOKEN", "tok3n-never-shown")];
    let with_env = Command::new(env!("CARGO_BIN_EXE_callrec")).args(["run", "--help"]).envs(env).output().unwrap();
    assert!(!String::from_utf8_lossy(&with_env.stdout).contains("tok3n-never-shown"));
    assert!(help.status.success());
}

/// `callrec run` with only `env` from the CALLREC_* variables.
fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callrec"));
    command.arg("run").args(args);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CALLREC_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn the_delivery_timeout_reads_its_old_variable_and_the_new_one_wins() {
    let base = ["--ari-password", "x"];
    // The old variable alone is read (a bad value shows it).
    let old = run_with_env(&base, &[("CALLREC_WEBHOOK_RETRY_FOR", "soon")]);
    assert_eq!(old.status.code(), Some(2));
    let text = stderr(&old);
    assert!(text.contains("CALLREC_WEBHOOK_RETRY_FOR") && text.lines().count() == 1, "{text}");
    // With both, the new one is what counts.
    let both = run_with_env(&base, &[("CALLREC_DELIVERY_TIMEOUT", "soon"), ("CALLREC_WEBHOOK_RETRY_FOR", "30s")]);
    assert_eq!(both.status.code(), Some(2));
    assert!(stderr(&both).contains("--delivery-timeout"), "{}", stderr(&both));
    // A good new one means the old is not even read: the next check speaks.
    let args = [&base[..], &["--post-call-url", "ftp://x"]].concat();
    let next = run_with_env(&args, &[("CALLREC_DELIVERY_TIMEOUT", "30s"), ("CALLREC_WEBHOOK_RETRY_FOR", "soon")]);
    assert!(stderr(&next).contains("--post-call-url"), "{}", stderr(&next));
    // The old flag is an alias of the new one.
    let alias = run_with_env(&[&base[..], &["--webhook-retry-for", "0s"]].concat(), &[]);
    assert!(stderr(&alias).contains("--delivery-timeout must be more than 0"), "{}", stderr(&alias));
}

/// A `--config` file holding `text`, in a directory kept while it lives.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callrec.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn a_config_file_sits_beneath_the_environment_and_the_flags() {
    // A bad --app stops start-up and shows which source's value won.
    let (_dir, config) = config_file("# callrec\nari-password = \"from-file\"\napp = \"file app\"\n");
    let refused = |output: Output, value: &str| {
        assert_eq!(output.status.code(), Some(2));
        let text = stderr(&output);
        assert!(text.contains(&format!("--app {value:?}")) && text.lines().count() == 1, "{value}: {text}");
        text
    };
    let from_file = refused(run_with_env(&["--config", &config], &[]), "file app");
    assert!(from_file.contains(&format!("(key `app` in {config})")), "the file is named: {from_file}");
    assert!(!from_file.contains("from-file"), "the password never shows: {from_file}");
    refused(run_with_env(&[], &[("CALLREC_CONFIG", &config)]), "file app");
    let from_env = refused(run_with_env(&["--config", &config], &[("CALLREC_APP", "env app")]), "env app");
    assert!(!from_env.contains(&config), "not the file's value: {from_env}");
    let env = [("CALLREC_APP", "env app")];
    refused(run_with_env(&[&format!("--config={config}"), "--app", "flag app"], &env), "flag app");

    // Keys the file leaves out keep their defaults; the password it gives is
    // used (else its absence would be the error).
    let (_dir, config) = config_file("ari-password = \"from-file\"\n");
    let next = run_with_env(&["--config", &config, "--post-call-url", "ftp://x"], &[]);
    assert!(stderr(&next).contains("--post-call-url must be"), "{}", stderr(&next));
}

#[test]
fn a_config_file_with_an_unknown_key_or_a_bad_value_stops_start_up_naming_both() {
    for (text, key) in [
        ("ari-pasword = \"x\"\n", "ari-pasword"),
        ("max-memory = \"lots\"\n", "max-memory"),
        ("listen = 8090\n", "listen"),
        ("log-format = \"xml\"\n", "log-format"),
        ("[ari]\nurl = \"http://pbx\"\n", "ari"),
    ] {
        let (_dir, config) = config_file(text);
        let output = run_with_env(&["--config", &config, "--ari-password", "x"], &[]);
        assert_eq!(output.status.code(), Some(2), "{text}");
        let said = stderr(&output);
        assert!(said.contains(&format!("`{key}`")) && said.contains(&config), "{text}: {said}");
        assert_eq!(said.lines().count(), 1, "{said}");
    }
    let missing = run_with_env(&["--config", "/nonexistent/callrec.toml", "--ari-password", "x"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/callrec.toml"), "{}", stderr(&missing));
}

#[test]
fn the_shipped_example_config_is_read_as_it_is() {
    // Every key it sets is known and valid; a bad flag then shows it was read.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/callrec.toml");
    let output = run_with_env(&["--config", example, "--ari-password", "x", "--post-call-url", "ftp://x"], &[]);
    assert!(stderr(&output).contains("--post-call-url must be"), "{}", stderr(&output));
}

#[test]
fn the_receivers_example_config_is_read_as_it_is_and_a_run_key_is_refused() {
    let receive = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_callrec"));
        command.arg("receive").args(args);
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CALLREC_")) {
            command.env_remove(name);
        }
        command.output().unwrap()
    };
    // Every key it sets is known and valid; a bad flag then shows it was read.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/receive.toml");
    let output = receive(&["--config", example, "--webhook-secret-file", "/nonexistent/secret"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/secret"), "{}", stderr(&output));
    let mut run_keys = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut run_keys, b"ari-url = \"http://pbx:8088\"\n").unwrap();
    let output = receive(&["--config", run_keys.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(error.contains("`ari-url`") && error.contains(run_keys.path().to_str().unwrap()), "{error}");
}

#[test]
fn the_webhook_secret_never_shows_in_help_or_errors() {
    let secret = "whsec-never-shown-0123";
    let help = run_with_env(&["--help"], &[("CALLREC_WEBHOOK_SECRET", secret)]);
    assert!(help.status.success());
    assert!(!String::from_utf8_lossy(&help.stdout).contains(secret));
    for (args, env) in [
        (&["--ari-password", "x", "--webhook-secret", secret, "--webhook-secret-file", "/x"][..], &[][..]),
        (&["--ari-password", "x", "--webhook-secret-file", "/x"][..], &[("CALLREC_WEBHOOK_SECRET", secret)][..]),
        (&["--ari-password", "x", "--media-bind", "0.0.0.0:7000"][..], &[("CALLREC_WEBHOOK_SECRET", secret)][..]),
    ] {
        let output = run_with_env(args, env);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&output).contains(secret), "{}", stderr(&output));
    }
    let empty = run_with_env(&["--ari-password", "x", "--webhook-secret", ""], &[]);
    assert!(stderr(&empty).contains("--webhook-secret is empty"), "{}", stderr(&empty));
}

/// A recording as delivery gets it.
fn recording() -> FinishedRecording {
    let metadata: Metadata = serde_json::from_value(serde_json::json!({
        "recording_id": "1ec81d61-e143-4406-be66-1b4dbf13e7a0",
        "name": "payment_confirmation", "channel_id": "1795489520.42", "channel_name": "PJSIP/lab-0000002a",
        "caller_number": "5550100", "caller_name": "Demo Caller", "connected_number": "", "connected_name": "",
        "linkedid": "1795489520.42", "accountcode": "", "context": "callrec-example-ivr", "exten": "100",
        "started_at": "2026-11-24T03:05:20.125Z", "ended_at": "2026-11-24T03:05:23.548Z", "duration_ms": 3423,
        "end_reason": "stop", "format": "ulaw", "sample_rate": 8000, "channels": 1, "tracks": [], "bytes": 4000,
        "missing_ms": 0, "masked": [], "masked_ms": 0, "silent": false, "silences": [], "silence_ms": 0,
        "rtp": {}, "sha256": "", "parties": []
    }))
    .unwrap();
    // Audio with CRLFs and dashes, as μ-law may hold them.
    let audio: Vec<u8> = (0..4000u32).map(|n| [b'\r', b'\n', b'-', 0xFF, 0x00][n as usize % 5]).collect();
    FinishedRecording { metadata, audio: Bytes::from(audio), format: AudioFormat::Ulaw }
}

/// The README's Python webhook receiver, as it stands.
fn readme_python_receiver() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split_once("#### Verifying in Python").expect("README shows a Python receiver").1;
    let block = section.split_once("```python\n").expect("a Python snippet").1;
    block.split_once("```\n").unwrap().0.to_string()
}

/// The receiver's next line on stdout.
async fn next_line(said: &mut Lines<BufReader<ChildStdout>>) -> String {
    let line = tokio::time::timeout(Duration::from_secs(10), said.next_line()).await;
    line.expect("the receiver says something within 10 s").unwrap().expect("the receiver is still running")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn the_readme_python_receiver_takes_what_callrec_signs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("receiver.py");
    std::fs::write(&script, readme_python_receiver()).unwrap();
    let secret = "whsec-readme-python";
    let mut receiver = tokio::process::Command::new("python3")
        .arg(&script)
        .arg("0")
        .env("CALLREC_WEBHOOK_SECRET", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("python3 is needed to run the README's receiver: {error}"));
    let mut said = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let listening = next_line(&mut said).await;
    let port = listening.strip_prefix("listening on ").expect(&listening).to_string();
    let url: url::Url = format!("http://127.0.0.1:{port}/recordings").parse().unwrap();
    let metrics = Metrics::default();
    let never = || tokio::sync::watch::channel(false).1;

    // Signed with the receiver's secret: taken, then taken once by key.
    let signed = Webhook::new(url.clone(), Duration::from_secs(20), Some(Secret::new(secret.into())));
    let recording = recording();
    let id = recording.metadata.recording_id.to_string();
    assert_eq!(signed.send(&recording, &metrics, never()).await.unwrap(), 1);
    assert_eq!(next_line(&mut said).await, format!("accepted {id}"));
    assert_eq!(signed.send(&recording, &metrics, never()).await.unwrap(), 1);
    assert_eq!(next_line(&mut said).await, format!("duplicate {id}"));
    let json = Bytes::from_static(br#"{"channel":{"id":"1795489520.42"}}"#);
    assert_eq!(signed.send_json("post-call-1795489520.42", &json, &metrics, never()).await.unwrap(), 1);
    assert_eq!(next_line(&mut said).await, "accepted post-call-1795489520.42");

    // Another secret, or none: refused for good (401), at the first attempt.
    for other in [Some(Secret::new("whsec-wrong".into())), None] {
        let failure = Webhook::new(url.clone(), Duration::from_secs(20), other)
            .send(&recording, &metrics, never())
            .await
            .unwrap_err();
        assert!(failure.permanent && failure.attempts == 1, "{failure}");
        assert!(next_line(&mut said).await.starts_with("rejected:"));
    }
    assert_eq!(metrics.delivery_permanent_failures.get(), 2);

    // A signature replayed 6 minutes on is refused; a fresh one is taken.
    let body = Bytes::from_static(b"{}");
    let client = reqwest::Client::new();
    for (t, status, line) in [
        (unix_now() - 360, 401, "rejected: timestamp too old (or in the future): a replay?"),
        (unix_now(), 200, "accepted replay-check"),
    ] {
        let header = signature_header(&Secret::new(secret.into()), t, std::slice::from_ref(&body));
        let response = client
            .post(url.clone())
            .header("Callrec-Signature", header)
            .header("Idempotency-Key", "replay-check")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(next_line(&mut said).await, line);
    }
    receiver.kill().await.unwrap();
}

#[test]
fn the_readme_rust_check_is_this_tested_file_word_for_word() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split_once("#### Verifying in Rust").expect("README shows a Rust check").1;
    let block = section.split_once("```rust\n").unwrap().1.split_once("```\n").unwrap().0;
    assert_eq!(block, include_str!("readme/verify_callrec_signature.rs"));
}

#[test]
fn the_readme_rust_check_accepts_what_callrec_signs_and_nothing_else() {
    use readme_rust_verifier::verify_callrec_signature as verify;
    let secret = Secret::new("whsec-readme-rust".into());
    let body = [Bytes::from_static(b"--b\r\nmultipart "), Bytes::from_static(b"bytes\r\n--b--\r\n")];
    let whole = body.concat();
    let now = 1_764_000_000;
    let header = signature_header(&secret, now - 10, &body);
    assert_eq!(verify(b"whsec-readme-rust", &header, &whole, now), Ok(()));
    assert_eq!(verify(b"whsec-other", &header, &whole, now), Err("signature does not match"));
    let mut tampered = whole.clone();
    tampered[5] ^= 1;
    assert_eq!(verify(b"whsec-readme-rust", &header, &tampered, now), Err("signature does not match"));
    let replayed = verify(b"whsec-readme-rust", &header, &whole, now + 301);
    assert_eq!(replayed, Err("timestamp too old (or in the future): a replay?"));
    let moved = header.replace(&format!("t={}", now - 10), &format!("t={now}"));
    assert_eq!(verify(b"whsec-readme-rust", &moved, &whole, now), Err("signature does not match"), "t is signed");
    for garbage in ["", "t=1", "v1=00", "t=x,v1=00", "t=1764000000,v1=zz"] {
        assert!(verify(b"whsec-readme-rust", garbage, &whole, now).is_err(), "{garbage:?}");
    }
}
