//! End to end, when things go wrong: a failing or absent webhook, ARI
//! unreachable, refusing or dropped, bad markers, a capture that never starts,
//! and shutdown mid-call. In each case the caller is never stranded, the
//! recording is never lost silently, nothing is left behind on Asterisk, and
//! the log says what happened.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::audio::{assert_absent, assert_absent_in, assert_present};
use support::callrec::{Callrec, Options};
use support::checks::{
    assert_between_marks, assert_delivered, assert_metadata, assert_onset_complete, assert_well_formed, PROMPT_MS,
};
use support::lab::{self, assert_nothing_left, epoch_ms, mark};
use support::proxy::Proxy;
use support::sipp::Caller;
use support::webhook::Webhook;

fn asterisk() -> SocketAddr {
    "127.0.0.1:8088".parse().unwrap()
}

/// A local TCP port with nothing listening on it.
async fn dead_port() -> u16 {
    Proxy::reserve().await.addr.port()
}

/// callrec reaching ARI through a proxy the test can cut, delivering to `webhook`.
async fn behind_a_proxy(webhook: &Webhook) -> (Proxy, Callrec) {
    let mut proxy = Proxy::reserve().await;
    proxy.start(asterisk()).await;
    let url = proxy.url();
    let callrec =
        Callrec::start(Options { ari_url: &url, webhook_url: Some(&webhook.url), ..Default::default() }).await;
    (proxy, callrec)
}

#[tokio::test]
async fn a_failing_webhook_is_retried_until_it_takes_the_recording() {
    let _lab = lab::take().await;
    let webhook = Webhook::failing_first(2).await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("retry");

    Caller::new("partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(webhook.attempts(), 3, "two refusals, then success");
    let meta = assert_well_formed(&deliveries[0], "partial", "stop");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&deliveries[0].audio);
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert_eq!(log.matches("webhook delivery failed; retrying").count(), 2, "{log}");
    assert!(log.contains("503"), "the log names the webhook's answer:\n{log}");
    assert!(log.contains("deliveries_webhook=1") && log.contains("delivery_retries=2"), "{log}");
    assert!(!log.contains("s3cr3t-token"), "the webhook's token never reaches the log");
    assert!(callrec.saved_is_empty(), "nothing fell back to the output directory");
}

#[tokio::test]
async fn a_webhook_that_never_answers_leaves_the_recording_in_the_output_directory() {
    let _lab = lab::take().await;
    let url = format!("http://127.0.0.1:{}/recordings", dead_port().await);
    let mut callrec = Callrec::start(Options {
        webhook_url: Some(&url),
        extra: vec!["--webhook-retry-for", "2s"],
        ..Default::default()
    })
    .await;
    let tag = lab::tag("fallback");

    Caller::new("partial", &tag).place().finish().await;
    callrec
        .wait_for_log("delivery failed; recording saved to the output directory instead", Duration::from_secs(15))
        .await;
    let saved = callrec.saved();
    assert_eq!(saved.len(), 1, "one recording in the output directory");
    let (meta, audio) = &saved[0];
    assert_metadata(meta, audio, "partial", "stop");
    assert_between_marks(meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(audio);
    let log = callrec.log();
    let id = meta["recording_id"].as_str().unwrap();
    assert!(log.contains(&format!("{id}.ul")), "the error names the saved file:\n{log}");
    assert!(log.contains("Connection refused") || log.contains("connection refused"), "the error says why:\n{log}");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("deliveries_fallback=1"), "{log}");
}

