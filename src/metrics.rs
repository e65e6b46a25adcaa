//! Counters of everything callrec did or refused, along the whole path. Each
//! anomaly (a bad marker, a stray packet, a failed delivery) bumps one, beside
//! its log line; the totals are logged at shutdown and can be exported later.

use std::sync::atomic::{AtomicU64, Ordering};

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
        }

        impl Metrics {
            /// Every counter with its name, for logging and export.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.get()),)*]
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
