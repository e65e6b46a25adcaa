//! `callrec`: parses the command line, sets up logging, and runs the service
//! until SIGINT or SIGTERM; `callrec convert` converts one file, `callrec
//! keygen` writes a signing key pair and `callrec verify` checks a delivered
//! recording, and each exits; `callrec receive` serves as a storage webhook
//! until stopped.

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use callrec::config::file::{self, CliError};
use callrec::config::{Command, Config, ConvertArgs, KeygenArgs, LogFormat, VerifyArgs};

fn main() -> ExitCode {
    let parsed = file::parse(std::env::args_os().collect(), |name| std::env::var_os(name));
    let (cli, matches, config_file) = match parsed {
        Ok(parsed) => parsed,
        Err(CliError::Clap(error)) if !error.use_stderr() => {
            // --help and --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(CliError::Clap(error)) => {
            eprintln!("callrec: {}", one_line(&error.to_string()));
            return ExitCode::from(2);
        }
        Err(CliError::File(error)) => {
            eprintln!("callrec: {error}");
            return ExitCode::from(2);
        }
    };
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Convert(args) => return convert(&args),
        Command::Keygen(args) => return keygen(&args),
        Command::Verify(args) => return verify(&args),
        Command::Receive(args) => {
            let explain = |error| match (&config_file, matches.subcommand_matches("receive")) {
                (Some(file), Some(receive)) => file.explain(receive, error),
                _ => error,
            };
            return receive(args, explain);
        }
    };
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(error) => {
            let error = match (&config_file, matches.subcommand_matches("run")) {
                (Some(file), Some(run)) => file.explain(run, error),
                _ => error,
            };
            eprintln!("callrec: {error}");
            return ExitCode::from(2);
        }
    };

    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        // One object a line: the event's own fields under `fields` (one may
        // be called `target`, like the module), the call's span (channel_id,
        // recording_id) in `spans`.
        LogFormat::Json => logs.json().with_current_span(false).init(),
        // Colours only on a terminal: `docker logs` and log files get plain text.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    if let Some(file) = &config_file {
        tracing::info!(config = %file.path.display(), keys = file.values.len(), "configuration file read");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("callrec: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(callrec::service::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `callrec receive`: serves until SIGINT or SIGTERM.
fn receive(
    args: callrec::receive::ReceiveArgs,
    explain: impl Fn(callrec::config::ConfigError) -> callrec::config::ConfigError,
) -> ExitCode {
    let config = match callrec::receive::ReceiveConfig::try_from(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("callrec: {}", explain(error));
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("callrec: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(callrec::receive::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `callrec convert`: the summary on stdout, or one line on stderr and exit code 2.
fn convert(args: &ConvertArgs) -> ExitCode {
    match callrec::convert::convert(&args.input, &args.output) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("callrec: {error}");
            ExitCode::from(2)
        }
    }
}

/// `callrec keygen`: the key_id and both paths on stdout, or one line on
/// stderr and exit code 2.
fn keygen(args: &KeygenArgs) -> ExitCode {
    match callrec::integrity::command::keygen(&args.out) {
        Ok(lines) => print_lines(&lines),
        Err(error) => {
            eprintln!("callrec: {error}");
            ExitCode::from(2)
        }
    }
}

/// `callrec verify`: a line per check that passed; or one line on stderr and
/// exit code 1 when the recording does not prove itself, 2 when it could not
/// be checked.
fn verify(args: &VerifyArgs) -> ExitCode {
    let checked = callrec::integrity::command::verify_files(&args.metadata, args.audio.as_deref(), args.key.as_deref());
    match checked {
        Ok(lines) => print_lines(&lines),
        Err(error) => {
            eprintln!("callrec: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn print_lines(lines: &[String]) -> ExitCode {
    for line in lines {
        println!("{line}");
    }
    ExitCode::SUCCESS
}

/// clap's multi-line error as one line: the message and its details, without
/// the usage block and tips (`--help` has those).
fn one_line(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("tip:") && !line.starts_with("For more information"))
        .collect();
    words.join(" ").trim_start_matches("error: ").to_string()
}

/// Completes on the first SIGINT or SIGTERM (what `docker stop` sends).
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