#[tokio::test]
async fn without_a_webhook_recordings_land_in_the_output_directory() {
    let _lab = lab::take().await;
    let mut callrec = Callrec::start(Options::default()).await;
    let tag = lab::tag("directory");

    Caller::new("partial", &tag).place().finish().await;
    callrec.wait_for_log("recording saved", Duration::from_secs(10)).await;
    let saved = callrec.saved();
    assert_eq!(saved.len(), 1);
    let (meta, audio) = &saved[0];
    assert_metadata(meta, audio, "partial", "stop");
    assert_between_marks(meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn an_unreachable_ari_is_reported_and_retried_until_it_answers() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut proxy = Proxy::reserve().await;
    let url = proxy.url();
    let mut callrec = Callrec::start(Options {
        ari_url: &url,
        webhook_url: Some(&webhook.url),
        wait_connected: false,
        ..Default::default()
    })
    .await;
    callrec.wait_for_count("cannot connect to ARI", 2, Duration::from_secs(10)).await;
    let log = callrec.log();
    assert!(log.contains("Connection refused"), "the log says why:\n{log}");

    proxy.start(asterisk()).await;
    callrec.wait_for_log("ARI event WebSocket connected", Duration::from_secs(20)).await;
    let tag = lab::tag("unreachable");
    Caller::new("partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "partial", "stop");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&deliveries[0].audio);
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_reported_without_revealing_it() {
    let _lab = lab::take().await;
    let mut callrec =
        Callrec::start(Options { ari_password: "not-the-password-42", wait_connected: false, ..Default::default() })
            .await;
    callrec.wait_for_count("cannot connect to ARI", 2, Duration::from_secs(10)).await;
    let log = callrec.stop().await;
    assert!(log.contains("refused the credentials (HTTP 401"), "the log says why:\n{log}");
    assert!(!log.contains("not-the-password-42"), "the password never reaches the log");

    // Nor does --help show it, though it is set in the environment.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(["run", "--help"])
        .env("CALLREC_ARI_PASSWORD", "not-the-password-42")
        .env("CALLREC_WEBHOOK_URL", "https://store.example/hook?token=s3cr3t-token")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--ari-password") && help.contains("CALLREC_ARI_PASSWORD"), "{help}");
    assert!(!help.contains("not-the-password-42") && !help.contains("s3cr3t-token"), "{help}");
}

#[tokio::test]
async fn a_dropped_ari_connection_is_restored_without_losing_the_recording() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let (proxy, mut callrec) = behind_a_proxy(&webhook).await;
    let tag = lab::tag("dropped");

    let call = Caller::new("partial", &tag).place();
    callrec.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.cut();
    callrec.wait_for_log("ARI event WebSocket connected again", Duration::from_secs(10)).await;
    call.finish().await;

    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "partial", "stop");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    let audio = &deliveries[0].audio;
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt, across the drop");
    assert_present(audio, 1000.0, 0, PROMPT_MS - 20, 0.98, "the caller, across the drop");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("ARI event WebSocket lost; reconnecting"), "{log}");
    assert!(log.contains("ari_reconnects=1"), "{log}");
}

#[tokio::test]
async fn a_hangup_missed_while_ari_was_down_still_ends_and_delivers_the_recording() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let (mut proxy, mut callrec) = behind_a_proxy(&webhook).await;
    let tag = lab::tag("missed");

    let call = Caller::new("entire", &tag).hang_up_after(Duration::from_millis(2500)).place();
    callrec.wait_for_log("capture established", Duration::from_secs(10)).await;
    // The channel has left the start marker: callrec's `continue` went
    // through before the cut (capture is established just before it is sent).
    mark(&tag, "start").await;
    proxy.stop_listening();
    proxy.cut();
    call.finish().await; // the hangup happens while callrec cannot hear it
    let hung_up_at = lab::now_ms();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(webhook.deliveries().is_empty());
    proxy.start(asterisk()).await;

    let deliveries = webhook.wait_for(1, Duration::from_secs(20)).await;
    let meta = assert_well_formed(&deliveries[0], "call_recording", "hangup");
    let audio = &deliveries[0].audio;
    assert_onset_complete(audio);
    assert!(audio.len() / 8 >= 2000, "the audio up to the hangup is kept");
    // It ends where its audio stopped (the hangup), not at the reconnect.
    let ended_at = epoch_ms(meta["ended_at"].as_str().unwrap());
    println!("hung up at {hung_up_at}, the recording ended at {ended_at}, missing {} ms", meta["missing_ms"]);
    assert!((ended_at - hung_up_at).abs() <= 250, "ended_at {ended_at}, hung up at {hung_up_at}");
    assert!(meta["missing_ms"].as_u64().unwrap() <= 60, "nothing after the hangup counts as missing: {meta}");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_stop_marker_placed_while_ari_is_down_still_keeps_what_follows_out() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let (mut proxy, mut callrec) = behind_a_proxy(&webhook).await;
    let tag = lab::tag("cut");

    let call = Caller::new("cut", &tag).place();
    // Capture runs and the channel has left the start marker (callrec named
    // its snoop on the channel before letting it go).
    mark(&tag, "start").await;
    proxy.stop_listening();
    proxy.cut();
    // The stop marker fails (callrec is not there); the 500 Hz prompt after it plays.
    mark(&tag, "stop").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(webhook.deliveries().is_empty());
    proxy.start(asterisk()).await;

    // Back, callrec ends the recording where the dialplan cut the capture.
    let deliveries = webhook.wait_for(1, Duration::from_secs(20)).await;
    let meta = assert_well_formed(&deliveries[0], "cut", "stop");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    let audio = &deliveries[0].audio;
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt before the stop marker");
    assert_present(audio, 1000.0, 0, PROMPT_MS - 20, 0.98, "the caller before the stop marker");
    assert_absent(audio, 500.0, "the prompt after the stop marker");
    call.finish().await;
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("the dialplan cut the capture"), "{log}");
}

