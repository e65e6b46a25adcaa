//! Recording buffer (one per media stream): where captured audio lives until delivery. Media capture
//! hands it each RTP payload; it places the bytes by RTP timestamp into a
//! growing μ-law buffer (in one-second blocks, see `chunks`), fills gaps with silence, lets late packets fill their
//! gap, drops duplicates and stale copies, survives timestamp wrap, and at the
//! end is cut or padded to the wall-clock length of the recording.
//!
//! Positions are in samples (one μ-law byte each) from the first packet.
//! Nothing here reads a clock or allocates per packet in the steady state.

use std::ops::Range;

use super::chunks::Chunks;
use super::Mask;
use crate::ulaw::SAMPLE_RATE;

/// A packet newer than all before it may claim to be at most this far ahead
/// of where the wall clock puts it; further is a jump (a new SSRC, a bogus
/// header) and the stream is re-anchored at the packet's arrival. Being
/// behind the wall clock is fine for such a packet: it is what a receiver
/// that was not scheduled for a while sees, and its timestamp is right.
pub const MAX_AHEAD_SAMPLES: i64 = SAMPLE_RATE as i64;
/// A packet older than the newest may be at most this far behind it to fill
/// its gap; further back it is either a backward jump of the stream or a stale
/// copy, which the sequence number tells apart (see `Placement::Stale`).
pub const MAX_REORDER_SAMPLES: i64 = SAMPLE_RATE as i64;
/// Stale-looking packets in a row, each continuing the last one's sequence,
/// that are taken for a restarted sender instead (200 ms of audio).
const STALE_RUN_RESYNC: u32 = 10;
/// Gaps ending this far before the end of the buffer can no longer be filled
/// by a late packet: they are only counted from then on, which keeps the
/// list of open gaps short however lossy a long recording is.
const SETTLED_AFTER_SAMPLES: u64 = 2 * MAX_REORDER_SAMPLES as u64;
/// Settled gaps whose place is remembered (16 bytes each).
const MAX_SETTLED_RANGES: usize = 65_536;

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
    /// Its timestamp is more than `MAX_REORDER_SAMPLES` behind the newest and
    /// its sequence number is at or behind the newest's: an old copy that
    /// arrived far too late (a retransmission, a duplicating network path),
    /// not a stream that jumped back. Dropped, so it cannot be spliced in at
    /// the end.
    Stale,
    /// Carried no audio; ignored without touching the clock.
    Empty,
    /// The recording is at its length limit.
    Overflow,
}

/// Counters a stream keeps about its packets, reported with the recording
/// (its metadata's `rtp`), so that a bad recording explains itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamStats {
    /// Packets with audio handed to the buffer, whatever became of them.
    pub packets: u64,
    pub late: u64,
    pub duplicates: u64,
    pub before_start: u64,
    /// Stale copies dropped (see `Placement::Stale`).
    pub stale: u64,
    /// Packets without audio; not counted in `packets`.
    pub empty: u64,
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
    /// Where that silence is, in order.
    pub missing: Vec<Range<u64>>,
    pub stats: StreamStats,
}

/// Maps a stream's 32-bit RTP timestamps onto buffer positions.
#[derive(Debug, Clone, Copy)]
struct RtpClock {
    ssrc: u32,
    /// The newest timestamp seen, and its 64-bit extension.
    newest: u32,
    newest_extended: i64,
    /// The sequence number of the packet that carried the newest timestamp.
    newest_sequence: u16,
    /// The extended timestamp of buffer position 0.
    origin: i64,
}

impl RtpClock {
    fn anchored(ssrc: u32, sequence: u16, timestamp: u32, position: i64) -> Self {
        RtpClock {
            ssrc,
            newest: timestamp,
            newest_extended: i64::from(timestamp),
            newest_sequence: sequence,
            origin: i64::from(timestamp) - position,
        }
    }

    /// The buffer position of `timestamp`, taking the shorter way around the
    /// 32-bit circle from the newest timestamp (so wrap is seamless), and how
    /// far behind the newest timestamp it is (0 for a new newest).
    fn locate(&mut self, sequence: u16, timestamp: u32) -> (i64, i64) {
        let extended = self.newest_extended + i64::from(timestamp.wrapping_sub(self.newest) as i32);
        let behind = (self.newest_extended - extended).max(0);
        if extended > self.newest_extended {
            self.newest = timestamp;
            self.newest_extended = extended;
            self.newest_sequence = sequence;
        }
        (extended - self.origin, behind)
    }

    /// Whether `sequence` continues the stream past the packet with the
    /// newest timestamp, taking the shorter way around the 16-bit circle. A
    /// stream that jumps back in time still counts its packets onwards; an
    /// old copy of a packet carries a number at or behind the newest's.
    /// Any distance ahead counts, not only a few lost packets: were a long
    /// outage to end in a backward jump, a bounded window would take every
    /// packet after it for stale, and the rest of the recording would be lost.
    fn continues_sequence(&self, sequence: u16) -> bool {
        sequence.wrapping_sub(self.newest_sequence) as i16 > 0
    }
}

