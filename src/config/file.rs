//! `callrec run --config FILE` (and `callrec receive --config FILE`): a TOML
//! file whose keys are that command's long flags (`ari-url =
//! "http://pbx:8088"`, `target = ["a=http://…"]`). Its values become the
//! flags' defaults, beneath the environment and the command line, so that
//! clap reads every source the same way: flag > environment > file >
//! built-in default. An unknown key, a value of the wrong kind and a value
//! its flag refuses are errors naming the key and the file.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{ArgAction, ArgMatches, Command, CommandFactory};

use super::{Cli, ConfigError};

/// The flag (and environment variables) that name the file.
pub const FLAG: &str = "config";
pub const ENV: &str = "CALLREC_CONFIG";
/// `receive`'s own, so that one environment can configure both commands.
pub const RECEIVE_ENV: &str = "CALLREC_RECEIVE_CONFIG";

/// The commands that take a configuration file, with the variable that
/// names it.
const COMMANDS: [(&str, &str); 2] = [("run", ENV), ("receive", RECEIVE_ENV)];

/// A configuration file read: its keys with their values, in file order.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The command whose flags its keys are.
    pub command: &'static str,
    pub values: Vec<(String, Vec<String>)>,
}

impl ConfigFile {
    /// Reads and checks `path` against the flags of `callrec {command}`.
    pub fn load(path: &Path, command: &'static str) -> Result<Self, ConfigError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError(format!("--config {shown}: cannot read it: {error}")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|error: toml::de::Error| ConfigError(format!("{shown}: not valid TOML: {}", one_line(&error))))?;
        let flags = subcommand(command);
        let example = flags.get_arguments().find_map(|arg| arg.get_long()).unwrap_or_default();
        let mut values = Vec::new();
        for (key, value) in table {
            let arg = flags
                .get_arguments()
                .find(|arg| arg.get_long() == Some(key.as_str()) && key != FLAG && !arg.is_hide_set())
                .ok_or_else(|| {
                    ConfigError(format!(
                        "{shown}: unknown key `{key}` (the keys are the long flags of `callrec {command}`, e.g. {example})"
                    ))
                })?;
            let repeatable = matches!(arg.get_action(), ArgAction::Append);
            let texts = match value {
                toml::Value::Array(items) if repeatable => items.into_iter().map(scalar).collect(),
                value => scalar(value).map(|text| vec![text]),
            }
            .ok_or_else(|| {
                let kind = if repeatable { "a string or a list of strings" } else { "a string, number or boolean" };
                ConfigError(format!("{shown}: key `{key}`: expected {kind}"))
            })?;
            check_value(&flags, &key, &texts).map_err(|error| ConfigError(format!("{shown}: key `{key}`: {error}")))?;
            values.push((key, texts));
        }
        Ok(ConfigFile { path: path.to_path_buf(), command, values })
    }

    /// The command's flags with this file's values as their defaults.
    fn apply(&self, cli: Command) -> Command {
        cli.mut_subcommand(self.command, |mut run| {
            for (key, texts) in &self.values {
                let id = run.get_arguments().find(|arg| arg.get_long() == Some(key)).map(|arg| arg.get_id().clone());
                if let Some(id) = id {
                    // Not shown as a default in --help: the file may hold secrets.
                    let with_default =
                        |arg: clap::Arg| arg.required(false).default_values(texts.clone()).hide_default_value(true);
                    run = run.mut_arg(id, with_default);
                }
            }
            run
        })
    }

    /// The keys whose value was taken from the file (neither a flag nor the
    /// environment gave one).
    pub fn used_keys(&self, run: &ArgMatches) -> Vec<&str> {
        let command = subcommand(self.command);
        self.values
            .iter()
            .filter(|(key, _)| {
                let id = command.get_arguments().find(|arg| arg.get_long() == Some(key)).map(|arg| arg.get_id());
                id.is_some_and(|id| run.value_source(id.as_str()) == Some(clap::parser::ValueSource::DefaultValue))
            })
            .map(|(key, _)| key.as_str())
            .collect()
    }

    /// `error` with the file named when it is about a key the file gave.
    pub fn explain(&self, run: &ArgMatches, error: ConfigError) -> ConfigError {
        let message = error.to_string();
        match self.used_keys(run).into_iter().find(|key| message.contains(&format!("--{key}"))) {
            Some(key) => ConfigError(format!("{message} (key `{key}` in {})", self.path.display())),
            None => error,
        }
    }
}

/// Why the command line could not be read.
#[derive(Debug)]
pub enum CliError {
    /// clap's own error (also `--help` and `--version`).
    Clap(clap::Error),
    File(ConfigError),
}

