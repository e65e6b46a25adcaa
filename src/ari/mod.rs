//! Asterisk REST Interface: the event WebSocket that brings markers and call
//! progress in, and the REST calls that set up and tear down capture.

pub mod events;
pub mod rest;
pub mod websocket;

use thiserror::Error;

/// What went wrong talking to ARI.
#[derive(Debug, Error)]
pub enum AriError {
    /// Asterisk answered with an error status.
    #[error("{operation}: HTTP {status}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Status { operation: &'static str, status: u16, message: String },
    /// No usable answer came (connection refused, timeout, bad body).
    #[error("{operation}: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The answer lacked something callrec needs.
    #[error("{operation}: {message}")]
    Unexpected { operation: &'static str, message: String },
}

impl AriError {
    /// The HTTP status Asterisk answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AriError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
