//! The FastAGI transport of markers, sans-IO: what Asterisk sends when the
//! dialplan runs `AGI(agi://HOST:4573/start?name=NAME&channels=stereo)` (its
//! environment block, `agi_*: value` lines up to an empty one), read into a
//! marker for the channel `agi_uniqueid`; and the command lines callrec
//! answers with and the `200 result=` replies they get. The same markers as
//! Stasis's, read by the same parser: `/start?name=NAME&OPTION=VALUE…` or
//! `/start,NAME,OPTIONS` as AGI arguments; `/stop`, `/pause`, `/resume`.

use super::{stasis, MarkerCommand, MarkerError, RecordingOptions};

/// Longest line of the environment block (an `agi_request` with options).
pub const MAX_LINE: usize = 2048;
/// Most lines an environment block may have (Asterisk sends about 25, plus
/// one per AGI argument).
pub const MAX_LINES: usize = 128;

/// Why an AGI session is cut off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgiError {
    #[error("AGI line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("AGI environment longer than {MAX_LINES} lines")]
    TooManyLines,
    #[error("AGI environment line is not `agi_name: value`: {0:?}")]
    Malformed(String),
    #[error("AGI environment names no channel (agi_uniqueid)")]
    NoChannel,
}

/// The environment block, as read so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Environment {
    lines: usize,
    /// The channel's ARI id.
    pub uniqueid: String,
    /// The channel's name, for logs.
    pub channel: String,
    /// The script part of the URL: `start?name=x&channels=stereo`.
    pub script: String,
    /// `agi_arg_1`, `agi_arg_2`, … in order.
    pub args: Vec<String>,
}

impl Environment {
    /// Takes one line (without its newline). `Ok(true)` once the block ended.
    pub fn feed(&mut self, line: &[u8]) -> Result<bool, AgiError> {
        if line.len() > MAX_LINE {
            return Err(AgiError::LineTooLong);
        }
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            return if self.uniqueid.is_empty() { Err(AgiError::NoChannel) } else { Ok(true) };
        }
        self.lines += 1;
        if self.lines > MAX_LINES {
            return Err(AgiError::TooManyLines);
        }
        let Some((key, value)) = line.split_once(':').filter(|(key, _)| key.starts_with("agi_")) else {
            return Err(AgiError::Malformed(line.chars().take(80).collect()));
        };
        let value = value.trim().to_string();
        match key {
            "agi_uniqueid" => self.uniqueid = value,
            "agi_channel" => self.channel = value,
            "agi_network_script" => self.script = value,
            key => {
                if let Some(index) = key.strip_prefix("agi_arg_").and_then(|n| n.parse::<usize>().ok()) {
                    if index == self.args.len() + 1 {
                        self.args.push(value);
                    }
                }
            }
        }
        Ok(false)
    }

    /// The marker the script and arguments ask for.
    pub fn marker(&self, defaults: &RecordingOptions) -> Result<MarkerCommand, MarkerError> {
        let (path, query) = self.script.split_once('?').unwrap_or((&self.script, ""));
        let mut args = vec![path.trim_matches('/').to_string()];
        let mut name = None;
        let mut options = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "name" => name = Some(value.into_owned()),
                // The options parser names a bad key or value itself.
                _ => options.push(format!("{key}={value}")),
            }
        }
        if name.is_none() && options.is_empty() {
            args.extend(self.args.iter().cloned());
        } else {
            args.push(name.unwrap_or_default());
            args.push(options.join("&"));
        }
        stasis::parse_args(&args, defaults)
    }
}

/// `SET VARIABLE NAME "VALUE"` with the value quoted as Asterisk's AGI
/// parser reads it.
pub fn set_variable(name: &str, value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    for c in value.chars().filter(|c| !c.is_control()) {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!("SET VARIABLE {name} \"{quoted}\"\n")
}

/// What a line Asterisk sent after a command means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200 result=…`: done.
    Done,
    /// `HANGUP`: the channel hung up (the session may go on, on a dead channel).
    Hangup,
    /// `511 …`: not allowed on a dead channel.
    DeadChannel,
    /// `520-…` (the start of a usage text, ended by `520 …`).
    UsageFollows,
    /// Any other answer: a failure, kept for the log.
    Failed(String),
}

