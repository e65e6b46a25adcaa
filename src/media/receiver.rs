//! Media capture, step 2: the one UDP socket every recording's RTP arrives on.
//! A single task owns the socket and all stream buffers, so the hot path takes
//! no lock and allocates nothing per packet: it drains the socket, parses each
//! header in place, looks the source address up, and copies the payload into
//! that recording's buffer. The recorder talks to it through commands.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::rtp::{self, PAYLOAD_TYPE_PCMU};
use crate::metrics::Metrics;
use crate::recording::{CapturedAudio, Placement, StreamBuffer};
use crate::session::RecordingId;
use crate::ulaw::SAMPLE_RATE;

/// Room reserved for each new stream, so short recordings never reallocate.
const RESERVED_SAMPLES: u64 = 60 * SAMPLE_RATE as u64;
/// Datagrams read per wake-up before commands get a turn.
const BATCH: usize = 512;
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// What the recorder asks of the media task.
#[derive(Debug)]
pub enum MediaCommand {
    /// Route RTP from `source` into a new buffer for `recording`.
    Listen { recording: RecordingId, source: SocketAddr },
    /// End the recording's stream at `total_samples` and hand its audio over
    /// (`None` if it never listened).
    Take { recording: RecordingId, total_samples: u64, reply: oneshot::Sender<Option<CapturedAudio>> },
}

/// What the media task tells the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// The first packet of a recording arrived at `at`: its first sample.
    CaptureStarted { recording: RecordingId, at: Instant },
}

/// The recorder's side: where RTP must be sent, and the command channel.
#[derive(Clone)]
pub struct MediaHandle {
    pub local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<MediaCommand>,
}

impl MediaHandle {
    pub fn listen(&self, recording: RecordingId, source: SocketAddr) {
        let _ = self.commands.send(MediaCommand::Listen { recording, source });
    }

    /// The recording's audio, exactly `total_samples` long, or `None` if it
    /// never captured anything.
    pub async fn take(&self, recording: RecordingId, total_samples: u64) -> Option<CapturedAudio> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(MediaCommand::Take { recording, total_samples, reply }).ok()?;
        answer.await.ok().flatten()
    }
}

/// The task side: owns the socket and the buffers.
pub struct MediaReceiver {
    socket: UdpSocket,
    commands: mpsc::UnboundedReceiver<MediaCommand>,
    events: mpsc::UnboundedSender<MediaEvent>,
    routes: HashMap<SocketAddr, RecordingId>,
    streams: HashMap<RecordingId, Stream>,
    max_samples: u64,
    metrics: Arc<Metrics>,
    unknown_source_warning: Throttle,
    malformed_warning: Throttle,
}

struct Stream {
    buffer: StreamBuffer,
    /// Arrival of the first packet: sample 0 of the recording.
    first_arrival: Option<Instant>,
}

/// Binds the media socket. RTP for every recording arrives here.
pub fn bind(
    addr: SocketAddr,
    max_samples: u64,
    metrics: Arc<Metrics>,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> io::Result<(MediaHandle, MediaReceiver)> {
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // A larger kernel buffer rides out scheduling hiccups with many calls.
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        debug!(%error, "could not enlarge the media socket's receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let socket = UdpSocket::from_std(socket.into())?;
    let local_addr = socket.local_addr()?;
    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let handle = MediaHandle { local_addr, commands: command_tx };
    let receiver = MediaReceiver {
        socket,
        commands: command_rx,
        events,
        routes: HashMap::new(),
        streams: HashMap::new(),
        max_samples,
        metrics,
        unknown_source_warning: Throttle::default(),
        malformed_warning: Throttle::default(),
    };
    Ok((handle, receiver))
}

impl MediaReceiver {
    /// Receives until every `MediaHandle` is gone: after shutdown it keeps
    /// serving until the recorder has collected every recording.
    pub async fn run(mut self) {
        let mut datagram = [0u8; 2048];
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => return,
                },
                readable = self.socket.readable() => {
                    if let Err(error) = readable {
                        warn!(%error, "media socket failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    self.drain(&mut datagram);
                }
            }
        }
    }

    fn drain(&mut self, datagram: &mut [u8]) {
        let now = Instant::now();
        for _ in 0..BATCH {
            match self.socket.try_recv_from(datagram) {
                Ok((len, from)) => self.handle_datagram(&datagram[..len], from, now),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    // e.g. ICMP port unreachable surfacing on Linux; not fatal.
                    debug!(%error, "media socket receive error");
                    return;
                }
            }
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr, now: Instant) {
        let Some(recording) = self.routes.get(&from).copied() else {
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
        let Some(stream) = self.streams.get_mut(&recording) else {
            return;
        };
        let first_arrival = *stream.first_arrival.get_or_insert_with(|| {
            let _ = self.events.send(MediaEvent::CaptureStarted { recording, at: now });
            now
        });
        let arrival = now.duration_since(first_arrival).as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000;
        let placement = stream.buffer.place(packet.ssrc, packet.timestamp, packet.payload, arrival);
        self.metrics.rtp_packets.inc();
        match placement {
            Placement::Appended => {}
            Placement::FilledGap => self.metrics.rtp_late.inc(),
            Placement::Duplicate => self.metrics.rtp_duplicates.inc(),
            Placement::Overflow => self.metrics.rtp_over_limit.inc(),
            Placement::BeforeStart => self.metrics.rtp_late.inc(),
        }
    }

    fn handle_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Listen { recording, source } => {
                // A source port reused by a newer recording belongs to it.
                self.routes.insert(source, recording);
                self.streams.insert(
                    recording,
                    Stream { buffer: StreamBuffer::new(self.max_samples, RESERVED_SAMPLES), first_arrival: None },
                );
            }
            MediaCommand::Take { recording, total_samples, reply } => {
                self.routes.retain(|_, routed| *routed != recording);
                let audio = self.streams.remove(&recording).map(|stream| {
                    let audio = stream.buffer.finish(total_samples);
                    self.metrics.rtp_resyncs.add(audio.stats.resyncs);
                    audio
                });
                let _ = reply.send(audio);
            }
        }
    }
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
