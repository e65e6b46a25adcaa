//! Markers, the first step of the path: the bookends an IVR places in its
//! call flow (`start` with a name and options, `stop`, and `pause`/`resume`
//! around what must never be recorded). One model for every transport:
//! `stasis` reads them from `Stasis(callrec,…)` arguments, and other
//! transports produce the same `MarkerCommand` with the same validation.
//! Also the channel variables callrec and its dialplan subroutines share.

pub mod agi;
pub mod options;
pub mod stasis;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

pub use options::{Channels, OptionError, PauseMode, RecordingOptions};

/// What a marker in the call flow asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerCommand {
    Start {
        name: String,
        options: RecordingOptions,
    },
    Stop,
    /// Keep what follows out of the recording (card numbers), until `Resume`.
    Pause,
    Resume,
}

/// The recording name when a start marker gives none, as in the IVR module
/// callrec follows.
pub const DEFAULT_NAME: &str = "call_recording";

/// The context of `dialplan/callrec.conf`'s subroutines: a marker placed
/// through them is read as placed where the subroutine was called.
pub const SUBROUTINE_CONTEXT: &str = "call-recording";

/// Read from a channel that reached a start marker through those
/// subroutines: its linkedid and where the subroutine was called from, in
/// one request (`EVAL` substitutes them into one value, `|` between them).
pub const CALLED_FROM_READ: &str = "EVAL(${CHANNEL(linkedid)}|${STACK_PEEK(1,c,1)}|${STACK_PEEK(1,e,1)})";

/// Splits what `CALLED_FROM_READ` read: the linkedid, and the context and
/// extension the subroutine was called from (if both were read).
pub fn called_from(value: &str) -> (String, Option<(String, String)>) {
    let mut parts = value.splitn(3, '|');
    let linkedid = parts.next().unwrap_or_default().to_string();
    let place = match (parts.next(), parts.next()) {
        (Some(context), Some(exten)) if !context.is_empty() && !exten.is_empty() => {
            Some((context.to_string(), exten.to_string()))
        }
        _ => None,
    };
    (linkedid, place)
}

/// Set by callrec on a recorded channel when its capture runs: the names of
/// its snoop channels, joined by `&`. When a stop or pause marker cannot
/// reach callrec (its ARI connection is down), `dialplan/callrec.conf` hangs
/// them up, so that nothing after the marker is captured.
pub const SNOOP_VARIABLE: &str = "CALLREC_SNOOP";
/// Set by `dialplan/callrec.conf` when it cut the capture that way: when, as
/// epoch seconds with milliseconds (`1764000000.125`), so that callrec ends
/// the recording right there once it is back.
pub const STOPPED_AT_VARIABLE: &str = "CALLREC_STOPPED_AT";

/// Reads a time the dialplan noted as `${STRFTIME(,,%s.%3q)}`.
pub fn parse_dialplan_time(text: &str) -> Option<SystemTime> {
    let (seconds, millis) = text.trim().split_once('.').unwrap_or((text.trim(), "0"));
    let seconds: u64 = seconds.parse().ok()?;
    if millis.is_empty() || millis.len() > 3 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = format!("{millis:0<3}").parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(seconds.checked_mul(1000)?.checked_add(millis)?))
}

const MAX_NAME_LEN: usize = 64;

/// Why a marker could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MarkerError {
    #[error("no marker given (expected start, stop, pause or resume)")]
    Missing,
    #[error("unknown marker {0:?} (expected start, stop, pause or resume)")]
    Unknown(String),
    /// The recording still starts, under the default name, with these options.
    #[error(
        "recording name {name:?} is not usable: use 1 to 64 letters, digits, '_', '-' or '.', not starting with '.'"
    )]
    BadName { name: String, options: RecordingOptions },
    #[error("{0}; nothing is recorded")]
    BadOption(#[from] OptionError),
    #[error("unexpected extra arguments after {0:?}")]
    ExtraArguments(String),
}

/// A name becomes the audio part's file name (`<name>.ul`), so it must be a
/// plain, short file name.
pub fn validate_name(name: &str) -> Result<String, String> {
    let usable = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if usable {
        Ok(name.to_string())
    } else {
        Err(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_called_from_read_splits_into_linkedid_context_and_exten() {
        let place = |context: &str, exten: &str| Some((context.to_string(), exten.to_string()));
        assert_eq!(called_from("1764.42|ivr-main|s"), ("1764.42".into(), place("ivr-main", "s")));
        assert_eq!(called_from("1764.42|ivr|*12|3"), ("1764.42".into(), place("ivr", "*12|3")));
        assert_eq!(called_from("1764.42||"), ("1764.42".into(), None), "no stack to peek at");
        assert_eq!(called_from("1764.42"), ("1764.42".into(), None));
        assert_eq!(called_from(""), (String::new(), None));
    }

    #[test]
    fn dialplan_times_read_to_the_millisecond() {
        let at = |ms: u64| Some(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(parse_dialplan_time("1764000000.125"), at(1_764_000_000_125));
        assert_eq!(parse_dialplan_time(" 1764000000.5 "), at(1_764_000_000_500));
        assert_eq!(parse_dialplan_time("1764000000"), at(1_764_000_000_000));
        for bad in ["", "soon", "1764000000.", "1764000000.1234", "-1.000", "1.2.3"] {
            assert_eq!(parse_dialplan_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_are_plain_file_names() {
        assert_eq!(validate_name("v1.2-a"), Ok("v1.2-a".to_string()));
        for bad in ["../etc/passwd", ".hidden", "a b", "x/y", &"n".repeat(65), "é", ""] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
