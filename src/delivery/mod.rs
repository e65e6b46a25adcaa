//! Delivery, the last step of the path: a finished recording goes to its
//! target (a storage webhook or an S3-compatible bucket), or to the output
//! directory when no target is configured or the target never took it — or,
//! with a spool, into the spool to be re-sent until the target takes it. A
//! recording is never dropped silently, and leaves memory once delivered.
//! `target` picks where it goes; `webhook` sends (the body from `multipart`,
//! signed by `webhook_signature`) and `s3` stores, both running their
//! attempts through `attempts` under `retry`'s policy with the shared
//! backoff; `spool` keeps what was not taken in time; `directory` is the
//! fallback (both written by `durable`); `post_call` follows calls to their
//! summary.

pub mod attempts;
pub mod directory;
pub mod durable;
mod excerpt;
pub mod metadata;
pub mod multipart;
pub mod post_call;
pub mod retry;
pub mod s3;
pub mod spool;
pub mod target;
pub mod webhook;
pub mod webhook_signature;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{error, info, warn};

pub use directory::Directory;
pub use metadata::Metadata;
pub use spool::Spool;
pub use target::{Picked, Target, Targets};
pub use webhook::{DeliveryFailure, Webhook};

use crate::memory::AudioMemory;
use crate::metrics::{DeliveryLabels, Metrics, TargetLabel};
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
    /// A target took it: its name and kind (`webhook` or `s3`).
    Target {
        name: String,
        kind: &'static str,
    },
    OutputDir,
    /// In the spool, to be re-sent until its target takes it.
    Spooled,
    /// Not delivered, and why (too short, lost).
    NotDelivered(String),
}

/// Where finished recordings go.
#[derive(Clone)]
pub struct Delivery {
    targets: Arc<Targets>,
    directory: Directory,
    spool: Option<Spool>,
    metrics: Arc<Metrics>,
    /// The bound on audio held: past it, recordings go to the spool first.
    memory: Arc<AudioMemory>,
    /// Turns true at shutdown: retries stop waiting and fall back to disk.
    shutdown: watch::Receiver<bool>,
}

impl Delivery {
    pub fn new(
        targets: Targets,
        directory: Directory,
        spool: Option<Spool>,
        metrics: Arc<Metrics>,
        memory: Arc<AudioMemory>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Delivery { targets: Arc::new(targets), directory, spool, metrics, memory, shutdown }
    }

    /// Delivers the recording to the target `to` names (`None`: the default),
    /// counted in the delivery metrics (queue depth, latency, outcome).
    pub async fn deliver(&self, recording: FinishedRecording, to: Option<&str>) -> DeliveryOutcome {
        let live = &self.metrics.live;
        let began = std::time::Instant::now();
        self.metrics.audio_captured_bytes.add(recording.audio.len() as u64);
        self.metrics.audio_captured_milliseconds.add(recording.metadata.duration_ms);
        self.metrics.audio_missing_milliseconds.add(recording.metadata.missing_ms);
        live.deliveries_in_progress.inc();
        let target = match self.targets.pick(to) {
            Picked::Asked(name, _) | Picked::Unknown(name, _) => name.to_string(),
            Picked::None => "directory".to_string(),
        };
        let outcome = self.deliver_once(recording, to).await;
        live.deliveries_in_progress.dec();
        live.delivery_latency.observe(began.elapsed().as_secs_f64());
        let outcome_label = match &outcome {
            DeliveryOutcome::Target { .. } => "delivered",
            DeliveryOutcome::OutputDir if target == "directory" => "saved",
            DeliveryOutcome::OutputDir => "fallback",
            DeliveryOutcome::Spooled => "spooled",
            DeliveryOutcome::NotDelivered(_) => "lost",
        };
        live.deliveries.get_or_create(&DeliveryLabels { target, outcome: outcome_label }).inc();
        outcome
    }

