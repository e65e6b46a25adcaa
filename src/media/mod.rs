//! Media capture: RTP from each recording's externalMedia channel, read from
//! one UDP socket and routed by source address into recording buffers.

pub mod batch;
pub mod handover;
pub mod kernel_drops;
pub mod receiver;
pub mod rtp;

pub use receiver::{bind, MediaCommand, MediaEvent, MediaHandle, MediaReceiver};
