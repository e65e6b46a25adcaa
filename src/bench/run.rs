//! Benchmark, one run: the same N streams first into callrec's media task,
//! then into the floor receiver, each in a process of its own whose CPU and
//! memory are read from `/proc` just before the first packet and just after
//! the last; the sender is this process. The result holds every figure and
//! its target.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::loadgen::{Sent, Streams};
use super::proc_stat;
use super::target::{FloorReport, MediaReport, Ready};

/// The targets, beside the figures.
pub const TARGET_FLOOR_RATIO: f64 = 1.5;
pub const TARGET_LONGEST_TURN_MS: f64 = 2.0;
pub const TARGET_BYTES_PER_SECOND: f64 = 8_200.0;

/// Every figure of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    pub streams: u32,
    pub seconds: u32,
    pub packets_sent: u64,
    pub callrec_us_per_packet: f64,
    pub callrec_core_percent: f64,
    pub floor_us_per_packet: f64,
    pub floor_ratio: f64,
    pub frames_lost: u64,
    pub frames_misplaced: u64,
    pub kernel_drops: u64,
    pub resident_bytes_per_recorded_second: f64,
    pub longest_stall_ms: f64,
    pub longest_stall_wall_ms: f64,
    pub wakeups_per_second: f64,
    pub sender_worst_lag_ms: u64,
    pub load_average: Option<f64>,
    pub media: MediaReport,
    pub floor: FloorReport,
}

impl RunResult {
    /// The targets this run missed, in words.
    pub fn misses(&self) -> Vec<String> {
        let mut misses = Vec::new();
        if self.floor_ratio > TARGET_FLOOR_RATIO && self.packets_sent / u64::from(self.seconds.max(1)) >= 5_000 {
            misses.push(format!("{:.2}× the floor (target ≤ {TARGET_FLOOR_RATIO}×)", self.floor_ratio));
        }
        if self.frames_lost + self.frames_misplaced > 0 {
            misses.push(format!("{} frames lost, {} misplaced (target 0)", self.frames_lost, self.frames_misplaced));
        }
        if self.longest_stall_ms > TARGET_LONGEST_TURN_MS {
            misses.push(format!("a {:.1} ms stall (target ≤ {TARGET_LONGEST_TURN_MS} ms)", self.longest_stall_ms));
        }
        if self.resident_bytes_per_recorded_second > TARGET_BYTES_PER_SECOND {
            misses.push(format!(
                "{:.0} B resident per recorded second (target ≤ {TARGET_BYTES_PER_SECOND})",
                self.resident_bytes_per_recorded_second
            ));
        }
        misses
    }

    /// One row of BENCHMARKS.md's table (its header is in `scripts/bench.sh`).
    pub fn markdown_row(&self) -> String {
        let misses = self.misses();
        format!(
            "| {} | {} | {:.2} | {:.1}% | {:.2} | {:.2}× | {} / {} | {:.0} B | {:.2} ms ({:.1} ms wall) | {:.0} | {} ms | {} | {} |",
            self.streams,
            self.packets_sent,
            self.callrec_us_per_packet,
            self.callrec_core_percent,
            self.floor_us_per_packet,
            self.floor_ratio,
            self.frames_lost,
            self.frames_misplaced,
            self.resident_bytes_per_recorded_second,
            self.longest_stall_ms,
            self.longest_stall_wall_ms,
            self.wakeups_per_second,
            self.sender_worst_lag_ms,
            self.load_average.map_or("?".to_string(), |load| format!("{load:.2}")),
            if misses.is_empty() { "all met".to_string() } else { format!("missed: {}", misses.join("; ")) },
        )
    }
}

/// A receiver process: its pid, stdin, stdout and where it listens.
struct Receiver {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    target: SocketAddr,
}

impl Receiver {
    fn start(args: &[String]) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a receiver")?;
        let stdin = child.stdin.take().context("its stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("its stdout")?);
        let ready: Ready = serde_json::from_str(&read_line(&mut stdout)?)?;
        Ok(Receiver { child, stdin, stdout, target: SocketAddr::from(([127, 0, 0, 1], ready.port)) })
    }

    /// Sends the run's streams to it: its CPU time, and its resident memory
    /// before and after.
    fn measure(&self, streams: &Streams, seconds: u32) -> anyhow::Result<(Duration, u64, u64, Sent)> {
        let pid = self.child.id();
        let (cpu_before, resident_before) = (proc_stat::cpu_time(pid)?, proc_stat::resident_bytes(pid)?);
        let sent = streams.send(self.target, seconds);
        // Two drain periods: what is still in the socket is read.
        std::thread::sleep(Duration::from_millis(50));
        let (cpu_after, resident_after) = (proc_stat::cpu_time(pid)?, proc_stat::resident_bytes(pid)?);
        Ok((cpu_after.saturating_sub(cpu_before), resident_before, resident_after, sent))
    }

    fn finish<T: serde::de::DeserializeOwned>(mut self, line: &str) -> anyhow::Result<T> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let report = serde_json::from_str(&read_line(&mut self.stdout)?)?;
        let _ = self.child.wait();
        Ok(report)
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> anyhow::Result<String> {
    let mut line = String::new();
    if stdout.read_line(&mut line)? == 0 {
        anyhow::bail!("the receiver ended early");
    }
    Ok(line)
}

/// N streams for `seconds`, into callrec's media task and then the floor.
pub fn run(streams: u32, seconds: u32, base_port: u16) -> anyhow::Result<RunResult> {
    let senders = Streams::bind(streams, base_port).context("binding the streams' source ports")?;
    let load_average = proc_stat::load_average();

    let media =
        Receiver::start(&["target".into(), format!("--streams={streams}"), format!("--base-port={base_port}")])?;
    let started = Instant::now();
    let (media_cpu, resident_before, resident_after, sent) = media.measure(&senders, seconds)?;
    let wall = started.elapsed();
    let report: MediaReport = media.finish(&format!("take {}", sent.frames))?;

    let floor = Receiver::start(&["floor".into()])?;
    let (floor_cpu, _, _, _) = floor.measure(&senders, seconds)?;
    let floor_report: FloorReport = floor.finish("stop")?;

    let packets_sent = u64::from(streams) * u64::from(sent.frames);
    let per_packet = |cpu: Duration, packets: u64| cpu.as_secs_f64() * 1e6 / packets.max(1) as f64;
    let callrec_us_per_packet = per_packet(media_cpu, report.packets);
    let floor_us_per_packet = per_packet(floor_cpu, floor_report.packets);
    let recorded_seconds = f64::from(streams) * f64::from(seconds);
    Ok(RunResult {
        streams,
        seconds,
        packets_sent,
        callrec_us_per_packet,
        callrec_core_percent: media_cpu.as_secs_f64() * 100.0 / wall.as_secs_f64(),
        floor_us_per_packet,
        floor_ratio: callrec_us_per_packet / floor_us_per_packet.max(f64::MIN_POSITIVE),
        frames_lost: report.frames_lost,
        frames_misplaced: report.frames_misplaced,
        kernel_drops: report.kernel_drops,
        resident_bytes_per_recorded_second: resident_after.saturating_sub(resident_before) as f64
            / recorded_seconds.max(1.0),
        longest_stall_ms: report.longest_turn_us as f64 / 1000.0,
        longest_stall_wall_ms: report.longest_turn_wall_us as f64 / 1000.0,
        wakeups_per_second: report.wakeups as f64 / wall.as_secs_f64(),
        sender_worst_lag_ms: sent.worst_lag_ms,
        load_average,
        media: report,
        floor: floor_report,
    })
}
