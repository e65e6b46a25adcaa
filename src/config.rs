//! Start-up: the command line (every flag also read from a `CALLREC_*`
//! environment variable, and from the TOML file `--config` names: see
//! `file`) turned into one validated `Config`. Secrets are wrapped so that
//! they never reach a log line, an error or `--help`.

pub mod file;

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::delivery::s3;
use crate::delivery::target::DEFAULT as DEFAULT_TARGET;
use crate::integrity::SigningKey;
use crate::markers::options::{self, Channels, PauseMode, RecordingOptions, TargetName};
use crate::recording::encode::AudioFormat;

/// A password or token: printed as `***`, readable only through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "callrec",
    version,
    about = "Call recording for Asterisk: record what a caller hears and says between two dialplan markers",
    long_about = "Call recording for Asterisk.\n\n\
        The dialplan marks where recording starts and stops with Stasis(callrec,start[,name]) and \
        Stasis(callrec,stop); callrec snoops the call over ARI, receives both directions as RTP, keeps \
        the audio in memory (μ-law, mono, 8000 Hz) and delivers each finished recording to a storage \
        webhook, or to an output directory when no webhook is set."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the run variant's size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect to Asterisk and record calls until stopped (SIGINT or SIGTERM)
    Run(RunArgs),
    /// Convert a recording between .ul (raw μ-law, mono, 8000 Hz) and WAV
    Convert(ConvertArgs),
    /// Make an Ed25519 key pair to sign recordings with: FILE (private) and FILE.pub
    Keygen(KeygenArgs),
    /// Check a delivered recording: its audio against sha256, and its signature with --key
    Verify(VerifyArgs),
    /// Receive callrec's deliveries into a directory, and serve a page to find and play them
    Receive(crate::receive::ReceiveArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The private key file to write (mode 0600); the public key goes to FILE.pub (mode 0644). Neither may exist
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The recording's metadata (<recording_id>.json)
    #[arg(value_name = "METADATA.json")]
    pub metadata: PathBuf,

    /// The recording's audio; by default the .ul or .wav beside the metadata with the same stem
    #[arg(value_name = "AUDIO")]
    pub audio: Option<PathBuf>,

    /// Public key (FILE.pub from `callrec keygen`) to check the signature with; without it only sha256 is checked
    #[arg(long, env = "CALLREC_VERIFY_KEY", value_name = "FILE.pub")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The recording to read: a .ul, or a 16-bit PCM WAV at 8000 Hz (.wav)
    #[arg(value_name = "IN")]
    pub input: PathBuf,

    /// The file to write: .wav for a .ul, .ul for a mono WAV (replaced if it exists)
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Asterisk's HTTP base URL; the ARI WebSocket URL is derived from it
    #[arg(long, env = "CALLREC_ARI_URL", value_name = "URL", default_value = "http://127.0.0.1:8088")]
    pub ari_url: Url,

    /// ARI user (a [user] section of ari.conf)
    #[arg(long, env = "CALLREC_ARI_USER", value_name = "USER", default_value = "callrec")]
    pub ari_user: String,

    /// ARI password of that user
    #[arg(long, env = "CALLREC_ARI_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub ari_password: String,

    /// Stasis application name the dialplan's markers use (CALLREC_APP in dialplan/callrec.conf)
    #[arg(long, env = "CALLREC_APP", value_name = "NAME", default_value = "callrec")]
    pub app: String,

    /// UDP address the RTP of every recording arrives on
    #[arg(long, env = "CALLREC_MEDIA_BIND", value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub media_bind: SocketAddr,

    /// Address Asterisk sends RTP to, when it cannot reach the bound one (containers, NAT)
    #[arg(long, env = "CALLREC_MEDIA_ADVERTISE", value_name = "HOST:PORT")]
    pub media_advertise: Option<String>,

    /// Storage webhook each finished recording is POSTed to (multipart: metadata + audio)
    #[arg(long, env = "CALLREC_WEBHOOK_URL", value_name = "URL", hide_env_values = true)]
    pub webhook_url: Option<Url>,

    /// A named delivery target NAME=URL (repeatable; comma-separated in the environment) a start marker picks with to=NAME: a webhook (http:// or https://) or an S3-compatible bucket (s3://BUCKET/PREFIX); --webhook-url is the target "default"
    #[arg(long = "target", env = "CALLREC_TARGETS", value_name = "NAME=URL", value_delimiter = ',', hide_env_values = true, value_parser = parse_target)]
    pub targets: Vec<(String, Url)>,

    /// S3-compatible server (MinIO, Ceph, Garage) for s3:// targets, addressed path-style; plain http only when it says http://. Without it, the AWS_* environment variables say (AWS_ENDPOINT_URL, AWS_REGION)
    #[arg(long, env = "CALLREC_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<Url>,

    /// Where recordings are written when no webhook is set, or when the webhook never takes one
    #[arg(long, env = "CALLREC_OUTPUT_DIR", value_name = "DIR", default_value = "./recordings")]
    pub output_dir: PathBuf,

    /// Where recordings the webhook does not take in time wait (durably) to be re-sent, also across restarts
    #[arg(long, env = "CALLREC_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Longest one delivery may take, every attempt and wait included, before the recording goes to the output directory; 10m when unset (the old CALLREC_WEBHOOK_RETRY_FOR is read then)
    #[arg(
        long,
        env = "CALLREC_DELIVERY_TIMEOUT",
        visible_alias = "webhook-retry-for",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    pub delivery_timeout: Option<Duration>,

    /// Secret that signs every webhook request (header Callrec-Signature: HMAC-SHA256 of "<t>.<body>")
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

    /// How long a start marker may hold the call while capture is set up
    #[arg(long, env = "CALLREC_CAPTURE_TIMEOUT", value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub capture_timeout: Duration,

    /// Longest recording: it ends there (end_reason max_duration) and is delivered; a start marker's max may only be shorter
    #[arg(long, env = "CALLREC_MAX_RECORDING", value_name = "DURATION", default_value = "4h", value_parser = humantime::parse_duration)]
    pub max_recording: Duration,

    /// Recordings shorter than this are not delivered (only counted and logged); a start marker's min overrides it
    #[arg(long, env = "CALLREC_MIN_RECORDING", value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub min_recording: Duration,

    /// Tracks of a recording unless its start marker says: mono (one mix) or stereo (left the caller, right what the caller hears)
    #[arg(long, env = "CALLREC_CHANNELS", value_name = "mono|stereo", default_value = "mono", value_parser = options::parse_channels)]
    pub channels: Channels,

    /// File format of a mono recording unless its start marker says: ul (raw μ-law) or wav; stereo is always WAV
    #[arg(long, env = "CALLREC_FORMAT", value_name = "ul|wav", value_parser = |value: &str| options::parse_format("format", value))]
    pub format: Option<AudioFormat>,

    /// What a paused stretch becomes unless the start marker says: silence (keeps the timeline) or skip (cut out)
    #[arg(long, env = "CALLREC_PAUSE_MODE", value_name = "silence|skip", default_value = "silence", value_parser = options::parse_pause_mode)]
    pub pause_mode: PauseMode,

    /// Ed25519 key (from `callrec keygen`) that signs every recording's metadata
    #[arg(long, env = "CALLREC_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,

    /// FastAGI server for markers: AGI(agi://HOST:4573/start?name=NAME), /stop, /pause, /resume; "off" turns it off
    #[arg(long, env = "CALLREC_AGI_LISTEN", value_name = "ADDR|off", default_value = "127.0.0.1:4573", value_parser = parse_listen)]
    pub agi_listen: Listen,

    /// HTTP control API (POST /v1/channels/{id}/recording, GET /v1/recordings); "off" turns it off
    #[arg(long, env = "CALLREC_LISTEN", value_name = "ADDR|off", default_value = "127.0.0.1:8090", value_parser = parse_listen)]
    pub listen: Listen,

    /// Bearer token the HTTP control API requires (needed to listen beyond loopback)
    #[arg(
        long,
        env = "CALLREC_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "api_token_file"
    )]
    pub api_token: Option<String>,

    /// File holding that token (its first line)
    #[arg(long, env = "CALLREC_API_TOKEN_FILE", value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Webhook told about each call that had a recording, once it hung up and its recordings are delivered
    #[arg(long, env = "CALLREC_POST_CALL_URL", value_name = "URL", hide_env_values = true)]
    pub post_call_url: Option<Url>,

    /// Most audio held in memory (recordings in progress and awaiting delivery); past it new starts are refused: e.g. 512MiB, 2GiB
    #[arg(long, env = "CALLREC_MAX_MEMORY", value_name = "SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub max_memory: u64,

    /// Log filter, e.g. "info" or "callrec=debug"
    #[arg(long, env = "CALLREC_LOG", value_name = "FILTER", default_value = "info")]
    pub log: String,

    /// Log lines as plain text, or as one JSON object each (with the call's channel_id and recording_id)
    #[arg(long, env = "CALLREC_LOG_FORMAT", value_name = "text|json", default_value = "text", value_enum)]
    pub log_format: LogFormat,

    /// TOML file with any of these flags as keys (ari-url = "http://pbx:8088"); flags and CALLREC_* variables override it
    #[arg(long = file::FLAG, env = file::ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_target(value: &str) -> Result<(String, Url), String> {
    let (name, url_text) = value.split_once('=').ok_or("expected NAME=URL")?;
    if TargetName::parse(name).is_none() {
        return Err(format!("target name {name:?}: use 1 to 32 of A-Z a-z 0-9 _ -"));
    }
    let url: Url = url_text.parse().map_err(|_| format!("target {name}: not a URL"))?;
    match url.scheme() {
        "http" | "https" => {}
        "s3" => {
            s3::Location::parse(url_text).map_err(|error| format!("target {name}: {error}"))?;
        }
        scheme => {
            return Err(format!(
                "target {name}: the URL must be http://, https:// or s3://BUCKET/PREFIX, not {scheme}://"
            ))
        }
    }
    Ok((name.to_string(), url))
}

