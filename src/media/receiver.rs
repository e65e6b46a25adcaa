//! Media capture, step 2: the one UDP socket every recording's RTP arrives on.
//! A single task owns the socket and all stream buffers, so the hot path takes
//! no lock and allocates nothing per packet: it drains the socket, parses each
//! header in place, looks the source address up, and copies the payload into
//! that recording's buffer. The recorder talks to it through commands.
//!
//! Source addresses are compared in canonical form: on a dual-stack `[::]`
//! socket IPv4 RTP arrives from `[::ffff:a.b.c.d]:p`, while Asterisk reports
//! `a.b.c.d:p`.

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
    // `[::]` means every address, IPv4 included, whatever the host's default
    // for IPV6_V6ONLY; IPv4 senders then appear as IPv4-mapped addresses.
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        if let Err(error) = socket.set_only_v6(false) {
            debug!(%error, "could not make the media socket dual-stack");
        }
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
        let from = canonical(from);
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
        // No audio, so no first sample either: it must not start the capture.
        if packet.payload.is_empty() {
            self.metrics.rtp_empty.inc();
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
        let placement = stream.buffer.place(packet.ssrc, packet.sequence, packet.timestamp, packet.payload, arrival);
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

    fn handle_command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Listen { recording, source } => {
                // A source port reused by a newer recording belongs to it.
                self.routes.insert(canonical(source), recording);
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
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use tokio::sync::mpsc::error::TryRecvError;
    use uuid::Uuid;

    use super::*;

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
        events: mpsc::UnboundedReceiver<MediaEvent>,
    }

    /// A media task on `addr` that the test drives itself, datagram by
    /// datagram, without the socket being read.
    fn harness(addr: &str) -> io::Result<Harness> {
        let metrics = Arc::new(Metrics::default());
        let (events_tx, events) = mpsc::unbounded_channel();
        let (media, receiver) = bind(addr.parse().unwrap(), 8000 * 3600, metrics.clone(), events_tx)?;
        Ok(Harness { media, receiver, metrics, events })
    }

    impl Harness {
        fn listen(&mut self, recording: RecordingId, source: &str) {
            self.receiver.handle_command(MediaCommand::Listen { recording, source: source.parse().unwrap() });
        }

        fn receive(&mut self, datagram: &[u8], from: &str, now: Instant) {
            self.receiver.handle_datagram(datagram, from.parse().unwrap(), now);
        }

        fn take(&mut self, recording: RecordingId, total_samples: u64) -> Option<CapturedAudio> {
            let (reply, mut answer) = oneshot::channel();
            self.receiver.handle_command(MediaCommand::Take { recording, total_samples, reply });
            answer.try_recv().unwrap()
        }
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
        let audio = media.take(recording, 199 * u64::from(FRAME)).unwrap();
        let frames: Vec<u8> = audio.ulaw.chunks(FRAME as usize).map(|chunk| chunk[0]).collect();
        assert_eq!(frames, (1..200).map(|n| n as u8).collect::<Vec<_>>());
        assert_eq!(audio.stats.resyncs, 0);
    }

    /// Over real sockets: IPv4 RTP on a dual-stack `[::]` socket comes from
    /// `[::ffff:127.0.0.1]`, yet reaches the recording that listens for the
    /// `127.0.0.1` address Asterisk reports.
    #[tokio::test]
    async fn ipv4_rtp_reaches_a_recording_through_a_dual_stack_socket() {
        let Harness { media, receiver, metrics, mut events } =
            harness("[::]:0").expect("a dual-stack socket on [::] (this test needs IPv6 enabled)");
        tokio::spawn(receiver.run());
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let recording = Uuid::new_v4();
        media.listen(recording, sender.local_addr().unwrap());
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
                Ok(None) => panic!("the media task ended"),
                Err(_) => continue,
            }
        }
        panic!("no capture after 50 packets; {} from unknown sources", metrics.rtp_unknown_source.get());
    }
}
