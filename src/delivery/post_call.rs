//! The post-call summary, after delivery: when a call that had at least one
//! recording is gone, and every one of its recordings was delivered or
//! failed for good, one JSON document tells the flow's owner what happened
//! (`--post-call-url`), so that it can rely on the recordings being there.
//! `CallLedger` keeps, per call, what is known until then (sans-IO, bounded);
//! `PostCall` sends the summary by the recordings' rules (retried within
//! `--delivery-timeout`, signed with the webhook secret, under the
//! idempotency key `post-call-<channel_id>`), then writes it to the output
//! directory as `<channel_id>.post-call.json` if the webhook never took it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::metadata::rfc3339;
use super::{DeliveryOutcome, Directory, Webhook};
use crate::control::EndedRecording;
use crate::metrics::Metrics;
use crate::session::RecordingId;

/// Calls followed at once; past this, the oldest is given up (logged and
/// counted), so that calls whose hangup is never seen cannot fill memory.
pub const MAX_CALLS: usize = 10_000;
/// Recordings kept per call (a flow that restarts a recording in a loop).
const MAX_RECORDINGS: usize = 100;

/// The call a summary is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallChannel {
    pub id: String,
    pub name: String,
    pub caller_number: String,
    pub caller_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub linkedid: String,
}

/// One recording of the call, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingReport {
    #[serde(flatten)]
    pub recording: EndedRecording,
    pub delivered: bool,
    /// `webhook` or `output_dir`, when delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_to: Option<&'static str>,
    /// The target that took it (`default`, or a `to=NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why not, when not delivered (too short, lost).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_delivered: Option<String>,
}

/// The document POSTed to `--post-call-url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostCallSummary {
    pub channel: CallChannel,
    pub hungup_at: String,
    /// In the order they started.
    pub recordings: Vec<RecordingReport>,
}

#[derive(Debug)]
struct CallRecord {
    channel: CallChannel,
    /// Each recording, with whether its delivery is still under way.
    recordings: Vec<(RecordingReport, bool)>,
    hungup_at: Option<SystemTime>,
}

impl CallRecord {
    fn complete(&self) -> bool {
        self.hungup_at.is_some() && self.recordings.iter().all(|(_, pending)| !pending)
    }
}

/// What is known of each call with a recording, until its summary is sent.
#[derive(Debug, Default)]
pub struct CallLedger {
    calls: HashMap<String, CallRecord>,
    /// Calls in the order they were first seen, for giving up the oldest.
    order: VecDeque<String>,
}

impl CallLedger {
    /// Whether `call` has a summary coming.
    pub fn follows(&self, call: &str) -> bool {
        self.calls.contains_key(call)
    }

    /// The calls whose hangup is still awaited.
    pub fn awaiting_hangup(&self) -> Vec<String> {
        self.calls.iter().filter(|(_, record)| record.hungup_at.is_none()).map(|(id, _)| id.clone()).collect()
    }

    /// A recording of `channel`'s call ended; its delivery is under way.
    /// Returns a call given up to stay within `MAX_CALLS`, if one was.
    pub fn recording_ended(&mut self, channel: CallChannel, recording: EndedRecording) -> Option<String> {
        let mut given_up = None;
        if !self.calls.contains_key(&channel.id) {
            if self.calls.len() >= MAX_CALLS {
                given_up = self.order.pop_front();
                if let Some(oldest) = &given_up {
                    self.calls.remove(oldest);
                }
            }
            self.order.push_back(channel.id.clone());
        }
        let record = self.calls.entry(channel.id.clone()).or_insert_with(|| CallRecord {
            channel: channel.clone(),
            recordings: Vec::new(),
            hungup_at: None,
        });
        record.channel.name = channel.name;
        if record.channel.linkedid.is_empty() {
            record.channel.linkedid = channel.linkedid;
        }
        if record.recordings.len() < MAX_RECORDINGS {
            let report =
                RecordingReport { recording, delivered: false, delivered_to: None, target: None, not_delivered: None };
            record.recordings.push((report, true));
        }
        given_up
    }