pub fn read_reply(line: &[u8]) -> Reply {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\r', '\n']);
    if line == "HANGUP" {
        Reply::Hangup
    } else if line.starts_with("200 ") {
        Reply::Done
    } else if line.starts_with("511") {
        Reply::DeadChannel
    } else if line.starts_with("520-") {
        Reply::UsageFollows
    } else {
        Reply::Failed(line.chars().take(120).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markers::{Channels, DEFAULT_NAME};

    fn environment(lines: &[&str]) -> Result<Environment, AgiError> {
        let mut env = Environment::default();
        for line in lines {
            if env.feed(line.as_bytes())? {
                return Ok(env);
            }
        }
        panic!("the block did not end");
    }

    fn block(script: &str, args: &[&str]) -> Environment {
        let mut lines = vec![
            "agi_network: yes".to_string(),
            format!("agi_network_script: {script}"),
            format!("agi_request: agi://127.0.0.1:4573/{script}"),
            "agi_channel: PJSIP/lab-00000001".to_string(),
            "agi_uniqueid: 1764000000.42".to_string(),
            "agi_callerid: 5551000".to_string(),
        ];
        lines.extend(args.iter().enumerate().map(|(i, arg)| format!("agi_arg_{}: {arg}", i + 1)));
        lines.push(String::new());
        environment(&lines.iter().map(String::as_str).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn reads_the_channel_and_the_marker_from_the_environment() {
        let env = block("start?name=card&channels=stereo&max=30m", &[]);
        assert_eq!((env.uniqueid.as_str(), env.channel.as_str()), ("1764000000.42", "PJSIP/lab-00000001"));
        let defaults = RecordingOptions::for_tests();
        let Ok(MarkerCommand::Start { name, options }) = env.marker(&defaults) else { panic!() };
        assert_eq!((name.as_str(), options.channels), ("card", Channels::Stereo));
        assert_eq!(options.max, std::time::Duration::from_secs(1800));
        for (script, marker) in
            [("stop", MarkerCommand::Stop), ("/pause", MarkerCommand::Pause), ("resume", MarkerCommand::Resume)]
        {
            assert_eq!(block(script, &[]).marker(&defaults), Ok(marker));
        }
    }

    #[test]
    fn takes_the_name_and_options_as_agi_arguments_too() {
        let defaults = RecordingOptions::for_tests();
        let Ok(MarkerCommand::Start { name, options }) =
            block("start", &["intake", "channels=stereo"]).marker(&defaults)
        else {
            panic!()
        };
        assert_eq!((name.as_str(), options.channels), ("intake", Channels::Stereo));
        let Ok(MarkerCommand::Start { name, .. }) = block("start", &[]).marker(&defaults) else { panic!() };
        assert_eq!(name, DEFAULT_NAME);
    }

    #[test]
    fn bad_markers_are_the_markers_own_errors() {
        let defaults = RecordingOptions::for_tests();
        assert!(matches!(block("start?channels=quad", &[]).marker(&defaults), Err(MarkerError::BadOption(_))));
        assert!(matches!(block("start?name=a%20b", &[]).marker(&defaults), Err(MarkerError::BadName { .. })));
        assert!(matches!(block("record", &[]).marker(&defaults), Err(MarkerError::Unknown(_))));
        assert!(matches!(block("", &[]).marker(&defaults), Err(MarkerError::Missing)));
        assert!(matches!(block("stop", &["x"]).marker(&defaults), Err(MarkerError::ExtraArguments(_))));
    }

    #[test]
    fn malformed_or_oversized_environments_are_cut_off() {
        assert_eq!(environment(&["agi_network: yes", ""]), Err(AgiError::NoChannel));
        assert!(matches!(environment(&["GET / HTTP/1.1"]), Err(AgiError::Malformed(_))));
        let long = format!("agi_arg_1: {}", "x".repeat(MAX_LINE));
        assert_eq!(environment(&[&long]), Err(AgiError::LineTooLong));
        let many: Vec<String> = (0..=MAX_LINES).map(|i| format!("agi_x{i}: y")).collect();
        assert_eq!(environment(&many.iter().map(String::as_str).collect::<Vec<_>>()), Err(AgiError::TooManyLines));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: every byte value, in lines of
        // every length up to past the limit.
        let mut state: u32 = 0x9e37_79b9;
        for _ in 0..2000 {
            let mut env = Environment::default();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let len = (state as usize) % (MAX_LINE + 64);
                let line: Vec<u8> = (0..len).map(|i| (state.wrapping_mul(i as u32 + 1) >> 7) as u8).collect();
                match env.feed(&line) {
                    Ok(true) | Err(_) => break,
                    Ok(false) => {}
                }
            }
            let _ = env.marker(&RecordingOptions::for_tests());
            let _ = read_reply(&state.to_le_bytes());
        }
    }

    #[test]
    fn commands_quote_their_values_and_replies_are_read() {
        assert_eq!(set_variable("CALLREC_STATUS", "RECORDING"), "SET VARIABLE CALLREC_STATUS \"RECORDING\"\n");
        assert_eq!(set_variable("X", "a\"b\\c\nd"), "SET VARIABLE X \"a\\\"b\\\\cd\"\n");
        assert_eq!(read_reply(b"200 result=1\n"), Reply::Done);
        assert_eq!(read_reply(b"HANGUP\n"), Reply::Hangup);
        assert_eq!(read_reply(b"511 Command Not Permitted on a dead channel or intercepted\n"), Reply::DeadChannel);
        assert_eq!(read_reply(b"520-Invalid command syntax.  Proper usage follows:"), Reply::UsageFollows);
        assert_eq!(
            read_reply(b"510 Invalid or unknown command"),
            Reply::Failed("510 Invalid or unknown command".into())
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::markers::options::properties::{defaults, defaults_and_options, option_text, render, style, text};
    use crate::markers::stasis::properties::{check_marker, command, valid_name};
    use crate::markers::DEFAULT_NAME;

    /// A line as Asterisk, or anything else on the port, might send it.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => agi_line(),
            1 => Just(Vec::new()),
            1 => prop::collection::vec(any::<u8>(), 0..200),
            1 => prop::collection::vec(any::<u8>(), MAX_LINE - 2..MAX_LINE + 2),
        ]
    }

    /// An `agi_name: value` line, of a name callrec reads or another.
    fn agi_line() -> impl Strategy<Value = Vec<u8>> {
        let key = prop_oneof![
            prop::sample::select(
                &["uniqueid", "channel", "network_script", "arg_1", "arg_2", "arg_3", "arg_0", "arg_x", "request"][..]
            )
            .prop_map(str::to_string),
            "[a-z_0-9]{0,10}",
        ];
        let value = prop_oneof![text(40), script(), valid_name(), option_text()];
        (key, prop::sample::select(&[": ", ":", " : "][..]), value)
            .prop_map(|(key, colon, value)| format!("agi_{key}{colon}{value}").into_bytes())
    }

    /// The script part of an AGI URL: a marker and a query of options.
    fn script() -> impl Strategy<Value = String> {
        let name = prop_oneof![valid_name(), text(10)].prop_map(|name| format!("name={name}&"));
        (
            prop::sample::select(&["start", "/start", "start", "stop", "pause", "resume", ""][..]),
            prop::option::of(name),
            option_text(),
        )
            .prop_map(|(path, name, query)| format!("{path}?{}{query}", name.unwrap_or_default()))
    }

    /// An environment block: the lines that matter, with other `agi_`
    /// lines among them, ended or not.
    fn block() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let arguments = prop::collection::vec(prop_oneof![valid_name(), option_text(), text(20)], 0..3);
        (script(), arguments, prop::collection::vec((any::<prop::sample::Index>(), agi_line()), 0..3), any::<bool>())
            .prop_map(|(script, arguments, others, ended)| {
                let mut lines = vec![format!("agi_network_script: {script}"), "agi_uniqueid: 1764000000.1".into()];
                lines.extend(arguments.iter().enumerate().map(|(i, arg)| format!("agi_arg_{}: {arg}", i + 1)));
                let mut lines: Vec<Vec<u8>> = lines.into_iter().map(String::into_bytes).collect();
                for (at, line) in others {
                    lines.insert(at.index(lines.len() + 1), line);
                }
                if ended {
                    lines.push(Vec::new());
                }
                lines
            })
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Any lines never panic the environment reader; a block it accepts
        /// names a channel; the marker read from whatever was fed never
        /// panics, and a start marker from it has a valid name and sound
        /// options.
        #[test]
        fn whatever_is_fed_is_read_soundly(
            defaults in defaults(),
            lines in prop_oneof![3 => block(), 1 => prop::collection::vec(line(), 0..12)],
        ) {
            let mut env = Environment::default();
            for line in &lines {
                match env.feed(line) {
                    Ok(true) => {
                        prop_assert!(!env.uniqueid.is_empty(), "a block without a channel");
                        break;
                    }
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
            check_marker(&env.marker(&defaults), &defaults)?;
        }

        /// A marker written as an AGI URL's query, or as AGI arguments,
        /// reads back as the same marker.
        #[test]
        fn rendered_markers_read_back(
            (defaults, options) in defaults_and_options(),
            style in style(),
            name in prop::option::of(valid_name()),
            other in command(),
            is_start in any::<bool>(),
            as_arguments in any::<bool>(),
            slash in any::<bool>(),
        ) {
            let slash = if slash { "/" } else { "" };
            let (command, script, args) = if !is_start {
                (other.0, format!("{slash}{}", other.1.trim().to_ascii_lowercase()), Vec::new())
            } else {
                let command = MarkerCommand::Start { name: name.clone().unwrap_or(DEFAULT_NAME.to_string()), options };
                let text = render(&options, &defaults, &style);
                if as_arguments {
                    (command, format!("{slash}start"), vec![name.unwrap_or_default(), text])
                } else {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    if let Some(name) = &name {
                        query.append_pair("name", name);
                    }
                    for pair in text.split('&').filter(|pair| !pair.trim().is_empty()) {
                        let (key, value) = pair.split_once('=').expect("rendered pairs have a value");
                        query.append_pair(key.trim(), value.trim());
                    }
                    (command, format!("{slash}start?{}", query.finish()), Vec::new())
                }
            };
            let mut lines = vec![
                "agi_network: yes".to_string(),
                format!("agi_network_script: {script}"),
                "agi_channel: PJSIP/lab-00000001".to_string(),
                "agi_uniqueid: 1764000000.42".to_string(),
            ];
            lines.extend(args.iter().enumerate().map(|(i, arg)| format!("agi_arg_{}: {arg}", i + 1)));
            let mut env = Environment::default();
            for line in &lines {
                prop_assert_eq!(env.feed(line.as_bytes()), Ok(false), "{}", line);
            }
            prop_assert_eq!(env.feed(b""), Ok(true));
            prop_assert_eq!(env.marker(&defaults), Ok(command), "{:?}", lines);
        }
    }
}
