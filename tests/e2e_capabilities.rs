//! End to end against the dockerized Asterisk 22: what a recording can be
//! asked to be. Stereo (the caller and what the caller hears on two tracks,
//! apart and aligned), WAV, pause and resume around a "card number" prompt
//! (as silence or cut out), bad options, `max` and `min`, a silent recording,
//! a recording whose media stops, and the call keys in the metadata. Each is
//! checked from what the storage webhook receives: audio content by tone and
//! time, and metadata.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::audio::{assert_absent_in, assert_present, first_run_ms, level_db, onsets_ms, present_ms};
use support::callrec::{Callrec, Options};
use support::checks::{assert_between_marks, assert_delivered, assert_onset_complete, PROMPT_MS};
use support::lab::{self, assert_nothing_left, epoch_ms, mark};
use support::sipp::{Agent, Caller, AGENT_NAME, AGENT_NUMBER};
use support::webhook::Webhook;

/// The separation the two tracks of a stereo recording must keep.
const SEPARATION_DB: f64 = 60.0;

async fn callrec_with(webhook: &Webhook) -> Callrec {
    Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await
}

/// The recording time (ms from its start) of a mark the dialplan noted.
async fn at(meta: &Value, tag: &str, name: &str) -> i64 {
    mark(tag, name).await - epoch_ms(meta["started_at"].as_str().unwrap())
}

/// Asserts that `frequency` is at least `SEPARATION_DB` louder in `louder`
/// than in `quieter` over `from_ms..to_ms`.
fn assert_separated(louder: &[u8], quieter: &[u8], frequency: f64, from_ms: usize, to_ms: usize, what: &str) {
    let (loud, quiet) = (level_db(louder, frequency, from_ms, to_ms), level_db(quieter, frequency, from_ms, to_ms));
    println!("{what}: {frequency} Hz at {loud:.1} dB on its own track, {quiet:.1} dB on the other");
    assert!(
        loud - quiet >= SEPARATION_DB,
        "{what}: {frequency} Hz only {:.1} dB louder on its own track ({loud:.1} vs {quiet:.1} dB)",
        loud - quiet
    );
}

#[tokio::test]
async fn stereo_puts_the_caller_left_and_what_the_caller_hears_right() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("stereo");

    Caller::new("stereo", &tag).options("channels=stereo").place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "stereo", "stop", "wav", 2);
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    let held = mark(&tag, "start").await - mark(&tag, "before").await;
    assert!(held < 500, "the start marker held the call for {held} ms");
    let (caller, callee) = (&tracks[0], &tracks[1]);
    let duration = caller.len() / 8;

    assert_onset_complete(callee);
    assert_present(callee, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt, right");
    assert_present(caller, 1000.0, 0, duration - 20, 0.98, "the caller, left");
    assert_separated(caller, callee, 1000.0, 0, duration, "what the caller says");
    assert_separated(callee, caller, 400.0, 250, duration, "what the caller hears");
    for track in &tracks {
        // From past the prompt's onset, which splashes into neighbouring bins.
        assert_absent_in(track, 500.0, 250, duration - 20, "the prompt after the stop marker");
    }
    assert_eq!(meta["missing_ms"], 0);
    assert_eq!(meta["silent_tracks"], serde_json::json!([]), "both parties were heard: {meta}");
    // One 20 ms packet per frame on each track, nothing late or lost on
    // loopback; the counters run until the stream is handed over, once it
    // holds the audio up to the end: a packet or two past it.
    for track in ["caller", "callee"] {
        let packets = meta["rtp"][track]["packets"].as_i64().unwrap();
        let frames = meta["duration_ms"].as_i64().unwrap() / 20;
        assert!((-2..=3).contains(&(packets - frames)), "{track}: {packets} packets for {frames} frames: {meta}");
    }
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "a clean call logs no warning:\n{log}");
}

