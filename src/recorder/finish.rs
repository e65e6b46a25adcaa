//! The end of a recording's path through the recorder: once a session says a
//! recording is finished, this lets RTP still in flight land, takes the audio
//! from the media task (every track cut or padded to the wall-clock length),
//! assembles the delivered file and its metadata away from the media task
//! (pause cuts, silence check, WAV encoding), then at the same time tears
//! down the snoop, externalMedia channels and bridges and hands the recording
//! to delivery — unless it is shorter than its `min`.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use crate::ari::events::Channel;
use crate::ari::rest::AriClient;
use crate::delivery::metadata::{rfc3339, samples_in, Metadata, PartyRecord, TimeRange, WallClock};
use crate::delivery::{target, Delivery, DeliveryOutcome, FinishedRecording};
use crate::integrity::{self, SigningKey};
use crate::markers::PauseMode;
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::parties::PartySpan;
use crate::recording::encode::{self, AudioFormat};
use crate::recording::{mask, silence, CapturedRecording};
use crate::resources::ResourceIds;
use crate::session::{EndReason, Finished, Track};
use crate::ulaw;

/// The longest time given to RTP still in flight after a recording ends,
/// before its streams are collected and its resources torn down; they are
/// collected sooner once they have ended (see `media::handover`).
const DRAIN: Duration = Duration::from_millis(200);
/// A recording none of whose samples rises above this level (about -54 dBFS)
/// is reported `silent`.
const SILENT_LEVEL: i16 = 64;

/// Facts about the call a recording's metadata carries: its keys and where
/// the start marker was placed (read at the start), and who the caller was
/// connected to (known at the end).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CallFacts {
    pub linkedid: String,
    /// Where the start marker was placed.
    pub context: String,
    pub exten: String,
    pub parties: Vec<PartySpan>,
    /// The wall-clock time capture began, read then (the wall clock may be
    /// stepped during the recording; its duration stays monotonic).
    pub started_wall: Option<SystemTime>,
}

/// Everything needed to finish one recording, away from the recorder's loop.
pub(super) struct FinishJob {
    pub finished: Finished,
    /// The call as last seen (its connected party at the end).
    pub channel: Channel,
    pub keys: CallFacts,
    /// Which of the recording's snoops are the last (see `Action::Reattach`).
    pub snoop_generation: u32,
    pub ari: AriClient,
    pub media: MediaHandle,
    pub delivery: Delivery,
    pub metrics: Arc<Metrics>,
    pub clock: WallClock,
    pub signing_key: Option<Arc<SigningKey>>,
}

impl FinishJob {
    /// Finishes the recording; says where it went.
    pub async fn run(self) -> DeliveryOutcome {
        let FinishJob {
            mut finished,
            channel,
            keys,
            snoop_generation,
            ari,
            media,
            delivery,
            metrics,
            clock,
            signing_key,
        } = self;
        let total_samples = finished.started_at.map_or(0, |start| samples_in(finished.ended_at - start));
        let captured = match media.take(finished.recording, total_samples, finished.ended_at + DRAIN).await {
            Ok(captured) => captured,
            Err(gone) => {
                // Delivered all the same (its metadata, its length), and said.
                metrics.recordings_failed.inc();
                error!(recording = %finished.recording, "{gone}; the recording is delivered as silence, with this error");
                finished.reason = EndReason::Error;
                finished.error = Some(gone.to_string());
                None
            }
        };
        let tracks = finished.options.tracks();
        let to = target::name_of(finished.options.to);
        let (channels, bridges) = ResourceIds::of_tracks(ari.app(), finished.recording, tracks, snoop_generation);
        let recording = tokio::task::spawn_blocking(move || {
            assemble(&finished, &channel, &keys, captured, total_samples, clock, signing_key.as_deref())
        });
        // Side by side: a slow Asterisk must not hold up delivery, nor a slow
        // webhook the removal of the capture channels.
        let deliver = async {
            match recording.await {
                Ok(recording) => deliver_unless_too_short(&delivery, &metrics, recording, to.as_deref()).await,
                Err(error) => {
                    warn!(%error, "assembling a recording failed");
                    DeliveryOutcome::NotDelivered(format!("assembling it failed: {error}"))
                }
            }
        };
        let ((), outcome) = tokio::join!(teardown(&ari, &metrics, channels, bridges), deliver);
        outcome
    }
}

