//! How a marker lets its sender go, whichever transport it came by: a
//! channel held in Stasis is continued in the dialplan; an AGI session or
//! an HTTP request waiting for the marker gets its `MarkerOutcome`. The
//! recorder keeps, per call, the markers waiting and notes what the
//! session's actions did, so that each one is answered with what became of it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::control::{EndedRecording, MarkerOutcome, MarkerStatus};
use crate::delivery::metadata::{rfc3339, WallClock};
use crate::session::{EndReason, Finished, Ignored, RecordingId};

/// Who waits for a marker to take effect.
#[derive(Debug)]
pub(super) enum Hold {
    /// The channel waits in Stasis: continue it in the dialplan.
    Stasis,
    /// An AGI session or HTTP request waits for the outcome.
    Reply(oneshot::Sender<MarkerOutcome>),
}

/// A marker other than start, waiting for its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    Stop,
    Pause,
    Resume,
}

/// The markers of one call waiting to be answered, and what the session's
/// actions for them did so far.
#[derive(Debug, Default)]
pub(super) struct Holds {
    /// The start marker waiting for its capture.
    start: Option<(RecordingId, Hold)>,
    /// When the start marker began to wait, until its dwell is taken.
    start_since: Option<Instant>,
    /// Other markers, released in order (each right after its actions).
    others: VecDeque<(Waiting, Hold)>,
    ended: Vec<EndedRecording>,
    ignored: Option<Ignored>,
    paused_or_resumed: bool,
}

/// Recordings remembered as ended while markers wait: a restart and a stop
/// are the most a batch of actions ends.
const ENDED_KEPT: usize = 4;

impl Holds {
    /// A start marker now waits for `recording`; a start still waiting (a
    /// second one before the first's capture ran) is handed back to answer.
    pub fn wait_for_start(&mut self, recording: RecordingId, hold: Hold) -> Option<Hold> {
        self.start_since = Some(Instant::now());
        self.start.replace((recording, hold)).map(|(_, old)| old)
    }

    pub fn wait(&mut self, waiting: Waiting, hold: Hold) {
        self.others.push_back((waiting, hold));
    }

    pub fn note_ended(&mut self, clock: &WallClock, finished: &Finished) {
        if self.ended.len() == ENDED_KEPT {
            self.ended.remove(0);
        }
        self.ended.push(ended_recording(clock, finished));
    }

    pub fn note_ignored(&mut self, ignored: Ignored) {
        self.ignored = Some(ignored);
    }

    pub fn note_paused_or_resumed(&mut self) {
        self.paused_or_resumed = true;
    }

    /// A `Release`: the oldest marker waiting, with its outcome; or the start
    /// marker, whose capture could not be set up; or none (a Stasis channel
    /// to continue all the same).
    pub fn release(&mut self) -> Option<(Hold, MarkerOutcome)> {
        if let Some((waiting, hold)) = self.others.pop_front() {
            let outcome = self.outcome_of(waiting);
            return Some((hold, outcome));
        }
        let (recording, hold) = self.start.take()?;
        Some((hold, self.start_failed(recording)))
    }

    /// Capture of `recording` runs: its start marker, if it is the one waiting.
    pub fn capturing(&mut self, recording: RecordingId, snoops: String) -> Option<(Hold, MarkerOutcome)> {
        match &self.start {
            Some((waiting_for, _)) if *waiting_for == recording => {}
            _ => return None,
        }
        let (_, hold) = self.start.take()?;
        let replaced = self.ended.iter().rev().find(|ended| ended.end_reason == EndReason::Restart.to_string());
        let outcome = MarkerOutcome {
            recording_id: Some(recording),
            replaced: replaced.cloned(),
            snoops,
            ..MarkerOutcome::new(MarkerStatus::Recording)
        };
        self.ended.clear();
        Some((hold, outcome))
    }

    /// The start marker waits for a recording that is no longer the call's
    /// (it failed, was stopped or replaced, or the call hung up): answer it.
    pub fn start_gone(&mut self, current: Option<RecordingId>) -> Option<(Hold, MarkerOutcome)> {
        match &self.start {
            Some((recording, _)) if Some(*recording) != current => {
                let (recording, hold) = self.start.take()?;
                Some((hold, self.start_failed(recording)))
            }
            _ => None,
        }
    }

