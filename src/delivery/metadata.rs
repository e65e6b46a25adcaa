//! The JSON that travels with every recording (the webhook's `metadata` part,
//! `<recording_id>.json` in an S3 bucket and in the output directory).

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::recording::StreamStats;
use crate::session::EndReason;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub recording_id: Uuid,
    pub name: String,
    pub channel_id: String,
    pub channel_name: String,
    pub caller_number: String,
    pub caller_name: String,
    /// The other party at the end of the recording (the agent the call was
    /// bridged to, say); empty when there was none.
    pub connected_number: String,
    pub connected_name: String,
    /// Asterisk's call keys, to join recordings to CDR and CEL records.
    pub linkedid: String,
    pub accountcode: String,
    /// Where the start marker was placed.
    pub context: String,
    pub exten: String,
    /// RFC 3339, UTC, milliseconds: the recording's first sample.
    pub started_at: String,
    /// RFC 3339, UTC, milliseconds: the stop marker or hangup.
    pub ended_at: String,
    /// Equal to the audio's length.
    pub duration_ms: u64,
    pub end_reason: EndReason,
    /// `ulaw` or `wav`.
    pub format: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// What each channel holds, in order, for stereo: `caller`, `callee`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<String>,
    /// Length of the delivered file.
    pub bytes: u64,
    /// Silence inserted for packets that never came.
    pub missing_ms: u64,
    /// Paused stretches, in recording time; with `pause=skip`, the points
    /// where they were cut out (`start_ms == end_ms`).
    pub masked: Vec<TimeRange>,
    /// The total paused time.
    pub masked_ms: u64,
    /// No sample rises above a low level in any track: nothing was heard.
    pub silent: bool,
    /// Stretches over 100 ms where Asterisk sent exact digital silence on
    /// every track (not silence callrec inserted: see `missing_ms`, `masked`).
    pub silences: Vec<TimeRange>,
    pub silence_ms: u64,
    /// For stereo, the tracks that never carried speech (one-way audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_tracks: Option<Vec<String>>,
    /// What went wrong, when `end_reason` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each track's RTP counters, by track (`both`, or `caller` and `callee`).
    pub rtp: std::collections::BTreeMap<String, StreamStats>,
    /// SHA-256 of the delivered audio file, lowercase hex.
    pub sha256: String,
    /// Who the caller was connected to, in recording time: the IVR, then
    /// each party the call was put through to.
    pub parties: Vec<PartyRecord>,
    /// With `--signing-key`: an Ed25519 signature over the canonical form of
    /// everything else (see `integrity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<serde_json::Value>,
}

impl Metadata {
    /// The JSON as delivered: the webhook's `metadata` part, and the
    /// `<recording_id>.json` object an S3 target stores, byte for byte.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metadata serializes")
    }
}

/// One party the caller was connected to, over a stretch of the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyRecord {
    pub from_ms: u64,
    pub to_ms: u64,
    pub number: String,
    pub name: String,
    /// The party's channel; empty for the IVR.
    pub channel: String,
}

/// A stretch of a recording, in milliseconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Turns the monotonic instants the recorder works with into wall-clock time,
/// from one reading of both clocks taken at start-up.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    instant: Instant,
    system: SystemTime,
}

impl WallClock {
    pub fn now() -> Self {
        WallClock { instant: Instant::now(), system: SystemTime::now() }
    }

    pub fn at(&self, instant: Instant) -> SystemTime {
        match instant.checked_duration_since(self.instant) {
            Some(after) => self.system + after,
            None => self.system - self.instant.duration_since(instant),
        }
    }

    /// The instant of a wall-clock time (e.g. one the dialplan noted), the
    /// inverse of `at`.
    pub fn instant_of(&self, time: SystemTime) -> Instant {
        match time.duration_since(self.system) {
            Ok(after) => self.instant + after,
            Err(before) => self.instant.checked_sub(before.duration()).unwrap_or(self.instant),
        }
    }
}

/// RFC 3339 in UTC with milliseconds and `Z`, e.g. `2026-11-24T10:00:00.125Z`.
pub fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses what `rfc3339` wrote.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc3339(text).ok().map(SystemTime::from)
}

