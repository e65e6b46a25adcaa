//! Markers from outside Stasis, beside the first step of the path: the
//! FastAGI server (`agi`) and the HTTP control API (`api`) are thin adapters
//! that turn what they receive into a `MarkerCommand` for a channel, hand it
//! to the recorder through `Markers`, and answer with the `MarkerOutcome`
//! once the recorder has acted (for a start: once capture is established),
//! exactly when a `Stasis` marker would let its channel go on.

pub mod agi;
pub mod api;

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::ari::events::Channel;
use crate::ari::rest::AriClient;
use crate::markers::{MarkerCommand, MarkerError, RecordingOptions};
use crate::session::RecordingId;

/// A marker for the recorder, and where its outcome goes.
#[derive(Debug)]
pub struct MarkerRequest {
    /// The channel as Asterisk described it when the marker arrived.
    pub channel: Channel,
    pub command: Result<MarkerCommand, MarkerError>,
    pub reply: oneshot::Sender<MarkerOutcome>,
}

/// What the adapters ask of the recorder.
#[derive(Debug)]
pub enum ControlRequest {
    Marker(Box<MarkerRequest>),
    /// The recordings running now.
    Recordings(oneshot::Sender<Vec<RunningRecording>>),
}

/// What became of a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerStatus {
    /// A start: capture is established.
    Recording,
    /// A stop: the recording ended here.
    Stopped,
    Paused,
    Resumed,
    /// Nothing to act on (a stop with no recording, a second pause, …).
    Ignored,
    /// The marker could not be understood (a bad option): nothing changed.
    Invalid,
    /// The recording could not be set up; the call goes on without it.
    Error,
    /// The channel hung up before the marker took effect.
    HungUp,
    /// callrec is shutting down and starts nothing new.
    Unavailable,
}

impl MarkerStatus {
    /// The value of `CALLREC_STATUS` the dialplan can test.
    pub fn as_variable(self) -> &'static str {
        match self {
            MarkerStatus::Recording => "RECORDING",
            MarkerStatus::Stopped => "STOPPED",
            MarkerStatus::Paused => "PAUSED",
            MarkerStatus::Resumed => "RESUMED",
            MarkerStatus::Ignored => "IGNORED",
            MarkerStatus::Invalid => "INVALID",
            MarkerStatus::Error => "ERROR",
            MarkerStatus::HungUp => "HANGUP",
            MarkerStatus::Unavailable => "UNAVAILABLE",
        }
    }
}

/// A recording as it stood when it ended (stop, restart, failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndedRecording {
    pub recording_id: RecordingId,
    pub name: String,
    /// RFC 3339; absent when capture never began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub ended_at: String,
    pub duration_ms: u64,
    pub end_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to a marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkerOutcome {
    pub status: MarkerStatus,
    /// The recording the marker started or acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<RecordingId>,
    /// A start that replaced a running recording (the restart rule): that one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<EndedRecording>,
    /// A stop: the recording it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<EndedRecording>,
    /// The capture's snoop channels (`CALLREC_SNOOP`), for the dialplan.
    #[serde(skip)]
    pub snoops: String,
    /// Why, for everything but success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl MarkerOutcome {
    pub fn new(status: MarkerStatus) -> Self {
        MarkerOutcome { status, recording_id: None, replaced: None, ended: None, snoops: String::new(), detail: None }
    }

    pub fn with_detail(status: MarkerStatus, detail: impl Into<String>) -> Self {
        MarkerOutcome { detail: Some(detail.into()), ..Self::new(status) }
    }
}

/// A recording running now, as `GET /v1/recordings` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningRecording {
    pub id: RecordingId,
    pub name: String,
    /// The recorded channel's name and id.
    pub channel: String,
    pub channel_id: String,
    /// RFC 3339; absent while capture is being set up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub duration_ms: u64,
    /// `setting_up`, `recording` or `paused`.
    pub state: &'static str,
}

/// Why a marker did not reach the recorder.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("no channel {0:?} on Asterisk")]
    UnknownChannel(String),
    #[error("Asterisk's ARI is not reachable: {0}")]
    AriUnavailable(String),
    #[error("callrec is shutting down")]
    Stopping,
    #[error("no outcome within {} ms", .0.as_millis())]
    Timeout(Duration),
}

/// The adapters' way to the recorder: cheap to clone.
#[derive(Clone)]
pub struct Markers {
    requests: mpsc::Sender<ControlRequest>,
    ari: AriClient,
    /// Longest a marker waits for its outcome: the capture timeout and a margin.
    wait: Duration,
    /// What a start marker's options do not give (`--channels`, `--max-recording`, …):
    /// the adapters read options over these, as `Stasis` markers are read.
    defaults: RecordingOptions,
}

impl Markers {
    pub fn new(
        requests: mpsc::Sender<ControlRequest>,
        ari: AriClient,
        capture_timeout: Duration,
        defaults: RecordingOptions,
    ) -> Self {
        Markers { requests, ari, wait: capture_timeout + Duration::from_secs(2), defaults }
    }

    /// The options a start marker does not give.
    pub fn defaults(&self) -> &RecordingOptions {
        &self.defaults
    }

    /// Gives `command` for channel `channel_id` (its ARI id, the AGI
    /// `agi_uniqueid`) to the recorder and waits for its outcome.
    pub async fn mark(
        &self,
        channel_id: &str,
        command: Result<MarkerCommand, MarkerError>,
    ) -> Result<MarkerOutcome, ControlError> {
        // A marker that cannot be understood changes nothing: it is refused
        // (and counted) without asking Asterisk about the channel.
        if matches!(&command, Err(error) if !matches!(error, MarkerError::BadName { .. })) {
            let channel = Channel { id: channel_id.to_string(), name: channel_id.to_string(), ..Channel::default() };
            let (reply, outcome) = oneshot::channel();
            return self
                .ask(ControlRequest::Marker(Box::new(MarkerRequest { channel, command, reply })), outcome)
                .await;
        }
        let channel = match self.ari.channel(channel_id).await {
            Ok(Some(channel)) => channel,
            Ok(None) => return Err(ControlError::UnknownChannel(channel_id.to_string())),
            Err(error) if error.status().is_some_and(|status| status >= 500) || error.status().is_none() => {
                return Err(ControlError::AriUnavailable(error.to_string()))
            }
            Err(error) => return Err(ControlError::UnknownChannel(format!("{channel_id} ({error})"))),
        };
        let (reply, outcome) = oneshot::channel();
        self.ask(ControlRequest::Marker(Box::new(MarkerRequest { channel, command, reply })), outcome).await
    }

    /// The recordings running now.
    pub async fn recordings(&self) -> Result<Vec<RunningRecording>, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.ask(ControlRequest::Recordings(reply), answer).await
    }

    async fn ask<T>(&self, request: ControlRequest, answer: oneshot::Receiver<T>) -> Result<T, ControlError> {
        self.requests.send(request).await.map_err(|_| ControlError::Stopping)?;
        match tokio::time::timeout(self.wait, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ControlError::Stopping),
            Err(_) => Err(ControlError::Timeout(self.wait)),
        }
    }
}
