//! Letting a held channel go: the last thing a marker does. A start marker's
//! channel is first prepared for the rest of its call (its events followed,
//! its capture noted for the dialplan), each step briefly bounded, and then
//! continued in the dialplan, with a few quick retries: a held caller hears
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::TaskResult;
use crate::ari::rest::AriClient;
use crate::ari::AriError;
use crate::markers;
use crate::metrics::Metrics;

/// Tries at continuing a held channel before giving up (and logging it).
const ATTEMPTS: u32 = 3;
/// Longest a held channel waits for each preparation step.
const PREPARE_LIMIT: Duration = Duration::from_millis(500);

/// Prepares a channel whose capture runs for leaving the marker: with
/// `watch`, subscribes to its events (a failure is reported back, as
/// `TaskResult::WatchFailed`); notes the snoops' names (`&`-joined) on the
/// channel for the dialplan's stop and pause subroutines. Never fails: the channel goes on anyway.
pub(super) async fn prepare(
    ari: &AriClient,
    channel: &str,
    snoops: &str,
    watch: bool,
    results: &mpsc::UnboundedSender<TaskResult>,
) {
    let subscribe = async {
        if watch {
            self::watch(ari, channel, results).await;
        }
    };
    let note = async {
        // Without names (never seen so far), at least no older snoop stays named.
        let noted = bounded("set channel variable", ari.set_variable(channel, markers::SNOOP_VARIABLE, snoops)).await;
        if let Err(error) = noted {
            warn!(
                %channel, %error,
                "cannot note the capture on the channel: a stop marker placed while callrec is disconnected from ARI \
                 will not cut it"
            );
        }
    };
    tokio::join!(subscribe, note);
}

/// Subscribes to the channel's events, briefly bounded; a failure is
/// reported back (`TaskResult::WatchFailed`).
pub(super) async fn watch(ari: &AriClient, channel: &str, results: &mpsc::UnboundedSender<TaskResult>) {
    if let Err(error) = bounded("subscribe to channel", ari.subscribe(channel)).await {
        let _ = results.send(TaskResult::WatchFailed { call: channel.to_string(), error });
    }
}

/// Continues a channel held in Stasis; gone or already out of Stasis is fine.
pub(super) async fn continue_in_dialplan(ari: AriClient, metrics: Arc<Metrics>, channel: String) {
    for attempt in 1..=ATTEMPTS {
        match ari.continue_in_dialplan(&channel).await {
            Ok(()) => return,
            Err(error) if matches!(error.status(), Some(404 | 409)) => {
                debug!(%channel, %error, "nothing to release");
                return;
            }
            Err(error) if attempt == ATTEMPTS => {
                metrics.release_failures.inc();
                error!(%channel, %error, "could not continue the channel in the dialplan");
            }
            Err(error) => {
                warn!(%channel, %error, "continuing the channel failed; trying again");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
        }
    }
}

async fn bounded(
    operation: &'static str,
    step: impl std::future::Future<Output = Result<(), AriError>>,
) -> Result<(), AriError> {
    tokio::time::timeout(PREPARE_LIMIT, step).await.unwrap_or_else(|_| {
        Err(AriError::Unexpected { operation, message: format!("no answer within {} ms", PREPARE_LIMIT.as_millis()) })
    })
}
