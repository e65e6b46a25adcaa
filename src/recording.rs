//! Recording buffer: where captured audio lives until delivery. Media capture
//! hands it each RTP payload; it places the bytes by RTP timestamp into one
//! growing μ-law buffer, fills gaps with silence, lets late packets fill their
//! gap, drops duplicates, survives timestamp wrap, and at the end is cut or
//! padded to the wall-clock length of the recording.
//!
//! Positions are in samples (one μ-law byte each) from the first packet.
//! Nothing here reads a clock or allocates per packet in the steady state.

use std::ops::Range;

use crate::ulaw::{SAMPLE_RATE, SILENCE};

/// A packet newer than all before it may claim to be at most this far ahead
/// of where the wall clock puts it; further is a jump (a new SSRC, a bogus
/// header) and the stream is re-anchored at the packet's arrival. Being
/// behind the wall clock is fine for such a packet: it is what a receiver
/// that was not scheduled for a while sees, and its timestamp is right.
pub const MAX_AHEAD_SAMPLES: i64 = SAMPLE_RATE as i64;
/// A packet older than the newest may be at most this far behind it to fill
/// its gap; further back is a jump, not reordering.
pub const MAX_REORDER_SAMPLES: i64 = SAMPLE_RATE as i64;
/// Gaps ending this far before the end of the buffer can no longer be filled
/// by a late packet: they are only counted from then on, which keeps the
/// list of open gaps short however lossy a long recording is.
const SETTLED_AFTER_SAMPLES: u64 = 2 * MAX_REORDER_SAMPLES as u64;

/// What became of one placed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Extended the recording (after a gap of silence if one was needed).
    Appended,
    /// Arrived late and filled (part of) a gap.
    FilledGap,
    /// Its samples were all already there.
    Duplicate,
    /// Belongs before the recording's first sample.
    BeforeStart,
    /// The recording is at its length limit.
    Overflow,
}

/// Counters a stream keeps about its packets, reported with the recording.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    pub packets: u64,
    pub late: u64,
    pub duplicates: u64,
    pub before_start: u64,
    pub overflow: u64,
    /// Times the stream was re-anchored on a new SSRC or a timestamp jump.
    pub resyncs: u64,
}

/// The audio of one stream once it is finished: exactly the requested length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedAudio {
    pub ulaw: Vec<u8>,
    /// Samples of silence standing in for packets that never came.
    pub missing_samples: u64,
    pub stats: StreamStats,
}

/// Maps a stream's 32-bit RTP timestamps onto buffer positions.
#[derive(Debug, Clone, Copy)]
struct RtpClock {
    ssrc: u32,
    /// The newest timestamp seen, and its 64-bit extension.
    newest: u32,
    newest_extended: i64,
    /// The extended timestamp of buffer position 0.
    origin: i64,
}

impl RtpClock {
    fn anchored(ssrc: u32, timestamp: u32, position: i64) -> Self {
        RtpClock {
            ssrc,
            newest: timestamp,
            newest_extended: i64::from(timestamp),
            origin: i64::from(timestamp) - position,
        }
    }

    /// The buffer position of `timestamp`, taking the shorter way around the
    /// 32-bit circle from the newest timestamp (so wrap is seamless), and how
    /// far behind the newest timestamp it is (0 for a new newest).
    fn locate(&mut self, timestamp: u32) -> (i64, i64) {
        let extended = self.newest_extended + i64::from(timestamp.wrapping_sub(self.newest) as i32);
        let behind = (self.newest_extended - extended).max(0);
        if extended > self.newest_extended {
            self.newest = timestamp;
            self.newest_extended = extended;
        }
        (extended - self.origin, behind)
    }
}

/// The in-memory μ-law audio of one media stream of a recording.
#[derive(Debug)]
pub struct StreamBuffer {
    audio: Vec<u8>,
    clock: Option<RtpClock>,
    /// Sample ranges filled with silence that a late packet may still fill,
    /// in order; only those near the end of the buffer.
    gaps: Vec<Range<u64>>,
    /// Samples of silence in gaps too old to be filled any more.
    settled_missing: u64,
    max_samples: u64,
    stats: StreamStats,
}

impl StreamBuffer {
    /// A buffer that holds at most `max_samples`, with room for
    /// `expected_samples` reserved up front.
    pub fn new(max_samples: u64, expected_samples: u64) -> Self {
        StreamBuffer {
            audio: Vec::with_capacity(expected_samples.min(max_samples) as usize),
            clock: None,
            gaps: Vec::new(),
            settled_missing: 0,
            max_samples,
            stats: StreamStats::default(),
        }
    }

