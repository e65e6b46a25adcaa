//! Recording buffer, underneath `chunks`: where its one-second blocks come
//! from. A block is memory the kernel must hand out page by page, and when
//! many streams cross a second at once (calls that started together), taking
//! fresh blocks for all of them on the media task stalls it for
//! milliseconds. So blocks are kept ready, already silence, in a store the
//! media task takes from: it is topped up off the media task (`adjust`), and
//! a finished recording's blocks go back to it, so that in a steady flow of
//! calls no block is new.
//!
//! Every block in the store is all silence, whoever put it there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::chunks::CHUNK_SAMPLES;
use crate::ulaw::SILENCE;

/// One block: a second of μ-law.
pub type Block = Box<[u8]>;

/// The store the media task takes from.
pub static STORE: BlockStore = BlockStore::new();

/// Blocks ready to be taken, all silence, and how many to keep so.
pub struct BlockStore {
    ready: Mutex<Vec<Block>>,
    wanted: AtomicUsize,
}

impl BlockStore {
    pub const fn new() -> Self {
        BlockStore { ready: Mutex::new(Vec::new()), wanted: AtomicUsize::new(0) }
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Block>> {
        // A panic elsewhere while holding it leaves only whole blocks behind.
        self.ready.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A block of silence: a ready one when there is one.
    pub fn take(&self) -> Block {
        let ready = self.ready().pop();
        ready.unwrap_or_else(fresh)
    }

    /// Takes back a block no longer needed: silenced and kept while the
    /// store holds fewer than it keeps ready, freed otherwise.
    pub fn give_back(&self, mut block: Block) {
        let wanted = self.wanted.load(Ordering::Relaxed);
        if block.len() != CHUNK_SAMPLES || self.ready_count() >= wanted {
            return;
        }
        block.fill(SILENCE);
        let mut ready = self.ready();
        if ready.len() < wanted {
            ready.push(block);
        }
    }

    /// Sets how many blocks to keep ready (the media task: one per stream
    /// it receives, since each may need one within the next second); true
    /// if the store holds another number, and `adjust` should run.
    pub fn keep_ready(&self, blocks: usize) -> bool {
        self.wanted.store(blocks, Ordering::Relaxed);
        self.ready_count() != blocks
    }

    /// Brings the store to what it keeps ready: allocates (and so touches)
    /// the blocks missing, or frees those no longer wanted, here rather
    /// than on the media task. Blocking work: it may take milliseconds.
    pub fn adjust(&self) {
        loop {
            let wanted = self.wanted.load(Ordering::Relaxed);
            let ready = self.ready_count();
            if ready > wanted {
                // Freed outside the lock. The media task may have taken
                // some since they were counted.
                let excess = {
                    let mut ready = self.ready();
                    let keep = wanted.min(ready.len());
                    ready.split_off(keep)
                };
                drop(excess);
                continue;
            }
            let missing = wanted - ready;
            if missing == 0 {
                return;
            }
            // Allocated outside the lock, a bounded batch at a time, so that
            // the media task never waits on an allocation.
            let batch: Vec<Block> = (0..missing.min(64)).map(|_| fresh()).collect();
            let mut ready = self.ready();
            let room = self.wanted.load(Ordering::Relaxed).saturating_sub(ready.len());
            ready.extend(batch.into_iter().take(room));
        }
    }

    /// Blocks in the store now.
    pub fn ready_count(&self) -> usize {
        self.ready().len()
    }
}

impl Default for BlockStore {
    fn default() -> Self {
        Self::new()
    }
}

fn fresh() -> Block {
    vec![SILENCE; CHUNK_SAMPLES].into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_kept_ready_and_given_back_silent() {
        let store = BlockStore::new();
        assert!(store.keep_ready(3), "an empty store needs topping up");
        store.adjust();
        assert_eq!(store.ready_count(), 3);
        assert!(!store.keep_ready(3));
        let mut block = store.take();
        assert_eq!(store.ready_count(), 2);
        assert!(block.iter().all(|&sample| sample == SILENCE));
        block[17] = 0x12;
        store.give_back(block);
        assert_eq!(store.ready_count(), 3);
        let blocks: Vec<Block> = (0..4).map(|_| store.take()).collect();
        assert!(blocks.iter().all(|block| block.len() == CHUNK_SAMPLES && block.iter().all(|&s| s == SILENCE)));
        assert_eq!(store.ready_count(), 0, "the fourth was fresh");
        for block in blocks {
            store.give_back(block);
        }
        assert_eq!(store.ready_count(), 3, "no more than kept ready");
        assert!(store.keep_ready(1));
        store.adjust();
        assert_eq!(store.ready_count(), 1, "fewer wanted: the rest freed");
        assert!(!store.keep_ready(1));
    }
}
