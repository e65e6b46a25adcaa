//! The control API's request body, the first step of its path: the JSON a
//! client posts for a channel, read into the one `MarkerCommand` model with
//! the rules of a `Stasis` marker. Options go through the one options parser
//! (`RecordingOptions::parse`) as `key=value&key=value` text, so that every
//! transport accepts and refuses alike; a bad option refuses the start; a
//! name that cannot be a file name records under `DEFAULT_NAME`.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use thiserror::Error;

use crate::markers::{validate_name, MarkerCommand, MarkerError, OptionError, RecordingOptions, DEFAULT_NAME};

/// `POST /v1/channels/{channel_id}/recording`, as posted. A field it does not
/// know refuses the request (a misspelt `option` must not record otherwise
/// than asked).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingRequest {
    /// `start`, `stop`, `pause` or `resume`.
    pub action: String,
    /// Start only: the recording's name (`DEFAULT_NAME` when absent or empty).
    #[serde(default)]
    pub name: Option<String>,
    /// Start only: `{"channels": "stereo", "max": "30m", …}`.
    #[serde(default)]
    pub options: Option<OptionPairs>,
    /// Start only: whether a start on a channel already recording replaces
    /// that recording (`true`, the default: the markers' restart rule) or is
    /// refused (`false`).
    #[serde(default)]
    pub restart: Option<bool>,
}

/// The `options` object as given: in order and with any key given twice, so
/// that the options parser refuses a repeated key as it does for `Stasis`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OptionPairs(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OptionPairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;

        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = OptionPairs;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of options, such as {\"channels\": \"stereo\"}")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OptionPairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    pairs.push(pair);
                }
                Ok(OptionPairs(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor)
    }
}

/// A request read: the marker for the recorder, and how to carry it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCommand {
    pub command: MarkerCommand,
    /// `false`: a start on a channel that is already recording is refused.
    pub restart: bool,
    /// The name asked for when it was not usable: the recording goes under
    /// `DEFAULT_NAME`, as a `Stasis` start marker would.
    pub unusable_name: Option<String>,
}

