//! Media capture, step 2: the one UDP socket every recording's RTP arrives on.
//! A single task owns the socket and all stream buffers, so the hot path takes
//! no lock and allocates nothing per packet: it drains the socket, parses each
//! header in place, looks the source address up (one lookup reaches the
//! stream), and copies the payload into that recording's buffer. The
//! recorder talks to it through commands.
//!
//! The socket is drained on a timer (`DRAIN_PERIOD`), a batch of datagrams
//! per system call, not read as each packet comes: placement is by RTP
//! timestamp, so the latency costs nothing, and one wake-up serves hundreds
//! of packets. Only while a recording awaits its first packet is the socket
//! read as packets come, so that its start (which the call waits for) is
//! seen at once: only then is it registered with tokio's reactor (a clone of
//! it, dropped again after), since a registered socket wakes the runtime
//! for every datagram that arrives.
//!
//! A recording has one stream per track (stereo: two), each from its own
//! source, on one timeline: it begins when every stream has sent its first
//! packet. While a recording is paused, its payloads never reach memory:
//! the mask turns them into silence as they are copied.
//!
//! Source addresses are compared in canonical form: on a dual-stack `[::]`
//! socket IPv4 RTP arrives from `[::ffff:a.b.c.d]:p`, while Asterisk reports
//! `a.b.c.d:p`.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::batch::BatchReceiver;
use super::handover::{self, PendingTake, StreamProgress};
use super::kernel_drops;
use super::rtp::{self, PAYLOAD_TYPE_PCMU};
use crate::memory::AudioMemory;
use crate::metrics::Metrics;
use crate::recording::blocks;
use crate::recording::{CapturedAudio, CapturedRecording, Mask, Placement, StreamBuffer};
use crate::session::RecordingId;
use crate::ulaw::SAMPLE_RATE;

/// What a new recording is counted as needing per track when it is let in
/// (`--max-memory`): its first minute (μ-law: a byte a sample). Its buffer
/// itself grows a second at a time.
pub const RESERVED_BYTES_PER_TRACK: u64 = 60 * SAMPLE_RATE as u64;
/// How often the socket is drained while no recording awaits its first
/// packet. Its kernel buffer must hold this long's packets: 10 ms of 5,000
/// streams is 2,500 datagrams, well within `RECEIVE_BUFFER_BYTES`.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(10);
/// Datagrams read in one turn before commands get theirs: one batch keeps
/// a turn near a millisecond even when every stream grows a block at once.
const MAX_PER_TURN: usize = super::batch::BATCH;
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;
/// A recording whose RTP stopped for this long while its call lives has
/// lost its capture (its externalMedia channel or bridge was removed, say).
pub const NO_MEDIA_AFTER: Duration = Duration::from_secs(2);
/// How long a taken recording's sources may still send: Asterisk hangs its
/// externalMedia channels up after the recording ends, and what they sent
/// meanwhile still arrives. Dropped and counted, not warned about.
const AFTER_END: Duration = Duration::from_secs(2);
/// How often running recordings are checked for that.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(250);
/// A pause masks from this long before the marker reached callrec (20 ms):
/// the marker's event and the audio before it race each other here.
const PAUSE_GUARD_SAMPLES: u64 = 160;
/// A resume unmasks no earlier than this long after the marker (20 ms)...
const RESUME_GUARD_SAMPLES: u64 = 160;
/// ...nor before this much audio beyond what had arrived when it came (two
/// 20 ms packets): audio still on its way then was said before the marker.
const IN_FLIGHT_SAMPLES: u64 = 160;

/// What the recorder asks of the media task.
#[derive(Debug)]
pub enum MediaCommand {
    /// Route RTP from `source` into stream `stream` of the recording's
    /// `streams` (its tracks, in channel order).
    Listen { recording: RecordingId, stream: usize, streams: usize, source: SocketAddr },
    /// Keep the recording's audio out of memory from the marker seen at `at`.
    Pause { recording: RecordingId, at: Instant },
    /// Let it in again from the marker seen at `at`.
    Resume { recording: RecordingId, at: Instant },
    /// When the recording's latest audio arrived (the latest of its streams).
    LastAudio { recording: RecordingId, reply: oneshot::Sender<Option<Instant>> },
    /// End the recording's streams at `total_samples` and hand its audio over
    /// (`None` if it never listened) once its streams have ended, at the
    /// latest by `deadline` (see `handover`).
    /// The streams are finished (cut or padded, copied out of their chunks)
    /// by whoever takes them, not on the media task.
    Take { recording: RecordingId, total_samples: u64, deadline: Instant, reply: oneshot::Sender<Option<TakenCapture>> },
}

/// What the media task tells the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// The first packet of every stream of a recording has arrived, the last
    /// at `at`: the recording's first sample.
    CaptureStarted { recording: RecordingId, at: Instant },
    /// A stream of a running recording has had no RTP for `NO_MEDIA_AFTER`;
    /// its last audio arrived at `last_audio_at`. Told once.
    NoMedia { recording: RecordingId, last_audio_at: Instant },
}

/// The recorder's side: where RTP must be sent, and the command channel.
#[derive(Clone)]
pub struct MediaHandle {
    pub local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<MediaCommand>,
}

impl MediaHandle {
    pub fn listen(&self, recording: RecordingId, stream: usize, streams: usize, source: SocketAddr) {
        let _ = self.commands.send(MediaCommand::Listen { recording, stream, streams, source });
    }

    pub fn pause(&self, recording: RecordingId, at: Instant) {
        let _ = self.commands.send(MediaCommand::Pause { recording, at });
    }

    pub fn resume(&self, recording: RecordingId, at: Instant) {
        let _ = self.commands.send(MediaCommand::Resume { recording, at });
    }