/// Milliseconds between two RFC 3339 times, for checks and tests.
pub fn millis_between(from: &str, to: &str) -> Option<i64> {
    let from = parse_rfc3339(from)?;
    let to = parse_rfc3339(to)?;
    Some(match to.duration_since(from) {
        Ok(after) => after.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    })
}

/// Samples of audio in `duration` at 8000 Hz.
pub fn samples_in(duration: Duration) -> u64 {
    (duration.as_micros() * 8 / 1000) as u64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Metadata {
        Metadata {
            recording_id: Uuid::nil(),
            name: "call_recording".into(),
            channel_id: "1764.1".into(),
            channel_name: "PJSIP/lab-00000001".into(),
            caller_number: "".into(),
            caller_name: "".into(),
            connected_number: "".into(),
            connected_name: "".into(),
            linkedid: "1764.1".into(),
            accountcode: "".into(),
            context: "ivr".into(),
            exten: "100".into(),
            started_at: "2026-11-24T10:00:00.000Z".into(),
            ended_at: "2026-11-24T10:00:03.020Z".into(),
            duration_ms: 3020,
            end_reason: EndReason::Stop,
            format: "ulaw".into(),
            sample_rate: 8000,
            channels: 1,
            tracks: Vec::new(),
            bytes: 24160,
            missing_ms: 0,
            masked: Vec::new(),
            masked_ms: 0,
            silent: false,
            silences: Vec::new(),
            silence_ms: 0,
            silent_tracks: None,
            error: None,
            rtp: Default::default(),
            sha256: String::new(),
            parties: Vec::new(),
            signature: None,
        }
    }

    #[test]
    fn wall_clock_times_map_back_to_instants() {
        let clock = WallClock::now();
        let later = clock.instant + Duration::from_millis(1500);
        assert_eq!(clock.instant_of(clock.at(later)), later);
        let earlier = clock.instant.checked_sub(Duration::from_millis(20)).unwrap();
        assert_eq!(clock.instant_of(clock.at(earlier)), earlier);
    }

    #[test]
    fn serializes_the_documented_fields() {
        let value = serde_json::to_value(sample()).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "recording_id",
            "name",
            "channel_id",
            "channel_name",
            "caller_number",
            "caller_name",
            "started_at",
            "ended_at",
            "duration_ms",
            "end_reason",
            "format",
            "sample_rate",
            "channels",
            "bytes",
            "missing_ms",
            "connected_number",
            "connected_name",
            "linkedid",
            "accountcode",
            "context",
            "exten",
            "masked",
            "masked_ms",
            "silent",
            "silences",
            "silence_ms",
            "sha256",
            "rtp",
        ] {
            assert!(keys.contains(&key), "{key} missing");
        }
        assert!(!keys.contains(&"error"), "error only when there is one");
        assert!(!keys.contains(&"tracks"), "tracks only for stereo");
        assert_eq!(value["end_reason"], "stop");
        assert_eq!(value["recording_id"], "00000000-0000-0000-0000-000000000000");
        let back: Metadata = serde_json::from_value(value).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_125);
        assert_eq!(rfc3339(time), "2025-11-24T16:00:00.125Z");
        assert_eq!(parse_rfc3339("2025-11-24T16:00:00.125Z"), Some(time));
        assert_eq!(millis_between("2026-11-24T10:00:00.000Z", "2026-11-24T10:00:03.020Z"), Some(3020));
    }

    #[test]
    fn the_wall_clock_follows_instants_both_ways() {
        let clock = WallClock::now();
        let later = clock.instant + Duration::from_millis(1500);
        assert_eq!(clock.at(later), clock.system + Duration::from_millis(1500));
        if let Some(earlier) = clock.instant.checked_sub(Duration::from_millis(20)) {
            assert_eq!(clock.at(earlier), clock.system - Duration::from_millis(20));
        }
    }

    #[test]
    fn samples_follow_the_duration() {
        assert_eq!(samples_in(Duration::from_millis(3020)), 24160);
        assert_eq!(samples_in(Duration::from_micros(125)), 1);
    }
}
