//! Per-call recording logic, sans-IO. The recorder feeds each call's session
//! the markers placed in the dialplan, the progress of the ARI resources it set
//! up, the start of capture, the hangup and the passing of time; the session
//! answers with actions for the recorder to carry out. It owns no socket and
//! reads no clock, so every race (hangup during setup, a stop before capture,
//! a restart, a capture that never starts, a pause, a limit) is a plain unit
//! test.
//!
//! One recording at a time per call: a second start finishes the first
//! (`restart`) before the next one begins. A recording captures one track or
//! several (stereo: what the caller says, what the caller hears), each from
//! its own snoop and externalMedia channel, on one timeline. A marker's channel
//! is held until capture is established on every track, so nothing after the
//! start marker is lost, and is always released within the capture timeout.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::markers::{MarkerCommand, RecordingOptions};

pub type RecordingId = Uuid;

/// Why a recording ended; reported in its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Stop,
    Hangup,
    Restart,
    Shutdown,
    Error,
    /// It reached its `max` option (or `--max-recording`).
    MaxDuration,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            EndReason::Stop => "stop",
            EndReason::Hangup => "hangup",
            EndReason::Restart => "restart",
            EndReason::Shutdown => "shutdown",
            EndReason::Error => "error",
            EndReason::MaxDuration => "max_duration",
        };
        f.write_str(text)
    }
}

/// One captured direction of a call: a snoop, its externalMedia channel and
/// the bridge joining them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// What the caller hears and says, mixed (a mono recording).
    Both,
    /// What the caller says (left in stereo).
    Caller,
    /// What the caller hears: the IVR or the other party (right in stereo).
    Callee,
}

impl Track {
    pub const ALL: [Track; 3] = [Track::Both, Track::Caller, Track::Callee];

    /// The snoop's `spy` direction, as seen from the recorded channel.
    pub fn spy(self) -> &'static str {
        match self {
            Track::Both => "both",
            Track::Caller => "in",
            Track::Callee => "out",
        }
    }

    /// Its name in resource ids and metadata.
    pub fn label(self) -> &'static str {
        match self {
            Track::Both => "both",
            Track::Caller => "caller",
            Track::Callee => "callee",
        }
    }
}

/// The Asterisk resources a recording sets up to capture each track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The snoop channel on the recorded call.
    Snoop(Track),
    /// The externalMedia channel that streams RTP to callrec.
    Media(Track),
    /// The mixing bridge that joins the two.
    Bridge(Track),
}

impl Resource {
    pub fn track(self) -> Track {
        match self {
            Resource::Snoop(track) | Resource::Media(track) | Resource::Bridge(track) => track,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.track() != Track::Both {
            write!(f, "{} ", self.track().label())?;
        }
        f.write_str(match self {
            Resource::Snoop(_) => "snoop channel",
            Resource::Media(_) => "externalMedia channel",
            Resource::Bridge(_) => "bridge",
        })
    }
}

/// A marker the session had nothing to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    StopWithoutRecording,
    PauseWithoutRecording,
    ResumeWithoutRecording,
    AlreadyPaused,
    NotPaused,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ignored::StopWithoutRecording => "stop marker on a call with no recording",
            Ignored::PauseWithoutRecording => "pause marker on a call with no recording",
            Ignored::ResumeWithoutRecording => "resume marker on a call with no recording",
            Ignored::AlreadyPaused => "pause marker while the recording is already paused",
            Ignored::NotPaused => "resume marker while the recording is not paused",
        })
    }
}

/// A recording that has ended: what the recorder needs to collect its audio,
/// tear down its resources and deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub recording: RecordingId,
    pub name: String,
    pub options: RecordingOptions,
    /// When capture began (the first sample); `None` if it never did.
    pub started_at: Option<Instant>,
    pub ended_at: Instant,
    pub reason: EndReason,
    /// What went wrong, for `EndReason::Error`.
    pub error: Option<String>,
}