    /// A recording of `call` was delivered, or failed for good: the summary,
    /// if that completes the call.
    pub fn delivered(
        &mut self,
        call: &str,
        recording: RecordingId,
        outcome: &DeliveryOutcome,
    ) -> Option<PostCallSummary> {
        let record = self.calls.get_mut(call)?;
        let (report, pending) =
            record.recordings.iter_mut().find(|(report, _)| report.recording.recording_id == recording)?;
        *pending = false;
        match outcome {
            DeliveryOutcome::Target { name, kind } => {
                (report.delivered, report.delivered_to, report.target) = (true, Some(*kind), Some(name.clone()))
            }
            DeliveryOutcome::OutputDir => (report.delivered, report.delivered_to) = (true, Some("output_dir")),
            DeliveryOutcome::Spooled => {
                report.not_delivered = Some("spooled: re-sent until the webhook takes it".to_string())
            }
            DeliveryOutcome::NotDelivered(why) => report.not_delivered = Some(why.clone()),
        }
        self.take_if_complete(call)
    }

    /// `call` hung up at `at` (the first notice counts): the summary, if its
    /// recordings are all done.
    pub fn hung_up(&mut self, call: &str, at: SystemTime) -> Option<PostCallSummary> {
        let record = self.calls.get_mut(call)?;
        record.hungup_at.get_or_insert(at);
        self.take_if_complete(call)
    }

    fn take_if_complete(&mut self, call: &str) -> Option<PostCallSummary> {
        if !self.calls.get(call)?.complete() {
            return None;
        }
        let record = self.calls.remove(call)?;
        self.order.retain(|id| id != call);
        Some(PostCallSummary {
            channel: record.channel,
            hungup_at: rfc3339(record.hungup_at?),
            recordings: record.recordings.into_iter().map(|(report, _)| report).collect(),
        })
    }
}

/// Sends post-call summaries.
#[derive(Clone)]
pub struct PostCall {
    webhook: Webhook,
    directory: Directory,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
}

impl PostCall {
    pub fn new(webhook: Webhook, directory: Directory, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) -> Self {
        PostCall { webhook, directory, metrics, shutdown }
    }

    pub async fn send(&self, summary: PostCallSummary) {
        let channel = summary.channel.id.clone();
        let json = Bytes::from(serde_json::to_vec_pretty(&summary).expect("the summary serializes"));
        let key = idempotency_key(&channel);
        match self.webhook.send_json(&key, &json, &self.metrics, self.shutdown.clone()).await {
            Ok(attempts) => {
                self.metrics.post_call_delivered.inc();
                info!(%channel, recordings = summary.recordings.len(), attempts, webhook = %self.webhook, "post-call summary delivered");
            }
            Err(failure) => {
                let file = format!("{}.post-call.json", file_safe(&channel));
                match self.directory.write_file(&file, &json).await {
                    Ok(path) => {
                        self.metrics.post_call_fallback.inc();
                        error!(
                            %channel, webhook = %self.webhook, %failure, path = %path.display(),
                            "post-call webhook failed; summary saved to the output directory instead"
                        );
                    }
                    Err(error) => {
                        self.metrics.post_call_lost.inc();
                        error!(%channel, %failure, %error, "POST-CALL SUMMARY LOST: it could not be delivered or saved");
                    }
                }
            }
        }
    }
}

/// The key a receiver de-duplicates a call's summary by: one per call.
pub fn idempotency_key(channel_id: &str) -> String {
    format!("post-call-{channel_id}")
}

/// A channel id as a file name: Asterisk's ids are `1764000000.42` or a
/// UUID, but anything else is kept from leaving the directory.
fn file_safe(id: &str) -> String {
    let safe: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    match safe.trim_start_matches('.') {
        "" => "channel".to_string(),
        safe => safe.to_string(),
    }
}

