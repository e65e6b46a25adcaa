//! What a SIP caller actually heard: the RTP arriving at its media port,
//! captured on loopback with tcpdump while the call runs, read back from
//! the pcap file packet by packet with the wall-clock time it arrived.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One RTP packet the caller received.
pub struct HeardPacket {
    /// Milliseconds since the epoch it arrived.
    pub at_ms: i64,
    /// Its μ-law audio.
    pub audio: Vec<u8>,
}

pub struct Capture {
    child: Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts capturing UDP to `port` on loopback; returns once tcpdump listens.
    pub async fn start(port: u16) -> Capture {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("heard.pcap");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "--immediate-mode", "-w"])
            .arg(&file)
            .arg(format!("udp and dst port {port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the end-to-end tests need tcpdump (scripts/test.sh installs it)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let listening = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("listening on") {
                    return true;
                }
            }
            false
        });
        assert!(listening.await.unwrap_or(false), "tcpdump did not start listening on lo");
        Capture { child, file, _dir: dir }
    }

    /// Stops the capture and returns what arrived, in order.
    pub async fn stop(mut self) -> Vec<HeardPacket> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        parse_pcap(&std::fs::read(&self.file).expect("the capture file"))
    }
}

/// The RTP payloads of a pcap file of UDP over IPv4 on Linux's loopback
/// (Ethernet framing), with their arrival times.
fn parse_pcap(bytes: &[u8]) -> Vec<HeardPacket> {
    assert!(bytes.len() >= 24, "a pcap file");
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        other => panic!("not a little-endian pcap file (magic {other:#x})"),
    };
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (seconds, fraction, length) = (word(at), word(at + 4), word(at + 8));
        let frame = &bytes[at + 16..(at + 16 + length).min(bytes.len())];
        at += 16 + length;
        let since_epoch = Duration::from_secs(seconds as u64)
            + if nanos { Duration::from_nanos(fraction as u64) } else { Duration::from_micros(fraction as u64) };
        // Ethernet (14 bytes), IPv4 (its header length), UDP (8), RTP (12, no CSRCs or extension).
        let Some(ip) = frame.get(14..) else { continue };
        let Some(&version) = ip.first() else { continue };
        let udp = &ip[usize::from(version & 0x0f) * 4..];
        let Some(rtp) = udp.get(8..) else { continue };
        if rtp.len() <= 12 || rtp[0] >> 6 != 2 {
            continue;
        }
        let at_ms = (UNIX_EPOCH + since_epoch).duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        packets.push(HeardPacket { at_ms, audio: rtp[12..].to_vec() });
    }
    packets
}
