//! The recorder: the async driver between the outside world and the per-call
//! sessions. ARI events and media news come in; each call's `Session` decides;
//! the recorder carries out its actions (REST calls, media routing, finishing
//! and delivery) as tasks whose results come back as messages, so the loop
//! never waits on Asterisk and a held channel is always released on time.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, info_span, warn, Instrument, Span};
use uuid::Uuid;

use crate::ari::events::{Channel, Event};
use crate::ari::rest::AriClient;
use crate::ari::websocket::AriMessage;
use crate::ari::AriError;
use crate::control::{ControlRequest, MarkerOutcome, MarkerStatus, RunningRecording};
use crate::delivery::metadata::{rfc3339, WallClock};
use crate::delivery::post_call::{self, CallChannel, CallLedger, PostCall, PostCallSummary};
use crate::delivery::{Delivery, DeliveryOutcome};
use crate::integrity::SigningKey;
use crate::markers::{self, stasis, MarkerCommand, MarkerError, RecordingOptions};
use crate::media::receiver::RESERVED_BYTES_PER_TRACK;
use crate::media::{MediaEvent, MediaHandle};
use crate::memory::AudioMemory;
use crate::metrics::Metrics;
use crate::parties::{Parties, PartySpan};
use crate::resources::{self, ResourceIds};
use crate::session::{Action, EndReason, Finished, Ignored, RecordingId, Resource, Session, Track};

mod finish;
mod holds;
mod reconcile;
mod release;
mod resnoop;

use finish::{teardown, CallFacts, FinishJob};
use holds::{Hold, Holds, Waiting};

/// Logged when a recording ends where the dialplan cut its capture.
const CUT_BY_DIALPLAN: &str =
    "the dialplan cut the capture at a stop or pause marker callrec could not hear; the recording ends there";

/// One RTP packet's worth of audio.
const FRAME: Duration = Duration::from_millis(20);

/// How long shutdown waits for recordings still being delivered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// What the recorder needs from the rest of callrec.
pub struct RecorderParts {
    pub ari: AriClient,
    pub media: MediaHandle,
    /// The `HOST:PORT` externalMedia channels send RTP to.
    pub media_target: String,
    pub delivery: Delivery,
    pub metrics: Arc<Metrics>,
    pub capture_timeout: Duration,
    /// The options a start marker does not give.
    pub defaults: RecordingOptions,
    /// Signs every recording's metadata, when set.
    pub signing_key: Option<Arc<SigningKey>>,
    /// Tells `--post-call-url` about each call with a recording, when set.
    pub post_call: Option<PostCall>,
    /// The bound on audio held (`--max-memory`).
    pub memory: Arc<AudioMemory>,
}

/// Results of the recorder's own tasks, fed back into its loop.
#[derive(Debug)]
pub(crate) enum TaskResult {
    /// A setup step of a recording finished.
    SetUp {
        call: String,
        recording: RecordingId,
        resource: Resource,
        result: Result<Created, AriError>,
    },
    Bridged {
        call: String,
        recording: RecordingId,
        result: Result<(), AriError>,
    },
    /// Subscribing to a call's events failed.
    WatchFailed {
        call: String,
        error: AriError,
    },
    /// A resource ended on its own; `call_exists` tells a hangup from a loss.
    ResourceEnded {
        call: String,
        recording: RecordingId,
        resource: Resource,
        call_exists: bool,
    },
    /// Reconciliation after a reconnect listed these recording resources
    /// on Asterisk; those no running recording owns are left over.
    RecordingResources {
        channels: Vec<String>,
        bridges: Vec<String>,
    },
    /// Reconciliation after a reconnect found the recording's snoop channel
    /// gone, with the time the dialplan noted for cutting it, if any.
    CaptureCut {
        call: String,
        recording: RecordingId,
        stopped_at: Option<SystemTime>,
    },
    /// Reconciliation after a reconnect found the call gone.
    CallGone {
        call: String,
    },
    /// A call found gone hung up when its recording's audio stopped, `at`.
    HungUpAt {
        call: String,
        at: Option<Instant>,
    },
    /// A recording was delivered, or failed for good.
    Delivered {
        call: String,
        recording: RecordingId,
        outcome: DeliveryOutcome,
    },
    /// A running recording's RTP stopped; `stopped_at` is the time the
    /// dialplan noted for cutting its capture, if it did.
    MediaStopped {
        recording: RecordingId,
        last_audio_at: Instant,
        stopped_at: Option<SystemTime>,
    },
    /// What the call's keys and the start marker's place in the dialplan
    /// were read to be.
    CallFacts {
        recording: RecordingId,
        keys: CallFacts,
    },
    /// A channel sat in this Stasis application across two looks a while
    /// apart (e.g. held by a callrec that crashed).
    MaybeStranded {
        channel: String,
    },
}

/// What a setup step created.
#[derive(Debug)]
pub(crate) enum Created {
    Snoop,
    /// The externalMedia channel, with the address its RTP comes from.
    Media {
        source: SocketAddr,
    },
    Bridge,
}

struct Call {
    channel: Channel,
    session: Session,
    /// Who the caller was connected to, for the recordings' `parties`.
    parties: Parties,
    /// The markers waiting to be let go, and what became of them.
    holds: Holds,
    /// Every log line about the call, its delivery included, carries its
    /// `channel_id` and latest `recording_id` (see `call_span`).
    span: Span,
}

/// The call's span, entered while the recorder handles the call; its
/// `recording_id` is the recording set up last. The task that collects and
/// delivers a recording carries a span of the same name and fields.
fn call_span(channel_id: &str) -> Span {
    info_span!("call", channel_id = %channel_id, recording_id = tracing::field::Empty)
}

