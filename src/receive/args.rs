//! `callrec receive`'s command line (every flag also an environment
//! variable), checked into a `ReceiveConfig` before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::config::{file, parse_secret, parse_size, webhook_secret, ConfigError, Secret};

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Address to serve deliveries (POST /recordings, POST /post-call) and the page (GET /) on
    #[arg(long, env = "CALLREC_RECEIVE_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,

    /// Directory the recordings are stored in (<recording_id>.ul|.wav and .json, as callrec's output directory)
    #[arg(long, env = "CALLREC_RECEIVE_DIR", value_name = "DIR", default_value = "./received")]
    pub dir: PathBuf,

    /// The webhook secret callrec signs with: unsigned, wrongly signed or stale deliveries are refused (401)
    #[arg(
        long,
        env = "CALLREC_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        conflicts_with = "webhook_secret_file",
        value_parser = parse_secret
    )]
    pub webhook_secret: Option<Secret>,

    /// File holding that secret (its first line)
    #[arg(long, env = "CALLREC_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Largest delivery taken, e.g. 512MiB (a 4-hour stereo WAV is about 460 MB)
    #[arg(long, env = "CALLREC_RECEIVE_MAX_BODY", value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Log filter, e.g. "info" or "callrec=debug"
    #[arg(long, env = "CALLREC_LOG", value_name = "FILTER", default_value = "info")]
    pub log: String,

    /// TOML file with any of these flags as keys (dir = "/srv/received"); flags and CALLREC_RECEIVE_* variables override it
    #[arg(long = file::FLAG, env = file::RECEIVE_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Everything `callrec receive` needs, checked.
#[derive(Debug, Clone)]
pub struct ReceiveConfig {
    pub listen: SocketAddr,
    pub dir: PathBuf,
    pub webhook_secret: Option<Secret>,
    pub max_body: usize,
    pub log: String,
}

impl TryFrom<ReceiveArgs> for ReceiveConfig {
    type Error = ConfigError;

    fn try_from(args: ReceiveArgs) -> Result<Self, ConfigError> {
        let webhook_secret = webhook_secret(args.webhook_secret, args.webhook_secret_file.as_deref())?;
        let max_body = usize::try_from(args.max_body)
            .map_err(|_| ConfigError(format!("--max-body {} is more than this machine can address", args.max_body)))?;
        Ok(ReceiveConfig { listen: args.listen, dir: args.dir, webhook_secret, max_body, log: args.log })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: ReceiveArgs,
    }

    fn parse(args: &[&str]) -> Result<ReceiveConfig, String> {
        let command = Command::try_parse_from(std::iter::once("receive").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        ReceiveConfig::try_from(command.args).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_and_secrets() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8091".parse().unwrap());
        assert_eq!(config.max_body, 1 << 30);
        let signed = parse(&["--webhook-secret", "whsec-receive", "--max-body", "2MiB"]).unwrap();
        assert_eq!(signed.webhook_secret.as_ref().map(Secret::expose), Some("whsec-receive"));
        assert!(!format!("{signed:?}").contains("whsec-receive"), "the secret never prints");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "whsec-file\nignored\n").unwrap();
        let from_file = parse(&["--webhook-secret-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(from_file.webhook_secret.as_ref().map(Secret::expose), Some("whsec-file"));
        assert!(parse(&["--webhook-secret", ""]).unwrap_err().contains("empty"));
        assert!(parse(&["--webhook-secret-file", "/nonexistent/secret"]).unwrap_err().contains("/nonexistent/secret"));
        assert!(parse(&["--listen", "8091"]).is_err());
    }
}
