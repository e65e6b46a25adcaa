//! Recording buffer, underneath: a stream's μ-law samples in fixed blocks of
//! one second. Growing adds a block and never moves what is held, so a long
//! recording costs the media task no more per second than a short one, and
//! memory follows the audio (one block of slack at most). The blocks come
//! ready from `blocks::STORE`, and go back to it once the recording is
//! taken and they are copied into one contiguous track, off the media task.

use super::blocks::{Block, STORE};
use crate::ulaw::{SAMPLE_RATE, SILENCE};

/// Samples per block: one second.
pub const CHUNK_SAMPLES: usize = SAMPLE_RATE as usize;

/// A growable run of samples in blocks. Every sample past `len` in the last
/// block is silence, so growing within a block is only a new length.
#[derive(Debug, Default)]
pub struct Chunks {
    blocks: Vec<Block>,
    len: u64,
}

impl Chunks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples held.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory the samples take: whole blocks.
    pub fn held_bytes(&self) -> u64 {
        (self.blocks.len() * CHUNK_SAMPLES) as u64
    }

    /// Grows to `len` samples, the new ones silence; never shrinks.
    pub fn grow_to(&mut self, len: u64) {
        if len <= self.len {
            return;
        }
        let blocks = (len as usize).div_ceil(CHUNK_SAMPLES);
        while self.blocks.len() < blocks {
            self.blocks.push(STORE.take());
        }
        self.len = len;
    }

    /// Writes `source` at sample `at` (all of it within `len`) through
    /// `copy(target, source, position)`, a block's piece at a time.
    pub fn write(&mut self, at: u64, source: &[u8], mut copy: impl FnMut(&mut [u8], &[u8], u64)) {
        debug_assert!(at + source.len() as u64 <= self.len, "write past the end");
        let mut position = at;
        let mut rest = source;
        while !rest.is_empty() {
            let (block, offset) = locate(position);
            let piece = rest.len().min(CHUNK_SAMPLES - offset);
            copy(&mut self.blocks[block][offset..offset + piece], &rest[..piece], position);
            rest = &rest[piece..];
            position += piece as u64;
        }
    }

    /// Silences every sample from `from` on.
    pub fn silence_from(&mut self, from: u64) {
        if from >= self.len {
            return;
        }
        let (first, offset) = locate(from);
        self.blocks[first][offset..].fill(SILENCE);
        for block in &mut self.blocks[first + 1..] {
            block.fill(SILENCE);
        }
    }

    /// The first `total` samples in one piece, padded with silence past
    /// `len`; each block goes back to the store once copied.
    pub fn into_vec(mut self, total: u64) -> Vec<u8> {
        let total = total as usize;
        let mut samples = Vec::with_capacity(total);
        let held = (self.len as usize).min(total);
        for block in std::mem::take(&mut self.blocks) {
            let piece = (held - samples.len()).min(CHUNK_SAMPLES);
            samples.extend_from_slice(&block[..piece]);
            STORE.give_back(block);
        }
        samples.resize(total, SILENCE);
        samples
    }

    /// A copy of every sample held (for tests).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut samples: Vec<u8> = self.blocks.iter().flat_map(|block| block.iter().copied()).collect();
        samples.truncate(self.len as usize);
        samples
    }
}

impl Drop for Chunks {
    /// A buffer dropped whole (its recording discarded) gives its blocks back.
    fn drop(&mut self) {
        for block in self.blocks.drain(..) {
            STORE.give_back(block);
        }
    }
}