/// What the session asks the recorder to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create a snoop channel, externalMedia channel and bridge for each track.
    SetUp { recording: RecordingId, tracks: &'static [Track] },
    /// Route RTP arriving from `source` into stream `stream` of the
    /// recording's `streams`.
    Listen { recording: RecordingId, stream: usize, streams: usize, source: SocketAddr },
    /// Put the track's snoop and externalMedia channels into its bridge.
    Bridge { recording: RecordingId, track: Track },
    /// Let the channel go on with its call flow.
    Release,
    /// Capture runs: prepare the channel for leaving the marker, then let it
    /// go on. Prepare means: note the capture on the channel for the
    /// dialplan (see `markers::SNOOP_VARIABLE`), and with `watch`, subscribe
    /// to its events first (once it has left, only the subscription shows
    /// its hangup, so that must be in place before).
    ReleaseCapturing { recording: RecordingId, watch: bool },
    /// Keep the call's audio out of the recording from the marker seen at `at`.
    Pause { recording: RecordingId, at: Instant },
    /// Let it in again from the marker seen at `at`.
    Resume { recording: RecordingId, at: Instant },
    /// Make every snoop of the recording anew (the capture bridges and
    /// externalMedia channels stay, and so does the timeline): the call is
    /// about to get a new party, whose audio a snoop of the old one would miss.
    Reattach { recording: RecordingId, tracks: &'static [Track] },
    /// Collect, tear down and deliver a recording.
    Finish(Finished),
    /// Nothing to do for a marker; worth a warning.
    Ignore(Ignored),
}

/// How far the resources of one track are.
#[derive(Debug, Clone, Copy)]
struct TrackProgress {
    track: Track,
    snoop: bool,
    media: bool,
    bridge: bool,
    source: Option<SocketAddr>,
    bridging: bool,
}

impl TrackProgress {
    fn new(track: Track) -> Self {
        TrackProgress { track, snoop: false, media: false, bridge: false, source: None, bridging: false }
    }

    fn ready_to_bridge(&self) -> bool {
        self.snoop && self.media && self.bridge && self.source.is_some() && !self.bridging
    }

    fn missing(&self, missing: &mut Vec<String>) {
        let prefix = match self.track {
            Track::Both => String::new(),
            track => format!("{} ", track.label()),
        };
        for (done, what) in [
            (self.snoop, "snoop channel"),
            (self.media, "externalMedia channel"),
            (self.bridge, "bridge"),
            (self.source.is_some(), "RTP source address"),
        ] {
            if !done {
                missing.push(format!("{prefix}{what}"));
            }
        }
    }
}

#[derive(Debug)]
enum Phase {
    SettingUp { deadline: Instant, tracks: Vec<TrackProgress> },
    Capturing { started_at: Instant },
}

#[derive(Debug)]
struct Current {
    recording: RecordingId,
    name: String,
    options: RecordingOptions,
    phase: Phase,
    paused: bool,
    /// When its snoops were last made anew.
    reattached_at: Option<Instant>,
}

/// The recording in progress on a call, as `Session::current` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRecording<'a> {
    pub recording: RecordingId,
    pub name: &'a str,
    /// When capture began; `None` while it is being set up.
    pub started_at: Option<Instant>,
    pub paused: bool,
}

/// New parties this close after a re-attach share it (a transfer and the
/// dial it leads to).
const REATTACH_SPACING: Duration = Duration::from_secs(1);

/// The recording state of one call.
#[derive(Debug)]
pub struct Session {
    capture_timeout: Duration,
    current: Option<Current>,
    watching: bool,
    hung_up: bool,
    actions: VecDeque<Action>,
}

impl Session {
    pub fn new(capture_timeout: Duration) -> Self {
        Session { capture_timeout, current: None, watching: false, hung_up: false, actions: VecDeque::new() }
    }

