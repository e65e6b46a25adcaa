//! Per-recording options, part of the start marker: `key=value` pairs joined
//! by `&` (`channels=stereo&format=wav&max=10m`). Every transport hands the
//! text here; what is not given comes from the command line's defaults. A
//! key that is unknown, repeated or badly valued refuses the whole marker, so
//! that nothing is recorded otherwise than the flow asked.

use std::time::Duration;

use thiserror::Error;

use crate::recording::encode::AudioFormat;

/// How many tracks a recording has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One track: what the caller hears and says, mixed.
    Mono,
    /// Two tracks: left what the caller says, right what the caller hears.
    Stereo,
}

/// What a paused stretch becomes in the delivered recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    /// μ-law silence: the recording keeps the call's timeline.
    Silence,
    /// Cut out: the recording is shorter by the paused time.
    Skip,
}

/// Everything a recording can be asked to do differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingOptions {
    pub channels: Channels,
    pub format: AudioFormat,
    pub pause: PauseMode,
    /// The recording ends (`max_duration`) and is delivered once this long.
    pub max: Duration,
    /// A recording shorter than this is not delivered (counted and logged).
    pub min: Duration,
    /// The delivery target it goes to (`to=NAME`); `None`: the default one.
    pub to: Option<TargetName>,
}

/// The name of a delivery target, as `--target NAME=URL` defines it and
/// `to=NAME` picks it: 1 to 32 of `A-Z a-z 0-9 _ -`. Only a name: no URL
/// ever comes from the dialplan or from call data.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TargetName {
    bytes: [u8; TargetName::MAX],
    len: u8,
}

impl TargetName {
    const MAX: usize = 32;

    pub fn parse(text: &str) -> Option<TargetName> {
        let usable = (1..=Self::MAX).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !usable {
            return None;
        }
        let mut bytes = [0; Self::MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(TargetName { bytes, len: text.len() as u8 })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("checked ASCII")
    }
}

impl std::fmt::Debug for TargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for TargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keys a start marker understands, for messages.
pub const KEYS: &str = "channels, format, pause, max, min, to";
/// The longest `max` anyone may ask for.
pub const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// Why a start marker's options were refused; each names the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionError {
    #[error("unknown option {0:?} (known: {KEYS})")]
    UnknownKey(String),
    #[error("option {0:?} has no value (write key=value)")]
    NoValue(String),
    #[error("option {0:?} is given twice")]
    Repeated(String),
    #[error("option {key}={value:?}: expected {expected}")]
    BadValue { key: &'static str, value: String, expected: String },
}

impl OptionError {
    /// The key the error is about.
    pub fn key(&self) -> &str {
        match self {
            OptionError::UnknownKey(key) | OptionError::NoValue(key) | OptionError::Repeated(key) => key,
            OptionError::BadValue { key, .. } => key,
        }
    }
}

impl RecordingOptions {
    /// The recording's tracks, in channel order.
    pub fn tracks(&self) -> &'static [crate::session::Track] {
        use crate::session::Track;
        match self.channels {
            Channels::Mono => &[Track::Both],
            Channels::Stereo => &[Track::Caller, Track::Callee],
        }
    }

    /// Reads `OPTIONS` over these defaults. An empty text keeps them all.
    /// `max` may only lower the default's ceiling (`--max-recording`, which
    /// also bounds the memory a recording may take).
    pub fn parse(&self, text: &str) -> Result<RecordingOptions, OptionError> {
        let mut options = *self;
        let mut format = None;
        let mut seen: Vec<String> = Vec::new();
        for pair in text.split('&').map(str::trim).filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| OptionError::NoValue(pair.to_string()))?;
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            if seen.contains(&key) {
                return Err(OptionError::Repeated(key));
            }
            match key.as_str() {
                "channels" => options.channels = parse_channels(value)?,
                "format" => format = Some(parse_format("format", value)?),
                "pause" => options.pause = parse_pause_mode(value)?,
                "max" => options.max = parse_duration("max", value, self.max)?,
                "min" => options.min = parse_duration("min", value, LONGEST)?,
                "to" => {
                    let expected = "a target name: 1 to 32 of A-Z a-z 0-9 _ -";
                    options.to = Some(TargetName::parse(value).ok_or_else(|| bad("to", value, expected))?);
                }
                _ => return Err(OptionError::UnknownKey(key)),
            }
            seen.push(key);
        }
        options.format = match (options.channels, format) {
            (Channels::Stereo, Some(AudioFormat::Ulaw)) => {
                return Err(bad("format", "ul", "wav for a stereo recording (a .ul file holds one track)"))
            }
            (Channels::Stereo, _) => AudioFormat::Wav,
            (Channels::Mono, Some(format)) => format,
            (Channels::Mono, None) => self.format,
        };
        if options.min >= options.max {
            let value = humantime::format_duration(options.min).to_string();
            let expected = format!("less than max ({})", humantime::format_duration(options.max));
            return Err(OptionError::BadValue { key: "min", value, expected });
        }
        Ok(options)
    }
}