/// A μ-law file of 1 kHz bursts: 300 ms on, 200 ms off, over and over.
fn bursts(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bursts.ulaw");
    let pattern: Vec<u8> = (0..4000)
        .map(|n| {
            let on = n % 4000 < 2400;
            let value =
                if on { 10000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin() } else { 0.0 };
            callrec::ulaw::encode(value as i16)
        })
        .collect();
    std::fs::write(&path, pattern.repeat(20)).unwrap();
    path
}

/// Each burst the caller said (left) must start on the right, where it came
/// back, within `tolerance_ms`; returns how far apart they were at most.
fn assert_bursts_aligned(tracks: &[Vec<u8>], tolerance_ms: i64) -> i64 {
    let (said, heard) = (onsets_ms(&tracks[0], 1000.0), onsets_ms(&tracks[1], 1000.0));
    println!("burst onsets: said {said:?}, heard {heard:?}");
    assert!(said.len() >= 5, "the caller's bursts are on the left: {said:?}");
    assert_eq!(said.len(), heard.len(), "every burst comes back on the right");
    let mut widest = 0;
    for (left, right) in said.iter().zip(&heard) {
        let apart = *right as i64 - *left as i64;
        widest = widest.max(apart.abs());
        assert!(apart.abs() <= tolerance_ms, "a burst starts at {left} ms on the left and {right} ms on the right");
    }
    widest
}

/// What the caller says (left) comes straight back (right) through Echo():
/// each burst must start at the same place on both tracks.
#[tokio::test]
async fn stereo_tracks_stay_aligned() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("echo");
    let dir = tempfile::tempdir().unwrap();

    let caller = Caller::new("echo", &tag).saying(&bursts(dir.path()));
    caller.hang_up_after(Duration::from_millis(5000)).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (_, tracks) = assert_delivered(&deliveries[0], "echo", "hangup", "wav", 2);
    assert_bursts_aligned(&tracks, 20);
    assert_nothing_left().await;
    callrec.stop().await;
}