    /// How long the start marker waited, once it has been answered (once).
    pub fn start_dwell(&mut self) -> Option<Duration> {
        match self.start {
            Some(_) => None,
            None => self.start_since.take().map(|since| since.elapsed()),
        }
    }

    /// Everything still waiting, for a call that is forgotten.
    pub fn drain(&mut self) -> Vec<(Hold, MarkerOutcome)> {
        let gone = || MarkerOutcome::with_detail(MarkerStatus::HungUp, "the call ended");
        let mut all: Vec<(Hold, MarkerOutcome)> = self.others.drain(..).map(|(_, hold)| (hold, gone())).collect();
        all.extend(self.start.take().map(|(_, hold)| (hold, gone())));
        all
    }

    fn outcome_of(&mut self, waiting: Waiting) -> MarkerOutcome {
        let ignored = self.ignored.take();
        let acted = std::mem::take(&mut self.paused_or_resumed);
        if let Some(ignored) = ignored {
            return MarkerOutcome::with_detail(MarkerStatus::Ignored, ignored.to_string());
        }
        match waiting {
            Waiting::Stop => {
                let ended = self.ended.pop();
                MarkerOutcome {
                    recording_id: ended.as_ref().map(|ended| ended.recording_id),
                    ended,
                    ..MarkerOutcome::new(MarkerStatus::Stopped)
                }
            }
            Waiting::Pause if acted => MarkerOutcome::new(MarkerStatus::Paused),
            Waiting::Resume if acted => MarkerOutcome::new(MarkerStatus::Resumed),
            _ => MarkerOutcome::with_detail(MarkerStatus::Ignored, "nothing to act on"),
        }
    }

    fn start_failed(&mut self, recording: RecordingId) -> MarkerOutcome {
        let ended = self.ended.iter().rev().find(|ended| ended.recording_id == recording).cloned();
        let Some(ended) = ended else {
            return MarkerOutcome::with_detail(
                MarkerStatus::Error,
                "the recording ended before capture was established",
            );
        };
        let (status, detail) = match ended.end_reason.as_str() {
            "hangup" => (MarkerStatus::HungUp, "the call hung up before capture was established".to_string()),
            "stop" => (MarkerStatus::Stopped, "stopped before capture was established".to_string()),
            "restart" => (MarkerStatus::Error, "replaced by a newer start marker".to_string()),
            _ => (MarkerStatus::Error, ended.error.clone().unwrap_or_else(|| "capture failed".to_string())),
        };
        MarkerOutcome {
            recording_id: Some(recording),
            ended: Some(ended),
            detail: Some(detail),
            ..MarkerOutcome::new(status)
        }
    }
}