/// As above, for a pause in a stereo recording: the pause subroutine cuts
/// both snoop channels, so neither track holds what follows.
#[tokio::test]
async fn a_pause_placed_while_ari_is_down_cuts_both_tracks_there() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let (mut proxy, mut callrec) = behind_a_proxy(&webhook).await;
    let tag = lab::tag("cutpause");

    let call = Caller::new("pause", &tag).options("channels=stereo").place();
    mark(&tag, "start").await;
    proxy.stop_listening();
    proxy.cut();
    // The pause marker fails; the "card number" prompt plays, then the rest.
    mark(&tag, "paused").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(webhook.deliveries().is_empty());
    proxy.start(asterisk()).await;

    let deliveries = webhook.wait_for(1, Duration::from_secs(20)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "pause", "stop", "wav", 2);
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "pause").await);
    assert_onset_complete(&tracks[1]);
    assert_present(&tracks[1], 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt before the pause marker");
    assert_present(&tracks[0], 1000.0, 0, PROMPT_MS - 20, 0.98, "the caller before the pause marker");
    // From past the prompt's onset: a tone that starts inside a 10 ms
    // window splashes into its neighbours' bins there.
    let duration = tracks[0].len() / 8;
    for track in &tracks {
        assert_absent_in(track, 500.0, 250, duration - 20, "the prompt after the pause marker");
        assert_absent_in(track, 800.0, 250, duration - 20, "the prompt after the resume marker");
    }
    call.finish().await;
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("the dialplan cut the capture"), "{log}");
    assert!(!log.contains("recordings_no_media"), "{log}");
}

#[tokio::test]
async fn bad_markers_are_reported_and_the_call_goes_on() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("markers");

    Caller::new("markers", &tag).place().finish().await;
    mark(&tag, "survived").await;
    mark(&tag, "end").await;
    // The unusable name still records, under the default name.
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "call_recording", "stop");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&deliveries[0].audio);
    assert_nothing_left().await;
    let log = callrec.stop().await;
    for expected in [
        "stop marker on a call with no recording",
        "unknown marker \"record\"",
        "no marker given",
        "unexpected extra arguments",
        "unusable recording name",
    ] {
        assert!(log.contains(expected), "the log reports {expected:?}:\n{log}");
    }
    assert!(log.contains("markers_invalid=4") && log.contains("markers_without_recording=1"), "{log}");
    assert_eq!(webhook.deliveries().len(), 1, "bad markers start nothing");
}

#[tokio::test]
async fn a_capture_that_never_starts_releases_the_call_within_a_second() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let target = format!("127.0.0.1:{}", dead_port().await);
    let mut callrec = Callrec::start(Options {
        webhook_url: Some(&webhook.url),
        extra: vec!["--media-advertise", &target],
        ..Default::default()
    })
    .await;
    let tag = lab::tag("timeout");

    Caller::new("partial", &tag).place().finish().await;
    let held = mark(&tag, "start").await - mark(&tag, "before").await;
    assert!((950..1500).contains(&held), "the start marker held the call {held} ms");
    mark(&tag, "end").await; // the rest of the call flow ran

    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "partial", "error");
    assert_eq!(meta["duration_ms"], 0);
    let error = meta["error"].as_str().unwrap();
    assert!(error.contains("capture not established within 1000 ms") && error.contains("first RTP packet"), "{error}");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("recording failed; the call goes on"), "{log}");
    assert!(log.contains("recordings_failed=1"), "{log}");
}

