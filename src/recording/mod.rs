//! Recording, step 3 of the path: the audio of a recording while it lives in
//! memory and as it leaves. `buffer` places each stream's RTP payloads by
//! timestamp, into one-second blocks (`chunks`, which takes them ready from
//! `blocks`); `mask` keeps paused
//! stretches out; `silence` tells silence Asterisk sent from silence callrec
//! inserted; `encode` turns the finished streams into the delivered file
//! (`.ul` or WAV).

pub mod blocks;
pub mod buffer;
pub mod chunks;
pub mod encode;
pub mod mask;
pub mod silence;

pub use buffer::{CapturedAudio, Placement, StreamBuffer, StreamStats};
pub use mask::Mask;

/// A recording's audio once its streams are finished: one track per stream,
/// all the same length, and the stretches that were paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRecording {
    pub tracks: Vec<CapturedAudio>,
    pub masked: Vec<std::ops::Range<u64>>,
}