/// The same through a call put through to a second SIP party that sends back
/// what it hears: the caller's bursts, and the agent's copy of them.
#[tokio::test]
async fn stereo_tracks_stay_aligned_through_a_bridged_call() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("bridgedecho");
    let dir = tempfile::tempdir().unwrap();

    let agent = Agent::echoing();
    Caller::new("bridged", &tag).saying(&bursts(dir.path())).place().finish().await;
    agent.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (_, tracks) = assert_delivered(&deliveries[0], "bridged", "hangup", "wav", 2);
    let widest = assert_bursts_aligned(&tracks, 20);
    println!("the echo came back at most {widest} ms after the burst");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_call_put_through_to_an_agent_is_recorded_with_the_parties_apart() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("bridged");

    let agent = Agent::answer(700);
    Caller::new("bridged", &tag).place().finish().await;
    agent.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "bridged", "hangup", "wav", 2);
    let (caller, callee) = (&tracks[0], &tracks[1]);
    let duration = caller.len() / 8;
    assert!(duration > 4000, "the call with the agent is recorded ({duration} ms)");
    // The agent answers a little while after the start marker.
    let (agent_from, _) = support::audio::first_run_ms(callee, 700.0).expect("the agent on the right");
    assert_present(callee, 700.0, agent_from, duration - 100, 0.97, "the agent, right");
    assert_present(caller, 1000.0, 0, duration - 100, 0.97, "the caller, left");
    assert_separated(caller, callee, 1000.0, agent_from, duration, "the caller");
    assert_separated(callee, caller, 700.0, agent_from, duration, "the agent");
    assert_eq!(meta["connected_number"], AGENT_NUMBER, "{meta}");
    assert_eq!(meta["connected_name"], AGENT_NAME, "{meta}");
    // Who was on the line when: the IVR while the agent's phone rang, then the agent.
    let parties = meta["parties"].as_array().unwrap();
    println!("parties {parties:?}; the agent heard from {agent_from} ms");
    assert_eq!(parties.len(), 2, "{meta}");
    assert_eq!((parties[0]["name"].as_str(), parties[0]["from_ms"].as_i64()), (Some("ivr"), Some(0)));
    assert_eq!(parties[1]["number"], AGENT_NUMBER);
    assert!(parties[1]["channel"].as_str().unwrap().starts_with("PJSIP/agent-"), "{meta}");
    assert_eq!(parties[0]["to_ms"], parties[1]["from_ms"]);
    // The agent is heard no earlier than a frame or so before the answer,
    // and usually 20-40 ms after it; in about one run in ten (callrec's
    // timeline intact: nothing missing, no resync) Asterisk passes the
    // agent's first audio on some 120 ms after the answer, so up to 200 ms
    // late is allowed.
    let answered = parties[1]["from_ms"].as_i64().unwrap();
    let heard_after = agent_from as i64 - answered;
    assert!((-60..=200).contains(&heard_after), "put through at {answered} ms, the agent heard from {agent_from} ms");
    assert_eq!(parties[1]["to_ms"].as_i64(), Some(duration as i64), "{meta}");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn wav_is_delivered_when_asked_with_the_call_keys() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("wav");

    Caller::new("options", &tag).options("format=wav").place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "options", "stop", "wav", 1);
    let audio = &deliveries[0].audio;
    assert_eq!(&audio[..4], b"RIFF");
    assert_eq!(&audio[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([audio[22], audio[23]]), 1, "mono");
    assert_eq!(u32::from_le_bytes([audio[24], audio[25], audio[26], audio[27]]), 8000, "8000 Hz");
    assert_eq!(u16::from_le_bytes([audio[34], audio[35]]), 16, "16-bit PCM");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&tracks[0]);
    assert_present(&tracks[0], 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt");
    let duration = tracks[0].len() / 8;
    assert_absent_in(&tracks[0], 500.0, 250, duration - 20, "the prompt after the stop marker");
    // Call keys: where the start marker was placed (the caller of the
    // dialplan subroutine), and what joins the recording to the CDR.
    assert_eq!(meta["context"], "callrec-lab", "{meta}");
    assert_eq!(meta["exten"], "options", "{meta}");
    assert_eq!(meta["accountcode"], "lab", "{meta}");
    assert_eq!(meta["linkedid"], meta["channel_id"], "a call of one channel is its own linkedid: {meta}");
    assert_eq!((meta["connected_number"].as_str(), meta["silent"].as_bool()), (Some(""), Some(false)));
    let duration = meta["duration_ms"].as_i64().unwrap();
    assert_eq!(
        meta["parties"],
        serde_json::json!([{"from_ms": 0, "to_ms": duration, "number": "", "name": "ivr", "channel": ""}]),
        "only the IVR: {meta}"
    );
    assert_nothing_left().await;
    callrec.stop().await;
}

/// The masked range of a recording, as (start_ms, end_ms).
fn masked(meta: &Value) -> Vec<(i64, i64)> {
    let ranges = meta["masked"].as_array().unwrap();
    ranges.iter().map(|r| (r["start_ms"].as_i64().unwrap(), r["end_ms"].as_i64().unwrap())).collect()
}