/// The in-memory μ-law audio of one media stream of a recording.
#[derive(Debug)]
pub struct StreamBuffer {
    audio: Chunks,
    clock: Option<RtpClock>,
    /// Sample ranges filled with silence that a late packet may still fill,
    /// in order; only those near the end of the buffer.
    gaps: Vec<Range<u64>>,
    /// Samples of silence in gaps too old to be filled any more.
    settled_missing: u64,
    /// Where those gaps are, so that silence callrec inserted is never taken
    /// for silence Asterisk sent; at most `MAX_SETTLED_RANGES`, the last one
    /// widened beyond that (it may then span audio too).
    settled: Vec<Range<u64>>,
    /// The last stale packet's sequence number and how many stale packets
    /// in a row, with nothing in step between them, have continued each
    /// other's sequence up to it.
    stale_run: (u16, u32),
    max_samples: u64,
    stats: StreamStats,
}

impl StreamBuffer {
    /// A buffer that holds at most `max_samples`; it takes memory a second
    /// at a time as audio comes.
    pub fn new(max_samples: u64) -> Self {
        StreamBuffer {
            audio: Chunks::new(),
            clock: None,
            gaps: Vec::new(),
            settled_missing: 0,
            settled: Vec::new(),
            stale_run: (0, 0),
            max_samples,
            stats: StreamStats::default(),
        }
    }

    /// The memory its audio takes (whole blocks, not only what is filled).
    pub fn held_bytes(&self) -> u64 {
        self.audio.held_bytes()
    }

    /// Samples held so far.
    pub fn len(&self) -> u64 {
        self.audio.len()
    }

    pub fn is_empty(&self) -> bool {
        self.audio.is_empty()
    }