#[tokio::test]
async fn shutdown_mid_call_delivers_the_recording_and_leaves_the_call_alone() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("shutdown");

    let call = Caller::new("partial", &tag).place();
    callrec.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let log = callrec.stop().await;
    assert!(log.contains("recording delivered"), "delivered before exiting:\n{log}");
    let deliveries = webhook.deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_well_formed(&deliveries[0], "partial", "shutdown");
    assert_onset_complete(&deliveries[0].audio);

    // The call itself goes on to its end: the stop marker finds no callrec
    // (the dialplan logs it and moves on), the rest of the flow runs.
    call.finish().await;
    mark(&tag, "end").await;
    assert_nothing_left().await;
}

#[tokio::test]
async fn a_call_held_by_a_crashed_callrec_is_released_by_the_next_one() {
    let _lab = lab::take().await;
    // The first callrec holds the call (its RTP goes nowhere, and it waits
    // long for it), then dies without letting go.
    let target = format!("127.0.0.1:{}", dead_port().await);
    let mut first = Callrec::start(Options {
        extra: vec!["--media-advertise", &target, "--capture-timeout", "20s"],
        ..Default::default()
    })
    .await;
    let tag = lab::tag("stranded");
    let call = Caller::new("partial", &tag).place();
    first.wait_for_log("setting up capture", Duration::from_secs(10)).await;
    first.kill().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(lab::global(&format!("{tag}_start")).await.is_none(), "the call is still held");

    let mut second = Callrec::start(Options::default()).await;
    second.wait_for_log("releasing a call left waiting in Stasis", Duration::from_secs(10)).await;
    mark(&tag, "start").await; // the call went on
    call.finish().await;
    mark(&tag, "end").await;
    // The dead callrec's snoop, externalMedia channel and bridge are gone too.
    assert_nothing_left().await;
    let log = second.stop().await;
    assert!(log.contains("removing leftover recording resources"), "{log}");
    assert!(log.contains("stranded_released=1"), "{log}");
}

#[tokio::test]
async fn a_second_callrec_on_the_same_application_is_reported_and_not_fought() {
    let _lab = lab::take().await;
    let (first_hook, second_hook) = (Webhook::start().await, Webhook::start().await);
    let mut first = Callrec::start(Options { webhook_url: Some(&first_hook.url), ..Default::default() }).await;

    // The first one is recording a call when a second one takes the application.
    let running = Caller::new("entire", &lab::tag("replacedrunning"))
        .tone(700)
        .hang_up_after(Duration::from_millis(4000))
        .place();
    first.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut second = Callrec::start(Options { webhook_url: Some(&second_hook.url), ..Default::default() }).await;
    first.wait_for_log("another ARI client took over the Stasis application", Duration::from_secs(5)).await;
    // Its stop marker or hangup would never reach the first one: the
    // recording ends there, with an error saying why, and is delivered.
    let cut = first_hook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_metadata(&cut[0].metadata, &cut[0].audio, "call_recording", "error");
    assert!(meta["error"].as_str().unwrap().contains("took over the Stasis application"), "{meta}");
    assert_present(&cut[0].audio, 700.0, 0, cut[0].audio.len() / 8 - 20, 0.97, "the call until the takeover");
    running.finish().await;

    // The newer one records; the older one stays out of the way.
    let tag = lab::tag("replaced");
    Caller::new("partial", &tag).place().finish().await;
    let deliveries = second_hook.wait_for(1, Duration::from_secs(10)).await;
    assert_well_formed(&deliveries[0], "partial", "stop");
    assert_nothing_left().await;
    assert!(!second.log().contains("took over"), "the newer one is not pushed out");
    assert_eq!(first_hook.deliveries().len(), 1, "the older one recorded nothing more");

    // Once the newer one is gone, the older one takes the application back.
    second.stop().await;
    first.wait_for_log("the Stasis application is free again", Duration::from_secs(15)).await;
    first.wait_for_count("ARI event WebSocket connected", 2, Duration::from_secs(5)).await;
    let tag = lab::tag("takenback");
    Caller::new("partial", &tag).place().finish().await;
    let deliveries = first_hook.wait_for(2, Duration::from_secs(10)).await;
    assert_well_formed(&deliveries[1], "partial", "stop");
    assert_nothing_left().await;
    first.stop().await;
}

