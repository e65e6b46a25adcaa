//! Counters of everything callrec did or refused, along the whole path. Each
//! anomaly (a bad marker, a stray packet, a failed delivery) bumps one, beside
//! its log line; `Live` adds what a plain count cannot say (gauges, labelled
//! counts, histograms). `export` turns them into Prometheus text at each
//! scrape of `/metrics`; the totals are also logged at shutdown.

pub mod export;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as LabelledCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// One monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// All of callrec's counters.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: Counter,)*
            /// Gauges, labelled counts and histograms.
            pub live: Live,
        }

        impl Metrics {
            /// Every counter with its name, for logging and export.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.get()),)*]
            }

            /// Every counter with its name and its doc comment, for export.
            pub fn described(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), concat!($($doc, "\n",)*), self.$name.get()),)*]
            }
        }
    };
}

metrics! {
    /// Start markers that began a recording.
    recordings_started,
    /// Recordings that ended, for any reason.
    recordings_finished,
    /// Recordings that ended with `end_reason: error`.
    recordings_failed,
    /// Control API requests answered with an error (4xx or 5xx), each logged
    /// with its reason.
    api_requests_rejected,
    /// Markers whose arguments could not be understood.
    markers_invalid,
    /// Start markers refused for a bad option (nothing recorded).
    marker_options_invalid,
    /// Pause while paused, resume while not paused.
    markers_out_of_order,
    /// Recordings shorter than their `min`, not delivered.
    recordings_too_short,
    /// Recordings ended because their RTP stopped (`error: no_media`).
    recordings_no_media,
    /// Times a recording's snoops were made anew for a call's new party.
    snoops_reattached,
    /// RTP datagrams the kernel dropped before callrec read them (full receive buffer).
    rtp_kernel_drops,
    /// Start markers refused because the audio held would pass --max-memory.
    recordings_refused_memory,
    /// Tasks that ended unexpectedly (callrec then stops and exits non-zero).
    task_failures,
    /// Recordings whose `to=` names no configured target (sent to the default).
    targets_unknown,
    /// Recordings the webhook did not take in time, written to the spool.
    recordings_spooled,
    /// Spooled recordings delivered later (and removed from the spool).
    spool_resent,
    /// Spool files that could not be read back (set aside as `.damaged`).
    spool_damaged,
    /// Post-call summaries the webhook took.
    post_call_delivered,
    /// Post-call summaries written to the output directory instead.
    post_call_fallback,
    /// Post-call summaries that could not be sent or saved, or were given up.
    post_call_lost,
    /// FastAGI sessions served.
    agi_sessions,
    /// FastAGI sessions cut off (malformed, oversized or too slow input).
    agi_sessions_rejected,
    /// Snoops that could not be made anew or put back into their bridge.
    reattach_failures,
    /// Stop, pause or resume markers on a channel with no recording.
    markers_without_recording,
    /// Channels that could not be continued in the dialplan.
    release_failures,
    /// Calls found waiting in Stasis with no session holding them, and released.
    stranded_released,
    /// Recordings delivered to the webhook.
    deliveries_webhook,
    /// Recordings stored in an S3-compatible bucket.
    deliveries_s3,
    /// Recordings written to the output directory.
    deliveries_directory,
    /// Webhook attempts that failed and were retried.
    delivery_retries,
    /// Deliveries (recordings and post-call summaries) a webhook refused for
    /// good: a 4xx other than 408 and 429, or a redirect. Not retried; each
    /// went to the output directory instead.
    delivery_permanent_failures,
    /// Recordings the webhook never took; saved to the output directory instead.
    deliveries_fallback,
    /// Recordings that could not be stored anywhere.
    deliveries_lost,
    /// ARI connection attempts that failed.
    ari_connect_failures,
    /// Times the ARI WebSocket came back after a drop.
    ari_reconnects,
    /// ARI event messages that could not be read.
    ari_bad_events,
    /// ARI resources (channels, bridges) that could not be torn down.
    teardown_failures,
    /// RTP packets with audio handed to a recording's buffer, whatever became
    /// of them: `rtp_late`, `rtp_duplicates`, `rtp_before_start`, `rtp_stale`
    /// and `rtp_over_limit` count those that were not simply appended.
    rtp_packets,
    /// Datagrams from addresses no recording listens to.
    rtp_unknown_source,
    /// Datagrams that are not valid RTP.
    rtp_malformed,
    /// RTP packets of a payload type other than PCMU.
    rtp_wrong_payload_type,
    /// RTP packets whose audio was already there.
    rtp_duplicates,
    /// RTP packets that arrived late and filled a gap.
    rtp_late,
    /// RTP packets whose audio belongs before the recording's first sample
    /// (sent before the one that started it, and overtaken by it); dropped.
    rtp_before_start,
    /// RTP packets far older than the newest of their stream and numbered at
    /// or behind it: stale copies, dropped rather than spliced in at the end.
    rtp_stale,
    /// RTP packets that carried no audio; ignored, and not in `rtp_packets`.
    rtp_empty,
    /// Times a stream was re-anchored (new SSRC or timestamp jump).
    rtp_resyncs,
    /// RTP packets dropped because a recording reached its length limit.
    rtp_over_limit,
    /// Times callrec stood aside because another ARI client took over its
    /// Stasis application.
    ari_stand_asides,
    /// Bytes of audio (as delivered: μ-law or WAV) of recordings handed to delivery.
    audio_captured_bytes,
    /// Milliseconds of audio of recordings handed to delivery.
    audio_captured_milliseconds,
    /// Milliseconds of those recordings that no packet filled (their
    /// `missing_ms`: silence callrec put in for lost audio).
    audio_missing_milliseconds,
    /// Times the media task woke to read its socket (a timer drain, or a
    /// packet while a recording awaited its first one).
    media_wakeups,
    /// The longest the media task worked without a break, in microseconds of
    /// CPU time (a drain or a command): how long any packet or command could
    /// wait beyond the drain period for callrec's own work. Only ever rises.
    media_longest_turn_us,
    /// The same turn's longest wall time, in microseconds: also counts the
    /// time the system ran other work meanwhile. Only ever rises.
    media_longest_turn_wall_us,
    /// RTP packets from a recording's sources that arrived after it was
    /// taken (Asterisk still tearing its stream down); dropped.
    rtp_after_end,
}

