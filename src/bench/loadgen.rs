//! Benchmark, the sender: N concurrent RTP streams (PCMU, 160-byte payloads)
//! paced at 20 ms in real time, stream `i` from source port `base_port + i`
//! of 127.0.0.1, its frames carrying `pattern(i, n)`. The streams are spread
//! evenly over each 20 ms, as independent calls would be.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::{pattern, timestamp_base, FRAME};
use crate::media::rtp;

/// What a run sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    /// Frames every stream sent (frame 0 to `frames - 1`).
    pub frames: u32,
    /// Datagrams the kernel refused to send (counted, not retried).
    pub send_errors: u64,
    /// How far the sender fell behind its 1 ms schedule at worst, in ms.
    pub worst_lag_ms: u64,
}

/// The streams' sockets, bound before the run so the target can listen first.
pub struct Streams {
    sockets: Vec<UdpSocket>,
}

impl Streams {
    /// Binds `count` sockets on 127.0.0.1, ports `base_port` on.
    pub fn bind(count: u32, base_port: u16) -> io::Result<Self> {
        raise_open_files_limit(u64::from(count) + 64);
        let sockets = (0..count)
            .map(|stream| {
                let port = u32::from(base_port) + stream;
                let port = u16::try_from(port).map_err(|_| io::Error::other("source ports past 65535"))?;
                UdpSocket::bind(("127.0.0.1", port))
            })
            .collect::<io::Result<_>>()?;
        Ok(Streams { sockets })
    }

    /// Sends `seconds` of audio on every stream to `target`.
    pub fn send(&self, target: SocketAddr, seconds: u32) -> Sent {
        let frames = seconds * 50;
        let mut packet = [0u8; rtp::FIXED_HEADER_LEN + FRAME];
        let mut header = [0u8; rtp::FIXED_HEADER_LEN];
        let (mut send_errors, mut worst_lag) = (0u64, Duration::ZERO);
        let start = Instant::now();
        // One slot a millisecond: slot `t` sends frame `t / 20` of the
        // streams whose index is `t % 20` modulo 20.
        for tick in 0..frames * 20 {
            let due = start + Duration::from_millis(u64::from(tick));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else {
                worst_lag = worst_lag.max(now - due);
            }
            let n = tick / 20;
            for stream in (tick % 20..self.sockets.len() as u32).step_by(20) {
                let timestamp = timestamp_base(stream).wrapping_add(n * FRAME as u32);
                rtp::write_header(&mut header, (stream.wrapping_mul(13) + n) as u16, timestamp, stream);
                packet[..rtp::FIXED_HEADER_LEN].copy_from_slice(&header);
                packet[rtp::FIXED_HEADER_LEN..].fill(pattern(stream, n));
                if self.sockets[stream as usize].send_to(&packet, target).is_err() {
                    send_errors += 1;
                }
            }
        }
        Sent { frames, send_errors, worst_lag_ms: worst_lag.as_millis() as u64 }
    }
}

/// Lets this process open a socket per stream (up to the hard limit).
fn raise_open_files_limit(wanted: u64) {
    // SAFETY: getrlimit/setrlimit with a valid resource and a live struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted as libc::rlim_t {
            return;
        }
        limit.rlim_cur = (wanted as libc::rlim_t).min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}