/// Why a request body was refused, before anything reached the recorder.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("unknown action {0:?} (expected start, stop, pause or resume)")]
    UnknownAction(String),
    #[error("{field:?} is only for action \"start\", not {action:?}")]
    StartOnly { field: &'static str, action: String },
    /// An option the options parser refused: nothing is recorded.
    #[error("{}", MarkerError::BadOption(.0.clone()))]
    BadOption(OptionError),
    /// An option value JSON cannot turn into text for the parser.
    #[error("option {key:?}: {problem}")]
    OptionValue { key: String, problem: &'static str },
}

/// Reads `request` into a marker; `defaults` are the options a start does
/// not give.
pub fn command_from(request: RecordingRequest, defaults: &RecordingOptions) -> Result<ApiCommand, RequestError> {
    let action = request.action.trim().to_ascii_lowercase();
    let command = match action.as_str() {
        "start" => None,
        "stop" => Some(MarkerCommand::Stop),
        "pause" => Some(MarkerCommand::Pause),
        "resume" => Some(MarkerCommand::Resume),
        _ => return Err(RequestError::UnknownAction(request.action)),
    };
    if let Some(command) = command {
        let given = [
            ("name", request.name.is_some()),
            ("options", request.options.is_some()),
            ("restart", request.restart.is_some()),
        ];
        if let Some((field, _)) = given.into_iter().find(|(_, given)| *given) {
            return Err(RequestError::StartOnly { field, action });
        }
        return Ok(ApiCommand { command, restart: true, unusable_name: None });
    }
    // Bad options win over a bad name: nothing is recorded.
    let text = options_text(&request.options.unwrap_or_default())?;
    let options = defaults.parse(&text).map_err(RequestError::BadOption)?;
    let (name, unusable_name) = match request.name.as_deref().map(str::trim).unwrap_or("") {
        "" => (DEFAULT_NAME.to_string(), None),
        name => match validate_name(name) {
            Ok(name) => (name, None),
            Err(name) => (DEFAULT_NAME.to_string(), Some(name)),
        },
    };
    let restart = request.restart.unwrap_or(true);
    Ok(ApiCommand { command: MarkerCommand::Start { name, options }, restart, unusable_name })
}

/// The options as the text a `Stasis` marker carries: `key=value&key=value`.
/// Numbers and booleans are written as JSON writes them; a key or value that
/// would read as more than one pair is refused.
pub fn options_text(options: &OptionPairs) -> Result<String, RequestError> {
    let mut pairs = Vec::with_capacity(options.0.len());
    for (key, value) in &options.0 {
        let refuse = |problem| RequestError::OptionValue { key: key.clone(), problem };
        let value = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => {
                return Err(refuse("expected a string (a number or true/false is read as text)"))
            }
        };
        if key.contains(['&', '=']) {
            return Err(refuse("an option name cannot contain '&' or '='"));
        }
        if value.contains('&') {
            return Err(refuse("a value cannot contain '&'"));
        }
        pairs.push(format!("{key}={value}"));
    }
    Ok(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::markers::{Channels, PauseMode};
    use crate::recording::encode::AudioFormat;

    fn defaults() -> RecordingOptions {
        RecordingOptions::for_tests()
    }

    fn read(body: Value) -> Result<ApiCommand, RequestError> {
        let request: RecordingRequest = serde_json::from_value(body).expect("a well-formed request");
        command_from(request, &defaults())
    }

    fn start(name: &str) -> MarkerCommand {
        MarkerCommand::Start { name: name.to_string(), options: defaults() }
    }

    #[test]
    fn each_action_becomes_its_marker() {
        let plain = |command| Ok(ApiCommand { command, restart: true, unusable_name: None });
        assert_eq!(read(json!({"action": "start"})), plain(start(DEFAULT_NAME)));
        assert_eq!(read(json!({"action": "start", "name": ""})), plain(start(DEFAULT_NAME)));
        assert_eq!(read(json!({"action": "Start", "name": " payment_1 "})), plain(start("payment_1")));
        assert_eq!(read(json!({"action": "stop"})), plain(MarkerCommand::Stop));
        assert_eq!(read(json!({"action": "pause"})), plain(MarkerCommand::Pause));
        assert_eq!(read(json!({"action": "resume"})), plain(MarkerCommand::Resume));
        assert_eq!(read(json!({"action": "record"})), Err(RequestError::UnknownAction("record".to_string())));
        assert!(matches!(read(json!({"action": ""})), Err(RequestError::UnknownAction(_))));
    }

    #[test]
    fn options_are_read_by_the_one_parser() {
        let body = json!({"action": "start", "name": "pay", "options": {
            "channels": "stereo", "format": "wav", "pause": "skip", "max": "30m", "min": "2s"
        }});
        let Ok(ApiCommand { command: MarkerCommand::Start { name, options }, .. }) = read(body) else {
            panic!("a start with options");
        };
        assert_eq!(name, "pay");
        assert_eq!(options.channels, Channels::Stereo);
        assert_eq!(options.format, AudioFormat::Wav);
        assert_eq!(options.pause, PauseMode::Skip);
        assert_eq!(options.max, Duration::from_secs(1800));
        assert_eq!(options.min, Duration::from_secs(2));
    }

    #[test]
    fn options_become_stasis_text() {
        let pairs = |value: Value| serde_json::from_value::<OptionPairs>(value).unwrap();
        assert_eq!(options_text(&pairs(json!({}))), Ok(String::new()));
        assert_eq!(
            options_text(&pairs(json!({"channels": "stereo", "max": "10m"}))),
            Ok("channels=stereo&max=10m".to_string())
        );
        assert_eq!(options_text(&pairs(json!({"min": 2, "x": true}))), Ok("min=2&x=true".to_string()));
        for (bad, key) in [
            (json!({"max": null}), "max"),
            (json!({"max": ["1m"]}), "max"),
            (json!({"channels": {"left": "caller"}}), "channels"),
            (json!({"channels": "mono&max=24h"}), "channels"),
            (json!({"max=1m&channels": "mono"}), "max=1m&channels"),
        ] {
            let error = options_text(&pairs(bad.clone())).unwrap_err();
            assert!(matches!(&error, RequestError::OptionValue { key: k, .. } if k == key), "{bad}: {error:?}");
        }
    }

    #[test]
    fn a_bad_option_refuses_the_start_and_names_the_key() {
        for (options, key) in [
            (json!({"channels": "quad"}), "channels"),
            (json!({"colour": "red"}), "colour"),
            (json!({"max": "25h"}), "max"),
            (json!({"max": 30}), "max"),
            (json!({"channels": "stereo", "format": "ul"}), "format"),
        ] {
            let error = read(json!({"action": "start", "options": options})).unwrap_err();
            let RequestError::BadOption(option) = &error else { panic!("{options}: {error:?}") };
            assert_eq!(option.key(), key);
            assert!(error.to_string().contains("nothing is recorded"), "{error}");
        }
        // Given twice (JSON keeps both; the parser refuses), even in another case.
        let body = r#"{"action": "start", "options": {"max": "1m", "MAX": "2m"}}"#;
        let error = command_from(serde_json::from_str(body).unwrap(), &defaults()).unwrap_err();
        assert!(matches!(error, RequestError::BadOption(OptionError::Repeated(_))), "{error:?}");
        // Bad options win over a bad name.
        let error = read(json!({"action": "start", "name": "a b", "options": {"pause": "mute"}})).unwrap_err();
        assert!(matches!(error, RequestError::BadOption(_)), "{error:?}");
    }

    #[test]
    fn an_unusable_name_records_under_the_default_name() {
        for bad in ["../etc/passwd", ".hidden", "a b", "x/y", &"n".repeat(65), "é"] {
            let read = read(json!({"action": "start", "name": bad, "options": {"pause": "skip"}})).unwrap();
            let options = RecordingOptions { pause: PauseMode::Skip, ..defaults() };
            assert_eq!(read.command, MarkerCommand::Start { name: DEFAULT_NAME.to_string(), options }, "{bad}");
            assert_eq!(read.unusable_name.as_deref(), Some(bad));
        }
    }

    #[test]
    fn name_options_and_restart_are_for_start_only() {
        for (body, field) in [
            (json!({"action": "stop", "name": "pay"}), "name"),
            (json!({"action": "pause", "options": {}}), "options"),
            (json!({"action": "resume", "restart": false}), "restart"),
        ] {
            let error = read(body.clone()).unwrap_err();
            assert!(matches!(error, RequestError::StartOnly { field: f, .. } if f == field), "{body}");
        }
        assert!(read(json!({"action": "stop", "name": null})).is_ok(), "null is absent");
    }

    #[test]
    fn restart_defaults_to_true() {
        assert!(read(json!({"action": "start"})).unwrap().restart);
        assert!(read(json!({"action": "start", "restart": true})).unwrap().restart);
        assert!(!read(json!({"action": "start", "restart": false})).unwrap().restart);
    }

    #[test]
    fn unknown_fields_and_wrong_types_do_not_read() {
        for body in [
            json!({"action": "start", "option": {"channels": "stereo"}}),
            json!({"action": "start", "options": "channels=stereo"}),
            json!({"action": "start", "name": 7}),
            json!({"action": "start", "restart": "no"}),
            json!({"name": "pay"}),
        ] {
            assert!(serde_json::from_value::<RecordingRequest>(body.clone()).is_err(), "{body}");
        }
    }
}
