//! Paused stretches of a recording (PCI: card numbers), in samples from its
//! first. The media task consults the mask as it copies each payload into a
//! stream buffer: a masked sample is written as silence and the payload's byte
//! never enters memory. At the end, the ranges go into the metadata, and with
//! `pause=skip` they are cut out of every track.

use std::ops::Range;

use crate::ulaw::SILENCE;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Finished pauses, in order, not overlapping.
    closed: Vec<Range<u64>>,
    /// Where the running pause began.
    open_from: Option<u64>,
}

impl Mask {
    /// Nothing masked.
    pub const CLEAR: Mask = Mask { closed: Vec::new(), open_from: None };

    pub fn is_paused(&self) -> bool {
        self.open_from.is_some()
    }

    /// Whether nothing is or was ever masked: the copy needs no look.
    pub fn is_clear(&self) -> bool {
        self.closed.is_empty() && self.open_from.is_none()
    }

    /// Masks everything from sample `from` on. A pause that begins inside or
    /// right at the end of the previous one continues it.
    pub fn pause(&mut self, from: u64) {
        if self.open_from.is_some() {
            return;
        }
        let from = match self.closed.last() {
            Some(last) if from <= last.end => self.closed.pop().map_or(from, |last| last.start.min(from)),
            _ => from,
        };
        self.open_from = Some(from);
    }

    /// Ends the running pause at sample `at` (never before it began).
    pub fn resume(&mut self, at: u64) {
        if let Some(from) = self.open_from.take() {
            self.closed.push(from..at.max(from));
        }
    }

    /// Whether sample `sample` is masked.
    pub fn covers(&self, sample: u64) -> bool {
        self.open_from.is_some_and(|from| sample >= from) || self.closed.iter().any(|range| range.contains(&sample))
    }

    /// Copies `source` into `target`, which holds the samples from `position`
    /// on: masked samples become silence.
    pub fn copy(&self, target: &mut [u8], source: &[u8], position: u64) {
        if self.is_clear() {
            target.copy_from_slice(source);
            return;
        }
        for (offset, (out, &byte)) in target.iter_mut().zip(source).enumerate() {
            *out = if self.covers(position + offset as u64) { SILENCE } else { byte };
        }
    }

    /// The masked ranges within the first `total` samples, a running pause
    /// closed at `total`.
    pub fn ranges(&self, total: u64) -> Vec<Range<u64>> {
        let open = self.open_from.map(|from| from..u64::MAX);
        self.closed
            .iter()
            .cloned()
            .chain(open)
            .map(|range| range.start.min(total)..range.end.min(total))
            .filter(|range| !range.is_empty())
            .collect()
    }
}

/// A track with `ranges` (in order, not overlapping) cut out: what
/// `pause=skip` delivers.
pub fn cut(track: &[u8], ranges: &[Range<u64>]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(track.len());
    let mut from = 0usize;
    for range in ranges {
        let (start, end) = ((range.start as usize).min(track.len()), (range.end as usize).min(track.len()));
        kept.extend_from_slice(&track[from.min(start)..start]);
        from = from.max(end);
    }
    kept.extend_from_slice(&track[from.min(track.len())..]);
    kept
}

/// Where each cut range sits in the cut recording (a point: start = end).
pub fn cut_points(ranges: &[Range<u64>]) -> Vec<u64> {
    let mut removed = 0;
    ranges
        .iter()
        .map(|range| {
            let point = range.start - removed;
            removed += range.end - range.start;
            point
        })
        .collect()
}

/// Where sample `position` of the uncut recording lands once `ranges` (in
/// order) are cut out; a position inside a range lands on its cut point.
pub fn after_cuts(position: u64, ranges: &[Range<u64>]) -> u64 {
    let removed: u64 = ranges
        .iter()
        .take_while(|range| range.start < position)
        .map(|range| range.end.min(position) - range.start)
        .sum();
    position - removed
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn an_unmasked_copy_is_the_payload() {
        let mask = Mask::default();
        let mut target = [0u8; 4];
        mask.copy(&mut target, &[1, 2, 3, 4], 100);
        assert_eq!(target, [1, 2, 3, 4]);
    }

    #[test]
    fn masked_samples_are_silence_from_the_pause_on() {
        let mut mask = Mask::default();
        mask.pause(102);
        let mut target = [0u8; 4];
        mask.copy(&mut target, &[1, 2, 3, 4], 100);
        assert_eq!(target, [1, 2, SILENCE, SILENCE]);
        mask.resume(105);
        let mut target = [0u8; 8];
        mask.copy(&mut target, &[1, 2, 3, 4, 5, 6, 7, 8], 100);
        assert_eq!(target, [1, 2, SILENCE, SILENCE, SILENCE, 6, 7, 8]);
        // A late packet from inside the pause is masked as well.
        let mut target = [0u8; 2];
        mask.copy(&mut target, &[9, 9], 103);
        assert_eq!(target, [SILENCE, SILENCE]);
    }

    #[test]
    fn ranges_close_a_running_pause_at_the_end_and_clip_to_it() {
        let mut mask = Mask::default();
        mask.pause(100);
        mask.resume(200);
        mask.pause(500);
        assert_eq!(mask.ranges(800), vec![100..200, 500..800]);
        assert_eq!(mask.ranges(150), [100..150]);
        assert_eq!(mask.ranges(50), Vec::<Range<u64>>::new());
    }

    #[test]
    fn repeated_or_overlapping_pauses_merge() {
        let mut mask = Mask::default();
        mask.pause(100);
        mask.pause(150);
        mask.resume(200);
        mask.resume(300);
        mask.pause(190);
        mask.resume(250);
        assert_eq!(mask.ranges(1000), [100..250]);
        let mut backwards = Mask::default();
        backwards.pause(100);
        backwards.resume(90);
        assert_eq!(backwards.ranges(1000), Vec::<Range<u64>>::new(), "an empty pause masks nothing");
    }

    #[test]
    fn skip_cuts_the_ranges_out_and_says_where_they_were() {
        let track: Vec<u8> = (0..10).collect();
        let ranges = [2..4, 6..9];
        assert_eq!(cut(&track, &ranges), vec![0, 1, 4, 5, 9]);
        assert_eq!(cut_points(&ranges), vec![2, 4]);
        assert_eq!([0, 2, 3, 4, 5, 7, 9, 10].map(|p| after_cuts(p, &ranges)), [0, 2, 2, 2, 3, 4, 4, 5]);
        assert_eq!(cut(&track, &[8..20]), (0..8).collect::<Vec<u8>>());
        assert_eq!(cut(&track, &[]), track);
    }
}