    /// Samples held so far.
    pub fn len(&self) -> u64 {
        self.audio.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.audio.is_empty()
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Places one packet's payload. `arrival` is the sample position the wall
    /// clock gives the packet's arrival (0 for the first packet).
    pub fn place(&mut self, ssrc: u32, timestamp: u32, payload: &[u8], arrival: u64) -> Placement {
        self.stats.packets += 1;
        let arrival = arrival as i64;
        let position = match &mut self.clock {
            None => {
                self.clock = Some(RtpClock::anchored(ssrc, timestamp, arrival));
                arrival
            }
            Some(clock) if clock.ssrc == ssrc => {
                let (position, behind_newest) = clock.locate(timestamp);
                let in_step = if behind_newest == 0 {
                    position - arrival <= MAX_AHEAD_SAMPLES
                } else {
                    behind_newest <= MAX_REORDER_SAMPLES
                };
                if in_step {
                    position
                } else {
                    self.resync(ssrc, timestamp, arrival)
                }
            }
            Some(_) => self.resync(ssrc, timestamp, arrival),
        };
        if position < 0 {
            self.stats.before_start += 1;
            return Placement::BeforeStart;
        }
        let placement = self.write(position as u64, payload);
        match placement {
            Placement::FilledGap => self.stats.late += 1,
            Placement::Duplicate => self.stats.duplicates += 1,
            Placement::Overflow => self.stats.overflow += 1,
            Placement::Appended | Placement::BeforeStart => {}
        }
        placement
    }

    /// Re-anchors the clock so that this packet lands at its arrival, or
    /// right after what is already held if that is later.
    fn resync(&mut self, ssrc: u32, timestamp: u32, arrival: i64) -> i64 {
        self.stats.resyncs += 1;
        let position = arrival.max(self.audio.len() as i64);
        self.clock = Some(RtpClock::anchored(ssrc, timestamp, position));
        position
    }

    fn write(&mut self, position: u64, payload: &[u8]) -> Placement {
        let end = (position + payload.len() as u64).min(self.max_samples);
        if position >= end {
            return Placement::Overflow;
        }
        let payload = &payload[..(end - position) as usize];
        let held = self.len();
        if position >= held {
            if position > held {
                self.gaps.push(held..position);
                self.audio.resize(position as usize, SILENCE);
            }
            self.audio.extend_from_slice(payload);
            self.settle_old_gaps();
            return Placement::Appended;
        }

        // Late: only the parts that fall into gaps are new.
        let mut filled = false;
        let mut index = 0;
        while index < self.gaps.len() {
            let gap = self.gaps[index].clone();
            let from = gap.start.max(position);
            let to = gap.end.min(end);
            if from >= to {
                index += 1;
                continue;
            }
            let source = &payload[(from - position) as usize..(to - position) as usize];
            self.audio[from as usize..to as usize].copy_from_slice(source);
            filled = true;
            // Keep what is left of the gap on either side.
            match (gap.start < from, to < gap.end) {
                (true, true) => {
                    self.gaps[index] = gap.start..from;
                    self.gaps.insert(index + 1, to..gap.end);
                    index += 2;
                }
                (true, false) => {
                    self.gaps[index] = gap.start..from;
                    index += 1;
                }
                (false, true) => {
                    self.gaps[index] = to..gap.end;
                    index += 1;
                }
                (false, false) => {
                    self.gaps.remove(index);
                }
            }
        }
        if end > held {
            self.audio.extend_from_slice(&payload[(held - position) as usize..]);
            return Placement::Appended;
        }
        if filled {
            Placement::FilledGap
        } else {
            Placement::Duplicate
        }
    }

    /// Counts and forgets the gaps no late packet can reach any more.
    fn settle_old_gaps(&mut self) {
        let horizon = self.len().saturating_sub(SETTLED_AFTER_SAMPLES);
        let settled = self.gaps.iter().take_while(|gap| gap.end <= horizon).count();
        if settled > 0 {
            self.settled_missing += self.gaps.drain(..settled).map(|gap| gap.end - gap.start).sum::<u64>();
        }
    }

    /// Ends the stream at exactly `total_samples`: audio past that point is
    /// cut off, and a stream that ended early is padded with silence (counted
    /// as missing, like any other gap).
    pub fn finish(mut self, total_samples: u64) -> CapturedAudio {
        let total_samples = total_samples.min(self.max_samples);
        let held = self.len();
        if held < total_samples {
            self.gaps.push(held..total_samples);
        }
        self.audio.resize(total_samples as usize, SILENCE);
        let open: u64 = self.gaps.iter().map(|gap| gap.end.min(total_samples).saturating_sub(gap.start)).sum();
        let missing_samples = (self.settled_missing + open).min(total_samples);
        CapturedAudio { ulaw: self.audio, missing_samples, stats: self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;
    const SSRC: u32 = 0x1234;

    /// A 20 ms frame whose bytes all carry the frame's number.
    fn frame(n: u8) -> [u8; FRAME] {
        [n; FRAME]
    }

    fn buffer() -> StreamBuffer {
        StreamBuffer::new(10 * 60 * 8000, 8000)
    }

    /// Places frame `n` of a stream whose first timestamp is `base`, arriving on time.
    fn place(buffer: &mut StreamBuffer, base: u32, n: u32) -> Placement {
        let offset = n * FRAME as u32;
        buffer.place(SSRC, base.wrapping_add(offset), &frame(n as u8), u64::from(offset))
    }

    fn frames_of(audio: &[u8]) -> Vec<u8> {
        audio.chunks(FRAME).map(|chunk| chunk[0]).collect()
    }

    #[test]
    fn in_order_packets_are_appended() {
        let mut buffer = buffer();
        for n in 0..5 {
            assert_eq!(place(&mut buffer, 1000, n), Placement::Appended);
        }
        let audio = buffer.finish(5 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, 2, 3, 4]);
        assert_eq!(audio.missing_samples, 0);
        assert_eq!(audio.stats.packets, 5);
    }

    #[test]
    fn lost_packets_become_silence_and_are_counted() {
        let mut buffer = buffer();
        for n in [0, 1, 4, 5] {
            place(&mut buffer, 0, n);
        }
        let audio = buffer.finish(6 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, SILENCE, SILENCE, 4, 5]);
        assert_eq!(audio.missing_samples, 2 * FRAME as u64);
    }

    #[test]
    fn late_packets_fill_their_gap() {
        let mut buffer = buffer();
        for n in [0, 3, 1, 4, 2] {
            place(&mut buffer, 50, n);
        }
        let stats = buffer.stats();
        assert_eq!(stats.late, 2);
        let audio = buffer.finish(5 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, 2, 3, 4]);
        assert_eq!(audio.missing_samples, 0);
    }