async fn deliver_unless_too_short(
    delivery: &Delivery,
    metrics: &Metrics,
    (recording, min): (FinishedRecording, Duration),
    to: Option<&str>,
) -> DeliveryOutcome {
    let meta = &recording.metadata;
    if Duration::from_millis(meta.duration_ms) < min {
        metrics.recordings_too_short.inc();
        info!(
            recording_id = %meta.recording_id, name = %meta.name, duration_ms = meta.duration_ms,
            min_ms = min.as_millis() as u64, "recording shorter than its min: not delivered"
        );
        return DeliveryOutcome::NotDelivered(format!("too short: shorter than its min ({} ms)", min.as_millis()));
    }
    delivery.deliver(recording, to).await
}

/// The delivered file and its metadata, from what the media task captured
/// (`None`: nothing ever arrived, so silence of the recording's length).
/// Returns the recording's `min` beside it.
pub(super) fn assemble(
    finished: &Finished,
    channel: &Channel,
    keys: &CallFacts,
    captured: Option<CapturedRecording>,
    total_samples: u64,
    clock: WallClock,
    signing_key: Option<&SigningKey>,
) -> (FinishedRecording, Duration) {
    let tracks = finished.options.tracks();
    let captured = captured.unwrap_or_else(|| CapturedRecording {
        tracks: tracks
            .iter()
            .map(|_| crate::recording::CapturedAudio {
                ulaw: vec![ulaw::SILENCE; total_samples as usize],
                missing_samples: total_samples,
                missing: std::iter::once(0..total_samples).collect(),
                stats: Default::default(),
            })
            .collect(),
        masked: Vec::new(),
    });
    let missing_samples = captured.tracks.iter().map(|track| track.missing_samples).max().unwrap_or(0);
    let rtp =
        tracks.iter().zip(&captured.tracks).map(|(track, audio)| (track.label().to_string(), audio.stats)).collect();
    let masked_samples: u64 = captured.masked.iter().map(|range| range.end - range.start).sum();
    let (silences, silent_tracks) = completeness(tracks, &captured);
    let silence_samples: u64 = silences.iter().map(|range| range.end - range.start).sum();
    let (audio_tracks, masked, silences) = lay_out(finished.options.pause, captured, &silences);
    let samples = audio_tracks.first().map_or(0, |track| track.len() as u64);
    let silent = audio_tracks.iter().flatten().all(|&byte| ulaw::decode(byte).unsigned_abs() <= SILENT_LEVEL as u16);
    let slices: Vec<&[u8]> = audio_tracks.iter().map(Vec::as_slice).collect();
    let (format, audio) = match encode::encode(finished.options.format, &slices) {
        Ok(audio) => (finished.options.format, audio),
        Err(error) => {
            // Options never ask for this; keep the audio rather than lose it.
            warn!(%error, "cannot encode the recording as asked; delivering WAV");
            (AudioFormat::Wav, encode::encode(AudioFormat::Wav, &slices).unwrap_or_default())
        }
    };
    let started_at = finished.started_at.unwrap_or(finished.ended_at);
    let metadata = Metadata {
        recording_id: finished.recording,
        name: finished.name.clone(),
        channel_id: channel.id.clone(),
        channel_name: channel.name.clone(),
        caller_number: channel.caller.number.clone(),
        caller_name: channel.caller.name.clone(),
        connected_number: channel.connected.number.clone(),
        connected_name: channel.connected.name.clone(),
        linkedid: keys.linkedid.clone(),
        accountcode: channel.accountcode.clone(),
        context: keys.context.clone(),
        exten: keys.exten.clone(),
        started_at: rfc3339(keys.started_wall.unwrap_or_else(|| clock.at(started_at))),
        ended_at: rfc3339(clock.at(finished.ended_at)),
        duration_ms: ulaw::millis(samples),
        end_reason: finished.reason,
        format: format.metadata_name().into(),
        sample_rate: ulaw::SAMPLE_RATE,
        channels: tracks.len() as u16,
        tracks: match tracks {
            [Track::Both] => Vec::new(),
            tracks => tracks.iter().map(|track| track.label().to_string()).collect(),
        },
        bytes: audio.len() as u64,
        missing_ms: ulaw::millis(missing_samples),
        masked,
        masked_ms: ulaw::millis(masked_samples),
        silent,
        silences,
        silence_ms: ulaw::millis(silence_samples),
        silent_tracks,
        error: finished.error.clone(),
        rtp,
        sha256: integrity::sha256_hex(&audio),
        parties: keys.parties.iter().map(party_record).collect(),
        signature: None,
    };
    let metadata = signed(metadata, signing_key);
    (FinishedRecording { metadata, audio: audio.into(), format }, finished.options.min)
}