/// Parses `args` (the program name first), with the command's defaults
/// from the file `--config` or its variable (`env` reads the environment)
/// names, if any. Returns the file too.
pub fn parse(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<(Cli, ArgMatches, Option<ConfigFile>), CliError> {
    let file = match command_of(&args) {
        Some((command, variable)) => match config_path(&args).or(env(variable).filter(|path| !path.is_empty())) {
            Some(path) => Some(ConfigFile::load(Path::new(&path), command).map_err(CliError::File)?),
            None => None,
        },
        None => None,
    };
    let mut command = Cli::command();
    if let Some(file) = &file {
        command = file.apply(command);
    }
    let matches = command.try_get_matches_from(args).map_err(CliError::Clap)?;
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).map_err(CliError::Clap)?;
    Ok((cli, matches, file))
}

/// The value of `--config FILE` or `--config=FILE`, if given.
fn config_path(args: &[OsString]) -> Option<OsString> {
    let flag = format!("--{FLAG}");
    let mut words = args.iter().skip(1).map(OsString::as_os_str).take_while(|word| *word != OsStr::new("--"));
    while let Some(word) = words.next() {
        let text = word.to_string_lossy();
        if text == flag {
            return words.next().map(OsStr::to_os_string);
        }
        if let Some(value) = text.strip_prefix(&format!("{flag}=")) {
            return Some(value.into());
        }
    }
    None
}

/// The command given (its first word), if it takes a configuration file,
/// with the variable that names the file.
fn command_of(args: &[OsString]) -> Option<(&'static str, &'static str)> {
    let word = args.iter().skip(1).find(|word| !word.to_string_lossy().starts_with('-'))?;
    COMMANDS.into_iter().find(|(command, _)| OsStr::new(command) == word)
}

/// `callrec {name}`'s flags, as clap knows them.
fn subcommand(name: &str) -> Command {
    Cli::command().find_subcommand(name).cloned().expect("callrec has this subcommand")
}