    /// When the recording's latest audio arrived, if any did.
    pub async fn last_audio(&self, recording: RecordingId) -> Option<Instant> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(MediaCommand::LastAudio { recording, reply }).ok()?;
        answer.await.ok().flatten()
    }

    /// The recording's audio, every track exactly `total_samples` long, or
    /// `None` if it never captured anything; `Err` if the media task is gone
    /// (it failed), and with it the audio. Answered once the audio still on
    /// its way has come, by `deadline` at the latest.
    pub async fn take(
        &self,
        recording: RecordingId,
        total_samples: u64,
        deadline: Instant,
    ) -> Result<Option<CapturedRecording>, MediaGone> {
        let (reply, answer) = oneshot::channel();
        let take = MediaCommand::Take { recording, total_samples, deadline, reply };
        self.commands.send(take).map_err(|_| MediaGone)?;
        let Some(taken) = answer.await.map_err(|_| MediaGone)? else { return Ok(None) };
        // Copying an hour of audio takes milliseconds: not on a runtime worker.
        match tokio::task::spawn_blocking(move || taken.finish()).await {
            Ok(captured) => Ok(Some(captured)),
            Err(_) => Err(MediaGone),
        }
    }
}

/// A recording's streams as the media task gave them up, still in their
/// chunks: `finish` makes them the recording's tracks.
#[derive(Debug)]
pub struct TakenCapture {
    streams: Vec<StreamBuffer>,
    mask: Mask,
    total_samples: u64,
}

impl TakenCapture {
    /// Every track exactly `total_samples` long, and the paused stretches.
    pub fn finish(self) -> CapturedRecording {
        let total_samples = self.total_samples;
        let tracks: Vec<CapturedAudio> = self.streams.into_iter().map(|stream| stream.finish(total_samples)).collect();
        let total = tracks.first().map_or(0, |track| track.ulaw.len() as u64);
        CapturedRecording { tracks, masked: self.mask.ranges(total) }
    }
}

/// The media task ended (it failed): the audio it held is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the media task failed: the audio it held is lost")]
pub struct MediaGone;

/// The task side: owns the socket and the buffers.
pub struct MediaReceiver {
    socket: UdpSocket,
    commands: mpsc::UnboundedReceiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
    /// Source address -> the slot of its recording's capture, and the
    /// stream's index: the one lookup a packet takes.
    routes: HashMap<SocketAddr, (usize, usize)>,
    /// Sources of recordings taken in the last `AFTER_END`, with when.
    ended_sources: HashMap<SocketAddr, Instant>,
    /// Captures by slot; a taken one's slot is reused.
    captures: Vec<Option<Capture>>,
    /// Recording -> its capture's slot, for commands.
    slots: HashMap<RecordingId, usize>,
    /// Ended recordings asked for whose audio may still be arriving.
    pending_takes: Vec<PendingTake>,
    free_slots: Vec<usize>,
    /// Captures whose first packet has not come: while there are any, the
    /// socket is read as packets come rather than on the timer.
    awaiting_start: usize,
    max_samples: u64,
    metrics: Arc<Metrics>,
    /// Where the buffers' size is reported (`--max-memory`).
    memory: Arc<AudioMemory>,
    /// The job making ready blocks, while it runs.
    topping_up: Option<tokio::task::JoinHandle<()>>,
    /// The kernel's running count of datagrams it dropped, as last told.
    kernel_drops: u32,
    kernel_drops_warning: Throttle,
    unknown_source_warning: Throttle,
    malformed_warning: Throttle,
    /// Test builds only: the task panics after this many datagrams
    /// (`CALLREC_TEST_FAULT=media-panic-after:N`), to show supervision.
    fault_after: Option<u64>,
}

/// The streams of one recording, on one timeline.
struct Capture {
    recording: RecordingId,
    streams: Vec<Stream>,
    /// Sample 0 of every stream: the arrival of the packet that completed
    /// the set (every stream had one). Earlier packets are dropped.
    origin: Option<Instant>,
    mask: Mask,
    /// `MediaEvent::NoMedia` was sent.
    stalled: bool,
}

struct Stream {
    buffer: StreamBuffer,
    /// When its latest packet with audio arrived; `None` before the first.
    last_arrival: Option<Instant>,
    /// Its latest packet from before the recording began (another stream
    /// was still awaited): once it begins, this packet anchors the stream,
    /// and its tail fills the stream's first milliseconds.
    early: Option<EarlyPacket>,
}

/// A packet kept (copied) until the recording it belongs to begins.
struct EarlyPacket {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    payload: Vec<u8>,
    arrival: Instant,
}

impl Capture {
    fn new(recording: RecordingId, streams: usize, max_samples: u64) -> Self {
        let streams = (0..streams)
            .map(|_| Stream { buffer: StreamBuffer::new(max_samples), last_arrival: None, early: None })
            .collect();
        Capture { recording, streams, origin: None, mask: Mask::default(), stalled: false }
    }

    /// The sample of the recording's timeline that `at` falls on (0 before it began).
    fn sample_at(&self, at: Instant) -> u64 {
        self.origin.map_or(0, |origin| samples_between(origin, at))
    }

    /// Pause: masked from the marker, less a guard, on.
    fn pause(&mut self, at: Instant) {
        let from = self.sample_at(at).saturating_sub(PAUSE_GUARD_SAMPLES);
        self.mask.pause(from);
        for stream in &mut self.streams {
            stream.buffer.blank_from(from);
        }
    }

    /// Resume: everything already held, and what was still on its way when
    /// the marker came, was said before it; masked up to past both.
    fn resume(&mut self, at: Instant) {
        let held = self.streams.iter().map(|stream| stream.buffer.len()).max().unwrap_or(0);
        let until = (self.sample_at(at) + RESUME_GUARD_SAMPLES).max(held + IN_FLIGHT_SAMPLES);
        self.mask.resume(until);
    }

    /// The stream whose audio stopped longest ago, if that is over `NO_MEDIA_AFTER`.
    fn stalled_since(&self, now: Instant) -> Option<Instant> {
        self.origin?;
        let oldest = self.streams.iter().filter_map(|stream| stream.last_arrival).min()?;
        (now.duration_since(oldest) >= NO_MEDIA_AFTER).then_some(oldest)
    }
}

/// A fault to inject, in builds with debug assertions (the tests') only.
fn injected_fault() -> Option<u64> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let fault = std::env::var("CALLREC_TEST_FAULT").ok()?;
    fault.strip_prefix("media-panic-after:")?.parse().ok()
}