    async fn deliver_once(&self, recording: FinishedRecording, to: Option<&str>) -> DeliveryOutcome {
        let _held = self.memory.delivering(recording.audio.len() as u64);
        let meta = &recording.metadata;
        let (name, target) = match self.targets.pick(to) {
            Picked::Asked(name, target) => (name, target),
            Picked::Unknown(name, target) => {
                self.unknown_target(&recording, to);
                (name, target)
            }
            Picked::None => {
                if to.is_some() && !self.targets.is_empty() {
                    self.unknown_target(&recording, to);
                }
                return self.save(&recording).await;
            }
        };
        // Past the memory bound, a recording waits on disk, not in memory.
        let sent = match &self.spool {
            Some(_) if self.memory.exceeded() => Err(DeliveryFailure {
                attempts: 0,
                elapsed: Duration::ZERO,
                last_error: format!("over --max-memory ({} bytes): spooled before sending", self.memory.limit()),
                permanent: false,
            }),
            _ => target.send(&recording, &self.metrics, self.shutdown.clone()).await,
        };
        self.count_attempts(name, &sent);
        match sent {
            Ok(attempts) => {
                match target {
                    Target::Webhook(_) => self.metrics.deliveries_webhook.inc(),
                    Target::S3(_) => self.metrics.deliveries_s3.inc(),
                }
                info!(
                    recording_id = %meta.recording_id, name = %meta.name, duration_ms = meta.duration_ms,
                    end_reason = %meta.end_reason, attempts, target = name, to = %target, "recording delivered"
                );
                DeliveryOutcome::Target { name: name.to_string(), kind: target.kind() }
            }
            Err(failure) => match &self.spool {
                Some(spool) => match spool.store(&recording, name).await {
                    Ok(path) => {
                        self.metrics.recordings_spooled.inc();
                        warn!(
                            recording_id = %meta.recording_id, target = name, to = %target, %failure,
                            path = %path.display(), "delivery failed; recording spooled, to be re-sent until it is taken"
                        );
                        DeliveryOutcome::Spooled
                    }
                    Err(error) => {
                        let failure = format!("{failure}; spooling it failed: {error}");
                        self.fall_back(&recording, target, &failure).await
                    }
                },
                None => self.fall_back(&recording, target, &failure.to_string()).await,
            },
        }
    }

    /// Counts the attempts a send to `target` made, whatever came of them.
    fn count_attempts(&self, target: &str, sent: &Result<u32, DeliveryFailure>) {
        let attempts = match sent {
            Ok(attempts) => *attempts,
            Err(failure) => failure.attempts,
        };
        let label = TargetLabel { target: target.to_string() };
        self.metrics.live.delivery_attempts.get_or_create(&label).inc_by(attempts.into());
    }

    fn unknown_target(&self, recording: &FinishedRecording, to: Option<&str>) {
        self.metrics.targets_unknown.inc();
        warn!(
            recording_id = %recording.metadata.recording_id, to = to.unwrap_or_default(),
            "the recording asks for a target that is not configured (--target); it goes to the default"
        );
    }

    /// No target: the output directory.
    async fn save(&self, recording: &FinishedRecording) -> DeliveryOutcome {
        let meta = &recording.metadata;
        match self.directory.write(recording).await {
            Ok(path) => {
                self.metrics.deliveries_directory.inc();
                info!(
                    recording_id = %meta.recording_id, name = %meta.name, duration_ms = meta.duration_ms,
                    end_reason = %meta.end_reason, path = %path.display(), "recording saved"
                );
                DeliveryOutcome::OutputDir
            }
            Err(error) => self.lost(recording, &error.to_string()),
        }
    }

    /// The last resort when a target never took it: the output directory.
    async fn fall_back(&self, recording: &FinishedRecording, target: &Target, failure: &str) -> DeliveryOutcome {
        let meta = &recording.metadata;
        match self.directory.write(recording).await {
            Ok(path) => {
                self.metrics.deliveries_fallback.inc();
                error!(
                    recording_id = %meta.recording_id, to = %target, %failure, path = %path.display(),
                    "delivery failed; recording saved to the output directory instead"
                );
                DeliveryOutcome::OutputDir
            }
            Err(error) => self.lost(recording, &format!("{failure}; then writing it failed: {error}")),
        }
    }

