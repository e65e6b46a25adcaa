//! End to end against the dockerized Asterisk 22: real SIP calls with known
//! audio, recorded by the real callrec binary, delivered to a real webhook,
//! and checked by content (which tone sounds where), timing (against the
//! marker times the dialplan noted) and metadata.

mod support;

use std::time::Duration;

use support::audio::{assert_absent, assert_present, present_ms};
use support::callrec::{Callrec, Options};
use support::checks::{assert_between_marks, assert_onset_complete, assert_well_formed, PROMPT_MS};
use support::lab::{self, assert_nothing_left, epoch_ms, mark};
use support::sipp::Caller;
use support::webhook::Webhook;

#[tokio::test]
async fn partial_recording_holds_exactly_the_bookended_section() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("partial");

    Caller::new("partial", &tag).from("5551234", "Alice Example").place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let delivery = &deliveries[0];
    let meta = assert_well_formed(delivery, "partial", "stop");
    assert_eq!(meta["caller_number"], "5551234");
    assert_eq!(meta["caller_name"], "Alice Example");
    assert_eq!(meta["missing_ms"], 0);
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    let held = mark(&tag, "start").await - mark(&tag, "before").await;
    assert!(held < 500, "the start marker held the call for {held} ms");

    let audio = &delivery.audio;
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt the caller hears");
    assert_present(audio, 1000.0, 0, audio.len() / 8 - 20, 0.98, "what the caller says");
    assert_absent(audio, 500.0, "the prompt after the stop marker");

    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(!log.contains("s3cr3t-token"), "the webhook's token never reaches the log");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "a clean call logs no warning:\n{log}");
}

