//! Delivery, the last step of the path: a finished recording goes to the
//! storage webhook, or to the output directory when no webhook is configured
//! or the webhook never took it — or, with a spool, into the spool to be
//! re-sent until the webhook takes it. A recording is never dropped
//! silently, and leaves memory once delivered.

pub mod directory;
pub mod durable;
pub mod metadata;
pub mod post_call;
pub mod spool;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{error, info, warn};

pub use directory::Directory;
pub use metadata::Metadata;
pub use spool::Spool;
pub use webhook::Webhook;

use crate::metrics::Metrics;
use crate::recording::encode::AudioFormat;

/// A recording ready to leave callrec.
#[derive(Debug, Clone)]
pub struct FinishedRecording {
    pub metadata: Metadata,
    /// The file: raw μ-law (`.ul`) or WAV, as `format` says.
    pub audio: Bytes,
    pub format: AudioFormat,
}

/// Where a recording went, for the post-call summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Webhook,
    OutputDir,
    /// In the spool, to be re-sent until the webhook takes it.
    Spooled,
    /// Not delivered, and why (too short, lost).
    NotDelivered(String),
}

/// Where finished recordings go.
#[derive(Clone)]
pub struct Delivery {
    webhook: Option<Webhook>,
    directory: Directory,
    spool: Option<Spool>,
    metrics: Arc<Metrics>,
    /// Turns true at shutdown: retries stop waiting and fall back to disk.
    shutdown: watch::Receiver<bool>,
}

impl Delivery {
    pub fn new(
        webhook: Option<Webhook>,
        directory: Directory,
        spool: Option<Spool>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Delivery { webhook, directory, spool, metrics, shutdown }
    }

    pub async fn deliver(&self, recording: FinishedRecording) -> DeliveryOutcome {
        let meta = &recording.metadata;
        let Some(webhook) = &self.webhook else {
            return match self.directory.write(&recording).await {
                Ok(path) => {
                    self.metrics.deliveries_directory.inc();
                    info!(
                        recording_id = %meta.recording_id, name = %meta.name, duration_ms = meta.duration_ms,
                        end_reason = %meta.end_reason, path = %path.display(), "recording saved"
                    );
                    DeliveryOutcome::OutputDir
                }
                Err(error) => self.lost(&recording, &error.to_string()),
            };
        };
        match webhook.send(&recording, &self.metrics, self.shutdown.clone()).await {
            Ok(attempts) => {
                self.metrics.deliveries_webhook.inc();
                info!(
                    recording_id = %meta.recording_id, name = %meta.name, duration_ms = meta.duration_ms,
                    end_reason = %meta.end_reason, attempts, webhook = %webhook, "recording delivered"
                );
                DeliveryOutcome::Webhook
            }
            Err(failure) => match &self.spool {
                Some(spool) => match spool.store(&recording).await {
                    Ok(path) => {
                        self.metrics.recordings_spooled.inc();
                        warn!(
                            recording_id = %meta.recording_id, webhook = %webhook, %failure, path = %path.display(),
                            "webhook delivery failed; recording spooled, to be re-sent until it is taken"
                        );
                        DeliveryOutcome::Spooled
                    }
                    Err(error) => {
                        let failure = format!("{failure}; spooling it failed: {error}");
                        self.fall_back(&recording, webhook, &failure).await
                    }
                },
                None => self.fall_back(&recording, webhook, &failure.to_string()).await,
            },
        }
    }

    /// The last resort: the output directory.
    async fn fall_back(&self, recording: &FinishedRecording, webhook: &Webhook, failure: &str) -> DeliveryOutcome {
        let meta = &recording.metadata;
        match self.directory.write(recording).await {
            Ok(path) => {
                self.metrics.deliveries_fallback.inc();
                error!(
                    recording_id = %meta.recording_id, webhook = %webhook, %failure, path = %path.display(),
                    "webhook delivery failed; recording saved to the output directory instead"
                );
                DeliveryOutcome::OutputDir
            }
            Err(error) => self.lost(recording, &format!("{failure}; then writing it failed: {error}")),
        }
    }

    /// Re-sends what the spool holds, oldest first, at start-up and then
    /// every `every`, until callrec stops: each recording the webhook takes
    /// leaves the spool; the first it does not take ends the round.
    pub async fn resend_spooled(self, every: Duration) {
        let (Some(spool), Some(webhook)) = (self.spool.clone(), self.webhook.clone()) else { return };
        let mut shutdown = self.shutdown.clone();
        loop {
            self.resend_round(&spool, &webhook).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
        }
    }

    async fn resend_round(&self, spool: &Spool, webhook: &Webhook) {
        let pending = match spool.pending().await {
            Ok(pending) => pending,
            Err(error) => {
                error!(spool = %spool.dir().display(), %error, "cannot read the spool directory");
                return;
            }
        };
        if !pending.is_empty() {
            info!(recordings = pending.len(), spool = %spool.dir().display(), "re-sending spooled recordings");
        }
        for path in pending {
            if *self.shutdown.borrow() {
                return;
            }
            let recording = match Spool::load(&path).await {
                Ok(recording) => recording,
                Err(error) => {
                    self.metrics.spool_damaged.inc();
                    let aside = path.with_extension("damaged");
                    error!(path = %path.display(), %error, aside = %aside.display(), "a spool file cannot be read; set aside");
                    let _ = tokio::fs::rename(&path, &aside).await;
                    continue;
                }
            };
            let id = recording.metadata.recording_id;
            match webhook.send(&recording, &self.metrics, self.shutdown.clone()).await {
                Ok(attempts) => {
                    self.metrics.spool_resent.inc();
                    info!(recording_id = %id, attempts, webhook = %webhook, "spooled recording delivered");
                    if let Err(error) = Spool::remove(&path).await {
                        error!(path = %path.display(), %error, "cannot remove a delivered recording from the spool");
                    }
                }
                Err(failure) => {
                    warn!(recording_id = %id, %failure, "the webhook still does not take spooled recordings; trying again later");
                    return;
                }
            }
        }
    }

    fn lost(&self, recording: &FinishedRecording, why: &str) -> DeliveryOutcome {
        self.metrics.deliveries_lost.inc();
        error!(
            recording_id = %recording.metadata.recording_id, directory = %self.directory, %why,
            "RECORDING LOST: it could not be delivered or saved"
        );
        DeliveryOutcome::NotDelivered(format!("lost: {why}"))
    }
}