/// The block and the offset in it of sample `position`.
fn locate(position: u64) -> (usize, usize) {
    let position = position as usize;
    (position / CHUNK_SAMPLES, position % CHUNK_SAMPLES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(target: &mut [u8], source: &[u8], _: u64) {
        target.copy_from_slice(source);
    }

    #[test]
    fn a_write_across_a_block_border_lands_in_both_blocks() {
        let mut chunks = Chunks::new();
        let at = CHUNK_SAMPLES as u64 - 100;
        chunks.grow_to(at + 160);
        let mut positions = Vec::new();
        chunks.write(at, &[7; 160], |target, source, position| {
            positions.push((position, source.len()));
            target.copy_from_slice(source);
        });
        assert_eq!(positions, [(at, 100), (CHUNK_SAMPLES as u64, 60)]);
        let samples = chunks.to_vec();
        assert_eq!(samples.len(), CHUNK_SAMPLES + 60);
        assert!(samples[..at as usize].iter().all(|&b| b == SILENCE));
        assert!(samples[at as usize..].iter().all(|&b| b == 7));
        assert_eq!(chunks.held_bytes(), 2 * CHUNK_SAMPLES as u64);
    }

    #[test]
    fn growing_adds_blocks_of_silence_and_never_shrinks() {
        let mut chunks = Chunks::new();
        assert_eq!(chunks.held_bytes(), 0);
        chunks.grow_to(1);
        assert_eq!(chunks.held_bytes(), CHUNK_SAMPLES as u64);
        chunks.grow_to(3 * CHUNK_SAMPLES as u64);
        assert_eq!(chunks.held_bytes(), 3 * CHUNK_SAMPLES as u64);
        chunks.grow_to(10);
        assert_eq!(chunks.len(), 3 * CHUNK_SAMPLES as u64);
        chunks.grow_to(3 * CHUNK_SAMPLES as u64 + 1);
        assert_eq!(chunks.held_bytes(), 4 * CHUNK_SAMPLES as u64);
    }

    #[test]
    fn a_late_write_into_an_earlier_block_keeps_the_later_ones() {
        let mut chunks = Chunks::new();
        chunks.grow_to(5 * CHUNK_SAMPLES as u64);
        chunks.write(4 * CHUNK_SAMPLES as u64, &[4; 160], plain);
        chunks.write(CHUNK_SAMPLES as u64 + 10, &[1; 160], plain);
        let samples = chunks.to_vec();
        assert_eq!(samples[CHUNK_SAMPLES + 10..CHUNK_SAMPLES + 170], [1; 160]);
        assert_eq!(samples[4 * CHUNK_SAMPLES..4 * CHUNK_SAMPLES + 160], [4; 160]);
        assert_eq!(samples.iter().filter(|&&b| b != SILENCE).count(), 320);
    }

    #[test]
    fn silencing_reaches_every_later_block_and_growth_after_it_is_silent() {
        let mut chunks = Chunks::new();
        chunks.grow_to(3 * CHUNK_SAMPLES as u64);
        chunks.write(0, &vec![9; 3 * CHUNK_SAMPLES], plain);
        chunks.silence_from(CHUNK_SAMPLES as u64 / 2);
        chunks.grow_to(3 * CHUNK_SAMPLES as u64 + 5);
        let samples = chunks.to_vec();
        assert!(samples[..CHUNK_SAMPLES / 2].iter().all(|&b| b == 9));
        assert!(samples[CHUNK_SAMPLES / 2..].iter().all(|&b| b == SILENCE));
    }

    #[test]
    fn the_whole_track_is_cut_or_padded_to_the_length_asked() {
        let mut chunks = Chunks::new();
        chunks.grow_to(CHUNK_SAMPLES as u64 + 10);
        chunks.write(0, &vec![3; CHUNK_SAMPLES + 10], plain);
        let mut longer = Chunks::new();
        longer.grow_to(CHUNK_SAMPLES as u64 + 10);
        longer.write(0, &vec![3; CHUNK_SAMPLES + 10], plain);
        let cut = chunks.into_vec(CHUNK_SAMPLES as u64 - 1);
        assert_eq!(cut, vec![3; CHUNK_SAMPLES - 1]);
        let padded = longer.into_vec(3 * CHUNK_SAMPLES as u64);
        assert_eq!(padded.len(), 3 * CHUNK_SAMPLES);
        assert!(padded[..CHUNK_SAMPLES + 10].iter().all(|&b| b == 3));
        assert!(padded[CHUNK_SAMPLES + 10..].iter().all(|&b| b == SILENCE));
        assert_eq!(Chunks::new().into_vec(5), vec![SILENCE; 5]);
    }
}