#[tokio::test]
async fn a_paused_card_number_prompt_never_reaches_the_recording() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("pause");

    Caller::new("pause", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "pause", "stop", "ulaw", 1);
    let audio = &tracks[0];
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    let (pause, resume) = (at(&meta, &tag, "pause").await, at(&meta, &tag, "resume").await);
    let ranges = masked(&meta);
    let resumed = at(&meta, &tag, "resumed").await;
    let heard = first_run_ms(audio, 800.0).map(|(from, _)| from as i64);
    println!("masked {ranges:?}; markers at {pause} and {resume} ms; the prompt after the resume, played from {resumed} ms, is heard from {heard:?} ms");
    assert_eq!(ranges.len(), 1, "{meta}");
    let (start_ms, end_ms) = ranges[0];
    assert!((start_ms - pause).abs() <= 40, "masked from {start_ms} ms, the pause marker at {pause} ms");
    assert!((end_ms - resume).abs() <= 40, "masked until {end_ms} ms, the resume marker at {resume} ms");
    let masked_ms = meta["masked_ms"].as_i64().unwrap();
    assert!((masked_ms - (end_ms - start_ms)).abs() <= 1, "masked_ms {masked_ms}, the range {start_ms}..{end_ms}");
    // Silence keeps the timeline: the recording is as long as the call was.
    let (start, end) = (start_ms as usize, end_ms as usize);
    let card = level_db(audio, 500.0, start, end);
    let around = level_db(audio, 400.0, 300, start).max(level_db(audio, 800.0, end, audio.len() / 8));
    println!("the card prompt at {card:.1} dB, the prompts around it at {around:.1} dB");
    assert!(around - card >= 50.0, "the paused prompt is only {:.1} dB below the rest", around - card);
    assert_absent_in(audio, 500.0, start + 10, end - 10, "the prompt played while paused");
    assert_eq!(present_ms(audio, 1000.0, start + 10, end - 10), 0, "nothing the caller said while paused");
    assert_present(audio, 400.0, 250, start - 40, 0.97, "the prompt before the pause");
    assert_present(audio, 800.0, end + 40, audio.len() / 8 - 40, 0.97, "the prompt after the resume");
    assert_present(audio, 1000.0, end + 40, audio.len() / 8 - 40, 0.97, "the caller after the resume");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("recording paused") && log.contains("recording resumed"), "{log}");
}

#[tokio::test]
async fn a_skipped_pause_is_cut_out_of_both_tracks() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("skip");

    Caller::new("pause", &tag).options("channels=stereo&pause=skip").place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "pause", "stop", "wav", 2);
    let between = mark(&tag, "stop").await - mark(&tag, "start").await;
    let paused = mark(&tag, "resume").await - mark(&tag, "pause").await;
    let duration = meta["duration_ms"].as_i64().unwrap();
    let masked_ms = meta["masked_ms"].as_i64().unwrap();
    println!("recorded {duration} ms of {between} ms between the markers; paused {paused} ms, cut {masked_ms} ms");
    assert!((masked_ms - paused).abs() <= 60, "cut {masked_ms} ms, paused {paused} ms");
    assert!((duration + masked_ms - between).abs() <= 60, "shorter by the paused time");
    let ranges = masked(&meta);
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].0, ranges[0].1, "a cut is a point");
    let cut = ranges[0].0 as usize;
    assert!((cut as i64 - at(&meta, &tag, "pause").await).abs() <= 40, "cut at {cut} ms");
    for track in &tracks {
        assert_absent_in(track, 500.0, cut + 10, duration as usize, "the prompt played while paused");
        // From past the prompt's onset, which splashes into neighbouring bins.
        assert_absent_in(track, 500.0, 250, cut - 10, "the prompt played while paused");
    }
    assert_present(&tracks[1], 400.0, 250, cut - 40, 0.97, "the prompt before the pause");
    assert_present(&tracks[1], 800.0, cut + 60, duration as usize - 40, 0.97, "the prompt after the resume");
    assert_present(&tracks[0], 1000.0, 0, duration as usize - 40, 0.95, "the caller, around the cut");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_hangup_while_paused_delivers_the_recording_masked_to_the_end() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("pausehangup");

    // The prompt takes 3 s; the caller hangs up 1 s into the paused prompt.
    Caller::new("pause", &tag).hang_up_after(Duration::from_millis(4300)).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "pause", "hangup", "ulaw", 1);
    let ranges = masked(&meta);
    let duration = meta["duration_ms"].as_i64().unwrap();
    assert_eq!(ranges.len(), 1, "{meta}");
    assert_eq!(ranges[0].1, duration, "masked to the end: {meta}");
    assert!((ranges[0].0 - at(&meta, &tag, "pause").await).abs() <= 40, "{meta}");
    let from = ranges[0].0 as usize + 10;
    assert_absent_in(&tracks[0], 500.0, from, duration as usize, "the prompt played while paused");
    assert_eq!(present_ms(&tracks[0], 1000.0, from, duration as usize), 0, "nothing the caller said while paused");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_start_with_a_bad_option_records_nothing_and_names_the_key() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("badoption");

    Caller::new("options", &tag).options("channels=quad").place().finish().await;
    let held = mark(&tag, "start").await - mark(&tag, "before").await;
    assert!(held < 300, "the bad marker held the call for {held} ms");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(webhook.deliveries().is_empty(), "nothing is recorded");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("bad option on a start marker") && log.contains("channels"), "{log}");
    assert!(log.contains("marker_options_invalid=1"), "{log}");
    assert!(!log.contains("recordings_started"), "{log}");
}

