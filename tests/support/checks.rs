//! Checks every end-to-end test applies to a delivered recording: its
//! multipart shape and metadata, its timing against the dialplan's marker
//! times, and the onset of the prompt that follows a start marker.

use serde_json::Value;

use super::audio::{first_run_ms, first_run_of_at_least_ms, present_ms};
use super::lab::epoch_ms;
use super::webhook::Delivery;

/// Length of the onset600-400 prompt.
pub const PROMPT_MS: usize = 3000;

/// Checks the parts and the metadata that every delivery must carry, for a
/// mono `.ul` recording.
pub fn assert_well_formed(delivery: &Delivery, name: &str, end_reason: &str) -> Value {
    assert_delivered(delivery, name, end_reason, "ulaw", 1).0
}

/// Checks a delivery's parts and metadata for a recording in `format`
/// (`ulaw` or `wav`) with `channels`; returns the metadata and the tracks as μ-law.
pub fn assert_delivered(
    delivery: &Delivery,
    name: &str,
    end_reason: &str,
    format: &str,
    channels: usize,
) -> (Value, Vec<Vec<u8>>) {
    let names: Vec<&str> = delivery.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["metadata", "audio"], "exactly two parts");
    let metadata_part = &delivery.parts[0];
    assert_eq!(metadata_part.content_type.as_deref(), Some("application/json"));
    let audio_part = &delivery.parts[1];
    let (content_type, extension) = if format == "wav" { ("audio/wav", "wav") } else { ("audio/basic", "ul") };
    assert_eq!(audio_part.content_type.as_deref(), Some(content_type));
    assert_eq!(audio_part.file_name.as_deref(), Some(format!("{name}.{extension}").as_str()));
    assert_eq!(delivery.metadata["format"], format, "{}", delivery.metadata);
    let meta = assert_metadata(&delivery.metadata, &delivery.audio, name, end_reason);
    let tracks = tracks_of(&meta, &delivery.audio);
    assert_eq!(tracks.len(), channels, "{meta}");
    (meta, tracks)
}

/// A recording's tracks as μ-law, whatever its format.
pub fn tracks_of(meta: &Value, audio: &[u8]) -> Vec<Vec<u8>> {
    match meta["format"].as_str() {
        Some("wav") => callrec::recording::encode::decode_wav(audio).expect("a 16-bit PCM WAV at 8000 Hz"),
        _ => vec![audio.to_vec()],
    }
}

/// Checks the metadata of a recording against its audio.
pub fn assert_metadata(meta: &Value, audio: &[u8], name: &str, end_reason: &str) -> Value {
    assert_eq!(meta["name"], name);
    assert_eq!(meta["end_reason"], end_reason, "{meta}");
    assert_eq!(meta["sample_rate"], 8000);
    assert!(uuid::Uuid::parse_str(meta["recording_id"].as_str().unwrap()).is_ok());
    assert!(meta["channel_name"].as_str().unwrap().starts_with("PJSIP/lab-"), "{meta}");
    assert!(!meta["channel_id"].as_str().unwrap().is_empty());
    let bytes = meta["bytes"].as_u64().unwrap();
    assert_eq!(bytes, audio.len() as u64);
    assert_eq!(meta["sha256"], callrec::integrity::sha256_hex(audio), "the hash of the delivered audio");
    let tracks = tracks_of(meta, audio);
    assert_eq!(meta["channels"].as_u64(), Some(tracks.len() as u64), "{meta}");
    match tracks.len() {
        1 => assert!(meta.get("tracks").is_none(), "{meta}"),
        _ => assert_eq!(meta["tracks"], serde_json::json!(["caller", "callee"]), "{meta}"),
    }
    let samples = tracks[0].len() as u64;
    assert!(tracks.iter().all(|track| track.len() as u64 == samples), "every track equally long");
    assert_eq!(meta["duration_ms"].as_u64().unwrap(), samples / 8, "duration equals the audio length");
    for field in ["started_at", "ended_at"] {
        let text = meta[field].as_str().unwrap();
        assert!(text.ends_with('Z') && text.len() == 24, "{field} = {text}: RFC 3339, UTC, milliseconds");
    }
    let span = epoch_ms(meta["ended_at"].as_str().unwrap()) - epoch_ms(meta["started_at"].as_str().unwrap());
    let duration = meta["duration_ms"].as_i64().unwrap() + meta["masked_ms"].as_i64().unwrap_or(0) * skipped(meta);
    assert!((span - duration).abs() <= 40, "ended_at - started_at = {span} ms, duration {duration} ms");
    assert!(meta["silent"].is_boolean() && meta["masked"].is_array(), "{meta}");
    assert_eq!(
        meta["rtp"].as_object().map(|tracks| tracks.len()),
        Some(tracks.len()),
        "RTP counters per track: {meta}"
    );
    meta.clone()
}

/// 1 when the recording's paused time was cut out (its masked ranges are points), else 0.
fn skipped(meta: &Value) -> i64 {
    let points = meta["masked"]
        .as_array()
        .is_some_and(|ranges| !ranges.is_empty() && ranges.iter().all(|range| range["start_ms"] == range["end_ms"]));
    i64::from(points)
}

/// The recording must span the time between the two marks, within 60 ms,
/// and start when the start marker let the call go on.
pub fn assert_between_marks(meta: &Value, start_mark: i64, stop_mark: i64) {
    let duration = meta["duration_ms"].as_i64().unwrap();
    let between = stop_mark - start_mark;
    assert!((duration - between).abs() <= 60, "recorded {duration} ms, markers {between} ms apart");
    let started_at = epoch_ms(meta["started_at"].as_str().unwrap());
    assert!((started_at - start_mark).abs() <= 60, "started_at {started_at}, start marker released at {start_mark}");
}

/// The prompt right after the start marker is there from its first
/// millisecond: all 200 ms of the 600 Hz onset, starting at the very
/// beginning. (Asterisk's snoop may slip a 20 ms frame of silence into the
/// stream when its timer finds no audio yet; that delays audio but loses
/// none, so the onset is counted, not required to be unbroken.)
pub fn assert_onset_complete(audio: &[u8]) {
    let (first, _) = first_run_ms(audio, 600.0).expect("the 600 Hz onset is in the recording");
    assert!(first <= 60, "the onset starts {first} ms into the recording");
    let onset = present_ms(audio, 600.0, first, first + 400);
    assert!(onset >= 190, "only {onset} ms of the 200 ms onset were recorded");
    // The prompt's first run of 30 ms or more: the onset's own start, cut
    // anywhere by the recording's first sample, may splash into 400 Hz for a
    // window.
    let (prompt_first, _) = first_run_of_at_least_ms(audio, 400.0, 30).expect("the 400 Hz prompt is in the recording");
    assert!(prompt_first >= first + 190, "the 400 Hz part starts at {prompt_first} ms, inside the onset");
}
