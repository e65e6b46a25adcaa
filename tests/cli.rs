//! The command line as an operator meets it: help that reads well, and one
//! clear line with exit code 2 for anything wrong.

use std::process::{Command, Output};

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
    ] {
        assert!(help.contains(flag) && help.contains(env), "{flag} [{env}] missing from:\n{help}");
    }
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