#[tokio::test]
async fn max_ends_the_recording_and_the_call_goes_on_unrecorded() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("max");

    let call = Caller::new("long", &tag).options("max=2s").hang_up_after(Duration::from_millis(6000)).place();
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "long", "max_duration", "ulaw", 1);
    assert_eq!(meta["duration_ms"], 2000, "{meta}");
    assert_onset_complete(&tracks[0]);
    assert_absent_in(&tracks[0], 500.0, 250, 1980, "the prompt after the limit");
    call.finish().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(webhook.deliveries().len(), 1, "nothing more is recorded");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_recording_shorter_than_min_is_not_delivered() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("min");

    Caller::new("options", &tag).options("min=10s").place().finish().await;
    mark(&tag, "end").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(webhook.deliveries().is_empty(), "a 3 s recording is under its 10 s min");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("recording shorter than its min: not delivered"), "{log}");
    assert!(log.contains("recordings_too_short=1"), "{log}");
}

#[tokio::test]
async fn a_recording_of_nothing_is_delivered_as_silent() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("quiet");

    Caller::new("quiet", &tag).silent().place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, _) = assert_delivered(&deliveries[0], "quiet", "stop", "ulaw", 1);
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_eq!(meta["silent"], true, "{meta}");
    assert_eq!(meta["missing_ms"], 0, "silence that came, not packets that did not: {meta}");
    let duration = meta["duration_ms"].as_i64().unwrap();
    assert_eq!(meta["silence_ms"].as_i64(), Some(duration), "all of it is silence Asterisk sent: {meta}");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_silent_hold_is_reported_as_silence_asterisk_sent() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("hold");

    Caller::new("hold", &tag).silent().place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "hold", "stop", "ulaw", 1);
    let (hold, held) = (at(&meta, &tag, "hold").await, at(&meta, &tag, "held").await);
    let silences = meta["silences"].as_array().unwrap();
    println!("silences {silences:?}; the hold from {hold} to {held} ms");
    assert_eq!(silences.len(), 1, "one stretch of silence: {meta}");
    let (start, end) = (silences[0]["start_ms"].as_i64().unwrap(), silences[0]["end_ms"].as_i64().unwrap());
    // A prompt's last and first 20 ms frame may be partly silent.
    assert!((start - hold).abs() <= 60 && (end - held).abs() <= 60, "silence {start}..{end}, hold {hold}..{held}");
    assert_eq!(meta["silence_ms"].as_i64(), Some(end - start));
    assert_eq!((meta["missing_ms"].as_u64(), meta["silent"].as_bool()), (Some(0), Some(false)));
    assert_present(&tracks[0], 500.0, 20, start as usize - 20, 0.97, "the prompt before the hold");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_stereo_track_that_never_carries_speech_is_named() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("oneway");

    Caller::new("stereo", &tag).options("channels=stereo").silent().place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "stereo", "stop", "wav", 2);
    assert_eq!(meta["silent_tracks"], serde_json::json!(["caller"]), "{meta}");
    assert_eq!(meta["silent"], false, "the prompt was heard: {meta}");
    assert_present(&tracks[1], 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt, right");
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_recording_whose_media_channel_is_hung_up_ends_as_no_media() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with(&webhook).await;
    let tag = lab::tag("nomedia");

    let call = Caller::new("long", &tag).hang_up_after(Duration::from_millis(9000)).place();
    callrec.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let media = lab::channel_ids().await.into_iter().find(|id| id.ends_with("-media")).expect("the media channel");
    let cut_at = lab::now_ms();
    let response = lab::ari_delete(&format!("channels/{media}")).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let delivered_at = lab::now_ms();
    let (meta, tracks) = assert_delivered(&deliveries[0], "long", "error", "ulaw", 1);
    assert_eq!(meta["error"], "no_media", "{meta}");
    let ended_at = epoch_ms(meta["ended_at"].as_str().unwrap());
    println!("media hung up at {cut_at}, recording ended at {ended_at}, delivered {} ms later", delivered_at - cut_at);
    assert!((ended_at - cut_at).abs() <= 100, "ends where the audio stopped: {ended_at} vs {cut_at}");
    assert!(delivered_at - cut_at <= 3500, "noticed within 2 s and a bit");
    assert_onset_complete(&tracks[0]);
    assert!(meta["missing_ms"].as_u64().unwrap() <= 40, "what was captured is all there: {meta}");
    call.finish().await;
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("recordings_no_media=1"), "{log}");
}