/// The recording resources that exist for a running recording.
struct Live {
    call: String,
    tracks: &'static [Track],
    /// Which snoops are its own: those of this generation (see
    /// `Action::Reattach`).
    generation: u32,
    /// The snoop channels' names, from their StasisStart (which capture
    /// waits for), for the dialplan (see `markers::SNOOP_VARIABLE`).
    snoop_names: Vec<(Track, String)>,
    keys: CallFacts,
}

pub struct Recorder {
    parts: RecorderParts,
    calls: HashMap<String, Call>,
    live: HashMap<RecordingId, Live>,
    results_tx: mpsc::UnboundedSender<TaskResult>,
    results_rx: mpsc::UnboundedReceiver<TaskResult>,
    tasks: JoinSet<()>,
    /// Recordings between their end and their delivery.
    finishing: Arc<AtomicUsize>,
    /// Calls with a recording, until their post-call summary is sent.
    ledger: CallLedger,
    /// Shutting down: start markers are let go without recording.
    stopping: bool,
    /// This callrec holds the Stasis application (connected, not taken over):
    /// channels waiting in it are its own to let go.
    holds_application: bool,
}

impl Recorder {
    pub fn new(parts: RecorderParts) -> Self {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        Recorder {
            parts,
            calls: HashMap::new(),
            live: HashMap::new(),
            results_tx,
            results_rx,
            tasks: JoinSet::new(),
            finishing: Arc::default(),
            ledger: CallLedger::default(),
            stopping: false,
            holds_application: false,
        }
    }

