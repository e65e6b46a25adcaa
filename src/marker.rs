//! Markers, the first step of the path: the bookends an IVR places in its call
//! flow. Here they are read from `Stasis(callrec,start[,name])` and
//! `Stasis(callrec,stop)` arguments; other transports can produce the same
//! `MarkerCommand` without touching the recording logic. Also the channel
//! variables callrec and its dialplan subroutines share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::session::MarkerCommand;

/// The recording name when a start marker gives none, as in the IVR module
/// callrec follows.
pub const DEFAULT_NAME: &str = "call_recording";

/// Set by callrec on a recorded channel when its capture runs: the snoop
/// channel's name. When a stop marker cannot reach callrec (its ARI
/// connection is down), `dialplan/callrec.conf` hangs that channel up, so
/// that nothing after the marker is captured.
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
    #[error("no marker given (expected Stasis(APP,start[,name]) or Stasis(APP,stop))")]
    Missing,
    #[error("unknown marker {0:?} (expected \"start\" or \"stop\")")]
    Unknown(String),
    #[error("recording name {0:?} is not usable: use 1 to 64 letters, digits, '_', '-' or '.', not starting with '.'")]
    BadName(String),
    #[error("unexpected extra arguments after {0:?}")]
    ExtraArguments(String),
}

/// Reads a marker from the arguments the dialplan passed to Stasis.
pub fn parse_stasis_args(args: &[String]) -> Result<MarkerCommand, MarkerError> {
    let mut args = args.iter().map(|arg| arg.trim());
    let command = args.next().filter(|arg| !arg.is_empty()).ok_or(MarkerError::Missing)?;
    let rest: Vec<&str> = args.collect();
    match command.to_ascii_lowercase().as_str() {
        "start" => {
            let name = match rest.as_slice() {
                [] | [""] => DEFAULT_NAME.to_string(),
                [name] => validate_name(name)?,
                _ => return Err(MarkerError::ExtraArguments(command.to_string())),
            };
            Ok(MarkerCommand::Start { name })
        }
        "stop" => match rest.as_slice() {
            [] | [""] => Ok(MarkerCommand::Stop),
            _ => Err(MarkerError::ExtraArguments(command.to_string())),
        },
        _ => Err(MarkerError::Unknown(command.to_string())),
    }
}

/// A name becomes the audio part's file name (`<name>.ul`), so it must be a
/// plain, short file name.
fn validate_name(name: &str) -> Result<String, MarkerError> {
    let usable = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if usable {
        Ok(name.to_string())
    } else {
        Err(MarkerError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<MarkerCommand, MarkerError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_stasis_args(&args)
    }

    fn start(name: &str) -> MarkerCommand {
        MarkerCommand::Start { name: name.to_string() }
    }

    #[test]
    fn start_takes_an_optional_name() {
        assert_eq!(parse(&["start"]), Ok(start(DEFAULT_NAME)));
        assert_eq!(parse(&["start", ""]), Ok(start(DEFAULT_NAME)));
        assert_eq!(parse(&["START", "payment_1"]), Ok(start("payment_1")));
        assert_eq!(parse(&[" start ", " v1.2-a "]), Ok(start("v1.2-a")));
    }

    #[test]
    fn stop_takes_nothing() {
        assert_eq!(parse(&["stop"]), Ok(MarkerCommand::Stop));
        assert_eq!(parse(&["stop", ""]), Ok(MarkerCommand::Stop));
        assert!(matches!(parse(&["stop", "x"]), Err(MarkerError::ExtraArguments(_))));
    }

    #[test]
    fn bad_markers_are_named() {
        assert_eq!(parse(&[]), Err(MarkerError::Missing));
        assert_eq!(parse(&[""]), Err(MarkerError::Missing));
        assert_eq!(parse(&["pause"]), Err(MarkerError::Unknown("pause".into())));
        assert!(matches!(parse(&["start", "a", "b"]), Err(MarkerError::ExtraArguments(_))));
        for bad in ["../etc/passwd", ".hidden", "a b", "x/y", &"n".repeat(65), "é"] {
            assert_eq!(parse(&["start", bad]), Err(MarkerError::BadName(bad.to_string())), "{bad}");
        }
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
}
