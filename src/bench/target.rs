//! Benchmark, the receivers. `media` is callrec's own media task in a
//! process of its own (bench mode): one recording per stream, registered
//! without Asterisk, taken at the end and checked frame by frame against
//! what the sender sent. `floor` is the least any receiver does with the
//! same packets: drain the socket every `DRAIN_PERIOD` with `recvmmsg` and
//! count. Both print one JSON line with their port when ready, wait for a
//! line on stdin, and print one JSON line with what they saw.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{pattern, FRAME};
use crate::media::batch::BatchReceiver;
use crate::media::receiver::DRAIN_PERIOD;
use crate::memory::AudioMemory;
use crate::metrics::Metrics;
use crate::ulaw::SILENCE;

/// The first line a receiver prints: where to send.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub port: u16,
}

/// What callrec's media task delivered, checked against what was sent.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct MediaReport {
    /// RTP packets with audio the media task placed.
    pub packets: u64,
    pub kernel_drops: u64,
    pub unknown_source: u64,
    /// Frames (20 ms) expected over every track.
    pub frames: u64,
    /// Frames found exactly where they belong.
    pub frames_intact: u64,
    /// Frames that are silence: lost.
    pub frames_lost: u64,
    /// Frames holding anything else: misplaced.
    pub frames_misplaced: u64,
    /// Recordings the media task had nothing for.
    pub recordings_missing: u64,
    /// `media_longest_turn_us`: the media task's longest stall (CPU time).
    pub longest_turn_us: u64,
    /// `media_longest_turn_wall_us`: the same in wall time, preemption included.
    pub longest_turn_wall_us: u64,
    pub wakeups: u64,
    /// What the buffers held when last reported (`AudioMemory`).
    pub buffer_bytes: u64,
}

/// What the floor receiver read.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct FloorReport {
    pub packets: u64,
    pub wakeups: u64,
}

/// Runs callrec's media task with one recording per stream (source ports
/// `base_port..base_port + streams` of 127.0.0.1) until stdin says
/// `take <frames>`; then checks every track and prints the report.
pub fn media(streams: u32, base_port: u16) -> anyhow::Result<()> {
    // The same runtime as `callrec run`.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::default());
        let memory = AudioMemory::new(u64::MAX);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let bind_to: SocketAddr = "127.0.0.1:0".parse()?;
        let (media, receiver) =
            crate::media::bind(bind_to, 8000 * 3600 * 4, metrics.clone(), memory.clone(), events_tx)?;
        tokio::spawn(receiver.run());
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let recordings: Vec<Uuid> = (0..streams).map(|_| Uuid::new_v4()).collect();
        for (stream, recording) in (0..).zip(&recordings) {
            let source = SocketAddr::from(([127, 0, 0, 1], base_port + stream as u16));
            media.listen(*recording, 0, 1, source);
        }
        // Every listen handled before the sender starts.
        let _ = media.last_audio(Uuid::nil()).await;
        say(&Ready { port: media.local_addr.port() })?;
        let frames = tokio::task::spawn_blocking(read_take).await??;
        let mut report = MediaReport { buffer_bytes: memory.held(), ..MediaReport::default() };
        for (stream, recording) in (0..).zip(&recordings) {
            report.frames += u64::from(frames);
            // Everything was sent before: taken at once.
            let Some(captured) = media.take(*recording, u64::from(frames) * FRAME as u64, Instant::now()).await? else {
                report.recordings_missing += 1;
                report.frames_lost += u64::from(frames);
                continue;
            };
            for (n, frame) in (0..).zip(captured.tracks[0].ulaw.chunks(FRAME)) {
                if frame.iter().all(|&byte| byte == pattern(stream, n)) {
                    report.frames_intact += 1;
                } else if frame.iter().all(|&byte| byte == SILENCE) {
                    report.frames_lost += 1;
                } else {
                    report.frames_misplaced += 1;
                }
            }
        }
        report.packets = metrics.rtp_packets.get();
        report.kernel_drops = metrics.rtp_kernel_drops.get();
        report.unknown_source = metrics.rtp_unknown_source.get();
        report.longest_turn_us = metrics.media_longest_turn_us.get();
        report.longest_turn_wall_us = metrics.media_longest_turn_wall_us.get();
        report.wakeups = metrics.media_wakeups.get();
        say(&report)
    })
}

/// Drains a socket every `DRAIN_PERIOD` in batches and counts, until stdin
/// says `stop`.
pub fn floor() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
        socket.set_recv_buffer_size(4 << 20)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let socket: std::net::UdpSocket = socket.into();
        say(&Ready { port: socket.local_addr()?.port() })?;
        let mut stop = tokio::task::spawn_blocking(read_take);
        let mut batch = BatchReceiver::new();
        let mut report = FloorReport::default();
        let mut drain = tokio::time::interval(DRAIN_PERIOD);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = drain.tick() => {
                    report.wakeups += 1;
                    while let Ok(count) = batch.receive(&socket) {
                        report.packets += count as u64;
                    }
                }
            }
        }
        say(&report)
    })
}

/// Waits for the line that ends the run: `take <frames>` (or `stop`).
fn read_take() -> io::Result<u32> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().strip_prefix("take ").and_then(|frames| frames.parse().ok()).unwrap_or(0))
}

/// One JSON line on stdout, flushed.
fn say(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