/// Binds the media socket. RTP for every recording arrives here.
pub fn bind(
    addr: SocketAddr,
    max_samples: u64,
    metrics: Arc<Metrics>,
    memory: Arc<AudioMemory>,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> io::Result<(MediaHandle, MediaReceiver)> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // A larger kernel buffer rides out scheduling hiccups with many calls.
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        debug!(%error, "could not enlarge the media socket's receive buffer");
    }
    // The kernel may grant less (net.core.rmem_max): say what it gave.
    match socket.recv_buffer_size() {
        Ok(granted) if granted < RECEIVE_BUFFER_BYTES => tracing::info!(
            asked = RECEIVE_BUFFER_BYTES,
            granted,
            "the media socket's receive buffer is smaller than asked (raise net.core.rmem_max for many calls)"
        ),
        Ok(granted) => debug!(granted, "media socket receive buffer"),
        Err(error) => debug!(%error, "cannot read the media socket's receive buffer size"),
    }
    // `[::]` means every address, IPv4 included, whatever the host's default
    // for IPV6_V6ONLY; IPv4 senders then appear as IPv4-mapped addresses.
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        if let Err(error) = socket.set_only_v6(false) {
            debug!(%error, "could not make the media socket dual-stack");
        }
    }
    if !kernel_drops::enable(&socket) {
        debug!("the kernel does not report datagrams dropped on the media socket");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    let local_addr = socket.local_addr()?;
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let handle = MediaHandle { local_addr, commands: command_tx };
    let receiver = MediaReceiver {
        socket,
        commands: command_rx,
        events,
        routes: HashMap::new(),
        ended_sources: HashMap::new(),
        captures: Vec::new(),
        slots: HashMap::new(),
        free_slots: Vec::new(),
        pending_takes: Vec::new(),
        awaiting_start: 0,
        max_samples,
        metrics,
        memory,
        topping_up: None,
        kernel_drops: 0,
        kernel_drops_warning: Throttle::default(),
        unknown_source_warning: Throttle::default(),
        malformed_warning: Throttle::default(),
        fault_after: injected_fault(),
    };
    Ok((handle, receiver))
}