/// The old name of `CALLREC_DELIVERY_TIMEOUT`, read when that is unset.
pub const LEGACY_DELIVERY_TIMEOUT_ENV: &str = "CALLREC_WEBHOOK_RETRY_FOR";
/// How long a delivery may take unless told.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A secret straight from the command line or the environment: never held
/// as a printable `String`, so not even `RunArgs` shows it.
pub(crate) fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value.to_string()))
}

/// `--delivery-timeout` (or its alias `--webhook-retry-for`, or
/// `CALLREC_DELIVERY_TIMEOUT`), else the old `CALLREC_WEBHOOK_RETRY_FOR`,
/// else 10 minutes.
fn delivery_timeout(given: Option<Duration>, legacy_env: Option<OsString>) -> Result<Duration, ConfigError> {
    let timeout = match (given, legacy_env) {
        (Some(timeout), _) => timeout,
        (None, Some(value)) => {
            let text = value.to_string_lossy();
            humantime::parse_duration(text.trim()).map_err(|error| {
                ConfigError(format!("{LEGACY_DELIVERY_TIMEOUT_ENV} {text:?} (read as --delivery-timeout): {error}"))
            })?
        }
        (None, None) => DEFAULT_DELIVERY_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(ConfigError("--delivery-timeout must be more than 0".into()));
    }
    Ok(timeout)
}