    /// Whether every sample before `end` is held, with no gap before it that
    /// a late packet could still fill.
    pub fn holds_up_to(&self, end: u64) -> bool {
        self.len() >= end.min(self.max_samples) && self.gaps.first().is_none_or(|gap| gap.start >= end)
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Places one packet's payload. `arrival` is the sample position the wall
    /// clock gives the packet's arrival (0 for the first packet); `sequence`,
    /// the RTP sequence number, tells a stale copy from a backward jump.
    pub fn place(&mut self, ssrc: u32, sequence: u16, timestamp: u32, payload: &[u8], arrival: u64) -> Placement {
        self.place_masked(ssrc, sequence, timestamp, payload, arrival as i64, &Mask::CLEAR)
    }

    /// Places one packet's payload as `place` does, writing silence instead
    /// of every sample `mask` covers. `arrival` may be negative: a packet
    /// that came before the recording began (while another stream of it was
    /// still awaited) anchors the stream's clock, and its tail, the part from
    /// sample 0 on, is kept.
    pub fn place_masked(
        &mut self,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        payload: &[u8],
        arrival: i64,
        mask: &Mask,
    ) -> Placement {
        // Checked before the clock: a packet without audio says nothing about
        // where audio belongs, so it must neither anchor nor advance it.
        if payload.is_empty() {
            self.stats.empty += 1;
            return Placement::Empty;
        }
        self.stats.packets += 1;
        let position = match &mut self.clock {
            None => {
                self.clock = Some(RtpClock::anchored(ssrc, sequence, timestamp, arrival));
                arrival
            }
            Some(clock) if clock.ssrc == ssrc => {
                let (position, behind_newest) = clock.locate(sequence, timestamp);
                if behind_newest == 0 {
                    if position - arrival <= MAX_AHEAD_SAMPLES {
                        position
                    } else {
                        self.resync(ssrc, sequence, timestamp, arrival)
                    }
                } else if behind_newest <= MAX_REORDER_SAMPLES {
                    position
                } else if clock.continues_sequence(sequence) || self.stale_run_continues(sequence) {
                    self.resync(ssrc, sequence, timestamp, arrival)
                } else {
                    self.stats.stale += 1;
                    return Placement::Stale;
                }
            }
            Some(_) => self.resync(ssrc, sequence, timestamp, arrival),
        };
        // A run of stale packets counts only while nothing in step comes between.
        self.stale_run = (0, 0);
        if position + payload.len() as i64 <= 0 {
            self.stats.before_start += 1;
            return Placement::BeforeStart;
        }
        let tail = &payload[(-position).max(0) as usize..];
        let placement = self.write(position.max(0) as u64, tail, mask);
        match placement {
            Placement::FilledGap => self.stats.late += 1,
            Placement::Duplicate => self.stats.duplicates += 1,
            Placement::Overflow => self.stats.overflow += 1,
            Placement::Appended | Placement::BeforeStart | Placement::Stale | Placement::Empty => {}
        }
        placement
    }

    /// Notes one more stale-looking packet; true once `STALE_RUN_RESYNC` of
    /// them in a row continue each other's sequence: that is a sender that
    /// restarted both its numbering and its clock further back, not copies,
    /// and the stream must go on from it rather than be dropped to the end.
    fn stale_run_continues(&mut self, sequence: u16) -> bool {
        let (last, run) = self.stale_run;
        let run = if run > 0 && sequence == last.wrapping_add(1) { run + 1 } else { 1 };
        self.stale_run = (sequence, run);
        run >= STALE_RUN_RESYNC
    }

    /// Re-anchors the clock so that this packet lands at its arrival, or
    /// right after what is already held if that is later.
    fn resync(&mut self, ssrc: u32, sequence: u16, timestamp: u32, arrival: i64) -> i64 {
        self.stats.resyncs += 1;
        let position = arrival.max(self.audio.len() as i64);
        self.clock = Some(RtpClock::anchored(ssrc, sequence, timestamp, position));
        position
    }

    /// Copies a non-empty payload to `position`; an empty write would read as
    /// `Overflow`, which is why `place` turns empty payloads away first.
    fn write(&mut self, position: u64, payload: &[u8], mask: &Mask) -> Placement {
        let end = (position + payload.len() as u64).min(self.max_samples);
        if position >= end {
            return Placement::Overflow;
        }
        let payload = &payload[..(end - position) as usize];
        let held = self.len();
        if position >= held {
            if position > held {
                self.gaps.push(held..position);
                self.audio.grow_to(position);
            }
            self.append(position, payload, mask);
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
            self.audio.write(from, source, |target, source, at| mask.copy(target, source, at));
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
            self.append(held, &payload[(held - position) as usize..], mask);
            return Placement::Appended;
        }
        if filled {
            Placement::FilledGap
        } else {
            Placement::Duplicate
        }
    }

    /// Adds `payload` at the end, which is sample `position`.
    fn append(&mut self, position: u64, payload: &[u8], mask: &Mask) {
        self.audio.grow_to(position + payload.len() as u64);
        self.audio.write(position, payload, |target, source, at| mask.copy(target, source, at));
    }

    /// Silences everything held from sample `from` on: a pause that reached
    /// the media task after audio it covers had already arrived.
    pub fn blank_from(&mut self, from: u64) {
        self.audio.silence_from(from);
    }

    /// Counts and forgets the gaps no late packet can reach any more.
    fn settle_old_gaps(&mut self) {
        let horizon = self.len().saturating_sub(SETTLED_AFTER_SAMPLES);
        let settled = self.gaps.iter().take_while(|gap| gap.end <= horizon).count();
        for gap in self.gaps.drain(..settled) {
            self.settled_missing += gap.end - gap.start;
            let full = self.settled.len() >= MAX_SETTLED_RANGES;
            match self.settled.last_mut() {
                Some(last) if full || last.end == gap.start => last.end = gap.end,
                _ => self.settled.push(gap),
            }
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
        let open: u64 = self.gaps.iter().map(|gap| gap.end.min(total_samples).saturating_sub(gap.start)).sum();
        // Settled gaps are cut off with the audio past the end too.
        let cut_off: u64 = self.settled.iter().map(|gap| gap.end - total_samples.clamp(gap.start, gap.end)).sum();
        let missing_samples = (self.settled_missing.saturating_sub(cut_off) + open).min(total_samples);
        let missing = self
            .settled
            .into_iter()
            .chain(self.gaps)
            .map(|gap| gap.start..gap.end.min(total_samples))
            .filter(|gap| !gap.is_empty())
            .collect();
        CapturedAudio { ulaw: self.audio.into_vec(total_samples), missing_samples, missing, stats: self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ulaw::SILENCE;

    const FRAME: usize = 160;
    const SSRC: u32 = 0x1234;

    /// A 20 ms frame whose bytes all carry the frame's number.
    fn frame(n: u8) -> [u8; FRAME] {
        [n; FRAME]
    }

    fn buffer() -> StreamBuffer {
        StreamBuffer::new(10 * 60 * 8000)
    }

    /// Places frame `n` of a stream whose first timestamp is `base`, arriving
    /// on time; its sequence number is `n` too.
    fn place(buffer: &mut StreamBuffer, base: u32, n: u32) -> Placement {
        let offset = n * FRAME as u32;
        buffer.place(SSRC, n as u16, base.wrapping_add(offset), &frame(n as u8), u64::from(offset))
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
    fn a_buffer_holds_up_to_an_end_only_once_no_gap_before_it_is_open() {
        let frames = |n: u64| n * FRAME as u64;
        let mut buffer = buffer();
        assert!(buffer.holds_up_to(0));
        for n in [0, 1, 3] {
            place(&mut buffer, 7, n);
        }
        assert!(buffer.holds_up_to(frames(2)));
        assert!(!buffer.holds_up_to(frames(3)), "frame 2 may still come");
        assert!(!buffer.holds_up_to(frames(5)), "frame 4 has not come");
        place(&mut buffer, 7, 2);
        assert!(buffer.holds_up_to(frames(4)));
        assert!(!buffer.holds_up_to(frames(4) + 1));
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
        assert_eq!(buffer.place(SSRC, 1, FRAME as u32, &frame(99), FRAME as u64), Placement::Duplicate);
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
        assert_eq!(buffer.place(SSRC, u16::MAX, 10_000 - FRAME as u32, &frame(7), 0), Placement::BeforeStart);
        assert_eq!(buffer.stats().before_start, 1);
    }

    #[test]
    fn a_packet_from_before_the_recording_began_anchors_the_clock_and_keeps_its_tail() {
        let mut buffer = buffer();
        // It arrived 5 ms (40 samples) before the recording's first sample.
        assert_eq!(buffer.place_masked(SSRC, 1, 1000, &frame(1), -40, &Mask::CLEAR), Placement::Appended);
        assert_eq!(buffer.len(), 120);
        assert_eq!(buffer.place(SSRC, 2, 1000 + FRAME as u32, &frame(2), 120), Placement::Appended);
        let audio = buffer.finish(280);
        assert_eq!(audio.ulaw[..120], [1; 120]);
        assert_eq!(audio.ulaw[120..], [2; FRAME]);
        assert_eq!(audio.missing_samples, 0);
        // One that ends before sample 0 is dropped.
        assert_eq!(buffer_with_before_start(), Placement::BeforeStart);
    }

    fn buffer_with_before_start() -> Placement {
        buffer().place_masked(SSRC, 1, 1000, &frame(1), -(FRAME as i64), &Mask::CLEAR)
    }

    #[test]
    fn a_new_ssrc_continues_where_the_wall_clock_says() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        place(&mut buffer, 0, 1);
        // A new source with unrelated timestamps, arriving one frame later than due.
        let arrival = 3 * FRAME as u64;
        buffer.place(SSRC + 1, 9000, 777_777, &frame(3), arrival);
        buffer.place(SSRC + 1, 9001, 777_777 + FRAME as u32, &frame(4), arrival + FRAME as u64);
        let audio = buffer.finish(5 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1, SILENCE, 3, 4]);
        assert_eq!(audio.stats.resyncs, 1);
    }

    #[test]
    fn a_timestamp_jump_does_not_blow_up_the_buffer() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        // An hour ahead in RTP time, but it arrived right on time.
        buffer.place(SSRC, 1, 8000 * 3600, &frame(1), FRAME as u64);
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
    fn a_settled_gap_cut_off_at_the_end_is_not_counted_past_it() {
        let mut buffer = buffer();
        place(&mut buffer, 0, 0);
        // A gap of 160..2000, then one up to 20_000 that settles the first.
        buffer.place(SSRC, 1, 2000, &frame(1), 2000);
        buffer.place(SSRC + 1, 2, 0, &frame(2), 20_000);
        assert_eq!(buffer.settled, vec![160..2000]);
        // The recording ends inside the settled gap.
        let audio = buffer.finish(1000);
        assert_eq!(audio.missing, vec![160..1000]);
        assert_eq!(audio.missing_samples, 840);
    }

    #[test]
    fn the_length_limit_holds() {
        let mut buffer = StreamBuffer::new(2 * FRAME as u64 + 10);
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
        buffer.place(SSRC, 0, 0, &[1; 80], 0);
        buffer.place(SSRC, 2, 240, &[3; 80], 240);
        buffer.place(SSRC, 1, 80, &[2; 160], 80);
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
            let placed = buffer.place(SSRC, n as u16, n * FRAME as u32, &frame(n as u8), drained_at);
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
        // The stream goes on from a timestamp five seconds back, on time and
        // with the next sequence numbers: it continues the recording instead
        // of being dropped as duplicates or stale.
        let jumped = 100_000 + 100 * FRAME as u32 - 5 * 8000;
        for k in 0..3u32 {
            let arrival = u64::from(100 + k) * FRAME as u64;
            let sequence = (100 + k) as u16;
            let placed = buffer.place(SSRC, sequence, jumped + k * FRAME as u32, &frame(200 + k as u8), arrival);
            assert_eq!(placed, Placement::Appended, "packet {k} after the jump");
        }
        let audio = buffer.finish(103 * FRAME as u64);
        assert_eq!(&frames_of(&audio.ulaw)[99..], &[99, 200, 201, 202]);
        assert_eq!(audio.stats.resyncs, 1);
    }

    #[test]
    fn a_stale_copy_far_behind_the_newest_is_dropped_not_spliced_in() {
        let mut buffer = buffer();
        for n in 0..200 {
            place(&mut buffer, 0, n);
        }
        // An old copy of frame 50 turns up three seconds late, right after
        // frame 199: same SSRC, its own (old) sequence number and timestamp.
        let arrival = 200 * FRAME as u64;
        assert_eq!(buffer.place(SSRC, 50, 50 * FRAME as u32, &frame(50), arrival), Placement::Stale);
        assert_eq!(place(&mut buffer, 0, 200), Placement::Appended);
        let audio = buffer.finish(201 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), (0..=200).map(|n| n as u8).collect::<Vec<_>>());
        assert_eq!(audio.missing_samples, 0);
        assert_eq!(audio.stats.stale, 1);
        assert_eq!(audio.stats.resyncs, 0);
    }

    #[test]
    fn a_backward_jump_is_told_from_a_stale_copy_across_sequence_wrap_and_loss() {
        let mut buffer = buffer();
        let base = 100_000u32;
        // Frames 0..199 numbered up to 65535, the last number before the wrap.
        let first_sequence = u16::MAX - 199;
        let place_numbered = |buffer: &mut StreamBuffer, n: u32, sequence: u16, timestamp: u32, arrival: u32| {
            buffer.place(SSRC, sequence, timestamp, &frame(n as u8), u64::from(arrival * FRAME as u32))
        };
        for n in 0..200 {
            place_numbered(&mut buffer, n, first_sequence.wrapping_add(n as u16), base + n * FRAME as u32, n);
        }
        // A stale copy of frame 64 (number 65400), three seconds late.
        let stale = place_numbered(&mut buffer, 64, 65400, base + 64 * FRAME as u32, 200);
        assert_eq!(stale, Placement::Stale);
        // Ten packets lost, then the stream goes on from five seconds back in
        // RTP time, numbered on past the wrap: a jump, re-anchored at arrival.
        let jumped = base + 210 * FRAME as u32 - 5 * 8000;
        for k in 0..3u32 {
            let sequence = first_sequence.wrapping_add(210 + k as u16);
            assert!(sequence < 20, "numbers wrapped");
            let placed = place_numbered(&mut buffer, 210 + k, sequence, jumped + k * FRAME as u32, 210 + k);
            assert_eq!(placed, Placement::Appended, "frame {} after the jump", 210 + k);
        }
        let audio = buffer.finish(213 * FRAME as u64);
        let frames = frames_of(&audio.ulaw);
        assert_eq!(&frames[199..201], &[199, SILENCE]);
        assert!(frames[200..210].iter().all(|&f| f == SILENCE));
        assert_eq!(&frames[210..], &[210, 211, 212]);
        assert_eq!(audio.missing_samples, 10 * FRAME as u64);
        assert_eq!(audio.stats.stale, 1);
        assert_eq!(audio.stats.resyncs, 1);
    }

    #[test]
    fn an_empty_packet_neither_anchors_nor_moves_the_clock() {
        let mut buffer = buffer();
        // Before any audio, with a timestamp unrelated to the stream's.
        assert_eq!(buffer.place(SSRC, 500, 4_000_000, &[], 0), Placement::Empty);
        place(&mut buffer, 0, 0);
        // An hour ahead: were it placed, this would re-anchor the stream.
        assert_eq!(buffer.place(SSRC, 1, 8000 * 3600, &[], FRAME as u64), Placement::Empty);
        place(&mut buffer, 0, 1);
        let stats = buffer.stats();
        assert_eq!((stats.empty, stats.packets, stats.overflow, stats.resyncs), (2, 2, 0, 0));
        let audio = buffer.finish(2 * FRAME as u64);
        assert_eq!(frames_of(&audio.ulaw), vec![0, 1]);
    }

    #[test]
    fn an_empty_packet_at_the_length_limit_is_not_an_overflow() {
        let mut buffer = StreamBuffer::new(FRAME as u64);
        place(&mut buffer, 0, 0);
        assert_eq!(buffer.place(SSRC, 1, FRAME as u32, &[], FRAME as u64), Placement::Empty);
        assert_eq!(buffer.stats().overflow, 0);
        assert_eq!(place(&mut buffer, 0, 1), Placement::Overflow);
        assert_eq!(buffer.stats().overflow, 1);
    }

    #[test]
    fn open_gaps_stay_few_in_a_long_lossy_stream() {
        let mut buffer = StreamBuffer::new(u64::MAX);
        let frames = 3 * 60 * 50; // three minutes, every tenth packet lost
        for n in (0..frames).filter(|n| n % 10 != 5) {
            let offset = n * FRAME as u32;
            buffer.place(SSRC, n as u16, offset, &[1; FRAME], u64::from(offset));
            assert!(buffer.gaps.len() <= 11, "{} open gaps at frame {n}", buffer.gaps.len());
        }
        let audio = buffer.finish(u64::from(frames) * FRAME as u64);
        assert_eq!(audio.missing_samples, u64::from(frames / 10) * FRAME as u64);
    }

    #[test]
    fn a_sender_that_restarts_numbering_and_clock_further_back_is_followed_after_a_short_run() {
        let mut buffer = buffer();
        for n in 0..200 {
            place(&mut buffer, 500_000, n);
        }
        // The same SSRC starts over five seconds back in RTP time and a
        // thousand back in sequence, arriving on time from frame 200 on.
        let (restart_ts, restart_seq) = (500_000 + 200 * FRAME as u32 - 40_000, 199u16.wrapping_sub(1000));
        let placements: Vec<Placement> = (0..20u32)
            .map(|k| {
                let arrival = u64::from(200 + k) * FRAME as u64;
                let sequence = restart_seq.wrapping_add(k as u16);
                buffer.place(SSRC, sequence, restart_ts + k * FRAME as u32, &frame(k as u8 + 100), arrival)
            })
            .collect();
        let stale = usize::try_from(STALE_RUN_RESYNC).unwrap() - 1;
        assert!(placements[..stale].iter().all(|p| *p == Placement::Stale), "{placements:?}");
        assert!(placements[stale..].iter().all(|p| *p == Placement::Appended), "{placements:?}");
        let audio = buffer.finish(220 * FRAME as u64);
        let frames = frames_of(&audio.ulaw);
        assert_eq!(frames[200..200 + stale], vec![SILENCE; stale][..], "the run's first packets were dropped");
        assert_eq!(frames[200 + stale..], (stale as u8 + 100..120).collect::<Vec<u8>>()[..]);
        assert_eq!(audio.stats.resyncs, 1);
    }
}

/// Property tests: packets as a lossy, reordering, duplicating network with
/// wrapping sequence numbers and timestamps delivers them, and as nothing
/// sane ever would.
///
/// "No sample is written twice" is checked on the buffer's own `audio`
/// between placements (this module's tests may read it): every delivery
/// carries bytes of its own value, none of them `SILENCE`, so what each
/// placement changed is visible. The public API alone (`finish`) shows the
/// outcome, and that is checked as well: the track has the length asked
/// for, and its silence is exactly the `missing` ranges callrec reports
/// (plus what a mask covers), no more and no less.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::ulaw::SILENCE;

    /// Deliveries carry their index as their bytes: at most this many, so
    /// that none is `SILENCE`.
    const MAX_DELIVERIES: usize = SILENCE as usize;

    /// One packet as it reaches the buffer; its payload is `len` bytes.
    #[derive(Debug, Clone)]
    struct Delivery {
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
        len: usize,
        arrival: i64,
    }

    /// What the network does to one frame of the sender's.
    #[derive(Debug, Clone)]
    struct Frame {
        len: usize,
        /// 0..10 lost, 10..20 sent twice, 20..30 held back `delay` frames.
        fate: u8,
        delay: usize,
        /// How late (or, negative, early) it arrives against the wall clock.
        jitter: i64,
    }

    /// Something the sender does from frame `at` on.
    #[derive(Debug, Clone)]
    enum Turn {
        /// Its timestamps jump (a bogus header, a restarted clock).
        Jump { at: usize, by: i32 },
        /// It restarts its sequence numbers.
        Renumber { at: usize, by: u16 },
        /// A new SSRC, with its own timestamps.
        NewSource { at: usize, timestamp: u32 },
        /// An old copy of frame `of` turns up after frame `after`.
        StaleCopy { of: usize, after: usize },
    }

    fn near_wrap_u32() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (0u32..20_000).prop_map(|d| u32::MAX - d)]
    }

    fn near_wrap_u16() -> impl Strategy<Value = u16> {
        prop_oneof![any::<u16>(), (0u16..100).prop_map(|d| u16::MAX - d)]
    }

    fn frame() -> impl Strategy<Value = Frame> {
        (prop_oneof![Just(160usize), 0usize..400], 0u8..100, 1usize..8, -400i64..3000)
            .prop_map(|(len, fate, delay, jitter)| Frame { len, fate, delay, jitter })
    }

    fn turn() -> impl Strategy<Value = Turn> {
        prop_oneof![
            (0usize..120, any::<i32>()).prop_map(|(at, by)| Turn::Jump { at, by }),
            (0usize..120, -20_000i32..20_000).prop_map(|(at, by)| Turn::Jump { at, by }),
            (0usize..120, any::<u16>()).prop_map(|(at, by)| Turn::Renumber { at, by }),
            (0usize..120, any::<u32>()).prop_map(|(at, timestamp)| Turn::NewSource { at, timestamp }),
            (0usize..120, 0usize..120).prop_map(|(of, after)| Turn::StaleCopy { of, after }),
        ]
    }

    /// A sender's stream of consecutive frames of 0..400 samples, numbered
    /// and stamped on from values near their wrap as often as not, as the
    /// network delivers it.
    fn stream() -> impl Strategy<Value = Vec<Delivery>> {
        (near_wrap_u32(), near_wrap_u16(), prop::collection::vec(frame(), 1..120), prop::collection::vec(turn(), 0..4))
            .prop_map(|(first_timestamp, first_sequence, frames, turns)| {
                // What the sender put on each frame, and when it was due.
                let mut sent = Vec::with_capacity(frames.len());
                let (mut ssrc, mut timestamp, mut sequence, mut due) = (7u32, first_timestamp, first_sequence, 0i64);
                for (n, frame) in frames.iter().enumerate() {
                    for turn in &turns {
                        match *turn {
                            Turn::Jump { at, by } if at == n => timestamp = timestamp.wrapping_add_signed(by),
                            Turn::Renumber { at, by } if at == n => sequence = sequence.wrapping_add(by),
                            Turn::NewSource { at, timestamp: new } if at == n => (ssrc, timestamp) = (ssrc + 1, new),
                            _ => {}
                        }
                    }
                    sent.push((ssrc, sequence, timestamp, due));
                    timestamp = timestamp.wrapping_add(frame.len as u32);
                    sequence = sequence.wrapping_add(1);
                    due += frame.len as i64;
                }
                // The order they arrive in: (slot, frame).
                let mut order: Vec<(usize, usize)> = Vec::new();
                for (n, frame) in frames.iter().enumerate() {
                    match frame.fate {
                        0..10 => {}
                        10..20 => order.extend([(n, n), (n + 1, n)]),
                        20..30 => order.push((n + frame.delay, n)),
                        _ => order.push((n, n)),
                    }
                }
                for turn in &turns {
                    if let Turn::StaleCopy { of, after } = *turn {
                        if of < frames.len() {
                            order.push((after.max(of) + 1, of));
                        }
                    }
                }
                order.sort_by_key(|&(slot, _)| slot);
                order
                    .into_iter()
                    .take(MAX_DELIVERIES)
                    .map(|(slot, n)| {
                        let (ssrc, sequence, timestamp, _) = sent[n];
                        let (.., due) = sent[slot.min(sent.len() - 1)];
                        Delivery { ssrc, sequence, timestamp, len: frames[n].len, arrival: due + frames[n].jitter }
                    })
                    .collect()
            })
    }

    /// Packets with no relation to one another beyond being near each other:
    /// two sources, sequence numbers and timestamps scattered around a base
    /// near their wrap, arrivals anywhere in the first five seconds.
    fn scattered() -> impl Strategy<Value = Vec<Delivery>> {
        let delivery = (1u32..3, -50i16..50, -20_000i32..20_000, 0usize..400, -1_000i64..40_000);
        (near_wrap_u32(), near_wrap_u16(), prop::collection::vec(delivery, 1..120)).prop_map(
            |(timestamp, sequence, deliveries)| {
                deliveries
                    .into_iter()
                    .map(|(ssrc, ds, dt, len, arrival)| Delivery {
                        ssrc,
                        sequence: sequence.wrapping_add_signed(ds),
                        timestamp: timestamp.wrapping_add_signed(dt),
                        len,
                        arrival,
                    })
                    .collect()
            },
        )
    }

    /// No pause, or a few pauses (the last possibly still running).
    fn mask() -> impl Strategy<Value = Mask> {
        prop_oneof![
            Just(Mask::CLEAR),
            (prop::collection::vec((0u64..30_000, 0u64..4_000), 1..4), any::<bool>()).prop_map(|(pauses, open)| {
                let mut starts: Vec<(u64, u64)> = pauses;
                starts.sort();
                let mut mask = Mask::CLEAR;
                let last = starts.len() - 1;
                for (index, (from, len)) in starts.into_iter().enumerate() {
                    mask.pause(from);
                    if !(open && index == last) {
                        mask.resume(from + len);
                    }
                }
                mask
            }),
        ]
    }

    /// Where `after` differs from `before` (over the length of the shorter).
    fn changed(before: &[u8], after: &[u8]) -> Vec<usize> {
        const CHUNK: usize = 512;
        let mut positions = Vec::new();
        let len = before.len().min(after.len());
        for (index, (old, new)) in before[..len].chunks(CHUNK).zip(after[..len].chunks(CHUNK)).enumerate() {
            if old != new {
                positions.extend((0..old.len()).filter(|&i| old[i] != new[i]).map(|i| index * CHUNK + i));
            }
        }
        positions
    }

    /// Names a placement in a failure message, formatted only then.
    struct Step<'a>(usize, &'a Delivery, Placement);

    impl std::fmt::Display for Step<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "delivery {} {:?}: {:?}", self.0, self.1, self.2)
        }
    }

    /// Places every delivery, checking each placement, then finishes the
    /// stream at `held + slack` samples (at least 0) and checks the track.
    fn place_all(deliveries: &[Delivery], max_samples: u64, mask: &Mask, slack: i64) -> Result<(), TestCaseError> {
        let mut buffer = StreamBuffer::new(max_samples);
        let mut expected = StreamStats::default();
        let mut before = Vec::new();
        let mut silence = Vec::new();
        for (index, delivery) in deliveries.iter().enumerate() {
            let tag = u8::try_from(index).unwrap();
            prop_assert_ne!(tag, SILENCE);
            let payload = vec![tag; delivery.len];
            before.clear();
            before.extend_from_slice(&buffer.audio.to_vec());
            let Delivery { ssrc, sequence, timestamp, arrival, .. } = *delivery;
            let placement = buffer.place_masked(ssrc, sequence, timestamp, &payload, arrival, mask);
            let after = &buffer.audio.to_vec();
            let step = Step(index, delivery, placement);

            prop_assert!(after.len() >= before.len(), "{step}: the buffer shrank");
            prop_assert!(after.len() as u64 <= max_samples, "{step}: past the limit");
            // What this placement wrote: samples that changed, and samples
            // it added that are not the silence of a gap.
            let mut written = changed(&before, after);
            for &position in &written {
                prop_assert_eq!(before[position], SILENCE, "{}: sample {} written twice", step, position);
            }
            if silence.len() < after.len() - before.len() {
                silence.resize(after.len() - before.len(), SILENCE);
            }
            let grown = changed(&silence, &after[before.len()..]);
            written.extend(grown.into_iter().map(|offset| before.len() + offset));
            for &position in &written {
                prop_assert_eq!(after[position], tag, "{}: sample {} holds another packet's byte", step, position);
                prop_assert!(mask.is_clear() || !mask.covers(position as u64), "{step}: masked {position} holds audio");
            }
            prop_assert!(
                written.len() <= delivery.len,
                "{step}: {} samples from {} bytes",
                written.len(),
                delivery.len
            );
            if let (Some(first), Some(last)) = (written.iter().min(), written.iter().max()) {
                prop_assert!(last - first < delivery.len, "{step}: written over {first}..={last}");
            }
            match placement {
                Placement::Empty
                | Placement::Stale
                | Placement::BeforeStart
                | Placement::Duplicate
                | Placement::Overflow => {
                    prop_assert!(before == *after, "{step}: changed the buffer")
                }
                Placement::Appended => prop_assert!(after.len() > before.len(), "{step}: did not grow"),
                Placement::FilledGap => prop_assert_eq!(after.len(), before.len(), "{}: grew", step),
            }
            if mask.is_clear() && matches!(placement, Placement::Appended | Placement::FilledGap) {
                prop_assert!(!written.is_empty(), "{step}: wrote nothing");
            }
            if mask.is_clear() && placement == Placement::Appended {
                prop_assert_eq!(after.last(), Some(&tag), "{}: the buffer does not end with it", step);
            }
            match placement {
                Placement::Empty => expected.empty += 1,
                Placement::Stale => expected.stale += 1,
                Placement::BeforeStart => expected.before_start += 1,
                Placement::Duplicate => expected.duplicates += 1,
                Placement::Overflow => expected.overflow += 1,
                Placement::FilledGap => expected.late += 1,
                Placement::Appended => {}
            }
            if placement != Placement::Empty {
                expected.packets += 1;
            }
        }
        expected.resyncs = buffer.stats().resyncs;
        prop_assert_eq!(buffer.stats(), expected);

        let total = (buffer.len() as i64 + slack).max(0) as u64;
        let audio = buffer.finish(total);
        let len = total.min(max_samples);
        prop_assert_eq!(audio.ulaw.len() as u64, len, "finished at {} samples", total);
        for pair in audio.missing.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "missing ranges out of order: {:?}", audio.missing);
        }
        for range in &audio.missing {
            prop_assert!(range.start < range.end && range.end <= len, "missing range {range:?} of {len}");
        }
        let reported: u64 = audio.missing.iter().map(|range| range.end - range.start).sum();
        prop_assert_eq!(audio.missing_samples, reported, "missing samples against {:?}", audio.missing);
        // The track's silence is exactly what is reported missing, and what
        // the mask covers: never a packet's byte inside either, never
        // unreported silence elsewhere. (Slice comparisons, not a loop over
        // samples, keep this quick in a debug build.)
        silence.resize(silence.len().max(len as usize), SILENCE);
        let masked = mask.ranges(len);
        let mut silent: Vec<Range<u64>> = audio.missing.iter().chain(&masked).cloned().collect();
        silent.sort_by_key(|range| range.start);
        let mut audible_from = 0;
        for range in silent.iter().chain([&(len..len)]) {
            let (start, end) = (range.start as usize, range.end as usize);
            prop_assert!(audio.ulaw[start..end] == silence[start..end], "audio inside missing or masked {range:?}");
            if audible_from < start {
                let audible = &audio.ulaw[audible_from..start];
                prop_assert!(!audible.contains(&SILENCE), "unreported silence in {audible_from}..{start}");
            }
            audible_from = audible_from.max(end);
        }
        Ok(())
    }

    fn max_samples() -> impl Strategy<Value = u64> {
        prop_oneof![3 => Just(10 * 60 * 8000u64), 1 => 0u64..30_000]
    }

    proptest! {
        // Each case places up to a few hundred packets, and every placement is
        // checked: fewer cases than elsewhere keep the debug-build run short.
        #![proptest_config(crate::proptest_config(128))]

        /// A stream as a bad network delivers it: never a panic, no sample
        /// written twice, the finished track as long as asked, its silence
        /// exactly the reported missing ranges.
        #[test]
        fn a_delivered_stream_is_placed_once_and_accounted_for(
            deliveries in stream(),
            max_samples in max_samples(),
            mask in mask(),
            slack in -30_000i64..3_000,
        ) {
            place_all(&deliveries, max_samples, &mask, slack)?;
        }

        /// The same for packets scattered without any order.
        #[test]
        fn scattered_packets_are_placed_once_and_accounted_for(
            deliveries in scattered(),
            max_samples in max_samples(),
            mask in mask(),
            slack in -30_000i64..3_000,
        ) {
            place_all(&deliveries, max_samples, &mask, slack)?;
        }
    }
}