#[tokio::test]
async fn entire_call_is_recorded_until_the_caller_hangs_up() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("entire");

    // The caller stays 1.5 s after the prompt, then hangs up; no stop marker.
    Caller::new("entire", &tag).hang_up_after(Duration::from_millis(4800)).place().finish().await;
    let hung_up_at = lab::now_ms();
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "call_recording", "hangup");
    let start = mark(&tag, "start").await;
    let ended_at = epoch_ms(meta["ended_at"].as_str().unwrap());
    assert!((ended_at - hung_up_at).abs() <= 250, "ended_at {ended_at}, the caller hung up at {hung_up_at}");
    assert_between_marks(&meta, start, ended_at);

    let audio = &deliveries[0].audio;
    let duration = audio.len() / 8;
    assert!(duration > PROMPT_MS + 1000, "the recording runs past the prompt until hangup ({duration} ms)");
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt");
    assert_present(audio, 1000.0, 0, duration - 100, 0.97, "the caller, to the end of the call");
    assert_eq!(present_ms(audio, 400.0, PROMPT_MS + 100, duration), 0, "silence from the IVR after the prompt");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_caller_hanging_up_mid_recording_gets_the_recording_delivered() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("midway");

    // Hang up 1.5 s into the 3 s prompt: the stop marker is never reached.
    Caller::new("partial", &tag).hang_up_after(Duration::from_millis(1800)).place().finish().await;
    let hung_up_at = lab::now_ms();
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "partial", "hangup");
    let start = mark(&tag, "start").await;
    assert!(lab::global(&format!("{tag}_stop")).await.is_none(), "the stop marker was never reached");
    let ended_at = epoch_ms(meta["ended_at"].as_str().unwrap());
    assert!((ended_at - hung_up_at).abs() <= 250, "ended_at {ended_at}, the caller hung up at {hung_up_at}");
    assert_between_marks(&meta, start, ended_at);

    let audio = &deliveries[0].audio;
    let duration = audio.len() / 8;
    assert!((1300..1700).contains(&duration), "{duration} ms recorded");
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, duration - 100, 0.97, "the prompt, until the hangup");
    assert_present(audio, 1000.0, 0, duration - 100, 0.97, "the caller");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn two_recordings_in_one_call_are_delivered_separately() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("two");

    Caller::new("two", &tag).place().finish().await;
    let deliveries = webhook.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 2);
    let first = deliveries.iter().find(|d| d.metadata["name"] == "first").expect("the first recording");
    let second = deliveries.iter().find(|d| d.metadata["name"] == "second").expect("the second recording");
    let first_meta = assert_well_formed(first, "first", "stop");
    let second_meta = assert_well_formed(second, "second", "stop");
    assert_ne!(first_meta["recording_id"], second_meta["recording_id"]);
    assert_eq!(first_meta["channel_id"], second_meta["channel_id"], "one call");
    assert_between_marks(&first_meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_between_marks(&second_meta, mark(&tag, "start2").await, mark(&tag, "stop2").await);

    assert_onset_complete(&first.audio);
    assert_absent(&first.audio, 800.0, "the first recording holds none of the second section");
    assert_absent(&first.audio, 500.0, "the first recording holds nothing from between the sections");
    let second_ms = second.audio.len() / 8;
    assert_present(&second.audio, 800.0, 60, second_ms - 20, 0.97, "the second section's prompt");
    assert_absent(&second.audio, 400.0, "the second recording holds none of the first section");
    assert_absent(&second.audio, 500.0, "the second recording holds nothing from between the sections");
    assert_present(&second.audio, 1000.0, 0, second_ms - 20, 0.97, "the caller");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_second_start_delivers_the_first_recording_and_begins_anew() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("restart");

    Caller::new("restart", &tag).place().finish().await;
    let deliveries = webhook.wait_for(2, Duration::from_secs(10)).await;
    let first = deliveries.iter().find(|d| d.metadata["name"] == "first").expect("the first recording");
    let second = deliveries.iter().find(|d| d.metadata["name"] == "second").expect("the second recording");
    let first_meta = assert_well_formed(first, "first", "restart");
    let second_meta = assert_well_formed(second, "second", "stop");
    // The first ends where the second start marker arrived.
    assert_between_marks(&first_meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_between_marks(&second_meta, mark(&tag, "start2").await, mark(&tag, "stop2").await);
    assert!(
        epoch_ms(first_meta["ended_at"].as_str().unwrap()) <= epoch_ms(second_meta["started_at"].as_str().unwrap()),
        "the recordings do not overlap"
    );

    assert_onset_complete(&first.audio);
    assert_absent(&first.audio, 800.0, "the first recording");
    let second_ms = second.audio.len() / 8;
    assert_present(&second.audio, 800.0, 60, second_ms - 20, 0.97, "the second recording's prompt");
    assert_absent(&second.audio, 400.0, "the second recording");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn concurrent_calls_keep_their_audio_apart() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;

    let callers = [(700, "5550700"), (1000, "5551000"), (1300, "5551300")];
    let mut calls = Vec::new();
    for (i, (tone, number)) in callers.iter().enumerate() {
        let tag = lab::tag(&format!("concurrent{i}"));
        calls.push(Caller::new("partial", &tag).tone(*tone).from(number, "Concurrent").place());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for call in calls {
        call.finish().await;
    }
    let deliveries = webhook.wait_for(3, Duration::from_secs(10)).await;
    for (tone, number) in callers {
        let delivery = deliveries
            .iter()
            .find(|d| d.metadata["caller_number"] == number)
            .unwrap_or_else(|| panic!("no recording for caller {number}"));
        assert_well_formed(delivery, "partial", "stop");
        let audio = &delivery.audio;
        assert_onset_complete(audio);
        assert_present(audio, f64::from(tone), 0, audio.len() / 8 - 20, 0.97, "this call's caller");
        for (other, _) in callers.iter().filter(|(t, _)| *t != tone) {
            assert_absent(audio, f64::from(*other), &format!("caller {number} hears nothing of the {other} Hz call"));
        }
    }
    assert_nothing_left().await;
    callrec.stop().await;
}