/// The first line of a secret's file, trimmed; never the file's content in
/// an error.
/// The webhook secret given by `--webhook-secret`, or else read from
/// `--webhook-secret-file` (`run` signs with it, `receive` checks with it);
/// an empty one is refused.
pub(crate) fn webhook_secret(given: Option<Secret>, file: Option<&Path>) -> Result<Option<Secret>, ConfigError> {
    let secret = match (given, file) {
        (Some(secret), _) => Some(secret),
        (None, Some(path)) => Some(read_secret_file("--webhook-secret-file", path)?),
        (None, None) => None,
    };
    if secret.as_ref().is_some_and(|secret| secret.expose().is_empty()) {
        return Err(ConfigError("--webhook-secret is empty".into()));
    }
    Ok(secret)
}

fn read_secret_file(flag: &str, path: &Path) -> Result<Secret, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Secret::new(text.lines().next().unwrap_or_default().trim().to_string())),
        Err(error) => Err(ConfigError(format!("{flag} {}: {error}", path.display()))),
    }
}

/// A size in bytes: a number with an optional unit (K, M, G; KiB, MiB,
/// GiB; KB, MB, GB), e.g. `512MiB`.
pub(crate) fn parse_size(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{value:?}: expected a size such as 512MiB"))?;
    let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("{value:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    number.checked_mul(unit).filter(|bytes| *bytes > 0).ok_or_else(|| format!("{value:?}: out of range"))
}

/// A listening address, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

fn parse_listen(value: &str) -> Result<Listen, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(Listen(None));
    }
    value.parse().map(|addr| Listen(Some(addr))).map_err(|_| format!("{value:?}: expected IP:PORT or off"))
}

