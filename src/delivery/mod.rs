//! Delivery, the last step of the path: a finished recording goes to the
//! storage webhook, or to the output directory when no webhook is configured
//! or the webhook never took it. A recording is never dropped silently, and
//! leaves memory once delivered. `webhook` sends (the body from `multipart`,
//! signed by `webhook_signature`, retried by `retry`'s policy with the
//! shared backoff); `directory` is the fallback; `post_call` follows calls
//! to their summary.

pub mod directory;
mod excerpt;
pub mod metadata;
pub mod multipart;
pub mod post_call;
pub mod retry;
pub mod webhook;
pub mod webhook_signature;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{error, info};

pub use directory::Directory;
pub use metadata::Metadata;
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
    /// Not delivered, and why (too short, lost).
    NotDelivered(String),
}

/// Where finished recordings go.
#[derive(Clone)]
pub struct Delivery {
    webhook: Option<Webhook>,
    directory: Directory,
    metrics: Arc<Metrics>,
    /// Turns true at shutdown: retries stop waiting and fall back to disk.
    shutdown: watch::Receiver<bool>,
}

impl Delivery {
    pub fn new(
        webhook: Option<Webhook>,
        directory: Directory,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Delivery { webhook, directory, metrics, shutdown }
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
            Err(failure) => match self.directory.write(&recording).await {
                Ok(path) => {
                    self.metrics.deliveries_fallback.inc();
                    error!(
                        recording_id = %meta.recording_id, webhook = %webhook, %failure, path = %path.display(),
                        "webhook delivery failed; recording saved to the output directory instead"
                    );
                    DeliveryOutcome::OutputDir
                }
                Err(error) => self.lost(&recording, &format!("{failure}; then writing it failed: {error}")),
            },
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
