//! The bound on audio held in memory, across the path (`--max-memory`): what
//! the media task holds for recordings in progress (it reports its buffers'
//! size a few times a second) plus the recordings assembled and awaiting
//! delivery. Past the bound a new start marker is refused (the call goes on
//! unrecorded, said and counted) and recordings awaiting delivery go to the
//! spool first, so callrec never runs out of memory because a webhook is slow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared by the recorder, the media task and delivery.
#[derive(Debug)]
pub struct AudioMemory {
    limit: u64,
    /// Bytes the media task's buffers hold (their capacity), as last reported.
    capturing: AtomicU64,
    /// Bytes of assembled recordings not yet delivered.
    delivering: AtomicU64,
}

impl AudioMemory {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(AudioMemory { limit, capturing: AtomicU64::new(0), delivering: AtomicU64::new(0) })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// All audio held now.
    pub fn held(&self) -> u64 {
        self.capturing.load(Ordering::Relaxed) + self.delivering.load(Ordering::Relaxed)
    }

    /// Whether `more` bytes would take the audio held past the limit.
    pub fn would_exceed(&self, more: u64) -> bool {
        self.held().saturating_add(more) > self.limit
    }

    /// Past the limit already.
    pub fn exceeded(&self) -> bool {
        self.held() > self.limit
    }

    /// The media task's report of what its buffers hold.
    pub fn set_capturing(&self, bytes: u64) {
        self.capturing.store(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` of an assembled recording until the guard is dropped
    /// (when it is delivered, spooled or given up).
    pub fn delivering(self: &Arc<Self>, bytes: u64) -> Delivering {
        self.delivering.fetch_add(bytes, Ordering::Relaxed);
        Delivering { memory: self.clone(), bytes }
    }
}

/// An assembled recording's share of the audio held.
#[derive(Debug)]
pub struct Delivering {
    memory: Arc<AudioMemory>,
    bytes: u64,
}

impl Drop for Delivering {
    fn drop(&mut self) {
        self.memory.delivering.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_both_sides_and_releases_with_the_guard() {
        let memory = AudioMemory::new(1000);
        memory.set_capturing(600);
        assert!(!memory.would_exceed(400) && memory.would_exceed(401));
        let guard = memory.delivering(300);
        assert_eq!(memory.held(), 900);
        assert!(memory.would_exceed(101) && !memory.exceeded());
        let more = memory.delivering(200);
        assert!(memory.exceeded());
        drop((guard, more));
        assert_eq!(memory.held(), 600);
    }
}