/// Everything `callrec run` needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub ari_url: Url,
    pub ari_user: String,
    pub ari_password: Secret,
    pub app: String,
    pub media_bind: SocketAddr,
    pub media_advertise: Option<String>,
    pub webhook_url: Option<Url>,
    /// Every delivery target by name, `default` (from --webhook-url) first.
    pub targets: Vec<(String, Url)>,
    /// Where `s3://` targets are reached, when not AWS itself.
    pub s3_endpoint: Option<Url>,
    pub output_dir: PathBuf,
    pub spool_dir: Option<PathBuf>,
    /// Longest one delivery (recording or post-call summary) may take.
    pub delivery_timeout: Duration,
    /// Signs every webhook request, when set.
    pub webhook_secret: Option<Secret>,
    pub capture_timeout: Duration,
    pub max_recording: Duration,
    /// What a start marker does not give.
    pub defaults: RecordingOptions,
    pub signing_key: Option<Arc<SigningKey>>,
    pub agi_listen: Option<SocketAddr>,
    pub listen: Option<SocketAddr>,
    pub api_token: Option<Secret>,
    pub post_call_url: Option<Url>,
    /// Most audio held in memory, in bytes.
    pub max_memory: u64,
    pub log: String,
    pub log_format: LogFormat,
}

/// A setting that makes no sense, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub(crate) String);