    /// Re-sends what the spool holds, oldest first, at start-up and then
    /// every `every`, until callrec stops: each recording its target takes
    /// leaves the spool; the first one not taken ends the round.
    pub async fn resend_spooled(self, every: Duration) {
        let Some(spool) = self.spool.clone() else { return };
        let mut shutdown = self.shutdown.clone();
        loop {
            self.resend_round(&spool).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stopping| *stopping) => return,
            }
        }
    }

    async fn resend_round(&self, spool: &Spool) {
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
            let (recording, to) = match Spool::load(&path).await {
                Ok(loaded) => loaded,
                Err(error) => {
                    self.metrics.spool_damaged.inc();
                    let aside = path.with_extension("damaged");
                    error!(path = %path.display(), %error, aside = %aside.display(), "a spool file cannot be read; set aside");
                    let _ = tokio::fs::rename(&path, &aside).await;
                    continue;
                }
            };
            let id = recording.metadata.recording_id;
            let target = match self.targets.pick(Some(&to)) {
                Picked::Asked(_, target) | Picked::Unknown(_, target) => target,
                Picked::None => {
                    warn!(recording_id = %id, target = %to, "a spooled recording's target is no longer configured; it stays in the spool");
                    continue;
                }
            };
            let sent = target.send(&recording, &self.metrics, self.shutdown.clone()).await;
            self.count_attempts(&to, &sent);
            match sent {
                Ok(attempts) => {
                    self.metrics.spool_resent.inc();
                    info!(recording_id = %id, attempts, target = %to, to = %target, "spooled recording delivered");
                    if let Err(error) = Spool::remove(&path).await {
                        error!(path = %path.display(), %error, "cannot remove a delivered recording from the spool");
                    }
                }
                Err(failure) => {
                    warn!(recording_id = %id, target = %to, %failure, "the target still does not take spooled recordings; trying again later");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::export::Exporter;
    use crate::metrics::{DeliveryLabels, TargetLabel};

    fn recording() -> FinishedRecording {
        let metadata = Metadata {
            recording_id: uuid::Uuid::new_v4(),
            duration_ms: 1500,
            missing_ms: 20,
            ..metadata::tests::sample()
        };
        FinishedRecording { metadata, audio: vec![0xFF; 12_000].into(), format: AudioFormat::Ulaw }
    }

    fn delivery(targets: Targets, dir: &std::path::Path, metrics: &Arc<Metrics>) -> Delivery {
        let shutdown = watch::channel(false).1;
        Delivery::new(targets, Directory::new(dir), None, metrics.clone(), AudioMemory::new(1 << 20), shutdown)
    }

    fn deliveries(metrics: &Metrics, target: &str, outcome: &'static str) -> u64 {
        let labels = DeliveryLabels { target: target.into(), outcome };
        metrics.live.deliveries.get(&labels).map_or(0, |counter| counter.get())
    }

    #[tokio::test]
    async fn each_delivery_is_counted_by_target_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());

        // No target: saved to the output directory.
        let saved = delivery(Targets::new(Vec::new()), dir.path(), &metrics).deliver(recording(), None).await;
        assert_eq!(saved, DeliveryOutcome::OutputDir);
        assert_eq!(deliveries(&metrics, "directory", "saved"), 1);

        // A webhook that is not there: attempts until the budget, then the directory.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url: url::Url = format!("http://127.0.0.1:{port}/hook").parse().unwrap();
        let webhook = Webhook::new(url, Duration::from_millis(300), None);
        let targets = Targets::new(vec![("default".into(), Target::Webhook(webhook))]);
        let fell_back = delivery(targets, dir.path(), &metrics).deliver(recording(), None).await;
        assert_eq!(fell_back, DeliveryOutcome::OutputDir);
        assert_eq!(deliveries(&metrics, "default", "fallback"), 1);
        let attempts = metrics.live.delivery_attempts.get(&TargetLabel { target: "default".into() }).unwrap().get();
        assert!(attempts >= 1, "{attempts}");

        assert_eq!(metrics.live.deliveries_in_progress.get(), 0);
        let text = Exporter::new(metrics.clone(), AudioMemory::new(1 << 20)).render();
        assert!(text.contains("\ncallrec_delivery_latency_seconds_count 2\n"), "{text}");
        let sum = text.lines().find_map(|line| line.strip_prefix("callrec_delivery_latency_seconds_sum "));
        let sum: f64 = sum.unwrap().parse().unwrap();
        assert!(sum > 0.0 && sum < 5.0, "within the webhook's budget and a directory write: {sum} s");
        assert_eq!(metrics.audio_captured_bytes.get(), 24_000);
        assert_eq!((metrics.audio_captured_milliseconds.get(), metrics.audio_missing_milliseconds.get()), (3000, 40));
    }
}