#[cfg(test)]
impl RecordingOptions {
    /// What `callrec run` starts with when no flag says otherwise, but a
    /// ceiling of one hour: the defaults of the unit tests.
    pub(crate) fn for_tests() -> Self {
        RecordingOptions {
            channels: Channels::Mono,
            format: AudioFormat::Ulaw,
            pause: PauseMode::Silence,
            max: Duration::from_secs(3600),
            min: Duration::ZERO,
            to: None,
        }
    }
}

fn bad(key: &'static str, value: &str, expected: &str) -> OptionError {
    OptionError::BadValue { key, value: value.to_string(), expected: expected.to_string() }
}

pub fn parse_channels(value: &str) -> Result<Channels, OptionError> {
    match value.to_ascii_lowercase().as_str() {
        "mono" => Ok(Channels::Mono),
        "stereo" => Ok(Channels::Stereo),
        _ => Err(bad("channels", value, "mono or stereo")),
    }
}

pub fn parse_format(key: &'static str, value: &str) -> Result<AudioFormat, OptionError> {
    match value.to_ascii_lowercase().as_str() {
        "ul" | "ulaw" => Ok(AudioFormat::Ulaw),
        "wav" => Ok(AudioFormat::Wav),
        _ => Err(bad(key, value, "ul or wav")),
    }
}

pub fn parse_pause_mode(value: &str) -> Result<PauseMode, OptionError> {
    match value.to_ascii_lowercase().as_str() {
        "silence" => Ok(PauseMode::Silence),
        "skip" => Ok(PauseMode::Skip),
        _ => Err(bad("pause", value, "silence or skip")),
    }
}

fn parse_duration(key: &'static str, value: &str, ceiling: Duration) -> Result<Duration, OptionError> {
    let expected = || format!("a duration such as 90s or 10m, at most {}", humantime::format_duration(ceiling));
    match humantime::parse_duration(value) {
        Ok(duration) if duration <= ceiling => Ok(duration),
        _ => Err(OptionError::BadValue { key, value: value.to_string(), expected: expected() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> RecordingOptions {
        RecordingOptions { max: Duration::from_secs(4 * 3600), ..RecordingOptions::for_tests() }
    }

    #[test]
    fn nothing_given_keeps_the_defaults() {
        assert_eq!(defaults().parse(""), Ok(defaults()));
        assert_eq!(defaults().parse(" & "), Ok(defaults()));
    }

    #[test]
    fn every_key_is_read() {
        let options = defaults().parse("channels=stereo&pause=skip&max=10m&min=2s").unwrap();
        assert_eq!(options.channels, Channels::Stereo);
        assert_eq!(options.format, AudioFormat::Wav, "stereo is WAV");
        assert_eq!(options.pause, PauseMode::Skip);
        assert_eq!(options.max, Duration::from_secs(600));
        assert_eq!(options.min, Duration::from_secs(2));
        assert_eq!(defaults().parse("format=wav").unwrap().format, AudioFormat::Wav);
        assert_eq!(defaults().parse(" Channels = Mono & FORMAT=UL ").unwrap(), defaults());
        let archive = defaults().parse("to=archive_2").unwrap().to.unwrap();
        assert_eq!((archive.as_str(), format!("{archive:?}")), ("archive_2", "\"archive_2\"".to_string()));
    }

    #[test]
    fn target_names_are_short_plain_names() {
        assert!(TargetName::parse(&"a".repeat(32)).is_some());
        for bad in ["", "a b", "s3://bucket", &"a".repeat(33), "ü", "a.b"] {
            assert!(TargetName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn stereo_defaults_to_wav_even_when_mono_defaults_to_ul() {
        let options = defaults().parse("channels=stereo&format=wav").unwrap();
        assert_eq!((options.channels, options.format), (Channels::Stereo, AudioFormat::Wav));
        let error = defaults().parse("channels=stereo&format=ul").unwrap_err();
        assert_eq!(error.key(), "format");
    }

    #[test]
    fn bad_options_name_their_key() {
        for (text, key) in [
            ("chanels=stereo", "chanels"),
            ("channels=quad", "channels"),
            ("format=mp3", "format"),
            ("pause=mute", "pause"),
            ("max=soon", "max"),
            ("max=25h", "max"),
            ("min=-1s", "min"),
            ("min=10m&max=5m", "min"),
            ("stereo", "stereo"),
            ("max=1m&max=2m", "max"),
            ("to=https://x", "to"),
            ("to=", "to"),
            ("to=a&to=b", "to"),
        ] {
            let error = defaults().parse(text).unwrap_err();
            assert_eq!(error.key(), key, "{text}: {error}");
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn max_cannot_exceed_the_configured_ceiling() {
        let mut defaults = defaults();
        defaults.max = Duration::from_secs(60);
        assert!(defaults.parse("max=59s").is_ok());
        let error = defaults.parse("max=61s").unwrap_err();
        assert!(error.to_string().contains("at most 1m"), "{error}");
    }

    #[test]
    fn the_tracks_follow_the_channels() {
        use crate::session::Track;
        assert_eq!(defaults().tracks(), &[Track::Both]);
        assert_eq!(defaults().parse("channels=stereo").unwrap().tracks(), &[Track::Caller, Track::Callee]);
    }
}