/// A TOML scalar as the text a flag would be given.
fn scalar(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Runs `key`'s own parser over `texts`, alone: what the flag would refuse.
fn check_value(run: &Command, key: &str, texts: &[String]) -> Result<(), String> {
    let alone = run.clone().mut_args(|arg| arg.required(false).env(None::<&'static str>)).no_binary_name(true);
    let mut words = Vec::new();
    for text in texts {
        words.push(format!("--{key}={text}"));
    }
    alone.try_get_matches_from(words).map(|_| ()).map_err(|error| one_line(&error.to_string()))
}

/// The first line of an error, without clap's `error: `.
fn one_line(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let line = text.lines().find(|line| !line.trim().is_empty()).unwrap_or_default().trim();
    line.trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::config::{Command as Subcommand, Config};

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    /// The environment with only `variable` set, to `path`.
    fn env_with<'a>(variable: &'static str, path: Option<&'a Path>) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| path.filter(|_| name == variable).map(|path| path.as_os_str().to_os_string())
    }

    /// `callrec {command} args…` parsed, with `variable` naming `env`.
    fn parsed(
        command: &str,
        args: &[&str],
        variable: &'static str,
        env: Option<&Path>,
    ) -> Result<(Cli, ArgMatches, Option<ConfigFile>), String> {
        let args: Vec<OsString> = ["callrec", command].iter().chain(args).map(OsString::from).collect();
        parse(args, env_with(variable, env)).map_err(|error| match error {
            CliError::Clap(error) => error.to_string(),
            CliError::File(error) => error.to_string(),
        })
    }

    fn run(args: &[&str], env: Option<&Path>) -> Result<Config, String> {
        let (cli, matches, file) = parsed("run", args, ENV, env)?;
        let Subcommand::Run(run) = cli.command else { panic!("not run") };
        let run_matches = matches.subcommand_matches("run").unwrap();
        Config::try_from(run).map_err(|error| match &file {
            Some(file) => file.explain(run_matches, error).to_string(),
            None => error.to_string(),
        })
    }

    #[test]
    fn the_file_gives_defaults_and_flags_win() {
        let config = file(
            "ari-password = \"from-file\"\napp = \"filed\"\nmax-memory = \"1GiB\"\ncapture-timeout = \"2s\"\n\
             target = [\"archive=http://a/x\", \"b=s3://bucket/rec\"]\nlisten = \"off\"\n",
        );
        let path = config.path().to_str().unwrap();
        let from_file = run(&["--config", path], None).unwrap();
        assert_eq!(from_file.ari_password.expose(), "from-file");
        assert_eq!((from_file.app.as_str(), from_file.max_memory), ("filed", 1 << 30));
        assert_eq!(from_file.capture_timeout, std::time::Duration::from_secs(2));
        assert_eq!(from_file.targets.len(), 2);
        assert_eq!(from_file.listen, None);
        let flagged = run(&["--app", "flagged", &format!("--config={path}")], None).unwrap();
        assert_eq!(flagged.app, "flagged");
        let by_env = run(&[], Some(config.path())).unwrap();
        assert_eq!(by_env.app, "filed", "CALLREC_CONFIG names the file too");
        assert_eq!(run(&["--ari-password", "pw"], None).unwrap().app, "callrec", "no file: the default");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        for (text, key) in [
            ("ari-pasword = \"x\"\n", "`ari-pasword`"),
            ("config = \"other.toml\"\n", "`config`"),
            ("max-memory = \"lots\"\n", "`max-memory`"),
            ("capture-timeout = 5\n", "`capture-timeout`"),
            ("app = [\"a\", \"b\"]\n", "`app`"),
            ("[run]\napp = \"x\"\n", "`run`"),
            ("app = \"a b\"\nari-password = \"pw\"\n", "`app`"),
            ("channels = \"stereo\"\nformat = \"ul\"\nari-password = \"pw\"\n", "`format`"),
            ("app = \n", "TOML"),
        ] {
            let config = file(text);
            let path = config.path().to_str().unwrap().to_string();
            let error = run(&["--config", &path], None).unwrap_err();
            assert!(error.contains(key) && error.contains(&path), "{text:?}: {error}");
        }
        let error = run(&["--config", "/nonexistent/callrec.toml"], None).unwrap_err();
        assert!(error.contains("/nonexistent/callrec.toml"), "{error}");
    }

    fn receive(args: &[&str], env: Option<&Path>) -> Result<crate::receive::ReceiveConfig, String> {
        let (cli, _, _) = parsed("receive", args, RECEIVE_ENV, env)?;
        let Subcommand::Receive(receive) = cli.command else { panic!("not receive") };
        crate::receive::ReceiveConfig::try_from(receive).map_err(|error| error.to_string())
    }

    #[test]
    fn the_receiver_takes_a_file_of_its_own_flags() {
        let config = file("listen = \"127.0.0.1:9191\"\ndir = \"/srv/received\"\nmax-body = \"2MiB\"\n");
        let path = config.path().to_str().unwrap();
        let from_file = receive(&["--config", path], None).unwrap();
        assert_eq!(from_file.listen, "127.0.0.1:9191".parse().unwrap());
        assert_eq!((from_file.dir.to_str(), from_file.max_body), (Some("/srv/received"), 2 << 20));
        let flagged = receive(&["--dir", "/elsewhere", "--config", path], None).unwrap();
        assert_eq!(flagged.dir.to_str(), Some("/elsewhere"));
        let by_env = receive(&[], Some(config.path())).unwrap();
        assert_eq!(by_env.dir.to_str(), Some("/srv/received"), "CALLREC_RECEIVE_CONFIG names the file too");
        // `run`'s file is not the receiver's, nor the other way round.
        let args = ["callrec", "receive"].map(OsString::from).to_vec();
        assert!(parse(args, env_with(ENV, Some(config.path()))).unwrap().2.is_none());
        let error =
            receive(&["--config", file("ari-url = \"http://pbx:8088\"\n").path().to_str().unwrap()], None).unwrap_err();
        assert!(error.contains("`ari-url`") && error.contains("`callrec receive`"), "{error}");
        let error = run(&["--config", path], None).unwrap_err();
        assert!(error.contains("`dir`") && error.contains(path), "{error}");
    }

    #[test]
    fn help_never_shows_the_files_values() {
        let config = file("ari-password = \"hunter2-in-file\"\napi-token = \"t0ken-in-file\"\n");
        let path = config.path().to_str().unwrap();
        let args = ["callrec", "run", "--config", path, "--help"].map(OsString::from).to_vec();
        let Err(CliError::Clap(help)) = parse(args, |_| None) else { panic!("--help is clap's answer") };
        let help = help.render().to_string();
        assert!(help.contains("--ari-password"), "{help}");
        assert!(!help.contains("hunter2-in-file") && !help.contains("t0ken-in-file"), "{help}");
    }

    #[test]
    fn the_file_is_found_on_the_command_line() {
        let args = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(config_path(&args(&["callrec", "run", "--config", "a.toml"])), Some("a.toml".into()));
        assert_eq!(config_path(&args(&["callrec", "run", "--config=b.toml"])), Some("b.toml".into()));
        assert_eq!(config_path(&args(&["callrec", "run", "--app", "x"])), None);
        assert_eq!(config_path(&args(&["callrec", "run", "--", "--config", "c"])), None);
    }
}
