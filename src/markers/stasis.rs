//! The Stasis transport of markers: `Stasis(callrec,start[,NAME[,OPTIONS]])`,
//! `Stasis(callrec,stop)`, `Stasis(callrec,pause)` and
//! `Stasis(callrec,resume)`, as the dialplan subroutines of
//! `dialplan/callrec.conf` place them. The channel waits in Stasis until
//! callrec lets it go on.

use super::{validate_name, MarkerCommand, MarkerError, RecordingOptions, DEFAULT_NAME};

/// Reads a marker from the arguments the dialplan passed to Stasis;
/// `defaults` are the options a start marker does not give.
pub fn parse_args(args: &[String], defaults: &RecordingOptions) -> Result<MarkerCommand, MarkerError> {
    let mut args = args.iter().map(|arg| arg.trim());
    let command = args.next().filter(|arg| !arg.is_empty()).ok_or(MarkerError::Missing)?;
    // Trailing empty arguments are what `Gosub(...,1(NAME,))` passes on.
    let mut rest: Vec<&str> = args.collect();
    while rest.last() == Some(&"") {
        rest.pop();
    }
    let too_many = |allowed: usize| rest.len() > allowed;
    match command.to_ascii_lowercase().as_str() {
        "start" if too_many(2) => Err(MarkerError::ExtraArguments(command.to_string())),
        "start" => {
            let options = defaults.parse(rest.get(1).copied().unwrap_or(""))?;
            let name = match rest.first().copied().unwrap_or("") {
                "" => DEFAULT_NAME.to_string(),
                name => validate_name(name).map_err(|name| MarkerError::BadName { name, options })?,
            };
            Ok(MarkerCommand::Start { name, options })
        }
        "stop" | "pause" | "resume" if too_many(0) => Err(MarkerError::ExtraArguments(command.to_string())),
        "stop" => Ok(MarkerCommand::Stop),
        "pause" => Ok(MarkerCommand::Pause),
        "resume" => Ok(MarkerCommand::Resume),
        _ => Err(MarkerError::Unknown(command.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markers::{Channels, PauseMode};

    fn defaults() -> RecordingOptions {
        RecordingOptions::for_tests()
    }

    fn parse(args: &[&str]) -> Result<MarkerCommand, MarkerError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_args(&args, &defaults())
    }

    fn start(name: &str) -> MarkerCommand {
        MarkerCommand::Start { name: name.to_string(), options: defaults() }
    }

    #[test]
    fn start_takes_an_optional_name_and_options() {
        assert_eq!(parse(&["start"]), Ok(start(DEFAULT_NAME)));
        assert_eq!(parse(&["start", ""]), Ok(start(DEFAULT_NAME)));
        assert_eq!(parse(&["start", "", ""]), Ok(start(DEFAULT_NAME)));
        assert_eq!(parse(&["START", "payment_1"]), Ok(start("payment_1")));
        assert_eq!(parse(&[" start ", " v1.2-a "]), Ok(start("v1.2-a")));
        let Ok(MarkerCommand::Start { name, options }) = parse(&["start", "pay", "channels=stereo"]) else {
            panic!("a start marker with options");
        };
        assert_eq!((name.as_str(), options.channels), ("pay", Channels::Stereo));
        let Ok(MarkerCommand::Start { name, options }) = parse(&["start", "", "pause=skip"]) else {
            panic!("options without a name");
        };
        assert_eq!((name.as_str(), options.pause), (DEFAULT_NAME, PauseMode::Skip));
    }

    #[test]
    fn stop_pause_and_resume_take_nothing() {
        assert_eq!(parse(&["stop"]), Ok(MarkerCommand::Stop));
        assert_eq!(parse(&["stop", ""]), Ok(MarkerCommand::Stop));
        assert_eq!(parse(&["pause"]), Ok(MarkerCommand::Pause));
        assert_eq!(parse(&["Resume", ""]), Ok(MarkerCommand::Resume));
        for marker in ["stop", "pause", "resume"] {
            assert!(matches!(parse(&[marker, "x"]), Err(MarkerError::ExtraArguments(_))), "{marker}");
        }
    }

    #[test]
    fn bad_markers_are_named() {
        assert_eq!(parse(&[]), Err(MarkerError::Missing));
        assert_eq!(parse(&[""]), Err(MarkerError::Missing));
        assert_eq!(parse(&["record"]), Err(MarkerError::Unknown("record".into())));
        assert!(matches!(parse(&["start", "a", "b=c", "d"]), Err(MarkerError::ExtraArguments(_))));
        for bad in ["../etc/passwd", ".hidden", "a b", "x/y", &"n".repeat(65), "é"] {
            assert_eq!(
                parse(&["start", bad]),
                Err(MarkerError::BadName { name: bad.to_string(), options: defaults() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_options_refuse_the_start_and_name_the_key() {
        let error = parse(&["start", "pay", "channels=quad"]).unwrap_err();
        let MarkerError::BadOption(option) = &error else { panic!("{error:?}") };
        assert_eq!(option.key(), "channels");
        assert!(error.to_string().contains("channels"), "{error}");
        // Bad options win over a bad name: nothing is recorded.
        assert!(matches!(parse(&["start", "a b", "colour=red"]), Err(MarkerError::BadOption(_))));
    }
}

#[cfg(test)]
pub(crate) mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::markers::options::properties::{
        check_sound, defaults, defaults_and_options, option_text, render, style, text,
    };

    /// A name `validate_name` accepts.
    pub(crate) fn valid_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}"
    }

    /// What every marker that parses, or is refused only for its name, satisfies.
    pub(crate) fn check_marker(
        result: &Result<MarkerCommand, MarkerError>,
        defaults: &RecordingOptions,
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(MarkerCommand::Start { name, options }) => {
                prop_assert_eq!(validate_name(name), Ok(name.clone()));
                check_sound(options, defaults)?;
            }
            Err(MarkerError::BadName { name, options }) => {
                prop_assert!(validate_name(name).is_err(), "{name:?} refused");
                check_sound(options, defaults)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A marker, and the same command word as the dialplan may write it.
    pub(crate) fn command() -> impl Strategy<Value = (MarkerCommand, String)> {
        let word = |word: &'static str| {
            (any::<bool>(), any::<bool>()).prop_map(move |(upper, spaced)| {
                let word = if upper { word.to_ascii_uppercase() } else { word.to_string() };
                if spaced {
                    format!(" {word} ")
                } else {
                    word
                }
            })
        };
        prop_oneof![
            word("stop").prop_map(|word| (MarkerCommand::Stop, word)),
            word("pause").prop_map(|word| (MarkerCommand::Pause, word)),
            word("resume").prop_map(|word| (MarkerCommand::Resume, word)),
        ]
    }

    /// An argument as the dialplan might pass one.
    fn argument() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => prop::sample::select(&["start", "stop", "pause", "resume", " START ", "", "record"][..])
                .prop_map(str::to_string),
            2 => valid_name(),
            2 => option_text(),
            1 => text(30),
        ]
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Any arguments never panic; a start marker that parses has a valid
        /// name and sound options, and one refused for its name names an
        /// invalid one and still carries sound options.
        #[test]
        fn whatever_parses_is_sound(
            defaults in defaults(),
            first in prop_oneof![
                3 => prop::sample::select(&["start", "Start ", "stop", "pause", "resume"][..]).prop_map(str::to_string),
                1 => argument(),
            ],
            rest in prop::collection::vec(argument(), 0..3),
        ) {
            let args: Vec<String> = std::iter::once(first).chain(rest).collect();
            check_marker(&parse_args(&args, &defaults), &defaults)?;
        }

        /// A start marker written as `Stasis(callrec,start,NAME,OPTIONS)`
        /// arguments, and stop/pause/resume, parse back to the same marker.
        #[test]
        fn rendered_markers_parse_back(
            (defaults, options) in defaults_and_options(),
            style in style(),
            name in prop::option::of(valid_name()),
            start in prop::sample::select(&["start", "START", " Start "][..]),
            other in command(),
            is_start in any::<bool>(),
            trailing in 0usize..3,
        ) {
            let (command, mut args) = if is_start {
                let command = MarkerCommand::Start { name: name.clone().unwrap_or(DEFAULT_NAME.to_string()), options };
                (command, vec![start.to_string(), name.unwrap_or_default(), render(&options, &defaults, &style)])
            } else {
                (other.0, vec![other.1])
            };
            args.extend(std::iter::repeat_n(String::new(), trailing));
            prop_assert_eq!(parse_args(&args, &defaults), Ok(command), "{:?}", args);
        }
    }
}