/// What the tracks say besides their audio: where Asterisk sent exact
/// digital silence (not silence callrec wrote itself for lost packets or
/// pauses), and for stereo, which tracks never carried speech.
fn completeness(tracks: &[Track], captured: &CapturedRecording) -> (Vec<Range<u64>>, Option<Vec<String>>) {
    let inserted = silence::merged(
        captured
            .tracks
            .iter()
            .flat_map(|track| track.missing.iter().cloned())
            .chain(captured.masked.iter().cloned())
            .collect(),
    );
    let slices: Vec<&[u8]> = captured.tracks.iter().map(|track| track.ulaw.as_slice()).collect();
    let silences = silence::digital_silences(&slices, &inserted);
    let silent_tracks = match tracks {
        [Track::Both] => None,
        tracks => Some(
            tracks
                .iter()
                .zip(&slices)
                .filter(|(_, audio)| silence::without_speech(audio))
                .map(|(track, _)| track.label().to_string())
                .collect(),
        ),
    };
    (silences, silent_tracks)
}

/// The tracks as delivered, with the masked and silent stretches in their
/// time: as captured (`pause=silence`), or with the pauses cut out
/// (`pause=skip`, where a masked stretch becomes the point it was cut at).
fn lay_out(
    pause: PauseMode,
    captured: CapturedRecording,
    silences: &[Range<u64>],
) -> (Vec<Vec<u8>>, Vec<TimeRange>, Vec<TimeRange>) {
    let ranges = |ranges: &[Range<u64>], place: &dyn Fn(u64) -> u64| -> Vec<TimeRange> {
        ranges.iter().map(|range| time_range(place(range.start), place(range.end))).collect()
    };
    match pause {
        PauseMode::Silence => {
            let masked = ranges(&captured.masked, &|sample| sample);
            (captured.tracks.into_iter().map(|track| track.ulaw).collect(), masked, ranges(silences, &|sample| sample))
        }
        PauseMode::Skip => {
            let cuts = &captured.masked;
            let audio = captured.tracks.iter().map(|track| mask::cut(&track.ulaw, cuts)).collect();
            let masked = mask::cut_points(cuts).into_iter().map(|point| time_range(point, point)).collect();
            (audio, masked, ranges(silences, &|sample| mask::after_cuts(sample, cuts)))
        }
    }
}

fn party_record(span: &PartySpan) -> PartyRecord {
    PartyRecord {
        from_ms: span.from.as_millis() as u64,
        to_ms: span.to.as_millis() as u64,
        number: span.party.number.clone(),
        name: span.party.name.clone(),
        channel: span.party.channel.clone(),
    }
}

/// The metadata with its signature, when callrec has a key; unsigned (and
/// said so) if signing fails: a recording is never held back for it.
fn signed(mut metadata: Metadata, key: Option<&SigningKey>) -> Metadata {
    let Some(key) = key else { return metadata };
    let signature = serde_json::to_value(&metadata)
        .map_err(|error| error.to_string())
        .and_then(|mut value| key.sign(&mut value).map(|()| value).map_err(|error| error.to_string()));
    match signature {
        Ok(value) => metadata.signature = value.get(integrity::SIGNATURE_MEMBER).cloned(),
        Err(error) => {
            warn!(recording_id = %metadata.recording_id, %error, "cannot sign the recording; delivering it unsigned")
        }
    }
    metadata
}