    /// The next action to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When `handle_timeout` must be called next, if ever: the capture
    /// deadline while setting up, the recording's `max` while capturing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.current {
            Some(Current { phase: Phase::SettingUp { deadline, .. }, .. }) => Some(*deadline),
            Some(Current { phase: Phase::Capturing { started_at }, options, .. }) => Some(*started_at + options.max),
            None => None,
        }
    }

    /// No recording is running: the recorder may forget this session.
    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// The recording whose capture runs, if any (not one still setting up).
    pub fn capturing(&self) -> Option<RecordingId> {
        match &self.current {
            Some(Current { recording, phase: Phase::Capturing { .. }, .. }) => Some(*recording),
            _ => None,
        }
    }

    /// The channel waits in Stasis for capture to be set up.
    pub fn holds_channel(&self) -> bool {
        matches!(self.current, Some(Current { phase: Phase::SettingUp { .. }, .. }))
    }

    /// The recording in progress, if any.
    pub fn recording(&self) -> Option<RecordingId> {
        self.current.as_ref().map(|current| current.recording)
    }

    /// The recording in progress, as a listing shows it.
    pub fn current(&self) -> Option<CurrentRecording<'_>> {
        let current = self.current.as_ref()?;
        let started_at = match current.phase {
            Phase::Capturing { started_at } => Some(started_at),
            Phase::SettingUp { .. } => None,
        };
        Some(CurrentRecording { recording: current.recording, name: &current.name, started_at, paused: current.paused })
    }

    /// Whether the recording in progress is paused.
    pub fn is_paused(&self) -> bool {
        self.current.as_ref().is_some_and(|current| current.paused)
    }

    /// A marker reached the call; its channel is held until `Release`.
    /// `fresh_id` names the recording a start marker begins.
    pub fn handle_marker(&mut self, now: Instant, command: MarkerCommand, fresh_id: RecordingId) {
        match command {
            MarkerCommand::Start { name, options } => {
                if self.current.is_some() {
                    self.finish(now, EndReason::Restart, None);
                }
                let tracks = options.tracks();
                self.current = Some(Current {
                    recording: fresh_id,
                    name,
                    options,
                    phase: Phase::SettingUp {
                        deadline: now + self.capture_timeout,
                        tracks: tracks.iter().copied().map(TrackProgress::new).collect(),
                    },
                    paused: false,
                    reattached_at: None,
                });
                self.actions.push_back(Action::SetUp { recording: fresh_id, tracks });
            }
            MarkerCommand::Stop => {
                if self.current.is_some() {
                    self.finish(now, EndReason::Stop, None);
                } else {
                    self.actions.push_back(Action::Ignore(Ignored::StopWithoutRecording));
                }
                self.actions.push_back(Action::Release);
            }
            MarkerCommand::Pause => {
                let action = match &mut self.current {
                    None => Action::Ignore(Ignored::PauseWithoutRecording),
                    Some(current) if current.paused => Action::Ignore(Ignored::AlreadyPaused),
                    Some(current) => {
                        current.paused = true;
                        Action::Pause { recording: current.recording, at: now }
                    }
                };
                self.actions.extend([action, Action::Release]);
            }
            MarkerCommand::Resume => {
                let action = match &mut self.current {
                    None => Action::Ignore(Ignored::ResumeWithoutRecording),
                    Some(current) if !current.paused => Action::Ignore(Ignored::NotPaused),
                    Some(current) => {
                        current.paused = false;
                        Action::Resume { recording: current.recording, at: now }
                    }
                };
                self.actions.extend([action, Action::Release]);
            }
        }
    }

    /// One of the recording's resources exists (a channel reached Stasis, the bridge was created).
    pub fn handle_ready(&mut self, recording: RecordingId, resource: Resource) {
        if let Some(progress) = self.progress(recording, resource.track()) {
            match resource {
                Resource::Snoop(_) => progress.snoop = true,
                Resource::Media(_) => progress.media = true,
                Resource::Bridge(_) => progress.bridge = true,
            }
            self.bridge_when_ready(recording, resource.track());
        }
    }

    /// Asterisk told where the track's RTP will come from.
    pub fn handle_media_source(&mut self, recording: RecordingId, track: Track, source: SocketAddr) {
        let Some(Current { phase: Phase::SettingUp { tracks, .. }, .. }) = self.current_of(recording) else {
            return;
        };
        let streams = tracks.len();
        let Some(stream) = tracks.iter().position(|progress| progress.track == track) else { return };
        tracks[stream].source = Some(source);
        self.actions.push_back(Action::Listen { recording, stream, streams, source });
        self.bridge_when_ready(recording, track);
    }

    /// The first RTP packet of every track arrived, the last at `at`: capture
    /// is established and the recording's first sample is there.
    pub fn handle_capture_started(&mut self, recording: RecordingId, at: Instant) {
        let Some(current) = self.current_of(recording) else { return };
        if !matches!(current.phase, Phase::SettingUp { .. }) {
            return;
        }
        current.phase = Phase::Capturing { started_at: at };
        let watch = !self.watching && !self.hung_up;
        self.watching |= watch;
        self.actions.push_back(Action::ReleaseCapturing { recording, watch });
    }

    /// Setting up the recording failed; it ends with an error and the call goes on.
    pub fn handle_setup_failed(&mut self, now: Instant, recording: RecordingId, error: String) {
        if self.setting_up(recording) {
            self.finish(now, EndReason::Error, Some(error));
            self.release_unless_hung_up();
        }
    }

    /// A resource of a running recording went away on its own.
    pub fn handle_resource_lost(&mut self, now: Instant, recording: RecordingId, error: String) {
        if self.recording() == Some(recording) {
            let was_setting_up = self.setting_up(recording);
            self.finish(now, EndReason::Error, Some(error));
            if was_setting_up {
                self.release_unless_hung_up();
            }
        }
    }

    /// The call is about to be connected to a new party (it is transferred,
    /// or dials again after talking to someone). Asterisk's snoop would hear
    /// the new party's first seconds (as long as the last party talked, up
    /// to minutes) as silence when the new party's RTP numbering runs behind
    /// the last one's, on builds whose translator drops "late" packets
    /// (Debian's); a snoop made anew starts clean. Capturing recordings only,
    /// and once for a transfer and the dial it leads to.
    pub fn handle_new_party(&mut self, now: Instant) {
        let Some(current) = self.current.as_mut() else { return };
        if !matches!(current.phase, Phase::Capturing { .. }) {
            return;
        }
        if current.reattached_at.is_some_and(|at| now.saturating_duration_since(at) < REATTACH_SPACING) {
            return;
        }
        current.reattached_at = Some(now);
        self.actions.push_back(Action::Reattach { recording: current.recording, tracks: current.options.tracks() });
    }

    /// RTP stopped coming for a running recording while its call lives. If
    /// the dialplan noted that it cut the capture (`noted_cut`, see
    /// `handle_capture_cut`), the recording ends there, as stopped; otherwise
    /// (its externalMedia channel or bridge was removed, say) it ends where
    /// its audio stopped, as an error: `no_media`. Returns how it ended, if
    /// it was running.
    pub fn handle_no_media(
        &mut self,
        now: Instant,
        recording: RecordingId,
        last_audio_at: Instant,
        noted_cut: Option<Instant>,
    ) -> Option<EndReason> {
        let Some(Current { phase: Phase::Capturing { started_at }, .. }) = self.current_of(recording) else {
            return None;
        };
        let started_at = *started_at;
        match noted_cut {
            Some(at) if (started_at..=now).contains(&at) => self.finish(at, EndReason::Stop, None),
            _ => self.finish(last_audio_at.max(started_at), EndReason::Error, Some("no_media".into())),
        }
        self.finished_reason()
    }

    /// The reason of the recording that just ended, from the actions queued.
    fn finished_reason(&self) -> Option<EndReason> {
        self.actions.iter().rev().find_map(|action| match action {
            Action::Finish(finished) => Some(finished.reason),
            _ => None,
        })
    }

    /// The recording's snoop channel ended without callrec ending it. The
    /// dialplan's stop and pause subroutines do that when their marker cannot
    /// reach callrec, and note when: with that time (`stopped_at`), the
    /// recording ends there, as stopped. Otherwise it ends now, with an error.
    pub fn handle_capture_cut(&mut self, now: Instant, recording: RecordingId, stopped_at: Option<Instant>) {
        if self.recording() != Some(recording) {
            return;
        }
        let started_at = match &self.current {
            Some(Current { phase: Phase::Capturing { started_at }, .. }) => *started_at,
            _ => {
                self.handle_resource_lost(now, recording, "the snoop channel ended during setup".into());
                return;
            }
        };
        match stopped_at {
            // A time outside the recording is an older note (or clocks
            // apart): not believed.
            Some(at) if (started_at..=now).contains(&at) => self.finish(at, EndReason::Stop, None),
            _ => {
                let error = "the snoop channel ended while recording, not at a stop marker".to_string();
                self.finish(now, EndReason::Error, Some(error));
            }
        }
    }

    /// The recorded channel hung up.
    pub fn handle_hangup(&mut self, now: Instant) {
        self.hung_up = true;
        if self.current.is_some() {
            self.finish(now, EndReason::Hangup, None);
        }
    }

    /// callrec is shutting down: finish what runs, let every held channel go.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.let_go(now, EndReason::Shutdown, None);
    }

    /// callrec can no longer follow the call (another client took its Stasis
    /// application): its stop marker or hangup would never arrive, so the
    /// recording ends here with an error, and a held channel is let go.
    pub fn handle_lost_control(&mut self, now: Instant, error: String) {
        self.let_go(now, EndReason::Error, Some(error));
    }

    fn let_go(&mut self, now: Instant, reason: EndReason, error: Option<String>) {
        let was_setting_up = matches!(self.current, Some(Current { phase: Phase::SettingUp { .. }, .. }));
        if self.current.is_some() {
            self.finish(now, reason, error);
        }
        if was_setting_up {
            self.release_unless_hung_up();
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        match &self.current {
            Some(Current { phase: Phase::SettingUp { tracks, .. }, .. }) => {
                let mut missing = Vec::new();
                tracks.iter().for_each(|progress| progress.missing(&mut missing));
                if missing.is_empty() {
                    missing.push("first RTP packet".to_string());
                }
                let error = format!(
                    "capture not established within {} ms (still waiting for: {})",
                    self.capture_timeout.as_millis(),
                    missing.join(", ")
                );
                self.finish(now, EndReason::Error, Some(error));
                self.release_unless_hung_up();
            }
            Some(Current { phase: Phase::Capturing { started_at }, options, .. }) => {
                // Exactly `max` long, however late the timer fired.
                let ended_at = *started_at + options.max;
                self.finish(ended_at, EndReason::MaxDuration, None);
            }
            None => {}
        }
    }

    fn current_of(&mut self, recording: RecordingId) -> Option<&mut Current> {
        self.current.as_mut().filter(|current| current.recording == recording)
    }

    fn setting_up(&self, recording: RecordingId) -> bool {
        matches!(&self.current, Some(Current { recording: current, phase: Phase::SettingUp { .. }, .. }) if *current == recording)
    }

    fn progress(&mut self, recording: RecordingId, track: Track) -> Option<&mut TrackProgress> {
        match self.current_of(recording) {
            Some(Current { phase: Phase::SettingUp { tracks, .. }, .. }) => {
                tracks.iter_mut().find(|progress| progress.track == track)
            }
            _ => None,
        }
    }

    fn bridge_when_ready(&mut self, recording: RecordingId, track: Track) {
        if let Some(progress) = self.progress(recording, track) {
            if progress.ready_to_bridge() {
                progress.bridging = true;
                self.actions.push_back(Action::Bridge { recording, track });
            }
        }
    }

    fn release_unless_hung_up(&mut self) {
        if !self.hung_up {
            self.actions.push_back(Action::Release);
        }
    }

    fn finish(&mut self, now: Instant, reason: EndReason, error: Option<String>) {
        let Some(current) = self.current.take() else {
            return;
        };
        let started_at = match current.phase {
            Phase::Capturing { started_at } => Some(started_at),
            Phase::SettingUp { .. } => None,
        };
        self.actions.push_back(Action::Finish(Finished {
            recording: current.recording,
            name: current.name,
            options: current.options,
            started_at,
            ended_at: now,
            reason,
            error,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markers::Channels;

    const TIMEOUT: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn source() -> SocketAddr {
        "127.0.0.1:14000".parse().unwrap()
    }

    fn options() -> RecordingOptions {
        RecordingOptions::for_tests()
    }

    fn start(name: &str) -> MarkerCommand {
        MarkerCommand::Start { name: name.to_string(), options: options() }
    }

    fn drain(session: &mut Session) -> Vec<Action> {
        std::iter::from_fn(|| session.poll_action()).collect()
    }

    /// Runs a start marker through a full, successful setup; returns the recording id.
    fn started(session: &mut Session, t0: Instant, capture_at: Instant) -> RecordingId {
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("call_recording"), id);
        assert_eq!(drain(session), vec![Action::SetUp { recording: id, tracks: &[Track::Both] }]);
        session.handle_ready(id, Resource::Bridge(Track::Both));
        session.handle_ready(id, Resource::Snoop(Track::Both));
        session.handle_media_source(id, Track::Both, source());
        session.handle_ready(id, Resource::Media(Track::Both));
        assert_eq!(
            drain(session),
            vec![
                Action::Listen { recording: id, stream: 0, streams: 1, source: source() },
                Action::Bridge { recording: id, track: Track::Both },
            ]
        );
        session.handle_capture_started(id, capture_at);
        id
    }

    fn finished(actions: &[Action]) -> Vec<&Finished> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Finish(finished) => Some(finished),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_channel_is_held_until_capture_is_established() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("call_recording"), id);
        assert_eq!(session.poll_timeout(), Some(t0 + TIMEOUT));
        session.handle_ready(id, Resource::Snoop(Track::Both));
        session.handle_ready(id, Resource::Media(Track::Both));
        session.handle_ready(id, Resource::Bridge(Track::Both));
        let actions = drain(&mut session);
        assert!(!actions.contains(&Action::Release));
        assert!(!actions.iter().any(|a| matches!(a, Action::Bridge { .. })), "no bridge before the source is known");
        session.handle_media_source(id, Track::Both, source());
        assert!(drain(&mut session).contains(&Action::Bridge { recording: id, track: Track::Both }));
        session.handle_capture_started(id, t0 + ms(60));
        assert_eq!(drain(&mut session), vec![Action::ReleaseCapturing { recording: id, watch: true }]);
        assert_eq!(session.poll_timeout(), Some(t0 + ms(60) + options().max), "next: the recording's max");
    }

    #[test]
    fn stop_finishes_with_the_capture_time_and_releases() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(50));
        drain(&mut session);
        session.handle_marker(t0 + ms(3050), MarkerCommand::Stop, Uuid::new_v4());
        let actions = drain(&mut session);
        assert_eq!(
            actions,
            vec![
                Action::Finish(Finished {
                    recording: id,
                    name: "call_recording".into(),
                    options: options(),
                    started_at: Some(t0 + ms(50)),
                    ended_at: t0 + ms(3050),
                    reason: EndReason::Stop,
                    error: None,
                }),
                Action::Release,
            ]
        );
        assert!(session.is_idle());
    }

    #[test]
    fn a_stop_without_recording_is_ignored_and_released() {
        let mut session = Session::new(TIMEOUT);
        session.handle_marker(Instant::now(), MarkerCommand::Stop, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Ignore(Ignored::StopWithoutRecording), Action::Release]);
    }

    #[test]
    fn a_second_start_delivers_the_first_as_restart() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let first = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        let second = Uuid::new_v4();
        session.handle_marker(t0 + ms(2000), start("second"), second);
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].recording, first);
        assert_eq!(ended[0].reason, EndReason::Restart);
        assert_eq!(ended[0].ended_at, t0 + ms(2000));
        assert_eq!(actions.last(), Some(&Action::SetUp { recording: second, tracks: &[Track::Both] }));
        assert!(!actions.contains(&Action::Release), "held until the new capture runs");
        assert_eq!(session.recording(), Some(second));
        // The channel is already watched: no second subscription.
        session.handle_ready(second, Resource::Snoop(Track::Both));
        session.handle_ready(second, Resource::Media(Track::Both));
        session.handle_ready(second, Resource::Bridge(Track::Both));
        session.handle_media_source(second, Track::Both, source());
        drain(&mut session);
        session.handle_capture_started(second, t0 + ms(2050));
        assert_eq!(drain(&mut session), vec![Action::ReleaseCapturing { recording: second, watch: false }]);
    }

    #[test]
    fn hangup_during_setup_finishes_without_capture_and_does_not_release() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("call_recording"), id);
        session.handle_ready(id, Resource::Snoop(Track::Both));
        drain(&mut session);
        session.handle_hangup(t0 + ms(30));
        let actions = drain(&mut session);
        assert_eq!(actions.len(), 1);
        let ended = finished(&actions);
        assert_eq!(ended[0].reason, EndReason::Hangup);
        assert_eq!(ended[0].started_at, None);
        // Late progress of the dead recording changes nothing.
        session.handle_capture_started(id, t0 + ms(40));
        session.handle_timeout(t0 + ms(5000));
        assert!(drain(&mut session).is_empty());
    }

    #[test]
    fn stop_before_capture_is_established_ends_the_recording_empty() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("call_recording"), id);
        drain(&mut session);
        session.handle_marker(t0 + ms(10), MarkerCommand::Stop, Uuid::new_v4());
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!(ended[0].reason, EndReason::Stop);
        assert_eq!(ended[0].started_at, None);
        assert_eq!(actions.last(), Some(&Action::Release));
        session.handle_capture_started(id, t0 + ms(20));
        assert!(drain(&mut session).is_empty());
    }

    #[test]
    fn capture_timeout_releases_the_channel_and_reports_an_error() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("call_recording"), id);
        session.handle_ready(id, Resource::Snoop(Track::Both));
        session.handle_ready(id, Resource::Media(Track::Both));
        session.handle_ready(id, Resource::Bridge(Track::Both));
        session.handle_media_source(id, Track::Both, source());
        drain(&mut session);
        session.handle_timeout(t0 + ms(999));
        assert!(drain(&mut session).is_empty(), "not before the deadline");
        session.handle_timeout(t0 + ms(1000));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!(ended[0].reason, EndReason::Error);
        assert_eq!(ended[0].started_at, None);
        let error = ended[0].error.as_deref().unwrap();
        assert!(error.contains("first RTP packet"), "{error}");
        assert_eq!(actions.last(), Some(&Action::Release));
        assert!(session.is_idle());
        assert_eq!(session.poll_timeout(), None);
    }

    #[test]
    fn the_timeout_names_what_never_came() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("x"), id);
        session.handle_ready(id, Resource::Snoop(Track::Both));
        session.handle_timeout(t0 + TIMEOUT);
        let actions = drain(&mut session);
        let error = finished(&actions)[0].error.clone().unwrap();
        assert!(error.contains("externalMedia channel"), "{error}");
        assert!(!error.contains("snoop"), "{error}");
    }

    #[test]
    fn a_setup_failure_releases_at_once() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("x"), id);
        drain(&mut session);
        session.handle_setup_failed(t0 + ms(5), id, "snoop: HTTP 404".into());
        let actions = drain(&mut session);
        assert_eq!(finished(&actions)[0].error.as_deref(), Some("snoop: HTTP 404"));
        assert_eq!(actions.last(), Some(&Action::Release));
    }

    #[test]
    fn hangup_while_capturing_ends_at_the_hangup() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        started(&mut session, t0, t0 + ms(30));
        drain(&mut session);
        session.handle_hangup(t0 + ms(7000));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!(ended[0].reason, EndReason::Hangup);
        assert_eq!(ended[0].ended_at - ended[0].started_at.unwrap(), ms(6970));
        assert!(!actions.contains(&Action::Release));
    }

    #[test]
    fn a_lost_resource_ends_a_running_recording_with_an_error() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(30));
        drain(&mut session);
        session.handle_resource_lost(t0 + ms(500), Uuid::new_v4(), "other".into());
        assert!(drain(&mut session).is_empty(), "another recording's loss is not ours");
        session.handle_resource_lost(t0 + ms(500), id, "externalMedia channel ended".into());
        let actions = drain(&mut session);
        assert_eq!(finished(&actions)[0].reason, EndReason::Error);
        assert!(!actions.contains(&Action::Release), "the channel is not held");
    }

    #[test]
    fn shutdown_finishes_and_releases_a_held_channel() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        session.handle_marker(t0, start("x"), Uuid::new_v4());
        drain(&mut session);
        session.handle_shutdown(t0 + ms(100));
        let actions = drain(&mut session);
        assert_eq!(finished(&actions)[0].reason, EndReason::Shutdown);
        assert_eq!(actions.last(), Some(&Action::Release));

        let mut session = Session::new(TIMEOUT);
        started(&mut session, t0, t0 + ms(30));
        drain(&mut session);
        session.handle_shutdown(t0 + ms(100));
        let actions = drain(&mut session);
        assert_eq!(finished(&actions)[0].reason, EndReason::Shutdown);
        assert!(!actions.contains(&Action::Release));
    }

    #[test]
    fn lost_control_ends_the_recording_with_an_error_and_lets_a_held_channel_go() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        started(&mut session, t0, t0 + ms(30));
        drain(&mut session);
        session.handle_lost_control(t0 + ms(900), "taken over".into());
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!((ended[0].reason, ended[0].error.as_deref()), (EndReason::Error, Some("taken over")));
        assert_eq!(ended[0].ended_at, t0 + ms(900));
        assert!(!actions.contains(&Action::Release), "the channel is not held");

        let mut session = Session::new(TIMEOUT);
        session.handle_marker(t0, start("x"), Uuid::new_v4());
        drain(&mut session);
        session.handle_lost_control(t0 + ms(100), "taken over".into());
        assert_eq!(drain(&mut session).last(), Some(&Action::Release));
        assert!(session.is_idle());
    }

    #[test]
    fn a_capture_cut_by_the_dialplan_ends_where_the_dialplan_noted_it() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        session.handle_capture_cut(t0 + ms(9000), Uuid::new_v4(), Some(t0 + ms(3000)));
        assert!(drain(&mut session).is_empty(), "another recording's cut is not ours");
        session.handle_capture_cut(t0 + ms(9000), id, Some(t0 + ms(3000)));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!((ended[0].reason, ended[0].ended_at), (EndReason::Stop, t0 + ms(3000)));
        assert_eq!(ended[0].started_at, Some(t0 + ms(40)));
        assert!(!actions.contains(&Action::Release), "the channel is not held");
        assert!(session.is_idle());
    }

    #[test]
    fn a_capture_cut_without_a_noted_time_ends_now_with_an_error() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        // A time from the future (clocks apart), or from before the recording
        // (left by an earlier one), is not believed either.
        session.handle_capture_cut(t0 + ms(9000), id, Some(t0 + ms(9500)));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!((ended[0].reason, ended[0].ended_at), (EndReason::Error, t0 + ms(9000)));
        assert!(ended[0].error.as_deref().unwrap().contains("snoop channel ended"));

        let id = started(&mut session, t0, t0 + ms(10_000));
        drain(&mut session);
        session.handle_capture_cut(t0 + ms(12_000), id, Some(t0 + ms(3000)));
        assert_eq!(finished(&drain(&mut session))[0].reason, EndReason::Error);
    }

    #[test]
    fn progress_for_another_recording_is_ignored() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        session.handle_marker(t0, start("x"), id);
        drain(&mut session);
        let stranger = Uuid::new_v4();
        session.handle_media_source(stranger, Track::Both, source());
        session.handle_capture_started(stranger, t0);
        session.handle_setup_failed(t0, stranger, "nope".into());
        assert!(drain(&mut session).is_empty());
        assert_eq!(session.recording(), Some(id));
    }

    #[test]
    fn pause_and_resume_mark_the_recording_and_release_the_channel() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        session.handle_marker(t0 + ms(1000), MarkerCommand::Pause, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Pause { recording: id, at: t0 + ms(1000) }, Action::Release]);
        assert!(session.is_paused());
        session.handle_marker(t0 + ms(1100), MarkerCommand::Pause, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Ignore(Ignored::AlreadyPaused), Action::Release]);
        session.handle_marker(t0 + ms(3000), MarkerCommand::Resume, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Resume { recording: id, at: t0 + ms(3000) }, Action::Release]);
        session.handle_marker(t0 + ms(3100), MarkerCommand::Resume, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Ignore(Ignored::NotPaused), Action::Release]);
        assert_eq!(session.recording(), Some(id), "the recording goes on");
    }

    #[test]
    fn pause_or_resume_without_a_recording_is_ignored_and_released() {
        let mut session = Session::new(TIMEOUT);
        session.handle_marker(Instant::now(), MarkerCommand::Pause, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Ignore(Ignored::PauseWithoutRecording), Action::Release]);
        session.handle_marker(Instant::now(), MarkerCommand::Resume, Uuid::new_v4());
        assert_eq!(drain(&mut session), vec![Action::Ignore(Ignored::ResumeWithoutRecording), Action::Release]);
        assert!(session.is_idle());
    }

    #[test]
    fn a_hangup_while_paused_ends_the_recording_and_a_new_start_is_not_paused() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        started(&mut session, t0, t0 + ms(40));
        session.handle_marker(t0 + ms(500), MarkerCommand::Pause, Uuid::new_v4());
        drain(&mut session);
        let second = Uuid::new_v4();
        session.handle_marker(t0 + ms(900), start("second"), second);
        assert_eq!(finished(&drain(&mut session))[0].reason, EndReason::Restart);
        assert!(!session.is_paused(), "a new recording starts unpaused");
        session.handle_marker(t0 + ms(950), MarkerCommand::Pause, Uuid::new_v4());
        drain(&mut session);
        session.handle_hangup(t0 + ms(2000));
        let actions = drain(&mut session);
        assert_eq!(finished(&actions)[0].reason, EndReason::Hangup);
        assert_eq!(finished(&actions)[0].recording, second);
    }

    #[test]
    fn max_ends_the_recording_exactly_at_its_length_and_the_call_goes_on() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        let mut limited = options();
        limited.max = ms(5000);
        session.handle_marker(t0, MarkerCommand::Start { name: "x".into(), options: limited }, id);
        session.handle_ready(id, Resource::Snoop(Track::Both));
        session.handle_ready(id, Resource::Media(Track::Both));
        session.handle_ready(id, Resource::Bridge(Track::Both));
        session.handle_media_source(id, Track::Both, source());
        session.handle_capture_started(id, t0 + ms(40));
        drain(&mut session);
        assert_eq!(session.poll_timeout(), Some(t0 + ms(5040)));
        session.handle_timeout(t0 + ms(5039));
        assert!(drain(&mut session).is_empty());
        session.handle_timeout(t0 + ms(5100));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!((ended[0].reason, ended[0].ended_at), (EndReason::MaxDuration, t0 + ms(5040)));
        assert!(!actions.contains(&Action::Release), "the channel is not held");
        assert!(session.is_idle());
    }

    #[test]
    fn no_media_ends_the_recording_where_its_audio_stopped() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        assert_eq!(session.handle_no_media(t0 + ms(3000), Uuid::new_v4(), t0 + ms(900), None), None);
        assert!(drain(&mut session).is_empty(), "another recording's silence is not ours");
        // A cut noted before this recording began is an older one.
        let ended = session.handle_no_media(t0 + ms(3000), id, t0 + ms(900), Some(t0 + ms(10)));
        assert_eq!(ended, Some(EndReason::Error));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!((ended[0].reason, ended[0].ended_at), (EndReason::Error, t0 + ms(900)));
        assert_eq!(ended[0].error.as_deref(), Some("no_media"));
    }

    #[test]
    fn media_that_stopped_where_the_dialplan_cut_the_capture_ends_as_stopped_there() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        let ended = session.handle_no_media(t0 + ms(5000), id, t0 + ms(2990), Some(t0 + ms(3000)));
        assert_eq!(ended, Some(EndReason::Stop));
        let actions = drain(&mut session);
        let ended = finished(&actions);
        assert_eq!(
            (ended[0].reason, ended[0].ended_at, ended[0].error.as_deref()),
            (EndReason::Stop, t0 + ms(3000), None)
        );
    }

    #[test]
    fn a_new_party_makes_the_snoops_anew_once_per_transfer() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        session.handle_new_party(t0);
        assert!(drain(&mut session).is_empty(), "nothing to re-attach without a recording");
        let id = started(&mut session, t0, t0 + ms(40));
        drain(&mut session);
        session.handle_new_party(t0 + ms(3000));
        assert_eq!(drain(&mut session), vec![Action::Reattach { recording: id, tracks: &[Track::Both] }]);
        // The dial the transfer leads to, right after: the same re-attach.
        session.handle_new_party(t0 + ms(3010));
        assert!(drain(&mut session).is_empty());
        session.handle_new_party(t0 + ms(9000));
        assert_eq!(drain(&mut session), vec![Action::Reattach { recording: id, tracks: &[Track::Both] }]);
        assert_eq!(session.recording(), Some(id), "the recording goes on");
    }

    #[test]
    fn stereo_sets_up_two_tracks_and_holds_the_channel_until_both_capture() {
        let t0 = Instant::now();
        let mut session = Session::new(TIMEOUT);
        let id = Uuid::new_v4();
        let mut stereo = options();
        stereo.channels = Channels::Stereo;
        session.handle_marker(t0, MarkerCommand::Start { name: "s".into(), options: stereo }, id);
        assert_eq!(drain(&mut session), vec![Action::SetUp { recording: id, tracks: &[Track::Caller, Track::Callee] }]);
        let callee_source: SocketAddr = "127.0.0.1:14002".parse().unwrap();
        for track in [Track::Caller, Track::Callee] {
            session.handle_ready(id, Resource::Snoop(track));
            session.handle_ready(id, Resource::Bridge(track));
        }
        session.handle_ready(id, Resource::Media(Track::Callee));
        session.handle_media_source(id, Track::Callee, callee_source);
        assert_eq!(
            drain(&mut session),
            vec![
                Action::Listen { recording: id, stream: 1, streams: 2, source: callee_source },
                Action::Bridge { recording: id, track: Track::Callee },
            ]
        );
        // The caller's track never gets its externalMedia channel.
        session.handle_timeout(t0 + TIMEOUT);
        let actions = drain(&mut session);
        let error = finished(&actions)[0].error.clone().unwrap();
        assert!(error.contains("caller externalMedia channel"), "{error}");
        assert!(!error.contains("callee"), "{error}");
        assert_eq!(actions.last(), Some(&Action::Release));
    }
}