/// Logs a call given up by the ledger.
pub fn given_up(metrics: &Metrics, call: &str) {
    metrics.post_call_lost.inc();
    warn!(%call, max_calls = MAX_CALLS, "too many calls awaiting their hangup: no post-call summary for the oldest");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;

    fn channel(id: &str) -> CallChannel {
        CallChannel { id: id.into(), name: format!("PJSIP/{id}"), ..CallChannel::default() }
    }

    fn recording(id: RecordingId, reason: &str) -> EndedRecording {
        EndedRecording {
            recording_id: id,
            name: "n".into(),
            started_at: Some("2026-11-26T10:00:00.000Z".into()),
            ended_at: "2026-11-26T10:00:05.000Z".into(),
            duration_ms: 5000,
            end_reason: reason.into(),
            error: None,
        }
    }

    #[test]
    fn the_summary_waits_for_the_hangup_and_every_delivery() {
        let mut ledger = CallLedger::default();
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        ledger.recording_ended(channel("c1"), recording(first, "stop"));
        ledger.recording_ended(channel("c1"), recording(second, "hangup"));
        assert!(
            ledger
                .delivered("c1", first, &DeliveryOutcome::Target { name: "default".into(), kind: "webhook" })
                .is_none(),
            "not hung up yet"
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        assert!(ledger.hung_up("c1", at).is_none(), "the second recording is still being delivered");
        assert!(ledger.hung_up("c1", at + Duration::from_secs(9)).is_none());
        let summary = ledger.delivered("c1", second, &DeliveryOutcome::OutputDir).expect("complete");
        assert_eq!(summary.hungup_at, "2025-11-24T16:00:00.000Z", "the first notice of the hangup");
        let reports: Vec<_> = summary.recordings.iter().map(|r| (r.recording.recording_id, r.delivered_to)).collect();
        assert_eq!(reports, vec![(first, Some("webhook")), (second, Some("output_dir"))]);
        assert!(!ledger.follows("c1"), "forgotten once summarized");
        assert!(ledger.hung_up("c1", at).is_none());
    }

    #[test]
    fn a_recording_not_delivered_says_why() {
        let mut ledger = CallLedger::default();
        let id = Uuid::new_v4();
        ledger.recording_ended(channel("c2"), recording(id, "stop"));
        ledger.hung_up("c2", SystemTime::now());
        let summary = ledger.delivered("c2", id, &DeliveryOutcome::NotDelivered("too short".into())).unwrap();
        let report = &summary.recordings[0];
        assert!(!report.delivered);
        assert_eq!(report.not_delivered.as_deref(), Some("too short"));
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["recordings"][0]["end_reason"], "stop");
        assert_eq!(json["recordings"][0]["delivered"], false);
        assert!(json["channel"].get("linkedid").is_none());
    }

    #[test]
    fn the_ledger_stays_bounded_by_giving_up_the_oldest_call() {
        let mut ledger = CallLedger::default();
        for n in 0..MAX_CALLS {
            assert!(ledger.recording_ended(channel(&format!("c{n}")), recording(Uuid::new_v4(), "stop")).is_none());
        }
        let given_up = ledger.recording_ended(channel("newest"), recording(Uuid::new_v4(), "stop"));
        assert_eq!(given_up.as_deref(), Some("c0"));
        assert!(ledger.follows("newest") && !ledger.follows("c0"));
        assert_eq!(ledger.awaiting_hangup().len(), MAX_CALLS);
    }

    #[test]
    fn a_summary_is_keyed_by_its_call() {
        assert_eq!(idempotency_key("1764000000.42"), "post-call-1764000000.42");
    }

    #[test]
    fn channel_ids_become_safe_file_names() {
        assert_eq!(file_safe("1764000000.42"), "1764000000.42");
        assert_eq!(file_safe("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_safe(".."), "channel");
    }
}