impl MediaReceiver {
    /// Receives until every `MediaHandle` is gone: after shutdown it keeps
    /// serving until the recorder has collected every recording.
    pub async fn run(mut self) {
        let mut batch = BatchReceiver::new();
        let mut drain = tokio::time::interval(DRAIN_PERIOD);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watchdog = tokio::time::interval(WATCHDOG_PERIOD);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The socket as registered with the reactor, while packets are read
        // as they come (`watching`; a registration that failed is not tried
        // again until the next time).
        let mut watching = false;
        let mut watched: Option<AsyncFd<UdpSocket>> = None;
        // A turn that stopped at `MAX_PER_TURN` left datagrams waiting.
        let mut backlog = false;
        loop {
            if (self.awaiting_start > 0) != watching {
                watching = self.awaiting_start > 0;
                watched = if watching { self.watch() } else { None };
            }
            tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => {
                        let turn = Turn::start();
                        self.handle_command(command);
                        self.note_turn(turn);
                        // New streams' first blocks are made ready before their packets come.
                        self.keep_blocks_ready();
                    }
                    None => return,
                },
                _ = tokio::task::yield_now(), if backlog => backlog = self.drain(&mut batch),
                readable = async { watched.as_ref()?.readable().await.ok() }, if watched.is_some() => {
                    backlog = self.drain(&mut batch);
                    if let (Some(mut ready), false) = (readable, backlog) {
                        ready.clear_ready();
                    }
                }
                _ = drain.tick() => backlog = self.drain(&mut batch),
                _ = watchdog.tick() => {
                    // What waits in the socket counts before anyone is called silent.
                    backlog = self.drain(&mut batch);
                    self.check_for_silence(Instant::now());
                    self.report_memory();
                    self.keep_blocks_ready();
                }
            }
        }
    }

    /// The socket registered with the reactor, through a clone of its
    /// descriptor; `None` (the timer alone drains it) if that fails.
    fn watch(&self) -> Option<AsyncFd<UdpSocket>> {
        let register = |clone: UdpSocket| {
            // SAFETY: the clone owns its descriptor, which stays open and
            // unchanged for as long as the `AsyncFd` owns the clone.
            unsafe { AsyncFd::register_with_interest(clone, Interest::READABLE) }.map_err(io::Error::from)
        };
        match self.socket.try_clone().and_then(register) {
            Ok(watched) => Some(watched),
            Err(error) => {
                warn!(%error, "cannot watch the media socket; first packets are seen on the next drain");
                None
            }
        }
    }

    /// Reads what waits in the socket, a batch at a time, up to
    /// `MAX_PER_TURN` datagrams, then, if it read all there was, hands over
    /// ended recordings whose audio has come: true if it stopped with more
    /// waiting.
    fn drain(&mut self, batch: &mut BatchReceiver) -> bool {
        let turn = Turn::start();
        self.metrics.media_wakeups.inc();
        let mut read = 0;
        let more = loop {
            match batch.receive(&self.socket) {
                Ok(count) => {
                    let now = Instant::now();
                    for (datagram, from, dropped) in batch.datagrams() {
                        if let Some(dropped) = dropped {
                            self.count_kernel_drops(dropped, now);
                        }
                        self.handle_datagram(datagram, from, now);
                    }
                    read += count;
                    if read >= MAX_PER_TURN {
                        break true;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break false,
                Err(error) => {
                    // e.g. ICMP port unreachable surfacing on Linux; not fatal.
                    debug!(%error, "media socket receive error");
                    break false;
                }
            }
        };
        if !more && !self.pending_takes.is_empty() {
            self.hand_over_ended(Instant::now());
        }
        self.note_turn(turn);
        more
    }

    /// Keeps the longest turn the task took without a break: the CPU time
    /// it worked, and the wall time it took (which also counts the while
    /// the system ran something else).
    fn note_turn(&self, turn: Turn) {
        let (worked, took) = turn.end();
        raise_to(&self.metrics.media_longest_turn_us, worked.as_micros() as u64);
        raise_to(&self.metrics.media_longest_turn_wall_us, took.as_micros() as u64);
    }

    /// The kernel's running count of drops: what is new since last told.
    fn count_kernel_drops(&mut self, dropped: u32, now: Instant) {
        let new = dropped.wrapping_sub(self.kernel_drops);
        if new == 0 {
            return;
        }
        self.kernel_drops = dropped;
        self.metrics.rtp_kernel_drops.add(u64::from(new));
        if self.kernel_drops_warning.ready(now) {
            warn!(
                dropped = new, total = dropped,
                "the kernel dropped RTP datagrams: the media socket's receive buffer was full (raise net.core.rmem_max)"
            );
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        if let Some(left) = self.fault_after.as_mut() {
            *left = left.saturating_sub(1);
            assert!(*left > 0, "injected fault (CALLREC_TEST_FAULT): the media task fails");
        }
        let from = canonical(from);
        let Some(&(slot, index)) = self.routes.get(&from) else {
            let just_ended =
                self.ended_sources.get(&from).is_some_and(|&at| now.saturating_duration_since(at) < AFTER_END);
            if just_ended {
                self.metrics.rtp_after_end.inc();
                return;
            }
            self.metrics.rtp_unknown_source.inc();
            if self.unknown_source_warning.ready(now) {
                warn!(%from, "dropping datagrams from an address no recording listens to");
            }
            return;
        };
        let packet = match rtp::parse(datagram) {
            Ok(packet) => packet,
            Err(error) => {
                self.metrics.rtp_malformed.inc();
                if self.malformed_warning.ready(now) {
                    warn!(%from, %error, "dropping a malformed RTP packet");
                }
                return;
            }
        };
        if packet.payload_type != PAYLOAD_TYPE_PCMU {
            self.metrics.rtp_wrong_payload_type.inc();
            return;
        }
        // No audio, so no first sample either: it must not start the capture.
        if packet.payload.is_empty() {
            self.metrics.rtp_empty.inc();
            return;
        }
        let Some(Some(capture)) = self.captures.get_mut(slot) else {
            return;
        };
        let Capture { recording, streams, origin, mask, .. } = capture;
        let recording = *recording;
        let Some(stream) = streams.get_mut(index) else { return };
        stream.last_arrival = Some(now);
        let origin = match origin {
            Some(origin) => *origin,
            None if streams.iter().all(|stream| stream.last_arrival.is_some()) => {
                let _ = self.events.send(MediaEvent::CaptureStarted { recording, at: now });
                self.awaiting_start -= 1;
                // The other streams begin with what they sent last.
                for stream in streams.iter_mut() {
                    if let Some(early) = stream.early.take() {
                        let arrival = -(samples_between(early.arrival, now) as i64);
                        let EarlyPacket { ssrc, sequence, timestamp, payload, .. } = early;
                        stream.buffer.place_masked(ssrc, sequence, timestamp, &payload, arrival, mask);
                    }
                }
                *origin.insert(now)
            }
            None => {
                // Before the last stream started: kept, not yet on the timeline.
                self.metrics.rtp_before_start.inc();
                let payload = packet.payload.to_vec();
                streams[index].early = Some(EarlyPacket {
                    ssrc: packet.ssrc,
                    sequence: packet.sequence,
                    timestamp: packet.timestamp,
                    payload,
                    arrival: now,
                });
                return;
            }
        };
        let stream = &mut streams[index];
        let arrival = samples_between(origin, now) as i64;
        let placement =
            stream.buffer.place_masked(packet.ssrc, packet.sequence, packet.timestamp, packet.payload, arrival, mask);
        self.metrics.rtp_packets.inc();
        match placement {
            Placement::Appended => {}
            Placement::FilledGap => self.metrics.rtp_late.inc(),
            Placement::Duplicate => self.metrics.rtp_duplicates.inc(),
            Placement::Overflow => self.metrics.rtp_over_limit.inc(),
            Placement::BeforeStart => self.metrics.rtp_before_start.inc(),
            Placement::Stale => self.metrics.rtp_stale.inc(),
            Placement::Empty => self.metrics.rtp_empty.inc(),
        }
    }

    /// One ready block per stream, made (and freed) off this task: streams
    /// that cross a second together then take theirs without waiting on the
    /// kernel.
    fn keep_blocks_ready(&mut self) {
        if self.topping_up.as_ref().is_some_and(|job| !job.is_finished()) {
            return;
        }
        self.topping_up =
            blocks::STORE.keep_ready(self.routes.len()).then(|| tokio::task::spawn_blocking(|| blocks::STORE.adjust()));
    }

    fn report_memory(&self) {
        let held = self
            .captures
            .iter()
            .flatten()
            .flat_map(|capture| &capture.streams)
            .map(|stream| stream.buffer.held_bytes());
        self.memory.set_capturing(held.sum());
    }

    fn check_for_silence(&mut self, now: Instant) {
        for capture in self.captures.iter_mut().flatten() {
            if capture.stalled {
                continue;
            }
            if let Some(last_audio_at) = capture.stalled_since(now) {
                capture.stalled = true;
                let _ = self.events.send(MediaEvent::NoMedia { recording: capture.recording, last_audio_at });
            }
        }
    }

    fn handle_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Listen { recording, stream, streams, source } => {
                let slot = self.slot_of(recording, streams);
                let listens = self.captures[slot].as_ref().is_some_and(|capture| stream < capture.streams.len());
                if listens {
                    // A source port reused by a newer recording belongs to it.
                    self.ended_sources.remove(&canonical(source));
                    self.routes.insert(canonical(source), (slot, stream));
                }
            }
            MediaCommand::Pause { recording, at } => {
                if let Some(capture) = self.capture_mut(recording) {
                    capture.pause(at);
                }
            }
            MediaCommand::Resume { recording, at } => {
                if let Some(capture) = self.capture_mut(recording) {
                    capture.resume(at);
                }
            }
            MediaCommand::LastAudio { recording, reply } => {
                let last = self
                    .capture_mut(recording)
                    .and_then(|capture| capture.streams.iter().filter_map(|stream| stream.last_arrival).max());
                let _ = reply.send(last);
            }
            // Handed over after the next drain (what waits in the socket
            // counts before a stream is called quiet), or now if its
            // deadline has passed.
            MediaCommand::Take { recording, total_samples, deadline, reply } => {
                self.pending_takes.push(PendingTake { recording, total_samples, deadline, reply });
                let now = Instant::now();
                if now >= deadline {
                    self.hand_over_ended(now);
                }
            }
        }
    }

    /// Hands over the recordings asked for whose streams have ended (see
    /// `handover`), or whose deadline has come.
    fn hand_over_ended(&mut self, now: Instant) {
        let mut index = 0;
        while index < self.pending_takes.len() {
            let PendingTake { recording, total_samples, deadline, .. } = self.pending_takes[index];
            let progress = self.capture_mut(recording).map(|capture| {
                let streams = capture.streams.iter().map(|stream| StreamProgress {
                    complete: stream.buffer.holds_up_to(total_samples),
                    last_arrival: stream.last_arrival,
                });
                handover::ready(streams, now, deadline)
            });
            if progress == Some(false) {
                index += 1;
                continue;
            }
            let PendingTake { recording, total_samples, reply, .. } = self.pending_takes.swap_remove(index);
            let taken = self.remove(recording).map(|capture| {
                let resyncs = capture.streams.iter().map(|stream| stream.buffer.stats().resyncs).sum();
                self.metrics.rtp_resyncs.add(resyncs);
                let streams = capture.streams.into_iter().map(|stream| stream.buffer).collect();
                TakenCapture { streams, mask: capture.mask, total_samples }
            });
            let _ = reply.send(taken);
        }
    }

    /// The slot of the recording's capture, made with `streams` streams if
    /// it has none yet.
    fn slot_of(&mut self, recording: RecordingId, streams: usize) -> usize {
        if let Some(&slot) = self.slots.get(&recording) {
            return slot;
        }
        let capture = Some(Capture::new(recording, streams, self.max_samples));
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.captures[slot] = capture;
                slot
            }
            None => {
                self.captures.push(capture);
                self.captures.len() - 1
            }
        };
        self.slots.insert(recording, slot);
        self.awaiting_start += 1;
        slot
    }

    fn capture_mut(&mut self, recording: RecordingId) -> Option<&mut Capture> {
        let slot = *self.slots.get(&recording)?;
        self.captures.get_mut(slot)?.as_mut()
    }

    /// Takes the recording's capture out, with its routes, freeing its slot.
    fn remove(&mut self, recording: RecordingId) -> Option<Capture> {
        let slot = self.slots.remove(&recording)?;
        let now = Instant::now();
        self.ended_sources.retain(|_, at| now.saturating_duration_since(*at) < AFTER_END);
        let ended_sources = &mut self.ended_sources;
        self.routes.retain(|source, (routed, _)| {
            let ends = *routed == slot;
            if ends {
                ended_sources.insert(*source, now);
            }
            !ends
        });
        let capture = self.captures.get_mut(slot)?.take()?;
        self.free_slots.push(slot);
        if capture.origin.is_none() {
            self.awaiting_start -= 1;
        }
        Some(capture)
    }
}