    #[test]
    fn a_late_packet_can_fill_the_middle_of_a_long_gap() {
        let mut buffer = buffer();
        for n in [0, 5, 2] {
            place(&mut buffer, 0, n);
        }
        let audio = buffer.finish(6 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, SILENCE, 2, SILENCE, SILENCE, 5]);
        assert_eq!(audio.missing_samples, 3 * FRAME as u64);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        place(&mut buffer, 0, 1);
        // Same timestamp, other bytes: the first copy wins.
        assert_eq!(buffer.place(SSRC, FRAME as u32, &frame(99), FRAME as u64), Placement::Duplicate);
        place(&mut buffer, 0, 3);
        place(&mut buffer, 0, 2);
        assert_eq!(place(&mut buffer, 0, 2), Placement::Duplicate);
        assert_eq!(buffer.stats().duplicates, 2);
        let audio = buffer.finish(4 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, 2, 3]);
    }

    #[test]
    fn timestamp_wrap_is_seamless() {
        let mut buffer = buffer();
        let base = u32::MAX - 2 * FRAME as u32 + 1; // wraps between frames 1 and 2
        for n in [0, 1, 3, 2, 4] {
            place(&mut buffer, base, n);
        }
        let audio = buffer.finish(5 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, 2, 3, 4]);
        assert_eq!(audio.missing_samples, 0);
    }

    #[test]
    fn a_packet_from_before_the_first_is_dropped() {
        let mut buffer = buffer();
        place(&mut buffer, 10_000, 0);
        assert_eq!(buffer.place(SSRC, 10_000 - FRAME as u32, &frame(7), 0), Placement::BeforeStart);
        assert_eq!(buffer.stats().before_start, 1);
    }

    #[test]
    fn a_new_ssrc_continues_where_the_wall_clock_says() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        place(&mut buffer, 0, 1);
        // A new source with unrelated timestamps, arriving one frame later than due.
        let arrival = 3 * FRAME as u64;
        buffer.place(SSRC + 1, 777_777, &frame(3), arrival);
        buffer.place(SSRC + 1, 777_777 + FRAME as u32, &frame(4), arrival + FRAME as u64);
        let audio = buffer.finish(5 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, SILENCE, 3, 4]);
        assert_eq!(audio.stats.resyncs, 1);
    }

    #[test]
    fn a_timestamp_jump_does_not_blow_up_the_buffer() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        // An hour ahead in RTP time, but it arrived right on time.
        buffer.place(SSRC, 8000 * 3600, &frame(1), FRAME as u64);
        assert_eq!(buffer.len(), 2 * FRAME as u64);
        assert_eq!(buffer.stats().resyncs, 1);
    }

    #[test]
    fn finish_trims_to_the_wall_clock_length() {
        let mut buffer = buffer();
        for n in 0..10 {
            place(&mut buffer, 0, n);
        }
        let audio = buffer.finish(1000);
        assert_eq!(audio.ulaw.len(), 1000);
        assert_eq!(audio.missing_samples, 0);
    }

    #[test]
    fn finish_pads_a_short_stream_and_counts_the_padding() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        let audio = buffer.finish(800);
        assert_eq!(audio.ulaw.len(), 800);
        assert!(audio.ulaw[FRAME..].iter().all(|&b| b == SILENCE));
        assert_eq!(audio.missing_samples, 800 - FRAME as u64);
    }

    #[test]
    fn a_gap_past_the_end_is_not_counted_as_missing() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        place(&mut buffer, 0, 5);
        let audio = buffer.finish(2 * FRAME as u64);
        assert_eq!(audio.missing_samples, FRAME as u64);
    }

    #[test]
    fn the_length_limit_holds() {
        let mut buffer = StreamBuffer::new(2 * FRAME as u64 + 10, 0);
        place(&mut buffer, 0, 0);
        place(&mut buffer, 0, 1);
        assert_eq!(place(&mut buffer, 0, 2), Placement::Appended);
        assert_eq!(place(&mut buffer, 0, 3), Placement::Overflow);
        assert_eq!(buffer.len(), 2 * FRAME as u64 + 10);
        assert_eq!(buffer.finish(u64::MAX).ulaw.len(), 2 * FRAME + 10);
    }

    #[test]
    fn odd_sized_packets_are_placed_by_timestamp() {
        let mut buffer = buffer();
        buffer.place(SSRC, 0, &[1; 80], 0);
        buffer.place(SSRC, 240, &[3; 80], 240);
        buffer.place(SSRC, 80, &[2; 160], 80);
        let audio = buffer.finish(320);
        assert!(audio.ulaw[..80].iter().all(|&b| b == 1));
        assert!(audio.ulaw[80..240].iter().all(|&b| b == 2));
        assert!(audio.ulaw[240..].iter().all(|&b| b == 3));
        assert_eq!(audio.missing_samples, 0);
    }

    #[test]
    fn a_receiver_that_stalled_still_places_every_packet_by_timestamp() {
        let mut buffer = buffer();
        for n in 0..5 {
            place(&mut buffer, 0, n);
        }
        // Two seconds without a turn, then the queued packets all at once.
        let drained_at = 105 * FRAME as u64;
        for n in 5..105u32 {
            let placed = buffer.place(SSRC, n * FRAME as u32, &frame(n as u8), drained_at);
            assert_eq!(placed, Placement::Appended, "frame {n}");
        }
        place(&mut buffer, 0, 105);
        let audio = buffer.finish(106 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), (0..106).map(|n| n as u8).collect::<Vec<_>>());
        assert_eq!(audio.missing_samples, 0);
        assert_eq!(audio.stats.resyncs, 0);
    }

    #[test]
    fn a_timestamp_far_behind_the_newest_is_a_jump_not_a_late_packet() {
        let mut buffer = buffer();
        for n in 0..100 {
            place(&mut buffer, 100_000, n);
        }
        // The stream goes on from a timestamp five seconds back, on time:
        // it continues the recording instead of being dropped as duplicates.
        let jumped = 100_000 + 100 * FRAME as u32 - 5 * 8000;
        for k in 0..3u32 {
            let arrival = u64::from(100 + k) * FRAME as u64;
            let placed = buffer.place(SSRC, jumped + k * FRAME as u32, &frame(200 + k as u8), arrival);
            assert_eq!(placed, Placement::Appended, "packet {k} after the jump");
        }
        let audio = buffer.finish(103 * FRAME as u64);
        assert_eq!(&frames_of(&audio.ulaw)[99..], &[99, 200, 201, 202]);
        assert_eq!(audio.stats.resyncs, 1);
    }

    #[test]
    fn open_gaps_stay_few_in_a_long_lossy_stream() {
        let mut buffer = StreamBuffer::new(u64::MAX, 0);
        let frames = 3 * 60 * 50; // three minutes, every tenth packet lost
        for n in (0..frames).filter(|n| n % 10 != 5) {
            let offset = n * FRAME as u32;
            buffer.place(SSRC, offset, &[1; FRAME], u64::from(offset));
            assert!(buffer.gaps.len() <= 11, "{} open gaps at frame {n}", buffer.gaps.len());
        }
        let audio = buffer.finish(u64::from(frames) * FRAME as u64);
        assert_eq!(audio.missing_samples, u64::from(frames / 10) * FRAME as u64);
    }
}
