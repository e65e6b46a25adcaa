//! The FastAGI server: Asterisk connects when the dialplan runs
//! `AGI(agi://HOST:4573/start?name=NAME)`; callrec reads the session's
//! environment, hands the marker to the recorder for the channel
//! `agi_uniqueid` (which never enters Stasis), and only once it took effect
//! (for a start: once capture is established) sets `CALLREC_STATUS`,
//! `CALLREC_RECORDING_ID` and `CALLREC_SNOOP` on the channel and closes
//! the session, which lets the dialplan go on.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::{ControlError, MarkerOutcome, MarkerStatus, Markers};
use crate::markers::agi::{self, AgiError, Environment, Reply};
use crate::markers::SNOOP_VARIABLE;
use crate::metrics::Metrics;

/// Longest wait for the environment block, and for each reply.
const READ_LIMIT: Duration = Duration::from_secs(5);
/// Sessions served at once; more wait for the listener.
const MAX_SESSIONS: usize = 256;

/// The channel variables the dialplan can test after the AGI returns.
pub const STATUS_VARIABLE: &str = "CALLREC_STATUS";
pub const RECORDING_ID_VARIABLE: &str = "CALLREC_RECORDING_ID";

/// Serves FastAGI sessions on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, markers: Markers, metrics: Arc<Metrics>) {
    let sessions = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "FastAGI: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = sessions.clone().acquire_owned().await else { return };
        let (markers, metrics) = (markers.clone(), metrics.clone());
        tokio::spawn(async move {
            metrics.agi_sessions.inc();
            if let Err(error) = session(stream, &markers).await {
                metrics.agi_sessions_rejected.inc();
                warn!(%peer, %error, "FastAGI session cut off");
            }
            drop(permit);
        });
    }
}

/// Why a session ended before its marker was answered.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Agi(#[from] AgiError),
    #[error("no complete AGI environment within {} s", READ_LIMIT.as_secs())]
    Slow,
    #[error("the connection closed before the AGI environment ended")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn session(stream: TcpStream, markers: &Markers) -> Result<(), SessionError> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let env =
        tokio::time::timeout(READ_LIMIT, read_environment(&mut lines)).await.map_err(|_| SessionError::Slow)??;
    let command = env.marker(markers.defaults());
    debug!(channel = %env.channel, script = %env.script, "FastAGI marker");
    // Asterisk says HANGUP (or closes) if the channel goes meanwhile.
    let mut hung_up = false;
    let outcome = {
        let mark = markers.mark(&env.uniqueid, command);
        tokio::pin!(mark);
        loop {
            let mut line = Vec::new();
            tokio::select! {
                biased;
                read = read_line(&mut lines, &mut line), if !hung_up => {
                    hung_up = true;
                    if !matches!(read, Ok(true)) || agi::read_reply(&line) != Reply::Hangup {
                        debug!(channel = %env.channel, "FastAGI: the connection ended while the marker was handled");
                    }
                }
                outcome = &mut mark => break outcome,
            }
        }
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            warn!(channel = %env.channel, %error, "FastAGI marker not taken: the call goes on");
            let status = match error {
                ControlError::AriUnavailable(_) | ControlError::Stopping => MarkerStatus::Unavailable,
                ControlError::UnknownChannel(_) | ControlError::Timeout(_) => MarkerStatus::Error,
            };
            MarkerOutcome::with_detail(status, error.to_string())
        }
    };
    info!(channel = %env.channel, status = outcome.status.as_variable(), "FastAGI marker answered");
    if hung_up {
        return Ok(());
    }
    let mut variables = vec![(STATUS_VARIABLE, outcome.status.as_variable().to_string())];
    if let Some(recording) = outcome.recording_id {
        variables.push((RECORDING_ID_VARIABLE, recording.to_string()));
    }
    if outcome.status == MarkerStatus::Recording {
        variables.push((SNOOP_VARIABLE, outcome.snoops.clone()));
    }
    for (name, value) in variables {
        write.write_all(agi::set_variable(name, &value).as_bytes()).await?;
        if !command_done(&mut lines, &env.channel).await? {
            break;
        }
    }
    write.shutdown().await?;
    Ok(())
}

type Lines = BufReader<OwnedReadHalf>;

async fn read_environment(lines: &mut Lines) -> Result<Environment, SessionError> {
    let mut env = Environment::default();
    loop {
        let mut line = Vec::new();
        if !read_line(lines, &mut line).await? {
            return Err(SessionError::Closed);
        }
        if env.feed(&line)? {
            return Ok(env);
        }
    }
}

/// Reads the reply to a command; `false` when the session cannot go on
/// (the channel hung up, the connection closed, no reply in time).
async fn command_done(lines: &mut Lines, channel: &str) -> Result<bool, SessionError> {
    loop {
        let mut line = Vec::new();
        match tokio::time::timeout(READ_LIMIT, read_line(lines, &mut line)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Ok(false),
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                warn!(%channel, "FastAGI: no reply to a command in time");
                return Ok(false);
            }
        }
        match agi::read_reply(&line) {
            Reply::Done => return Ok(true),
            // A hangup notice comes before the command's own reply.
            Reply::Hangup => continue,
            Reply::DeadChannel => return Ok(false),
            Reply::UsageFollows => continue,
            Reply::Failed(text) if text.starts_with("520 ") => return Ok(true),
            Reply::Failed(text) => {
                warn!(%channel, reply = %text, "FastAGI: a command failed");
                return Ok(true);
            }
        }
    }
}

/// Reads one line (without its newline) into `line`, at most
/// `agi::MAX_LINE` bytes and a bit; `false` at the end of the stream.
async fn read_line(lines: &mut Lines, line: &mut Vec<u8>) -> Result<bool, SessionError> {
    loop {
        let available = lines.fill_buf().await?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let (taken, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken.min(available.len())]);
        lines.consume(taken);
        if line.len() > agi::MAX_LINE + 1 {
            return Err(AgiError::LineTooLong.into());
        }
        if ended {
            line.pop();
            return Ok(true);
        }
    }
}