fn time_range(start: u64, end: u64) -> TimeRange {
    TimeRange { start_ms: ulaw::millis(start), end_ms: ulaw::millis(end) }
}

/// Destroys bridges and hangs up channels; what is already gone is fine.
pub(super) async fn teardown(ari: &AriClient, metrics: &Metrics, channels: Vec<String>, bridges: Vec<String>) {
    for bridge in bridges {
        if let Err(error) = ari.destroy_bridge(&bridge).await {
            metrics.teardown_failures.inc();
            warn!(%bridge, %error, "could not destroy a recording bridge");
        }
    }
    for channel in channels {
        if let Err(error) = ari.hangup(&channel).await {
            metrics.teardown_failures.inc();
            warn!(%channel, %error, "could not hang up a recording channel");
        }
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::markers::{Channels, RecordingOptions};
    use crate::recording::CapturedAudio;
    use crate::session::EndReason;

    fn options(channels: Channels, format: AudioFormat, pause: PauseMode) -> RecordingOptions {
        RecordingOptions { channels, format, pause, ..RecordingOptions::for_tests() }
    }

    fn finished(options: RecordingOptions, samples: u64) -> Finished {
        let started_at = Instant::now();
        Finished {
            recording: uuid::Uuid::new_v4(),
            name: "n".into(),
            options,
            started_at: Some(started_at),
            ended_at: started_at + Duration::from_micros(samples * 125),
            reason: EndReason::Stop,
            error: None,
        }
    }

    fn track(ulaw: Vec<u8>) -> CapturedAudio {
        CapturedAudio { ulaw, missing_samples: 0, missing: Vec::new(), stats: Default::default() }
    }

    fn tone(samples: usize) -> Vec<u8> {
        (0..samples).map(|n| ulaw::encode(if n % 2 == 0 { 8000 } else { -8000 })).collect()
    }

    fn keys() -> CallFacts {
        CallFacts {
            linkedid: "1764.7".into(),
            context: "ivr".into(),
            exten: "100".into(),
            parties: Vec::new(),
            started_wall: None,
        }
    }

    #[test]
    fn started_at_is_the_wall_clock_read_when_capture_began() {
        let finished = finished(options(Channels::Mono, AudioFormat::Ulaw, PauseMode::Silence), 8000);
        let captured = CapturedRecording { tracks: vec![track(tone(8000))], masked: Vec::new() };
        // The wall clock was stepped back an hour since: started_at keeps
        // what it read then; the duration stays that of the audio.
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        let keys = CallFacts { started_wall: Some(then), ..keys() };
        let (recording, _) =
            assemble(&finished, &Channel::default(), &keys, Some(captured), 8000, WallClock::now(), None);
        assert_eq!(recording.metadata.started_at, rfc3339(then));
        assert_eq!(recording.metadata.duration_ms, 1000);
    }

    #[test]
    fn a_mono_recording_is_its_ulaw_with_the_call_keys() {
        let finished = finished(options(Channels::Mono, AudioFormat::Ulaw, PauseMode::Silence), 8000);
        let mut channel = Channel { id: "1764.7".into(), name: "PJSIP/a-1".into(), ..Default::default() };
        channel.connected.number = "2001".into();
        channel.accountcode = "acct".into();
        let captured = CapturedRecording { tracks: vec![track(tone(8000))], masked: Vec::new() };
        let (recording, _) = assemble(&finished, &channel, &keys(), Some(captured), 8000, WallClock::now(), None);
        let meta = &recording.metadata;
        assert_eq!(recording.audio.len(), 8000);
        assert_eq!((meta.format.as_str(), meta.channels, meta.bytes, meta.duration_ms), ("ulaw", 1, 8000, 1000));
        assert!(meta.tracks.is_empty() && !meta.silent && meta.masked.is_empty());
        assert_eq!((meta.linkedid.as_str(), meta.context.as_str(), meta.exten.as_str()), ("1764.7", "ivr", "100"));
        assert_eq!((meta.connected_number.as_str(), meta.accountcode.as_str()), ("2001", "acct"));
        assert_eq!(meta.rtp.keys().collect::<Vec<_>>(), ["both"]);
    }

    #[test]
    fn pause_as_silence_keeps_the_length_and_reports_the_range() {
        let finished = finished(options(Channels::Mono, AudioFormat::Ulaw, PauseMode::Silence), 16000);
        let captured = CapturedRecording { tracks: vec![track(tone(16000))], masked: [4000..12000].into() };
        let (recording, _) =
            assemble(&finished, &Channel::default(), &keys(), Some(captured), 16000, WallClock::now(), None);
        let meta = &recording.metadata;
        assert_eq!(meta.duration_ms, 2000);
        assert_eq!(meta.masked, vec![TimeRange { start_ms: 500, end_ms: 1500 }]);
        assert_eq!(meta.masked_ms, 1000);
    }

    #[test]
    fn pause_as_skip_cuts_every_track_and_reports_where() {
        let finished = finished(options(Channels::Stereo, AudioFormat::Wav, PauseMode::Skip), 16000);
        let captured =
            CapturedRecording { tracks: vec![track(tone(16000)), track(tone(16000))], masked: [4000..12000].into() };
        let (recording, _) =
            assemble(&finished, &Channel::default(), &keys(), Some(captured), 16000, WallClock::now(), None);
        let meta = &recording.metadata;
        assert_eq!((meta.duration_ms, meta.masked_ms), (1000, 1000));
        assert_eq!(meta.masked, vec![TimeRange { start_ms: 500, end_ms: 500 }]);
        assert_eq!((meta.format.as_str(), meta.channels), ("wav", 2));
        assert_eq!(meta.tracks, vec!["caller", "callee"]);
        assert_eq!(meta.bytes, recording.audio.len() as u64);
    }

    #[test]
    fn signed_metadata_verifies_against_its_audio_and_a_changed_field_does_not() {
        let key = SigningKey::generate().unwrap();
        let finished = finished(options(Channels::Mono, AudioFormat::Wav, PauseMode::Silence), 800);
        let captured = CapturedRecording { tracks: vec![track(tone(800))], masked: Vec::new() };
        let (recording, _) =
            assemble(&finished, &Channel::default(), &keys(), Some(captured), 800, WallClock::now(), Some(&key));
        let meta = &recording.metadata;
        assert_eq!(meta.sha256, integrity::sha256_hex(&recording.audio));
        assert!(meta.signature.is_some());
        let json = serde_json::to_vec(meta).unwrap();
        let report = integrity::verify(&json, Some(&recording.audio), Some(key.public_key())).unwrap();
        assert!(report.sha256.is_some());
        let mut changed = meta.clone();
        changed.duration_ms += 1;
        let json = serde_json::to_vec(&changed).unwrap();
        assert!(integrity::verify(&json, Some(&recording.audio), Some(key.public_key())).is_err());
    }

    #[test]
    fn silence_is_reported_and_nothing_captured_is_all_missing() {
        let finished = finished(options(Channels::Mono, AudioFormat::Ulaw, PauseMode::Silence), 800);
        let (recording, _) = assemble(&finished, &Channel::default(), &keys(), None, 800, WallClock::now(), None);
        assert!(recording.metadata.silent);
        assert_eq!((recording.metadata.missing_ms, recording.metadata.duration_ms), (100, 100));
        let quiet = CapturedRecording { tracks: vec![track(vec![ulaw::encode(40); 800])], masked: Vec::new() };
        let (recording, _) =
            assemble(&finished, &Channel::default(), &keys(), Some(quiet), 800, WallClock::now(), None);
        assert!(recording.metadata.silent, "a faint hiss is still silent");
    }
}