/// A finished recording as a marker's answer reports it.
pub(super) fn ended_recording(clock: &WallClock, finished: &Finished) -> EndedRecording {
    let started_at = finished.started_at.map(|at| rfc3339(clock.at(at)));
    let duration = finished.started_at.map(|at| finished.ended_at.saturating_duration_since(at)).unwrap_or_default();
    EndedRecording {
        recording_id: finished.recording,
        name: finished.name.clone(),
        started_at,
        ended_at: rfc3339(clock.at(finished.ended_at)),
        duration_ms: duration.as_millis() as u64,
        end_reason: finished.reason.to_string(),
        error: finished.error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use uuid::Uuid;

    use super::*;
    use crate::markers::RecordingOptions;

    fn finished(recording: RecordingId, reason: EndReason, started: Option<Instant>) -> Finished {
        Finished {
            recording,
            name: "n".into(),
            options: RecordingOptions::for_tests(),
            started_at: started,
            ended_at: Instant::now(),
            reason,
            error: (reason == EndReason::Error).then(|| "no snoop".to_string()),
        }
    }

    fn status(answer: Option<(Hold, MarkerOutcome)>) -> MarkerStatus {
        answer.expect("an answer").1.status
    }

    #[test]
    fn a_start_is_answered_once_its_capture_runs_naming_what_it_replaced() {
        let (clock, mut holds) = (WallClock::now(), Holds::default());
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(holds.wait_for_start(new, Hold::Stasis).is_none());
        holds.note_ended(&clock, &finished(old, EndReason::Restart, Some(Instant::now() - Duration::from_secs(3))));
        assert!(holds.capturing(Uuid::new_v4(), String::new()).is_none(), "another recording's capture");
        let (_, outcome) = holds.capturing(new, "Snoop/a".into()).unwrap();
        assert_eq!((outcome.status, outcome.recording_id), (MarkerStatus::Recording, Some(new)));
        let replaced = outcome.replaced.unwrap();
        assert_eq!((replaced.recording_id, replaced.end_reason.as_str()), (old, "restart"));
        assert!(replaced.duration_ms >= 3000);
        assert_eq!(outcome.snoops, "Snoop/a");
        assert!(holds.release().is_none(), "nothing waits any more");
    }

    #[test]
    fn stop_pause_and_resume_are_answered_in_order_with_what_they_did() {
        let (clock, mut holds) = (WallClock::now(), Holds::default());
        let id = Uuid::new_v4();
        holds.wait(Waiting::Pause, Hold::Stasis);
        holds.note_paused_or_resumed();
        assert_eq!(status(holds.release()), MarkerStatus::Paused);
        holds.wait(Waiting::Pause, Hold::Stasis);
        holds.note_ignored(Ignored::AlreadyPaused);
        let (_, outcome) = holds.release().unwrap();
        assert_eq!(outcome.status, MarkerStatus::Ignored);
        assert!(outcome.detail.unwrap().contains("already paused"));
        holds.wait(Waiting::Stop, Hold::Stasis);
        holds.note_ended(&clock, &finished(id, EndReason::Stop, Some(Instant::now())));
        let (_, outcome) = holds.release().unwrap();
        assert_eq!((outcome.status, outcome.ended.unwrap().recording_id), (MarkerStatus::Stopped, id));
        holds.wait(Waiting::Stop, Hold::Stasis);
        holds.note_ignored(Ignored::StopWithoutRecording);
        assert_eq!(status(holds.release()), MarkerStatus::Ignored);
    }

    #[test]
    fn a_start_whose_capture_never_ran_says_why() {
        let clock = WallClock::now();
        for (reason, expected) in [
            (EndReason::Error, MarkerStatus::Error),
            (EndReason::Hangup, MarkerStatus::HungUp),
            (EndReason::Stop, MarkerStatus::Stopped),
            (EndReason::Restart, MarkerStatus::Error),
        ] {
            let mut holds = Holds::default();
            let id = Uuid::new_v4();
            holds.wait_for_start(id, Hold::Stasis);
            assert!(holds.start_gone(Some(id)).is_none(), "still the call's recording");
            holds.note_ended(&clock, &finished(id, reason, None));
            let (_, outcome) = holds.start_gone(None).unwrap();
            assert_eq!(outcome.status, expected, "{reason}");
            assert!(outcome.detail.is_some());
        }
        let mut holds = Holds::default();
        holds.wait_for_start(Uuid::new_v4(), Hold::Stasis);
        holds.note_ended(&clock, &finished(Uuid::new_v4(), EndReason::Error, None));
        assert_eq!(status(holds.release()), MarkerStatus::Error, "setup failed: released by the session");
    }

    #[test]
    fn a_forgotten_call_answers_everything_still_waiting() {
        let mut holds = Holds::default();
        holds.wait_for_start(Uuid::new_v4(), Hold::Stasis);
        holds.wait(Waiting::Stop, Hold::Stasis);
        let drained = holds.drain();
        assert_eq!(drained.len(), 2);
        assert!(drained.iter().all(|(_, outcome)| outcome.status == MarkerStatus::HungUp));
    }

    #[test]
    fn a_start_markers_dwell_is_taken_once_it_is_answered() {
        let mut holds = Holds::default();
        assert_eq!(holds.start_dwell(), None);
        let id = Uuid::new_v4();
        holds.wait_for_start(id, Hold::Stasis);
        assert_eq!(holds.start_dwell(), None, "still waiting");
        assert!(holds.capturing(id, String::new()).is_some());
        assert!(holds.start_dwell().is_some());
        assert_eq!(holds.start_dwell(), None, "taken once");
    }
}
