//! The receiver's first step after the signature: each delivery is taken
//! once by its `Idempotency-Key`. callrec sends a delivery again under the
//! same key when an answer was lost, and may do so while the first attempt
//! is still being stored; the repeat is answered as the first was, and
//! nothing is stored twice.

use std::collections::HashSet;

/// What to do with a delivery, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not seen: store it, then call `stored` or `failed`.
    New,
    /// Stored already: answer 200 and store nothing.
    Duplicate,
    /// Being stored by another request right now: answer "retry shortly".
    InProgress,
}

/// The keys stored and being stored.
#[derive(Debug, Default)]
pub struct Keys {
    stored: HashSet<String>,
    in_progress: HashSet<String>,
}

impl Keys {
    /// Keys already stored (found in the directory at start).
    pub fn new(stored: impl IntoIterator<Item = String>) -> Self {
        Keys { stored: stored.into_iter().collect(), in_progress: HashSet::new() }
    }

    pub fn admit(&mut self, key: &str) -> Admission {
        if self.stored.contains(key) {
            Admission::Duplicate
        } else if !self.in_progress.insert(key.to_string()) {
            Admission::InProgress
        } else {
            Admission::New
        }
    }

    /// The delivery admitted under `key` is stored: repeats are duplicates.
    pub fn stored(&mut self, key: &str) {
        self.in_progress.remove(key);
        self.stored.insert(key.to_string());
    }

    /// Storing it failed (or it was refused): a repeat is taken anew.
    pub fn failed(&mut self, key: &str) {
        self.in_progress.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_taken_once_and_repeats_are_duplicates() {
        let mut keys = Keys::default();
        assert_eq!(keys.admit("a"), Admission::New);
        assert_eq!(keys.admit("a"), Admission::InProgress, "a repeat while the first is being stored");
        assert_eq!(keys.admit("b"), Admission::New, "other keys are not held up");
        keys.stored("a");
        assert_eq!(keys.admit("a"), Admission::Duplicate);
        assert_eq!(keys.admit("a"), Admission::Duplicate);
    }

    #[test]
    fn a_failed_store_lets_the_retry_in() {
        let mut keys = Keys::default();
        assert_eq!(keys.admit("a"), Admission::New);
        keys.failed("a");
        assert_eq!(keys.admit("a"), Admission::New);
    }

    #[test]
    fn keys_found_at_start_are_duplicates() {
        let mut keys = Keys::new(["old".to_string()]);
        assert_eq!(keys.admit("old"), Admission::Duplicate);
        assert_eq!(keys.admit("new"), Admission::New);
    }
}
