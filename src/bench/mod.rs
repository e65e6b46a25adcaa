//! The media-path benchmark (`callrec-bench`, run by `scripts/bench.sh`):
//! beside the data path, not on it. `loadgen` sends N concurrent RTP streams
//! paced at 20 ms, each from its own source port; `target` runs callrec's own
//! media task (socket, routing, buffers) in a process of its own, with one
//! recording registered per stream without Asterisk, and afterwards checks
//! every delivered track byte for byte; `floor` is the least a receiver can
//! do with the same packets (a timer drain with `recvmmsg`, nothing else);
//! `run` starts the three, reads their CPU from `/proc/<pid>/stat` and their
//! memory from `/proc/<pid>/status`, and prints one result.

pub mod loadgen;
pub mod proc_stat;
pub mod run;
pub mod target;

use crate::ulaw::SILENCE;

/// Samples in one 20 ms packet.
pub const FRAME: usize = 160;

/// The payload byte of frame `n` of stream `stream`: never silence, so a
/// lost frame is told from a delivered one, and different for neighbouring
/// frames and streams, so a misplaced one is seen.
pub fn pattern(stream: u32, n: u32) -> u8 {
    let byte = 1 + (stream.wrapping_mul(31).wrapping_add(n) % 254) as u8;
    debug_assert_ne!(byte, SILENCE);
    byte
}

/// The RTP timestamp of frame 0 of `stream`: streams start anywhere on the circle.
pub fn timestamp_base(stream: u32) -> u32 {
    stream.wrapping_mul(2_654_435_761)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_never_silence_and_tells_neighbours_apart() {
        for stream in 0..100 {
            for n in 0..600 {
                assert_ne!(pattern(stream, n), SILENCE);
                assert_ne!(pattern(stream, n), pattern(stream, n + 1));
            }
            assert_ne!(pattern(stream, 0), pattern(stream + 1, 0));
        }
    }
}