/// The real binary's subcommand, its exit code and what it printed.
fn run_callrec(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callrec")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_signed_recording_verifies_and_a_tampered_one_does_not() {
    let _lab = lab::take().await;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("callrec.key");
    let public = keys.path().join("callrec.key.pub");
    let (code, text) = run_callrec(&["keygen".as_ref(), "--out".as_ref(), key.as_os_str()]);
    assert_eq!(code, 0, "{text}");
    let mut callrec =
        Callrec::start(Options { extra: vec!["--signing-key", key.to_str().unwrap()], ..Default::default() }).await;
    let tag = lab::tag("signed");

    Caller::new("stereo", &tag).options("channels=stereo").place().finish().await;
    callrec.wait_for_log("recording saved", Duration::from_secs(10)).await;
    let dir = callrec.output_dir.path().to_path_buf();
    let metadata = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "json"))
        .expect("a recording in the output directory");
    let audio = metadata.with_extension("wav");
    let meta: Value = serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(meta["signature"]["alg"], "ed25519", "{meta}");
    assert_eq!(meta["sha256"], callrec::integrity::sha256_hex(&std::fs::read(&audio).unwrap()));
    let verify = |metadata: &std::path::Path| {
        run_callrec(&["verify".as_ref(), metadata.as_os_str(), "--key".as_ref(), public.as_os_str()])
    };
    let (code, text) = verify(&metadata);
    println!("verify: {text}");
    assert_eq!(code, 0, "{text}");

    // One byte of the audio flipped: the hash says so.
    let mut bytes = std::fs::read(&audio).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&audio, &bytes).unwrap();
    let (code, text) = verify(&metadata);
    println!("flipped audio: {text}");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("sha256"), "{text}");
    bytes[middle] ^= 0x01;
    std::fs::write(&audio, &bytes).unwrap();

    // One metadata field changed: the signature says so.
    let mut changed = meta.clone();
    changed["caller_number"] = Value::from("5559999");
    std::fs::write(&metadata, serde_json::to_vec_pretty(&changed).unwrap()).unwrap();
    let (code, text) = verify(&metadata);
    println!("changed field: {text}");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("signature"), "{text}");
    assert_nothing_left().await;
    callrec.stop().await;
}
