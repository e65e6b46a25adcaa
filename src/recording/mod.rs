//! Recording, step 3 of the path: the audio of a recording while it lives in
//! memory and as it leaves. `buffer` places each stream's RTP payloads by
//! timestamp; `mask` keeps paused stretches out; `encode` turns the finished
//! streams into the delivered file (`.ul` or WAV).

pub mod buffer;
pub mod encode;

pub use buffer::{CapturedAudio, Placement, StreamBuffer, StreamStats};