impl TryFrom<RunArgs> for Config {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Self, ConfigError> {
        let bad = |text: String| Err(ConfigError(text));
        if !matches!(args.ari_url.scheme(), "http" | "https") {
            return bad(format!("--ari-url must be an http:// or https:// URL, not {}://", args.ari_url.scheme()));
        }
        if !args.ari_url.username().is_empty() || args.ari_url.password().is_some() {
            return bad("--ari-url must not contain credentials: use --ari-user and --ari-password".into());
        }
        if args.ari_password.is_empty() {
            return bad("--ari-password is empty".into());
        }
        let app_ok = !args.app.is_empty()
            && args.app.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !app_ok {
            return bad(format!("--app {:?}: use letters, digits, '_', '-' or '.'", args.app));
        }
        if let Some(advertise) = &args.media_advertise {
            let port_ok = advertise
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
            if !port_ok {
                return bad(format!("--media-advertise {advertise:?}: expected HOST:PORT"));
            }
        } else if args.media_bind.ip().is_unspecified() {
            return bad(format!(
                "--media-bind {} listens on every address: set --media-advertise to the one Asterisk should send to",
                args.media_bind
            ));
        }
        if let Some(webhook) = &args.webhook_url {
            if !matches!(webhook.scheme(), "http" | "https") {
                return bad(format!("--webhook-url must be an http:// or https:// URL, not {}://", webhook.scheme()));
            }
        }
        if let Some(endpoint) = &args.s3_endpoint {
            if !matches!(endpoint.scheme(), "http" | "https") {
                return bad(format!("--s3-endpoint must be an http:// or https:// URL, not {}://", endpoint.scheme()));
            }
            if !endpoint.username().is_empty() || endpoint.password().is_some() {
                return bad(
                    "--s3-endpoint must not contain credentials: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                        .into(),
                );
            }
            if endpoint.query().is_some() || endpoint.fragment().is_some() {
                return bad(
                    "--s3-endpoint takes no query or fragment: the server's base URL, e.g. http://127.0.0.1:9000"
                        .into(),
                );
            }
        }
        if args.capture_timeout.is_zero() || args.capture_timeout > Duration::from_secs(30) {
            return bad("--capture-timeout must be more than 0 and at most 30s".into());
        }
        if args.max_recording.is_zero() || args.max_recording > options::LONGEST {
            return bad("--max-recording must be more than 0 and at most 24h".into());
        }
        if args.min_recording >= args.max_recording {
            return bad("--min-recording must be less than --max-recording".into());
        }
        if (args.channels, args.format) == (Channels::Stereo, Some(AudioFormat::Ulaw)) {
            return bad("--format ul cannot hold a stereo recording: use --format wav, or leave it out".into());
        }
        let defaults = RecordingOptions {
            channels: args.channels,
            format: args.format.unwrap_or(match args.channels {
                Channels::Mono => AudioFormat::Ulaw,
                Channels::Stereo => AudioFormat::Wav,
            }),
            pause: args.pause_mode,
            max: args.max_recording,
            min: args.min_recording,
            to: None,
        };
        let signing_key = match &args.signing_key {
            Some(path) => match SigningKey::load(path) {
                Ok(key) => Some(Arc::new(key)),
                Err(error) => return bad(format!("--signing-key: {error}")),
            },
            None => None,
        };
        let api_token = match (&args.api_token, &args.api_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_secret_file("--api-token-file", path)?.expose().to_string()),
            (None, None) => None,
        };
        if api_token.as_ref().is_some_and(|token| token.is_empty()) {
            return bad("--api-token is empty".into());
        }
        if let (Listen(Some(addr)), None) = (args.listen, &api_token) {
            if !addr.ip().is_loopback() {
                return bad(format!(
                    "--listen {addr} is reachable beyond this host: set --api-token (or --api-token-file), \
                     or listen on 127.0.0.1"
                ));
            }
        }
        let delivery_timeout = delivery_timeout(args.delivery_timeout, std::env::var_os(LEGACY_DELIVERY_TIMEOUT_ENV))?;
        let webhook_secret = webhook_secret(args.webhook_secret, args.webhook_secret_file.as_deref())?;
        if let Some(url) = &args.post_call_url {
            if !matches!(url.scheme(), "http" | "https") {
                return bad(format!("--post-call-url must be an http:// or https:// URL, not {}://", url.scheme()));
            }
        }
        let mut targets: Vec<(String, Url)> =
            args.webhook_url.iter().map(|url| (DEFAULT_TARGET.to_string(), url.clone())).collect();
        for (name, url) in &args.targets {
            if targets.iter().any(|(named, _)| named == name) {
                let hint = if name == DEFAULT_TARGET { " (--webhook-url is the target default)" } else { "" };
                return bad(format!("--target {name} is defined twice{hint}"));
            }
            targets.push((name.clone(), url.clone()));
        }
        Ok(Config {
            targets,
            s3_endpoint: args.s3_endpoint,
            ari_url: args.ari_url,
            ari_user: args.ari_user,
            ari_password: Secret::new(args.ari_password),
            app: args.app,
            media_bind: args.media_bind,
            media_advertise: args.media_advertise,
            webhook_url: args.webhook_url,
            output_dir: args.output_dir,
            spool_dir: args.spool_dir,
            delivery_timeout,
            webhook_secret,
            capture_timeout: args.capture_timeout,
            max_recording: args.max_recording,
            defaults,
            signing_key,
            agi_listen: args.agi_listen.0,
            listen: args.listen.0,
            api_token: api_token.map(Secret::new),
            post_call_url: args.post_call_url,
            max_memory: args.max_memory,
            log: args.log,
            log_format: args.log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["callrec", "run", "--ari-password", "pw"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Run(run) = cli.command else { panic!("parsed as another command") };
        Config::try_from(run).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.ari_url.as_str(), "http://127.0.0.1:8088/");
        assert_eq!(config.app, "callrec");
        assert_eq!(config.media_bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.output_dir, PathBuf::from("./recordings"));
        assert_eq!(config.delivery_timeout, Duration::from_secs(600));
        assert!(config.webhook_secret.is_none());
        assert_eq!(config.capture_timeout, Duration::from_secs(1));
        assert!(config.webhook_url.is_none());
        let defaults = config.defaults;
        assert_eq!(
            (defaults.channels, defaults.format, defaults.pause),
            (Channels::Mono, AudioFormat::Ulaw, PauseMode::Silence)
        );
        assert_eq!((defaults.max, defaults.min), (Duration::from_secs(4 * 3600), Duration::ZERO));
        let stereo = parse(&["--channels", "stereo", "--pause-mode", "skip"]).unwrap().defaults;
        assert_eq!(
            (stereo.channels, stereo.format, stereo.pause),
            (Channels::Stereo, AudioFormat::Wav, PauseMode::Skip)
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        for (args, flag) in [
            (&["--ari-url", "ftp://x"][..], "--ari-url"),
            (&["--ari-url", "http://u:p@x"][..], "--ari-url"),
            (&["--app", "a b"][..], "--app"),
            (&["--media-bind", "0.0.0.0:4000"][..], "--media-advertise"),
            (&["--media-advertise", "nohost"][..], "--media-advertise"),
            (&["--webhook-url", "file:///tmp/x"][..], "--webhook-url"),
            (&["--capture-timeout", "0s"][..], "--capture-timeout"),
            (&["--media-bind", "nonsense"][..], "--media-bind"),
            (&["--webhook-retry-for", "soon"][..], "--delivery-timeout"),
            (&["--delivery-timeout", "soon"][..], "--delivery-timeout"),
            (&["--delivery-timeout", "0s"][..], "--delivery-timeout"),
            (&["--webhook-secret", ""][..], "--webhook-secret"),
            (&["--webhook-secret", "a", "--webhook-secret-file", "/x"][..], "--webhook-secret"),
            (&["--webhook-secret-file", "/nonexistent/secret"][..], "--webhook-secret-file"),
            (&["--channels", "quad"][..], "--channels"),
            (&["--format", "mp3"][..], "--format"),
            (&["--pause-mode", "mute"][..], "--pause-mode"),
            (&["--channels", "stereo", "--format", "ul"][..], "--format"),
            (&["--min-recording", "5h"][..], "--min-recording"),
            (&["--listen", "0.0.0.0:8090"][..], "--api-token"),
            (&["--listen", "8090"][..], "--listen"),
            (&["--agi-listen", "everywhere"][..], "--agi-listen"),
            (&["--api-token", ""][..], "--api-token"),
            (&["--post-call-url", "ftp://x"][..], "--post-call-url"),
            (&["--max-memory", "lots"][..], "--max-memory"),
            (&["--max-memory", "0"][..], "--max-memory"),
            (&["--max-memory", "5TiB"][..], "--max-memory"),
            (&["--target", "archive"][..], "--target"),
            (&["--target", "a b=http://x"][..], "--target"),
            (&["--target", "x=ftp://x"][..], "--target"),
            (&["--target", "x=s3://Bad_Bucket/rec"][..], "--target"),
            (&["--target", "x=s3://recordings/a//b"][..], "--target"),
            (&["--target", "x=s3://recordings:9000/rec"][..], "--target"),
            (&["--target", "x=s3://recordings/a/../b"][..], "--target"),
            (&["--s3-endpoint", "ftp://x"][..], "--s3-endpoint"),
            (&["--s3-endpoint", "http://key:secret@x"][..], "--s3-endpoint"),
            (&["--s3-endpoint", "http://x/?region=y"][..], "--s3-endpoint"),
            (&["--s3-endpoint", "nonsense"][..], "--s3-endpoint"),
            (&["--target", "x=http://a", "--target", "x=http://b"][..], "--target"),
            (&["--webhook-url", "http://a", "--target", "default=http://b"][..], "--target"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.contains(flag), "{args:?}: {error}");
        }
    }

    #[test]
    fn sizes_read_with_their_units() {
        assert_eq!(parse(&[]).unwrap().max_memory, 512 << 20);
        for (text, bytes) in [("2GiB", 2u64 << 30), ("600M", 600 << 20), ("1gb", 1_000_000_000), ("4096", 4096)] {
            assert_eq!(parse(&["--max-memory", text]).unwrap().max_memory, bytes, "{text}");
        }
    }

    #[test]
    fn targets_are_named_and_the_webhook_is_the_default() {
        let config = parse(&["--webhook-url", "http://a/x", "--target", "archive=https://b/y"]).unwrap();
        let names: Vec<&str> = config.targets.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["default", "archive"]);
        assert!(parse(&[]).unwrap().targets.is_empty());
        let config = parse(&[
            "--target",
            "archive=s3://recordings/calls",
            "--target",
            "flat=s3://recordings",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
        ])
        .unwrap();
        let urls: Vec<&str> = config.targets.iter().map(|(_, url)| url.as_str()).collect();
        assert_eq!(urls, ["s3://recordings/calls", "s3://recordings"]);
        assert_eq!(config.s3_endpoint.unwrap().as_str(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn the_control_listeners_default_to_loopback_and_turn_off() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.agi_listen, Some("127.0.0.1:4573".parse().unwrap()));
        assert_eq!(config.listen, Some("127.0.0.1:8090".parse().unwrap()));
        let off = parse(&["--agi-listen", "off", "--listen", "OFF"]).unwrap();
        assert_eq!((off.agi_listen, off.listen), (None, None));
        let open = parse(&["--listen", "0.0.0.0:8090", "--api-token", "s3cret-token"]).unwrap();
        assert_eq!(open.api_token.as_ref().map(Secret::expose), Some("s3cret-token"));
        assert!(!format!("{open:?}").contains("s3cret-token"));
    }

    #[test]
    fn the_delivery_timeout_keeps_its_old_names() {
        let given = |args: &[&str]| parse(args).unwrap().delivery_timeout;
        assert_eq!(given(&["--delivery-timeout", "90s"]), Duration::from_secs(90));
        assert_eq!(given(&["--webhook-retry-for", "2m"]), Duration::from_secs(120), "the old flag is an alias");
        let minutes = |n: u64| Duration::from_secs(60 * n);
        let legacy = |value: &str| Some(OsString::from(value));
        assert_eq!(delivery_timeout(None, None).unwrap(), minutes(10));
        assert_eq!(delivery_timeout(None, legacy("3m")).unwrap(), minutes(3), "the old variable alone");
        assert_eq!(delivery_timeout(Some(minutes(5)), legacy("3m")).unwrap(), minutes(5), "the new one wins");
        assert_eq!(delivery_timeout(Some(minutes(5)), legacy("soon")).unwrap(), minutes(5), "and is all that is read");
        let error = delivery_timeout(None, legacy("soon")).unwrap_err().to_string();
        assert!(error.contains("CALLREC_WEBHOOK_RETRY_FOR") && error.contains("--delivery-timeout"), "{error}");
    }

    #[test]
    fn the_webhook_secret_comes_from_a_flag_or_a_file_and_never_prints() {
        let config = parse(&["--webhook-secret", "whsec-flag-value"]).unwrap();
        assert_eq!(config.webhook_secret.as_ref().map(Secret::expose), Some("whsec-flag-value"));
        assert!(!format!("{config:?}").contains("whsec-flag-value"));

        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, b"  whsec-file-value \nsecond line\n").unwrap();
        let path = file.path().to_str().unwrap();
        let config = parse(&["--webhook-secret-file", path]).unwrap();
        assert_eq!(config.webhook_secret.as_ref().map(Secret::expose), Some("whsec-file-value"));
        assert!(!format!("{config:?}").contains("whsec-file-value"));

        let cli = Cli::try_parse_from(["callrec", "run", "--ari-password", "pw", "--webhook-secret", "whsec-args"]);
        assert!(!format!("{cli:?}").contains("whsec-args"), "not even the parsed arguments show it");
        let error = parse(&["--webhook-secret", "whsec-conflict", "--webhook-secret-file", path]).unwrap_err();
        assert!(!error.contains("whsec-conflict") && !error.contains("whsec-file-value"), "{error}");
    }

    #[test]
    fn the_password_never_prints() {
        let cli = Cli::try_parse_from(["callrec", "run", "--ari-password", "hunter2"]).unwrap();
        let Command::Run(run) = cli.command else { panic!("parsed as another command") };
        let config = Config::try_from(run).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