/// The start of one turn of the media task, to time it.
struct Turn {
    wall: Instant,
    cpu: Duration,
}

impl Turn {
    fn start() -> Self {
        Turn { wall: Instant::now(), cpu: thread_cpu_time() }
    }

    /// The CPU time the turn took, and its wall time.
    fn end(self) -> (Duration, Duration) {
        (thread_cpu_time().saturating_sub(self.cpu), self.wall.elapsed())
    }
}

/// CPU time the calling thread has used (a turn runs on one thread).
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a live timespec to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Raises a high-water mark kept in a counter (only the media task writes it).
fn raise_to(mark: &crate::metrics::Counter, value: u64) {
    let before = mark.get();
    if value > before {
        mark.add(value - before);
    }
}

/// Samples of the timeline from `origin` to `at` (0 if `at` is earlier).
fn samples_between(origin: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(origin).as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000
}

/// The form source addresses are routed by: IPv4-mapped IPv6 addresses as
/// plain IPv4, and IPv6 flow label and scope dropped, as they are not part of
/// the address Asterisk reports (and a flow label may change mid-stream).
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Lets a repeated warning through at most once every ten seconds.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn ready(&mut self, now: Instant) -> bool {
        let ready = self.last.is_none_or(|last| now.duration_since(last) >= Duration::from_secs(10));
        if ready {
            self.last = Some(now);
        }
        ready
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use tokio::sync::mpsc::error::TryRecvError;
    use uuid::Uuid;

    use super::*;
    use crate::ulaw;

    const FRAME: u32 = 160;

    fn pcmu(sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; 12];
        rtp::write_header(&mut header, sequence, timestamp, 0xCA11_0000);
        [&header[..], payload].concat()
    }

    /// Frame `n` of a stream: sequence number `n`, 20 ms of bytes `n`.
    fn frame(n: u32) -> Vec<u8> {
        pcmu(n as u16, n * FRAME, &[n as u8; FRAME as usize])
    }

    struct Harness {
        media: MediaHandle,
        receiver: MediaReceiver,
        metrics: Arc<Metrics>,
        memory: Arc<AudioMemory>,
        events: mpsc::UnboundedReceiver<MediaEvent>,
    }

    /// A media task on `addr` that the test drives itself, datagram by
    /// datagram, without the socket being read.
    fn harness(addr: &str) -> io::Result<Harness> {
        let metrics = Arc::new(Metrics::default());
        let (events_tx, events) = mpsc::unbounded_channel();
        let memory = AudioMemory::new(u64::MAX);
        let (media, receiver) = bind(addr.parse().unwrap(), 8000 * 3600, metrics.clone(), memory.clone(), events_tx)?;
        Ok(Harness { media, receiver, metrics, memory, events })
    }

    impl Harness {
        fn listen(&mut self, recording: RecordingId, source: &str) {
            self.listen_stream(recording, 0, 1, source);
        }

        fn listen_stream(&mut self, recording: RecordingId, stream: usize, streams: usize, source: &str) {
            let source = source.parse().unwrap();
            self.receiver.handle_command(MediaCommand::Listen { recording, stream, streams, source });
        }

        fn receive(&mut self, datagram: &[u8], from: &str, now: Instant) {
            self.receiver.handle_datagram(datagram, from.parse().unwrap(), now);
        }

        /// Takes the recording at once (its deadline is now).
        fn take(&mut self, recording: RecordingId, total_samples: u64) -> Option<CapturedRecording> {
            let (reply, mut answer) = oneshot::channel();
            let deadline = Instant::now();
            self.receiver.handle_command(MediaCommand::Take { recording, total_samples, deadline, reply });
            self.receiver.hand_over_ended(deadline);
            answer.try_recv().unwrap().map(TakenCapture::finish)
        }
    }

    /// A recording whose stream sent frames 0 to 9 on time from `start`.
    fn ten_frames_from(start: Instant) -> (Harness, RecordingId) {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        media.listen(recording, "127.0.0.1:4000");
        for n in 0..10 {
            media.receive(&frame(n), "127.0.0.1:4000", start + Duration::from_millis(20 * u64::from(n)));
        }
        (media, recording)
    }

    #[tokio::test]
    async fn an_ended_recording_is_handed_over_once_its_audio_up_to_the_end_has_come() {
        let start = Instant::now();
        let at = |frame: u32| start + Duration::from_millis(20 * u64::from(frame));
        let (mut media, recording) = ten_frames_from(start);
        // Ended with frame 11, still on its way: asked for with 200 ms to go.
        let (reply, mut answer) = oneshot::channel();
        let deadline = at(10) + Duration::from_millis(200);
        let take = MediaCommand::Take { recording, total_samples: 12 * u64::from(FRAME), deadline, reply };
        media.receiver.handle_command(take);
        media.receiver.hand_over_ended(at(10));
        assert!(answer.try_recv().is_err(), "frames 10 and 11 are awaited");
        media.receive(&frame(11), "127.0.0.1:4000", at(11));
        media.receiver.hand_over_ended(at(11));
        assert!(answer.try_recv().is_err(), "frame 10 may still come late");
        media.receive(&frame(10), "127.0.0.1:4000", at(12));
        media.receiver.hand_over_ended(at(12));
        let audio = answer.try_recv().unwrap().unwrap().finish().tracks.remove(0);
        assert_eq!(audio.missing_samples, 0);
        assert_eq!(audio.ulaw.len(), 12 * FRAME as usize);
    }

    #[tokio::test]
    async fn a_recording_whose_stream_went_quiet_is_handed_over_before_its_deadline() {
        let start = Instant::now();
        let (mut media, recording) = ten_frames_from(start);
        let last = start + Duration::from_millis(180);
        let (reply, mut answer) = oneshot::channel();
        let deadline = last + Duration::from_millis(200);
        media.receiver.handle_command(MediaCommand::Take {
            recording,
            total_samples: 12 * u64::from(FRAME),
            deadline,
            reply,
        });
        media.receiver.hand_over_ended(last + handover::QUIET - Duration::from_millis(1));
        assert!(answer.try_recv().is_err(), "not quiet yet");
        media.receiver.hand_over_ended(last + handover::QUIET);
        let audio = answer.try_recv().unwrap().unwrap().finish().tracks.remove(0);
        assert_eq!(audio.missing_samples, 2 * u64::from(FRAME), "the end it never sent is padded and counted");
    }

    #[test]
    fn the_canonical_form_unmaps_ipv4_and_keeps_the_port() {
        let canonical_of = |addr: &str| canonical(addr.parse().unwrap());
        let ipv4: SocketAddr = "192.0.2.10:4000".parse().unwrap();
        assert_eq!(canonical_of("[::ffff:192.0.2.10]:4000"), ipv4);
        assert_eq!(canonical_of("192.0.2.10:4000"), ipv4);
        assert_eq!(canonical_of("[::1]:4000"), "[::1]:4000".parse().unwrap());
        assert_eq!(canonical_of("[2001:db8::7]:5"), "[2001:db8::7]:5".parse().unwrap());
        let labelled = SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 4000, 0x1234, 2);
        assert_eq!(canonical(labelled.into()), "[fe80::1]:4000".parse().unwrap());
    }

    #[tokio::test]
    async fn an_ipv4_mapped_source_reaches_the_recording_that_listens_for_its_ipv4_form() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let (plain, mapped) = (Uuid::new_v4(), Uuid::new_v4());
        media.listen(plain, "192.0.2.10:4000");
        media.listen(mapped, "[::ffff:192.0.2.11]:4000");
        let now = Instant::now();
        media.receive(&frame(0), "[::ffff:192.0.2.10]:4000", now);
        media.receive(&frame(0), "192.0.2.11:4000", now);
        assert_eq!(media.events.try_recv(), Ok(MediaEvent::CaptureStarted { recording: plain, at: now }));
        assert_eq!(media.events.try_recv(), Ok(MediaEvent::CaptureStarted { recording: mapped, at: now }));
        assert_eq!(media.metrics.rtp_packets.get(), 2);
        assert_eq!(media.metrics.rtp_unknown_source.get(), 0);
    }

    #[tokio::test]
    async fn an_empty_packet_neither_starts_the_capture_nor_counts_as_overflow() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        media.listen(recording, "192.0.2.10:4000");
        let start = Instant::now();
        media.receive(&pcmu(0, 0, &[]), "192.0.2.10:4000", start);
        assert_eq!(media.events.try_recv(), Err(TryRecvError::Empty));
        let first_audio = start + Duration::from_millis(20);
        media.receive(&frame(1), "192.0.2.10:4000", first_audio);
        assert_eq!(media.events.try_recv(), Ok(MediaEvent::CaptureStarted { recording, at: first_audio }));
        let metrics = &media.metrics;
        assert_eq!((metrics.rtp_empty.get(), metrics.rtp_over_limit.get(), metrics.rtp_packets.get()), (1, 0, 1));
    }

    #[tokio::test]
    async fn stale_and_before_start_packets_have_counters_of_their_own() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        let source = "192.0.2.10:4000";
        media.listen(recording, source);
        let start = Instant::now();
        let at_frame = |n: u32| start + Duration::from_millis(20 * u64::from(n));
        for n in 1..200 {
            media.receive(&frame(n), source, at_frame(n - 1));
            if n == 3 {
                // Sent before frame 1, which started the recording, and overtaken by it.
                media.receive(&frame(0), source, at_frame(n - 1));
            }
        }
        // An old copy of frame 50, three seconds late.
        media.receive(&frame(50), source, at_frame(199));
        let metrics = &media.metrics;
        assert_eq!((metrics.rtp_before_start.get(), metrics.rtp_stale.get()), (1, 1));
        assert_eq!((metrics.rtp_late.get(), metrics.rtp_duplicates.get()), (0, 0));
        let audio = media.take(recording, 199 * u64::from(FRAME)).unwrap().tracks.remove(0);
        let frames: Vec<u8> = audio.ulaw.chunks(FRAME as usize).map(|chunk| chunk[0]).collect();
        assert_eq!(frames, (1..200).map(|n| n as u8).collect::<Vec<_>>());
        assert_eq!(audio.stats.resyncs, 0);
    }

    /// Over real sockets: IPv4 RTP on a dual-stack `[::]` socket comes from
    /// `[::ffff:127.0.0.1]`, yet reaches the recording that listens for the
    /// `127.0.0.1` address Asterisk reports.
    #[tokio::test]
    async fn ipv4_rtp_reaches_a_recording_through_a_dual_stack_socket() {
        let Harness { media, receiver, metrics, mut events, .. } =
            harness("[::]:0").expect("a dual-stack socket on [::] (this test needs IPv6 enabled)");
        tokio::spawn(receiver.run());
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        media.listen(recording, 0, 1, sender.local_addr().unwrap());
        let target = SocketAddr::from(([127, 0, 0, 1], media.local_addr.port()));
        // Sent until it arrives: one sent before the listen command was
        // handled counts as an unknown source.
        for n in 0..50 {
            sender.send_to(&frame(n), target).unwrap();
            match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
                Ok(Some(MediaEvent::CaptureStarted { recording: started, .. })) => {
                    assert_eq!(started, recording);
                    assert!(metrics.rtp_packets.get() >= 1);
                    return;
                }
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Ok(None) => panic!("the media task ended"),
                Err(_) => continue,
            }
        }
        panic!("no capture after 50 packets; {} from unknown sources", metrics.rtp_unknown_source.get());
    }

    /// Frame `n` of a stream with its own SSRC and a timestamp base: what a
    /// second externalMedia channel sends.
    fn frame_of(ssrc: u32, base: u32, n: u32, byte: u8) -> Vec<u8> {
        let mut header = [0u8; 12];
        rtp::write_header(&mut header, n as u16, base.wrapping_add(n * FRAME), ssrc);
        [&header[..], &[byte; FRAME as usize][..]].concat()
    }

    #[tokio::test]
    async fn stereo_starts_when_both_streams_have_arrived_and_stays_aligned_under_loss() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        let (left, right) = ("192.0.2.10:4000", "192.0.2.10:4002");
        media.listen_stream(recording, 0, 2, left);
        media.listen_stream(recording, 1, 2, right);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // The left stream starts 30 ms before the right one: its first packets
        // come before the recording begins.
        media.receive(&frame_of(1, 1000, 0, 0x10), left, at(0));
        media.receive(&frame_of(1, 1000, 1, 0x11), left, at(20));
        assert_eq!(media.events.try_recv(), Err(TryRecvError::Empty), "not before both streams");
        media.receive(&frame_of(2, 90_000, 0, 0x20), right, at(30));
        assert_eq!(media.events.try_recv(), Ok(MediaEvent::CaptureStarted { recording, at: at(30) }));
        // From there, 100 frames each; the right stream loses frames 40..50 and
        // the left one stalls for 200 ms, then catches up in a burst.
        for n in 1..101u32 {
            if !(40..50).contains(&n) {
                media.receive(&frame_of(2, 90_000, n, 0x21), right, at(30 + 20 * u64::from(n)));
            }
        }
        for n in 2..102u32 {
            let arrival = if (50..60).contains(&n) { at(20 * 60) } else { at(20 * u64::from(n)) };
            media.receive(&frame_of(1, 1000, n, 0x12), left, arrival);
        }
        let audio = media.take(recording, 101 * u64::from(FRAME)).unwrap();
        let [left, right] = &audio.tracks[..] else { panic!("two tracks") };
        assert_eq!(left.ulaw.len(), right.ulaw.len(), "one timeline");
        // Each stream is anchored where its packets arrived: the right one at
        // 0, the left one by its last packet before that, which arrived 10 ms
        // earlier and whose last 10 ms open the left track.
        assert_eq!(left.ulaw[..80], [0x11; 80]);
        let first_left = left.ulaw.iter().position(|&b| b == 0x12).unwrap();
        assert_eq!(first_left, 80, "then its packet of 40 ms, 10 ms in");
        assert_eq!(right.ulaw[..FRAME as usize], [0x20; FRAME as usize]);
        // The right stream's loss is silence exactly where it belongs.
        let lost = 40 * FRAME as usize..50 * FRAME as usize;
        assert!(right.ulaw[lost.clone()].iter().all(|&b| b == ulaw::SILENCE));
        assert_eq!(right.missing_samples, 10 * u64::from(FRAME));
        assert!(right.ulaw[lost.end..lost.end + FRAME as usize].iter().all(|&b| b == 0x21));
        // The left stall lost nothing: every frame sits at its timestamp.
        assert_eq!(left.missing_samples, 80, "10 ms after its last packet");
        assert!(left.ulaw[first_left..first_left + 100 * FRAME as usize].iter().all(|&b| b == 0x12));
        assert_eq!(media.metrics.rtp_before_start.get(), 2);
    }

    #[tokio::test]
    async fn paused_audio_never_reaches_the_buffer_and_the_mask_is_reported() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        let source = "192.0.2.10:4000";
        media.listen(recording, source);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for n in 0..100u32 {
            if n == 25 {
                media.receiver.handle_command(MediaCommand::Pause { recording, at: at(500) });
            }
            if n == 75 {
                media.receiver.handle_command(MediaCommand::Resume { recording, at: at(1500) });
            }
            media.receive(&pcmu(n as u16, n * FRAME, &[0x42; FRAME as usize]), source, at(20 * u64::from(n)));
        }
        let audio = media.take(recording, 100 * u64::from(FRAME)).unwrap();
        // Paused 20 ms before the marker, resumed 20 ms after it and after
        // the audio held then.
        assert_eq!(audio.masked, [3840..12160]);
        let track = &audio.tracks[0].ulaw;
        assert!(track[..3840].iter().all(|&b| b == 0x42));
        assert!(track[3840..12160].iter().all(|&b| b == ulaw::SILENCE), "nothing paused in memory");
        assert!(track[12160..].iter().all(|&b| b == 0x42));
        assert_eq!(audio.tracks[0].missing_samples, 0, "masked is not missing");
    }

    #[tokio::test]
    async fn a_pause_that_arrives_after_its_audio_blanks_what_it_covers() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        let source = "192.0.2.10:4000";
        media.listen(recording, source);
        let t0 = Instant::now();
        for n in 0..50u32 {
            let arrival = t0 + Duration::from_millis(20 * u64::from(n));
            media.receive(&pcmu(n as u16, n * FRAME, &[0x42; FRAME as usize]), source, arrival);
        }
        // The marker was seen at 800 ms, after audio up to 1000 ms was held.
        media.receiver.handle_command(MediaCommand::Pause { recording, at: t0 + Duration::from_millis(800) });
        let audio = media.take(recording, 50 * u64::from(FRAME)).unwrap();
        assert_eq!(audio.masked, [6240..8000]);
        assert!(audio.tracks[0].ulaw[6240..].iter().all(|&b| b == ulaw::SILENCE));
    }

    /// While a recording awaits its first packet the socket is read as
    /// packets come (no drain period added to the start); once none awaits,
    /// only the timer drains it.
    #[tokio::test]
    async fn the_socket_is_read_as_packets_come_only_while_a_start_is_awaited() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let (started, never) = (Uuid::new_v4(), Uuid::new_v4());
        media.listen(started, "192.0.2.10:4000");
        media.listen_stream(never, 0, 2, "192.0.2.10:4002");
        media.listen_stream(never, 1, 2, "192.0.2.10:4004");
        assert_eq!(media.receiver.awaiting_start, 2, "one per recording, not per stream");
        let now = Instant::now();
        media.receive(&frame(0), "192.0.2.10:4000", now);
        media.receive(&frame(1), "192.0.2.10:4000", now);
        media.receive(&frame(0), "192.0.2.10:4002", now);
        assert_eq!(media.receiver.awaiting_start, 1, "the stereo one still awaits its second stream");
        media.take(never, 0);
        assert_eq!(media.receiver.awaiting_start, 0);
        media.take(started, 320);
        assert_eq!(media.receiver.awaiting_start, 0);
    }

    #[tokio::test]
    async fn the_memory_reported_is_whole_seconds_of_every_stream_and_freed_on_take() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let (mono, stereo) = (Uuid::new_v4(), Uuid::new_v4());
        media.listen(mono, "192.0.2.10:4000");
        media.listen_stream(stereo, 0, 2, "192.0.2.10:4002");
        media.listen_stream(stereo, 1, 2, "192.0.2.10:4004");
        let t0 = Instant::now();
        // 1.2 s on the mono recording (two blocks), 0.4 s on each stereo stream (one each).
        for n in 0..60u32 {
            let at = t0 + Duration::from_millis(20 * u64::from(n));
            media.receive(&frame(n), "192.0.2.10:4000", at);
            if n < 20 {
                media.receive(&frame(n), "192.0.2.10:4002", at);
                media.receive(&frame(n), "192.0.2.10:4004", at);
            }
        }
        media.receiver.report_memory();
        assert_eq!(media.memory.held(), 4 * u64::from(SAMPLE_RATE));
        media.take(mono, 60 * u64::from(FRAME)).unwrap();
        media.receiver.report_memory();
        assert_eq!(media.memory.held(), 2 * u64::from(SAMPLE_RATE));
    }

    #[tokio::test]
    async fn a_reused_slot_takes_none_of_its_last_recordings_packets() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        media.listen(first, "192.0.2.10:4000");
        let now = Instant::now();
        media.receive(&frame(0), "192.0.2.10:4000", now);
        media.take(first, 160).unwrap();
        media.listen(second, "192.0.2.10:5000");
        assert_eq!(media.receiver.captures.len(), 1, "the slot is reused");
        media.receive(&frame(1), "192.0.2.10:4000", now);
        assert_eq!(media.metrics.rtp_after_end.get(), 1, "the old source is no longer routed");
        media.receive(&frame(2), "192.0.2.10:5000", now);
        let audio = media.take(second, 160).unwrap();
        assert_eq!(audio.tracks[0].ulaw, [2; FRAME as usize]);
    }

    #[tokio::test]
    async fn a_taken_recordings_stream_is_dropped_quietly_for_a_while_then_is_unknown() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        media.listen(recording, "192.0.2.10:4000");
        media.receive(&frame(0), "192.0.2.10:4000", Instant::now());
        media.take(recording, 160).unwrap();
        // What Asterisk sent while tearing the stream down.
        let taken = Instant::now();
        media.receive(&frame(1), "192.0.2.10:4000", taken + Duration::from_millis(300));
        assert_eq!((media.metrics.rtp_after_end.get(), media.metrics.rtp_unknown_source.get()), (1, 0));
        // A stream still going long after is something else: told about.
        media.receive(&frame(2), "192.0.2.10:4000", taken + AFTER_END + Duration::from_millis(100));
        assert_eq!((media.metrics.rtp_after_end.get(), media.metrics.rtp_unknown_source.get()), (1, 1));
        // A new recording on the same source takes it back.
        let next = Uuid::new_v4();
        media.listen(next, "192.0.2.10:4000");
        media.receive(&frame(3), "192.0.2.10:4000", taken + Duration::from_millis(400));
        assert_eq!(media.take(next, 160).unwrap().tracks[0].ulaw, [3; FRAME as usize]);
    }

    #[tokio::test]
    async fn a_recording_whose_rtp_stops_is_reported_once() {
        let mut media = harness("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        let source = "192.0.2.10:4000";
        media.listen(recording, source);
        let t0 = Instant::now();
        media.receive(&frame(0), source, t0);
        media.receive(&frame(1), source, t0 + Duration::from_millis(20));
        let _ = media.events.try_recv();
        media.receiver.check_for_silence(t0 + Duration::from_millis(2010));
        assert_eq!(media.events.try_recv(), Err(TryRecvError::Empty), "not before 2 s");
        media.receiver.check_for_silence(t0 + Duration::from_millis(2030));
        let last_audio_at = t0 + Duration::from_millis(20);
        assert_eq!(media.events.try_recv(), Ok(MediaEvent::NoMedia { recording, last_audio_at }));
        media.receiver.check_for_silence(t0 + Duration::from_millis(5000));
        assert_eq!(media.events.try_recv(), Err(TryRecvError::Empty), "once");
    }
}