/// Label of `Live::recordings_ended`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndReasonLabel {
    pub end_reason: String,
}

/// Labels of `Live::deliveries`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The target's name (`default`, a `--target` name), or `directory`
    /// when no target is configured.
    pub target: String,
    /// `delivered`, `saved` (output directory, no target), `spooled`,
    /// `fallback` (output directory after the target failed) or `lost`.
    pub outcome: &'static str,
}

/// Label of `Live::delivery_attempts`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    pub target: String,
}

/// What a plain counter cannot say, exported as it is.
#[derive(Debug)]
pub struct Live {
    /// 1 while the ARI event WebSocket is connected and holds the Stasis
    /// application, else 0 (set by the event WebSocket).
    pub ari_connected: Gauge,
    /// Recordings being delivered now (waiting for or inside their attempts).
    pub deliveries_in_progress: Gauge,
    /// Recordings ended, by `end_reason`.
    pub recordings_ended: Family<EndReasonLabel, LabelledCounter>,
    /// Deliveries by target and outcome.
    pub deliveries: Family<DeliveryLabels, LabelledCounter>,
    /// Attempts made to hand recordings to a target (first tries and retries).
    pub delivery_attempts: Family<TargetLabel, LabelledCounter>,
    /// How long a start marker held its sender (the call in Stasis, the AGI
    /// session or the HTTP request) until the capture ran or it was let go, s.
    pub start_marker_dwell: Histogram,
    /// How long a recording took from being handed to delivery to its
    /// outcome (delivered, spooled, saved or lost), s.
    pub delivery_latency: Histogram,
}

/// Dwell buckets: a start marker is let go within --capture-timeout (1 s by
/// default, a few seconds at most).
const DWELL_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0];
/// Delivery buckets: from milliseconds (a directory) up to --delivery-timeout.
const DELIVERY_BUCKETS: [f64; 14] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0];

impl Default for Live {
    fn default() -> Self {
        Live {
            ari_connected: Gauge::default(),
            deliveries_in_progress: Gauge::default(),
            recordings_ended: Family::default(),
            deliveries: Family::default(),
            delivery_attempts: Family::default(),
            start_marker_dwell: Histogram::new(DWELL_BUCKETS),
            delivery_latency: Histogram::new(DELIVERY_BUCKETS),
        }
    }
}

impl Live {
    pub fn recording_ended(&self, end_reason: impl ToString) {
        self.recordings_ended.get_or_create(&EndReasonLabel { end_reason: end_reason.to_string() }).inc();
    }

    pub fn start_marker_held(&self, dwell: Duration) {
        self.start_marker_dwell.observe(dwell.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter() {
        let metrics = Metrics::default();
        metrics.rtp_packets.add(3);
        metrics.markers_invalid.inc();
        let snapshot = metrics.snapshot();
        assert!(snapshot.contains(&("rtp_packets", 3)));
        assert!(snapshot.contains(&("markers_invalid", 1)));
        assert!(snapshot.contains(&("deliveries_lost", 0)));
    }
}