    /// Runs until `shutdown` turns true, then finishes every recording and
    /// waits (bounded) for their delivery.
    pub async fn run(
        mut self,
        mut ari: mpsc::Receiver<AriMessage>,
        mut media: mpsc::UnboundedReceiver<MediaEvent>,
        mut control: mpsc::Receiver<ControlRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let deadline = self.calls.values().filter_map(|call| call.session.poll_timeout()).min();
            tokio::select! {
                message = ari.recv() => match message {
                    Some(message) => self.handle_ari(message),
                    None => break,
                },
                Some(event) = media.recv() => self.handle_media(event),
                Some(request) = control.recv() => self.handle_control(request),
                Some(result) = self.results_rx.recv() => self.handle_result(result),
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(error) = joined {
                        error!(%error, "a recorder task failed");
                    }
                }
                _ = sleep_until(deadline) => self.handle_timeouts(),
                _ = shutdown.changed() => break,
            }
        }
        self.shut_down(ari).await;
    }

    fn handle_ari(&mut self, message: AriMessage) {
        match message {
            // Closing the connection is part of stopping.
            AriMessage::Connected | AriMessage::Disconnected if self.stopping => {}
            AriMessage::Connected => {
                self.holds_application = true;
                self.reconcile();
            }
            AriMessage::Disconnected => {
                self.holds_application = false;
                if !self.live.is_empty() {
                    warn!(
                        recordings = self.live.len(),
                        "ARI events are lost until the connection is back; running recordings keep capturing"
                    );
                }
            }
            AriMessage::Event(event) => self.handle_event(*event),
        }
    }

    fn handle_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::StasisStart { channel, args } => {
                if let Some((recording, resource)) = self.helper(&channel.id) {
                    if let (Resource::Snoop(track), Some(live)) = (resource, self.live.get_mut(&recording)) {
                        live.snoop_names.retain(|(named, _)| *named != track);
                        live.snoop_names.push((track, channel.name));
                        if live.generation > 0 {
                            self.rejoin(recording, track, channel.id);
                            return;
                        }
                    }
                    self.with_session(recording, |session| session.handle_ready(recording, resource));
                } else if resources::parse(self.parts.ari.app(), &channel.id).is_some() {
                    // A helper of a recording that already ended: remove it.
                    debug!(channel = %channel.id, "hanging up a leftover helper channel");
                    self.spawn_teardown(vec![channel.id], Vec::new());
                } else {
                    let command = stasis::parse_args(&args, &self.parts.defaults);
                    self.handle_marker(now, channel, command, Hold::Stasis);
                }
            }
            Event::StasisEnd { channel } => {
                if let Some((recording, resource)) = self.helper(&channel.id) {
                    if let Some(live) = self.live.get(&recording) {
                        // Not torn down by callrec: find out whether the call
                        // is gone, or else whether the dialplan cut the capture.
                        let call = live.call.clone();
                        let ari = self.parts.ari.clone();
                        let results = self.results_tx.clone();
                        self.tasks.spawn(async move {
                            let call_exists = ari.channel_exists(&call).await.unwrap_or(true);
                            let result = if call_exists && matches!(resource, Resource::Snoop(_)) {
                                let stopped_at = reconcile::noted_cut(&ari, &call).await;
                                TaskResult::CaptureCut { call, recording, stopped_at }
                            } else {
                                TaskResult::ResourceEnded { call, recording, resource, call_exists }
                            };
                            let _ = results.send(result);
                        });
                    }
                }
            }
            Event::ChannelHangupRequest { channel } | Event::ChannelDestroyed { channel } => {
                let id = channel.id.clone();
                if let Some(call) = self.calls.get_mut(&id) {
                    call.channel = channel;
                    call.session.handle_hangup(now);
                    self.process(&id);
                }
                self.call_ended(&id);
            }
            Event::ChannelConnectedLine { channel } => {
                if let Some(call) = self.calls.get_mut(&channel.id) {
                    debug!(channel = %channel.name, number = %channel.connected.number, "connected line");
                    call.parties.connected_line(now, &channel.connected.number, &channel.connected.name);
                    call.channel = channel;
                }
            }
            Event::BridgeBlindTransfer { transferee, channel } => {
                self.new_party(now, [transferee, channel].into_iter().flatten().map(|c| c.id).collect());
            }
            Event::BridgeAttendedTransfer {
                transferee,
                transfer_target,
                transferer_first_leg,
                transferer_second_leg,
            } => {
                let involved = [&transferee, &transfer_target, &transferer_first_leg, &transferer_second_leg];
                self.new_party(now, involved.into_iter().flatten().map(|c| c.id.clone()).collect());
                // The transferee and the target are put through to each other;
                // their connected lines name each other. (Asterisk leaves the
                // target out when it was a Local channel optimized away.)
                let name =
                    |channel: &Option<Box<Channel>>| channel.as_ref().map(|c| c.name.clone()).unwrap_or_default();
                let pairs = [(&transferee, name(&transfer_target)), (&transfer_target, name(&transferee))];
                for (channel, peer) in pairs {
                    let Some(channel) = channel else { continue };
                    if let Some(call) = self.calls.get_mut(&channel.id) {
                        debug!(channel = %call.channel.name, %peer, "put through by an attended transfer");
                        call.parties.put_through(now, &peer);
                    }
                }
            }
            Event::Dial { caller: Some(caller), dialstatus, .. } if dialstatus.is_empty() => {
                // Only a call that has talked to someone before carries
                // that party's RTP numbering into the new one.
                if self.calls.get(&caller.id).is_some_and(|c| c.parties.was_put_through()) {
                    self.new_party(now, vec![caller.id]);
                }
            }
            Event::Dial { caller: Some(caller), peer, dialstatus } if dialstatus == "ANSWER" => {
                if let Some(call) = self.calls.get_mut(&caller.id) {
                    debug!(channel = %caller.name, peer = %peer.name, "put through");
                    call.parties.put_through(now, &peer.name);
                }
            }
            Event::ChannelDialplan { channel, dialplan_app } => {
                if let Some(call) = self.calls.get_mut(&channel.id) {
                    call.parties.in_dialplan(now, &dialplan_app);
                }
            }
            Event::ChannelVarset { channel: Some(channel), variable, value }
                if variable == crate::ari::events::BRIDGEPEER =>
            {
                if let Some(call) = self.calls.get_mut(&channel.id) {
                    debug!(channel = %channel.name, peers = %value, "bridged with");
                    call.parties.bridged_with(now, &value);
                }
            }
            Event::ApplicationReplaced { .. } => {
                self.holds_application = false;
                self.lose_control(now);
            }
            Event::Dial { .. } | Event::ChannelVarset { .. } | Event::Other => {}
        }
    }

    /// A marker for `channel`, by whichever transport: `hold` says who waits
    /// for it to take effect.
    fn handle_marker(
        &mut self,
        now: Instant,
        channel: Channel,
        command: Result<MarkerCommand, MarkerError>,
        hold: Hold,
    ) {
        let command = match command {
            Ok(command) => command,
            Err(MarkerError::BadName { name, options }) => {
                // Record anyway: a typo in a name must not lose the recording.
                self.parts.metrics.markers_invalid.inc();
                warn!(
                    channel = %channel.name, %name, fallback = markers::DEFAULT_NAME,
                    "unusable recording name; recording under the default name"
                );
                MarkerCommand::Start { name: markers::DEFAULT_NAME.to_string(), options }
            }
            Err(MarkerError::BadOption(error)) => {
                // Not recording at all beats recording otherwise than asked
                // (say, in mono where the flow wanted the parties apart).
                self.parts.metrics.marker_options_invalid.inc();
                warn!(
                    channel = %channel.name, key = error.key(), %error,
                    "bad option on a start marker: not recording; the call goes on"
                );
                let outcome = MarkerOutcome::with_detail(MarkerStatus::Invalid, error.to_string());
                self.answer(&channel.id, hold, outcome);
                return;
            }
            Err(error) => {
                self.parts.metrics.markers_invalid.inc();
                warn!(channel = %channel.name, %error, "ignoring a marker; the call goes on");
                self.answer(&channel.id, hold, MarkerOutcome::with_detail(MarkerStatus::Invalid, error.to_string()));
                return;
            }
        };
        if let MarkerCommand::Start { options, .. } = &command {
            let needs = RESERVED_BYTES_PER_TRACK * options.tracks().len() as u64;
            if self.parts.memory.would_exceed(needs) {
                self.parts.metrics.recordings_refused_memory.inc();
                let (held, limit) = (self.parts.memory.held(), self.parts.memory.limit());
                warn!(
                    channel = %channel.name, held, limit,
                    "not recording: the audio held would pass --max-memory; the call goes on"
                );
                let detail = format!("callrec holds {held} bytes of audio, near --max-memory ({limit})");
                self.answer(&channel.id, hold, MarkerOutcome::with_detail(MarkerStatus::Unavailable, detail));
                return;
            }
        }
        if self.stopping && matches!(command, MarkerCommand::Start { .. }) {
            info!(channel = %channel.name, "callrec is stopping: not starting a recording; the call goes on");
            let outcome = MarkerOutcome::with_detail(MarkerStatus::Unavailable, "callrec is shutting down");
            self.answer(&channel.id, hold, outcome);
            return;
        }
        let id = channel.id.clone();
        let capture_timeout = self.parts.capture_timeout;
        let call = self.calls.entry(id.clone()).or_insert_with(|| Call {
            channel: channel.clone(),
            session: Session::new(capture_timeout),
            parties: Parties::new(now),
            holds: Holds::default(),
            span: call_span(&id),
        });
        call.channel = channel;
        debug!(channel = %call.channel.name, ?command, "marker");
        let fresh_id = Uuid::new_v4();
        let _in_call = call.span.clone().entered();
        let replaced = match &command {
            MarkerCommand::Start { .. } => call.holds.wait_for_start(fresh_id, hold),
            MarkerCommand::Stop => {
                call.holds.wait(Waiting::Stop, hold);
                None
            }
            MarkerCommand::Pause => {
                call.holds.wait(Waiting::Pause, hold);
                None
            }
            MarkerCommand::Resume => {
                call.holds.wait(Waiting::Resume, hold);
                None
            }
        };
        call.session.handle_marker(now, command, fresh_id);
        if let Some(hold) = replaced {
            let outcome = MarkerOutcome::with_detail(MarkerStatus::Error, "replaced by a newer start marker");
            self.answer(&id, hold, outcome);
        }
        self.process(&id);
    }

    /// Lets whoever waits for a marker on `channel` go, with its outcome.
    fn answer(&mut self, channel: &str, hold: Hold, outcome: MarkerOutcome) {
        match hold {
            Hold::Stasis => self.spawn_release(channel.to_string()),
            Hold::Reply(reply) => {
                let _ = reply.send(outcome);
            }
        }
    }

    fn handle_control(&mut self, request: ControlRequest) {
        match request {
            ControlRequest::Marker(marker) => {
                self.handle_marker(Instant::now(), marker.channel, marker.command, Hold::Reply(marker.reply))
            }
            ControlRequest::Recordings(reply) => {
                let now = Instant::now();
                let running = self
                    .calls
                    .values()
                    .filter_map(|call| {
                        let current = call.session.current()?;
                        let state = match (current.started_at, current.paused) {
                            (None, _) => "setting_up",
                            (Some(_), false) => "recording",
                            (Some(_), true) => "paused",
                        };
                        Some(RunningRecording {
                            id: current.recording,
                            name: current.name.to_string(),
                            channel: call.channel.name.clone(),
                            channel_id: call.channel.id.clone(),
                            started_at: current.started_at.map(|at| rfc3339(WallClock::now().at(at))),
                            duration_ms: current
                                .started_at
                                .map_or(0, |at| now.saturating_duration_since(at).as_millis() as u64),
                            state,
                        })
                    })
                    .collect();
                let _ = reply.send(running);
            }
        }
    }

    fn handle_media(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::CaptureStarted { recording, at } => {
                if let Some(live) = self.live.get_mut(&recording) {
                    live.keys.started_wall = Some(WallClock::now().at(at));
                }
                debug!(%recording, "capture established: the first RTP packet of every track arrived");
                self.with_session(recording, |session| session.handle_capture_started(recording, at));
            }
            MediaEvent::NoMedia { recording, last_audio_at } => {
                // The dialplan may have cut the capture at a marker callrec
                // could not hear: ask (waiting out an ARI outage) before
                // calling it lost.
                let Some(call) = self.live.get(&recording).map(|live| live.call.clone()) else { return };
                let (ari, results) = (self.parts.ari.clone(), self.results_tx.clone());
                self.tasks.spawn(async move {
                    let stopped_at = reconcile::cut_noted_once_reachable(&ari, &call).await;
                    let _ = results.send(TaskResult::MediaStopped { recording, last_audio_at, stopped_at });
                });
            }
        }
    }

    fn handle_result(&mut self, result: TaskResult) {
        let now = Instant::now();
        match result {
            TaskResult::SetUp { call, recording, resource, result } => {
                if !self.live.contains_key(&recording) {
                    // The recording ended while this was under way: undo it.
                    if result.is_ok() {
                        let ids = ResourceIds::new(self.parts.ari.app(), recording, resource.track());
                        let (channels, bridges) = match resource {
                            Resource::Bridge(_) => (Vec::new(), vec![ids.bridge]),
                            other => (vec![ids.get(other).to_string()], Vec::new()),
                        };
                        self.spawn_teardown(channels, bridges);
                    }
                    return;
                }
                let Some(c) = self.calls.get_mut(&call) else { return };
                match result {
                    Ok(Created::Media { source }) => c.session.handle_media_source(recording, resource.track(), source),
                    Ok(Created::Bridge) => c.session.handle_ready(recording, resource),
                    Ok(Created::Snoop) => {} // a channel is ready once it reaches Stasis
                    Err(error) => c.session.handle_setup_failed(now, recording, error.to_string()),
                }
                self.process(&call);
            }
            TaskResult::Bridged { call, recording, result } => {
                if let (Err(error), Some(c)) = (result, self.calls.get_mut(&call)) {
                    c.session.handle_setup_failed(now, recording, error.to_string());
                    self.process(&call);
                }
            }
            TaskResult::WatchFailed { call, error } => {
                if matches!(error.status(), Some(404 | 422)) {
                    self.hang_up_call(now, &call);
                } else {
                    warn!(channel = %call, %error, "cannot follow the call's hangup; the recording ends at its stop marker or callrec's check of the snoop");
                }
            }
            TaskResult::ResourceEnded { call, recording, resource: Resource::Media(_), call_exists: true } => {
                // Its RTP stops: the media task's watchdog ends the recording
                // where the audio stopped (`no_media`).
                debug!(channel = %call, %recording, "an externalMedia channel of a running recording ended");
            }
            TaskResult::ResourceEnded { call, recording, resource, call_exists } => {
                if call_exists {
                    if let Some(c) = self.calls.get_mut(&call) {
                        let error = format!("the {resource} ended while recording");
                        c.session.handle_resource_lost(now, recording, error);
                        self.process(&call);
                    }
                } else {
                    self.hang_up_call(now, &call);
                }
            }
            TaskResult::RecordingResources { channels, bridges } => {
                let app = self.parts.ari.app();
                let left_over = |id: &String| {
                    resources::parse(app, id).is_some_and(|(recording, _)| !self.live.contains_key(&recording))
                };
                let channels: Vec<String> = channels.into_iter().filter(left_over).collect();
                let bridges: Vec<String> = bridges.into_iter().filter(left_over).collect();
                if !channels.is_empty() || !bridges.is_empty() {
                    info!(channels = channels.len(), bridges = bridges.len(), "removing leftover recording resources");
                    self.spawn_teardown(channels, bridges);
                }
            }
            TaskResult::CaptureCut { call, recording, stopped_at } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    // A fresh reading of both clocks: the wall clock may have
                    // been stepped since start-up.
                    let stopped_at = stopped_at.map(|at| WallClock::now().instant_of(at));
                    if stopped_at.is_some() {
                        info!(channel = %c.channel.name, %recording, "{CUT_BY_DIALPLAN}");
                    }
                    c.session.handle_capture_cut(now, recording, stopped_at);
                    self.process(&call);
                }
            }
            TaskResult::CallGone { call } => {
                // Found gone after events were missed: its recording ends
                // where its audio stopped, not now.
                let capturing = self.calls.get(&call).and_then(|c| c.session.capturing());
                match capturing {
                    Some(recording) => {
                        let (media, results) = (self.parts.media.clone(), self.results_tx.clone());
                        self.tasks.spawn(async move {
                            let at = media.last_audio(recording).await;
                            let _ = results.send(TaskResult::HungUpAt { call, at });
                        });
                    }
                    None => {
                        self.hang_up_call(now, &call);
                        self.call_ended(&call);
                    }
                }
            }
            TaskResult::HungUpAt { call, at } => {
                // The last packet's 20 ms of audio are part of the call.
                let at = at.map_or(now, |at| (at + FRAME).min(now));
                self.hang_up_call(at, &call);
                self.call_ended(&call);
            }
            TaskResult::Delivered { call, recording, outcome } => {
                if let Some(summary) = self.ledger.delivered(&call, recording, &outcome) {
                    self.spawn_post_call(summary);
                }
            }
            TaskResult::MediaStopped { recording, last_audio_at, stopped_at } => {
                let noted_cut = stopped_at.map(|at| WallClock::now().instant_of(at));
                let (metrics, live) =
                    (self.parts.metrics.clone(), self.live.get(&recording).map(|live| live.call.clone()));
                let channel = live.unwrap_or_default();
                self.with_session(recording, |session| {
                    match session.handle_no_media(now, recording, last_audio_at, noted_cut) {
                        Some(EndReason::Stop) => info!(%channel, %recording, "{CUT_BY_DIALPLAN}"),
                        Some(_) => {
                            metrics.recordings_no_media.inc();
                            warn!(
                                %channel, %recording, silent_for = ?last_audio_at.elapsed(),
                                "no RTP for a running recording (its capture channel or bridge is gone?); it ends where its audio stopped"
                            );
                        }
                        None => {}
                    }
                });
            }
            TaskResult::CallFacts { recording, keys } => {
                if let Some(live) = self.live.get_mut(&recording) {
                    live.keys = CallFacts { started_wall: live.keys.started_wall, ..keys };
                }
            }
            TaskResult::MaybeStranded { channel } => {
                let held = self.calls.get(&channel).is_some_and(|call| call.session.holds_channel());
                if !held {
                    self.parts.metrics.stranded_released.inc();
                    warn!(%channel, "releasing a call left waiting in Stasis (held by a callrec that stopped or lost its connection)");
                    self.spawn_release(channel);
                }
            }
        }
    }

    /// Another client took the Stasis application over (the connection logs
    /// it): no stop marker or hangup of a running recording would reach this
    /// callrec any more, so each ends now, with an error, and is delivered.
    fn lose_control(&mut self, now: Instant) {
        let error = "another ARI client took over the Stasis application; this callrec stopped following the call";
        let calls: Vec<String> = self.calls.keys().cloned().collect();
        for call in calls {
            if let Some(c) = self.calls.get_mut(&call) {
                c.session.handle_lost_control(now, error.to_string());
            }
            self.process(&call);
        }
    }

    fn hang_up_call(&mut self, now: Instant, call: &str) {
        if let Some(c) = self.calls.get_mut(call) {
            c.session.handle_hangup(now);
            self.process(call);
        }
    }

    fn handle_timeouts(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, call)| call.session.poll_timeout().is_some_and(|deadline| deadline <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(call) = self.calls.get_mut(&id) {
                call.session.handle_timeout(now);
            }
            self.process(&id);
        }
    }

    /// The running recording and role of one of callrec's own channels (a
    /// snoop only of the recording's current generation).
    fn helper(&self, channel: &str) -> Option<(RecordingId, Resource)> {
        let (recording, resource) = resources::parse(self.parts.ari.app(), channel)?;
        let live = self.live.get(&recording)?;
        match resource {
            Resource::Snoop(_) if resources::generation(channel) != Some(live.generation) => None,
            _ => Some((recording, resource)),
        }
    }

    /// A transfer or a new dial names these channels: a followed call among
    /// them is about to get a new party.
    fn new_party(&mut self, now: Instant, channels: Vec<String>) {
        for id in channels {
            if let Some(call) = self.calls.get_mut(&id) {
                call.parties.back_with_ivr(now);
                call.session.handle_new_party(now);
                self.process(&id);
            }
        }
    }

    /// Puts a snoop made anew into its track's capture bridge, and names the
    /// recording's snoops on the call again for the dialplan.
    fn rejoin(&mut self, recording: RecordingId, track: Track, snoop: String) {
        let Some(live) = self.live.get(&recording) else { return };
        let bridge = ResourceIds::new(self.parts.ari.app(), recording, track).bridge;
        let (ari, metrics, call, names) =
            (self.parts.ari.clone(), self.parts.metrics.clone(), live.call.clone(), snoop_variable(live));
        self.tasks.spawn(async move {
            resnoop::rejoin(&ari, &metrics, &call, recording, &bridge, &snoop, &names).await;
        });
    }

    /// Makes the recording's snoops anew (see `Action::Reattach` and
    /// `resnoop`): the next generation's, each joining its bridge when it
    /// reaches Stasis (`rejoin`).
    fn reattach(&mut self, channel: &Channel, recording: RecordingId, tracks: &'static [Track]) {
        let Some(live) = self.live.get_mut(&recording) else { return };
        let app = self.parts.ari.app().to_string();
        let old: Vec<String> =
            tracks.iter().map(|&track| ResourceIds::at(&app, recording, track, live.generation).snoop).collect();
        live.generation += 1;
        let new: Vec<(Track, String)> = tracks
            .iter()
            .map(|&track| (track, ResourceIds::at(&app, recording, track, live.generation).snoop))
            .collect();
        self.parts.metrics.snoops_reattached.inc();
        info!(channel = %channel.name, %recording, "the call gets a new party: snooping it anew");
        let (ari, metrics, call) = (self.parts.ari.clone(), self.parts.metrics.clone(), channel.id.clone());
        self.tasks.spawn(async move {
            resnoop::snoop_anew(&ari, &metrics, &call, recording, &old, &new).await;
        });
    }

    /// Runs `f` on the session that owns `recording`, then its actions.
    fn with_session(&mut self, recording: RecordingId, f: impl FnOnce(&mut Session)) {
        let Some(call) = self.live.get(&recording).map(|live| live.call.clone()) else { return };
        if let Some(c) = self.calls.get_mut(&call) {
            f(&mut c.session);
            self.process(&call);
        }
    }

    /// Carries out everything the call's session asked for.
    fn process(&mut self, call_id: &str) {
        let _in_call = self.calls.get(call_id).map(|call| call.span.clone().entered());
        loop {
            let Some(call) = self.calls.get_mut(call_id) else { return };
            let Some(action) = call.session.poll_action() else { break };
            let channel = call.channel.clone();
            match action {
                Action::SetUp { recording, tracks } => self.set_up(&channel, recording, tracks),
                Action::Listen { recording, stream, streams, source } => {
                    self.parts.media.listen(recording, stream, streams, source)
                }
                Action::Bridge { recording, track } => self.bridge(&channel.id, recording, track),
                Action::Release => match call.holds.release() {
                    Some((hold, outcome)) => self.answer(&channel.id, hold, outcome),
                    None => self.spawn_release(channel.id),
                },
                Action::ReleaseCapturing { recording, watch } => {
                    let snoops = self.live.get(&recording).map(snoop_variable).unwrap_or_default();
                    match call.holds.capturing(recording, snoops.clone()) {
                        Some((Hold::Reply(reply), outcome)) => {
                            self.spawn_reply_capturing(channel.id, watch, reply, outcome)
                        }
                        _ => self.spawn_release_capturing(channel.id, snoops, watch),
                    }
                }
                Action::Pause { recording, at } => {
                    info!(channel = %channel.name, %recording, "recording paused");
                    call.holds.note_paused_or_resumed();
                    self.parts.media.pause(recording, at);
                }
                Action::Resume { recording, at } => {
                    info!(channel = %channel.name, %recording, "recording resumed");
                    call.holds.note_paused_or_resumed();
                    self.parts.media.resume(recording, at);
                }
                Action::Reattach { recording, tracks } => self.reattach(&channel, recording, tracks),
                Action::Finish(finished) => {
                    call.holds.note_ended(&WallClock::now(), &finished);
                    let parties = match (finished.started_at, self.calls.get(call_id)) {
                        (Some(started_at), Some(call)) => call.parties.spans(started_at, finished.ended_at),
                        _ => Vec::new(),
                    };
                    self.finish(channel, finished, parties)
                }
                Action::Ignore(ignored) => {
                    call.holds.note_ignored(ignored);
                    match ignored {
                        Ignored::AlreadyPaused | Ignored::NotPaused => self.parts.metrics.markers_out_of_order.inc(),
                        _ => self.parts.metrics.markers_without_recording.inc(),
                    }
                    warn!(channel = %channel.name, "{ignored}; the call goes on");
                }
            }
        }
        let Some(call) = self.calls.get_mut(call_id) else { return };
        let mut answers: Vec<_> = call.holds.start_gone(call.session.recording()).into_iter().collect();
        let idle = call.session.is_idle();
        if idle {
            answers.extend(call.holds.drain());
        }
        if let Some(dwell) = call.holds.start_dwell() {
            self.parts.metrics.live.start_marker_held(dwell);
        }
        if idle {
            self.calls.remove(call_id);
        }
        for (hold, outcome) in answers {
            self.answer(call_id, hold, outcome);
        }
    }

    fn set_up(&mut self, channel: &Channel, recording: RecordingId, tracks: &'static [Track]) {
        if let Some(call) = self.calls.get(&channel.id) {
            call.span.record("recording_id", tracing::field::display(recording));
        }
        self.parts.metrics.recordings_started.inc();
        let app = self.parts.ari.app().to_string();
        info!(channel = %channel.name, %recording, tracks = tracks.len(), "recording: setting up capture");
        let keys = CallFacts {
            linkedid: String::new(),
            context: channel.dialplan.context.clone(),
            exten: channel.dialplan.exten.clone(),
            parties: Vec::new(),
            started_wall: None,
        };
        let live =
            Live { call: channel.id.clone(), tracks, generation: 0, snoop_names: Vec::new(), keys: keys.clone() };
        self.live.insert(recording, live);
        self.spawn_call_facts(&channel.id, recording, keys);
        for &track in tracks {
            let ids = ResourceIds::new(&app, recording, track);

            let ari = self.parts.ari.clone();
            let (snoop, call, snoop_id) = (ari.clone(), channel.id.clone(), ids.snoop.clone());
            self.spawn_setup_step(&channel.id, recording, Resource::Snoop(track), async move {
                snoop.snoop(&call, &snoop_id, track.spy()).await.map(|()| Created::Snoop)
            });
            let (media, media_id, target) = (ari.clone(), ids.media.clone(), self.parts.media_target.clone());
            self.spawn_setup_step(&channel.id, recording, Resource::Media(track), async move {
                media.external_media(&media_id, &target).await.map(|source| Created::Media { source })
            });
            let (bridge, bridge_id) = (ari, ids.bridge);
            self.spawn_setup_step(&channel.id, recording, Resource::Bridge(track), async move {
                bridge.create_bridge(&bridge_id).await.map(|()| Created::Bridge)
            });
        }
    }

    /// Reads what the metadata joins the recording to: the call's linkedid,
    /// and where the start marker was placed (the caller of the dialplan
    /// subroutine, when it came through one), while the channel is held.
    fn spawn_call_facts(&mut self, call: &str, recording: RecordingId, mut keys: CallFacts) {
        let (ari, results, call) = (self.parts.ari.clone(), self.results_tx.clone(), call.to_string());
        self.tasks.spawn(async move {
            let read = |variable: &'static str| {
                let (ari, call) = (ari.clone(), call.clone());
                async move { ari.variable(&call, variable).await.ok().flatten() }
            };
            if keys.context == markers::SUBROUTINE_CONTEXT {
                let (linkedid, place) =
                    markers::called_from(&read(markers::CALLED_FROM_READ).await.unwrap_or_default());
                keys.linkedid = linkedid;
                if let Some((context, exten)) = place {
                    keys.context = context;
                    keys.exten = exten;
                }
            } else {
                keys.linkedid = read("CHANNEL(linkedid)").await.unwrap_or_default();
            }
            let _ = results.send(TaskResult::CallFacts { recording, keys });
        });
    }

    fn spawn_setup_step(
        &mut self,
        call: &str,
        recording: RecordingId,
        resource: Resource,
        step: impl Future<Output = Result<Created, AriError>> + Send + 'static,
    ) {
        let (results, call) = (self.results_tx.clone(), call.to_string());
        self.tasks.spawn(async move {
            let result = step.await;
            let _ = results.send(TaskResult::SetUp { call, recording, resource, result });
        });
    }

    fn bridge(&mut self, call: &str, recording: RecordingId, track: Track) {
        if !self.live.contains_key(&recording) {
            return;
        }
        let ids = ResourceIds::new(self.parts.ari.app(), recording, track);
        let (ari, results, call) = (self.parts.ari.clone(), self.results_tx.clone(), call.to_string());
        self.tasks.spawn(async move {
            let result = ari.add_to_bridge(&ids.bridge, &[&ids.snoop, &ids.media]).await;
            let _ = results.send(TaskResult::Bridged { call, recording, result });
        });
    }

    /// Lets a held channel go on in the dialplan.
    fn spawn_release(&mut self, channel: String) {
        let (ari, metrics) = (self.parts.ari.clone(), self.parts.metrics.clone());
        self.tasks.spawn(release::continue_in_dialplan(ari, metrics, channel));
    }

    /// Answers a start marker from outside Stasis once capture runs: after
    /// subscribing to the channel's events (with `watch`), so that its hangup
    /// is seen. Its channel variables are the AGI session's to set.
    fn spawn_reply_capturing(
        &mut self,
        channel: String,
        watch: bool,
        reply: tokio::sync::oneshot::Sender<MarkerOutcome>,
        outcome: MarkerOutcome,
    ) {
        let (ari, results) = (self.parts.ari.clone(), self.results_tx.clone());
        self.tasks.spawn(async move {
            if watch {
                release::watch(&ari, &channel, &results).await;
            }
            let _ = reply.send(outcome);
        });
    }

    /// Lets a channel whose capture runs go on, once it is prepared (see
    /// `Action::ReleaseCapturing`).
    fn spawn_release_capturing(&mut self, channel: String, snoops: String, watch: bool) {
        let (ari, metrics, results) = (self.parts.ari.clone(), self.parts.metrics.clone(), self.results_tx.clone());
        self.tasks.spawn(async move {
            release::prepare(&ari, &channel, &snoops, watch, &results).await;
            release::continue_in_dialplan(ari, metrics, channel).await;
        });
    }

    /// Forgets the recording's resources, then (in a task) lets in-flight RTP
    /// land, collects the audio, tears down and delivers.
    fn finish(&mut self, channel: Channel, finished: Finished, parties: Vec<PartySpan>) {
        let (mut keys, snoop_generation) =
            self.live.remove(&finished.recording).map(|live| (live.keys, live.generation)).unwrap_or_default();
        keys.parties = parties;
        let metrics = self.parts.metrics.clone();
        metrics.recordings_finished.inc();
        metrics.live.recording_ended(finished.reason);
        if matches!(finished.reason, EndReason::Error | EndReason::Shutdown) {
            // The call may go on: its stop subroutine must not take the dead
            // snoop for a running capture.
            let (ari, call) = (self.parts.ari.clone(), channel.id.clone());
            self.tasks.spawn(async move {
                if let Err(error) = ari.set_variable(&call, markers::SNOOP_VARIABLE, "").await {
                    debug!(channel = %call, %error, "could not clear the capture noted on the channel");
                }
            });
        }
        match (&finished.reason, &finished.error) {
            (EndReason::Error, error) => {
                metrics.recordings_failed.inc();
                error!(
                    channel = %channel.name, recording = %finished.recording,
                    error = error.as_deref().unwrap_or("unknown"), "recording failed; the call goes on"
                );
            }
            (reason, _) => info!(channel = %channel.name, recording = %finished.recording, %reason, "recording ended"),
        }

        if self.parts.post_call.is_some() {
            let call = CallChannel {
                id: channel.id.clone(),
                name: channel.name.clone(),
                caller_number: channel.caller.number.clone(),
                caller_name: channel.caller.name.clone(),
                linkedid: keys.linkedid.clone(),
            };
            if let Some(oldest) =
                self.ledger.recording_ended(call, holds::ended_recording(&WallClock::now(), &finished))
            {
                post_call::given_up(&metrics, &oldest);
            }
        }
        let (results, call, recording) = (self.results_tx.clone(), channel.id.clone(), finished.recording);
        let call_id = call.clone();
        let job = FinishJob {
            finished,
            channel,
            keys,
            snoop_generation,
            ari: self.parts.ari.clone(),
            media: self.parts.media.clone(),
            delivery: self.parts.delivery.clone(),
            metrics,
            // Read now: the end's wall-clock time is that of the end.
            clock: WallClock::now(),
            signing_key: self.parts.signing_key.clone(),
        };
        let finishing = self.finishing.clone();
        finishing.fetch_add(1, Ordering::SeqCst);
        self.tasks.spawn(
            async move {
                let outcome = job.run().await;
                let _ = results.send(TaskResult::Delivered { call, recording, outcome });
                finishing.fetch_sub(1, Ordering::SeqCst);
            }
            .instrument(info_span!(parent: None, "call", channel_id = %call_id, recording_id = %recording)),
        );
    }

    /// The call is gone: its post-call summary goes once its recordings are
    /// delivered.
    fn call_ended(&mut self, call: &str) {
        if let Some(summary) = self.ledger.hung_up(call, SystemTime::now()) {
            self.spawn_post_call(summary);
        }
    }

    fn spawn_post_call(&mut self, summary: PostCallSummary) {
        let Some(post_call) = self.parts.post_call.clone() else { return };
        let finishing = self.finishing.clone();
        finishing.fetch_add(1, Ordering::SeqCst);
        self.tasks.spawn(async move {
            post_call.send(summary).await;
            finishing.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn spawn_teardown(&mut self, channels: Vec<String>, bridges: Vec<String>) {
        let (ari, metrics) = (self.parts.ari.clone(), self.parts.metrics.clone());
        self.tasks.spawn(async move { teardown(&ari, &metrics, channels, bridges).await });
    }

    /// After (re)connecting: remove callrec resources no running recording
    /// owns (left by a crash or a drop), end recordings whose call hung up
    /// or whose capture the dialplan cut while events were missed, and
    /// release calls left waiting in Stasis.
    fn reconcile(&mut self) {
        let running: Vec<reconcile::Running> = self
            .live
            .iter()
            .map(|(recording, live)| reconcile::Running {
                call: live.call.clone(),
                recording: *recording,
                snoops: live
                    .tracks
                    .iter()
                    .map(|&track| ResourceIds::at(self.parts.ari.app(), *recording, track, live.generation).snoop)
                    .collect(),
                capturing: self.calls.get(&live.call).is_some_and(|c| c.session.capturing() == Some(*recording)),
            })
            .collect();
        self.tasks.spawn(reconcile::run(self.parts.ari.clone(), running, self.results_tx.clone()));
    }

    /// Finishes every running recording and lets every held channel go, then
    /// keeps serving until its tasks are done (bounded by the grace period):
    /// events still arriving (a marker is let go unrecorded, a hangup is
    /// noted) and task results (a capture channel created too late for its
    /// recording is removed).
    async fn shut_down(mut self, mut ari: mpsc::Receiver<AriMessage>) {
        self.stopping = true;
        // Events that were already queued still count: a hangup ends its
        // recording as a hangup, a marker is let go.
        while let Ok(message) = ari.try_recv() {
            self.handle_ari(message);
        }
        let now = Instant::now();
        let ids: Vec<String> = self.calls.keys().cloned().collect();
        if !ids.is_empty() {
            info!(calls = ids.len(), "shutting down: finishing running recordings");
        }
        for id in ids {
            if let Some(call) = self.calls.get_mut(&id) {
                call.session.handle_shutdown(now);
            }
            self.process(&id);
        }
        let pending = async {
            let mut ari_open = true;
            loop {
                if self.tasks.is_empty() && !ari_open {
                    // Every task is done; handle what they reported last.
                    match self.results_rx.try_recv() {
                        Ok(result) => self.handle_result(result),
                        Err(_) => break,
                    }
                    continue;
                }
                tokio::select! {
                    message = ari.recv(), if ari_open => match message {
                        Some(message) => self.handle_ari(message),
                        None => ari_open = false,
                    },
                    Some(result) = self.results_rx.recv() => self.handle_result(result),
                    Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                        if let Err(error) = joined {
                            error!(%error, "a recorder task failed");
                        }
                    }
                }
            }
            if self.holds_application {
                release_still_waiting(&self.parts).await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, pending).await.is_err() {
            let lost = self.finishing.load(Ordering::SeqCst);
            if lost > 0 {
                self.parts.metrics.deliveries_lost.add(lost as u64);
                error!(
                    recordings = lost,
                    "RECORDINGS LOST: shutdown grace period over before they were delivered or saved"
                );
            } else {
                warn!("shutdown grace period over with ARI requests still under way");
            }
        }
    }
}

/// The last step of shutdown, once the application is closed: a channel whose
/// marker was still on its way when the connection closed waits in Stasis
/// for nobody. Lets every such channel go.
async fn release_still_waiting(parts: &RecorderParts) {
    let Ok(waiting) = parts.ari.channels_in_app().await else { return };
    for channel in waiting.into_iter().filter(|id| resources::parse(parts.ari.app(), id).is_none()) {
        info!(%channel, "letting go a call still waiting in Stasis (its marker came as callrec stopped)");
        release::continue_in_dialplan(parts.ari.clone(), parts.metrics.clone(), channel).await;
    }
}

/// `markers::SNOOP_VARIABLE`'s value: the snoop channels' names, joined by `&`.
fn snoop_variable(live: &Live) -> String {
    let mut names: Vec<&(Track, String)> = live.snoop_names.iter().collect();
    names.sort_by_key(|(track, _)| live.tracks.iter().position(|t| t == track));
    names.into_iter().map(|(_, name)| name.as_str()).collect::<Vec<_>>().join("&")
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