/// A task that fails (here the media task, by a fault compiled into test
/// builds only) must not leave callrec up with recording silently broken: it
/// stops, delivers what it holds, and exits non-zero for its service manager.
#[tokio::test]
async fn a_failed_task_stops_callrec_non_zero_after_delivering_what_it_held() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let env = vec![("CALLREC_TEST_FAULT", "media-panic-after:100")];
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), env, ..Default::default() }).await;
    let tag = lab::tag("fault");

    let call = Caller::new("long", &tag).hang_up_after(Duration::from_millis(6000)).place();
    let (status, log) = callrec.wait_exit(Duration::from_secs(20)).await;
    println!("injected: the media task panics at its 100th datagram; callrec exited with {status}");
    assert!(!status.success(), "exits non-zero: {status}");
    assert!(log.contains("callrec's media task panicked unexpectedly"), "{log}");
    let deliveries = webhook.wait_for(1, Duration::from_secs(5)).await;
    let meta = &deliveries[0].metadata;
    println!("came out: one recording, end_reason {}, {} ms", meta["end_reason"], meta["duration_ms"]);
    assert_eq!(meta["end_reason"], "error", "{meta}");
    assert!(meta["error"].as_str().unwrap().contains("media task failed"), "said, not passed off as silence: {meta}");
    call.finish().await;
    assert_nothing_left().await;
}

/// callrec killed outright (SIGKILL) while it records: the call goes on
/// untouched, and the next callrec removes the dead one's snoop,
/// externalMedia channel and bridge.
#[tokio::test]
async fn a_callrec_killed_mid_recording_leaves_the_call_alone_and_the_next_one_cleans_up() {
    let _lab = lab::take().await;
    let mut first = Callrec::start(Options::default()).await;
    let tag = lab::tag("killed");
    let call = Caller::new("entire", &tag).hang_up_after(Duration::from_millis(6000)).place();
    first.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    first.kill().await;
    let left: Vec<String> = lab::channel_names().await;
    println!("injected: SIGKILL mid-recording; on Asterisk then: {left:?}");

    let webhook = Webhook::start().await;
    let mut second = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    second.wait_for_log("removing leftover recording resources", Duration::from_secs(10)).await;
    let remaining = lab::channel_names().await;
    assert!(remaining.iter().all(|name| name.starts_with("PJSIP/")), "only the call is left: {remaining:?}");
    assert_eq!(remaining.len(), 1, "the call itself still runs: {remaining:?}");
    call.finish().await; // hangs up on its own schedule: never interrupted
    mark(&tag, "prompted").await;
    assert_nothing_left().await;
    let log = second.stop().await;
    println!("came out: the call ran to its own hangup; the second callrec removed the leftovers");
    assert!(webhook.deliveries().is_empty(), "the second callrec invents no recording");
    assert!(!log.contains("ERROR"), "{log}");
}

/// Asterisk restarted under a running recording: the recording is delivered
/// with what was captured and ends as `hangup` where its audio stopped; callrec
/// reconnects and records the next call; nothing of callrec's is left.
#[tokio::test]
async fn an_asterisk_restart_mid_recording_delivers_what_was_captured_and_recording_goes_on() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let call = Caller::new("entire", &lab::tag("restart")).hang_up_after(Duration::from_millis(8000)).place();
    callrec.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let restarted_at = lab::now_ms();
    let mut restart = tokio::process::Command::new("docker");
    let status = restart.args(["restart", "-t", "1", "callrec-asterisk"]).stdout(std::process::Stdio::null()).status();
    assert!(status.await.unwrap().success(), "docker restart");
    drop(call); // its PBX is gone: the caller's sipp is of no more use
    let deliveries = webhook.wait_for(1, Duration::from_secs(40)).await;
    let meta = assert_well_formed(&deliveries[0], "call_recording", "hangup");
    let ended_at = epoch_ms(meta["ended_at"].as_str().unwrap());
    println!(
        "injected: docker restart of Asterisk at {restarted_at}; came out: the recording ended at {ended_at} ({} ms), {}",
        meta["duration_ms"], meta["end_reason"]
    );
    assert!((ended_at - restarted_at).abs() <= 1500, "ends where the audio stopped: {ended_at} vs {restarted_at}");
    assert_onset_complete(&deliveries[0].audio);

    // callrec is back with the new Asterisk and records the next call.
    callrec.wait_for_count("ARI event WebSocket connected", 2, Duration::from_secs(60)).await;
    let tag = lab::tag("partial");
    Caller::new("partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(2, Duration::from_secs(10)).await;
    assert_well_formed(&deliveries[1], "partial", "stop");
    assert_nothing_left().await;
    callrec.stop().await;
}
