//! `/metrics`: callrec's counters, gauges and histograms in the Prometheus
//! text format (0.0.4), read at each scrape. The plain counters stay atomics
//! that the rest of the path bumps; a collector turns them into `callrec_*`
//! families here, grouping related ones under a label (RTP drops by `cause`),
//! and adds the gauges read from their owners (audio memory, recordings
//! active). `Live`'s families and histograms are registered as they are.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::Metrics;
use crate::memory::AudioMemory;

/// The content type of what `render` returns.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where a plain counter goes, when not to `callrec_<name>_total`.
enum Export {
    /// Another name (without `callrec_` and `_total`).
    Renamed(&'static str),
    /// One series of a labelled family: family name, label, value.
    Labelled(&'static str, &'static str, &'static str),
    /// Exported otherwise: by a `Live` family (its sum), or in seconds.
    Covered,
}

const RTP_DROPPED: &str = "rtp_packets_dropped";

/// Counters exported other than as `callrec_<name>_total`.
const EXPORTS: &[(&str, Export)] = &[
    ("recordings_finished", Export::Covered),
    ("rtp_packets", Export::Renamed("rtp_packets_received")),
    ("rtp_late", Export::Renamed("rtp_packets_late")),
    ("rtp_duplicates", Export::Renamed("rtp_packets_duplicate")),
    ("rtp_empty", Export::Renamed("rtp_packets_empty")),
    ("rtp_kernel_drops", Export::Renamed("rtp_kernel_dropped_packets")),
    ("rtp_unknown_source", Export::Labelled(RTP_DROPPED, "cause", "unknown_source")),
    ("rtp_malformed", Export::Labelled(RTP_DROPPED, "cause", "malformed")),
    ("rtp_wrong_payload_type", Export::Labelled(RTP_DROPPED, "cause", "wrong_payload_type")),
    ("rtp_stale", Export::Labelled(RTP_DROPPED, "cause", "stale")),
    ("rtp_over_limit", Export::Labelled(RTP_DROPPED, "cause", "over_limit")),
    ("rtp_before_start", Export::Labelled(RTP_DROPPED, "cause", "before_start")),
    ("rtp_after_end", Export::Labelled(RTP_DROPPED, "cause", "after_end")),
    ("audio_captured_milliseconds", Export::Covered),
    ("audio_missing_milliseconds", Export::Covered),
    ("media_longest_turn_us", Export::Covered),
    ("media_longest_turn_wall_us", Export::Covered),
];

fn export_of(counter: &str) -> Option<&'static Export> {
    EXPORTS.iter().find(|(name, _)| *name == counter).map(|(_, export)| export)
}

/// Renders callrec's metrics.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>, memory: Arc<AudioMemory>) -> Self {
        let mut registry = Registry::with_prefix("callrec");
        let live = &metrics.live;
        registry.register("recordings_finished", "Recordings that ended, by end_reason", live.recordings_ended.clone());
        registry.register(
            "deliveries",
            "Recordings handed to delivery, by target and outcome (delivered, saved, spooled, fallback, lost)",
            live.deliveries.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Attempts to hand a recording to a target (first tries and retries), by target",
            live.delivery_attempts.clone(),
        );
        registry.register(
            "ari_connected",
            "1 while the ARI event WebSocket is connected and holds the Stasis application",
            live.ari_connected.clone(),
        );
        registry.register(
            "delivery_queue_depth",
            "Recordings being delivered now (in their attempts or waiting for the next)",
            live.deliveries_in_progress.clone(),
        );
        registry.register_with_unit(
            "start_marker_dwell",
            "How long a start marker held its sender (call in Stasis, AGI session, HTTP request) until let go",
            Unit::Seconds,
            live.start_marker_dwell.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "How long a recording took from being handed to delivery to its outcome",
            Unit::Seconds,
            live.delivery_latency.clone(),
        );
        registry.register_collector(Box::new(Counters { metrics, memory }));
        Exporter { registry }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The plain counters and the gauges read from their owners, at each scrape.
#[derive(Debug)]
struct Counters {
    metrics: Arc<Metrics>,
    memory: Arc<AudioMemory>,
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.metrics.described();
        let mut grouped: Vec<(&str, &str, &str, u64)> = Vec::new();
        for (name, doc, value) in &counters {
            let exported = match export_of(name) {
                Some(Export::Covered) => continue,
                Some(Export::Labelled(family, label, label_value)) => {
                    grouped.push((family, label, label_value, *value));
                    continue;
                }
                Some(Export::Renamed(exported)) => exported,
                None => name,
            };
            let metric = encoder.encode_descriptor(exported, &help(doc), None, MetricType::Counter)?;
            ConstCounter::new(*value).encode(metric)?;
        }
        let mut families: Vec<&str> = grouped.iter().map(|(family, ..)| *family).collect();
        families.dedup();
        for family in families {
            let help = "RTP datagrams dropped, by cause (see callrec's README)";
            let mut metric = encoder.encode_descriptor(family, help, None, MetricType::Counter)?;
            for (_, label, label_value, value) in grouped.iter().filter(|(name, ..)| *name == family) {
                let labels = [(*label, *label_value)];
                ConstCounter::new(*value).encode(metric.encode_family(&labels)?)?;
            }
        }

        let metrics = &self.metrics;
        let active = metrics.recordings_started.get().saturating_sub(metrics.recordings_finished.get());
        let gauges = [
            ("recordings_active", "Recordings in progress", None, active),
            ("audio_memory_held", "Audio held in memory (capturing and awaiting delivery)", Some(Unit::Bytes), {
                self.memory.held()
            }),
            ("audio_memory_limit", "The bound on audio held in memory (--max-memory)", Some(Unit::Bytes), {
                self.memory.limit()
            }),
        ];
        for (name, help, unit, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            ConstGauge::new(value as i64).encode(metric)?;
        }
        let seconds = [
            (
                "audio_captured",
                "Seconds of audio of recordings handed to delivery",
                &metrics.audio_captured_milliseconds,
            ),
            (
                "audio_missing",
                "Seconds of those recordings that no packet filled (silence put in for lost audio)",
                &metrics.audio_missing_milliseconds,
            ),
        ];
        for (name, help, milliseconds) in seconds {
            let metric = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Counter)?;
            ConstCounter::new(milliseconds.get() as f64 / 1000.0).encode(metric)?;
        }
        let longest_turns = [
            (
                "media_longest_turn_cpu",
                "The longest the media task worked without a break, in CPU time (a drain or a command)",
                &metrics.media_longest_turn_us,
            ),
            (
                "media_longest_turn_wall",
                "The same longest turn in wall time (also counts other work the system ran meanwhile)",
                &metrics.media_longest_turn_wall_us,
            ),
        ];
        for (name, help, microseconds) in longest_turns {
            let metric = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Gauge)?;
            ConstGauge::new(microseconds.get() as f64 / 1_000_000.0).encode(metric)?;
        }
        Ok(())
    }
}

/// A counter's doc comment as one line of help.
fn help(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{DeliveryLabels, TargetLabel};

    fn exporter() -> (Arc<Metrics>, Arc<AudioMemory>, Exporter) {
        let metrics = Arc::new(Metrics::default());
        let memory = AudioMemory::new(1 << 20);
        let exporter = Exporter::new(metrics.clone(), memory.clone());
        (metrics, memory, exporter)
    }

    /// The value of one series (name with its labels, as written).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_counter_is_a_family_with_help_and_type() {
        let (metrics, _, exporter) = exporter();
        metrics.rtp_packets.add(3);
        metrics.markers_invalid.inc();
        let text = exporter.render();
        assert_eq!(value(&text, "callrec_rtp_packets_received_total"), Some(3.0));
        assert_eq!(value(&text, "callrec_markers_invalid_total"), Some(1.0));
        assert_eq!(value(&text, "callrec_deliveries_lost_total"), Some(0.0));
        assert!(text.contains("# TYPE callrec_markers_invalid_total counter\n"), "{text}");
        assert!(
            text.contains("# HELP callrec_markers_invalid_total Markers whose arguments could not be understood.\n")
        );
        for (name, _, _) in metrics.described() {
            let exported = match export_of(name) {
                None => format!("callrec_{name}_total "),
                Some(Export::Renamed(renamed)) => format!("callrec_{renamed}_total "),
                Some(Export::Labelled(family, label, value)) => {
                    format!("callrec_{family}_total{{{label}=\"{value}\"}} ")
                }
                Some(Export::Covered) => continue,
            };
            assert!(text.contains(&exported), "{name}: {exported} is not in\n{text}");
        }
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("callrec_"), "{line}");
        }
    }

    #[test]
    fn rtp_drops_are_one_family_by_cause() {
        let (metrics, _, exporter) = exporter();
        metrics.rtp_unknown_source.add(2);
        metrics.rtp_stale.inc();
        let text = exporter.render();
        assert_eq!(text.matches("# TYPE callrec_rtp_packets_dropped_total counter").count(), 1);
        assert_eq!(value(&text, "callrec_rtp_packets_dropped_total{cause=\"unknown_source\"}"), Some(2.0));
        assert_eq!(value(&text, "callrec_rtp_packets_dropped_total{cause=\"stale\"}"), Some(1.0));
        assert_eq!(value(&text, "callrec_rtp_packets_dropped_total{cause=\"malformed\"}"), Some(0.0));
    }

    #[test]
    fn gauges_read_their_owners_at_each_scrape() {
        let (metrics, memory, exporter) = exporter();
        metrics.recordings_started.add(3);
        metrics.recordings_finished.inc();
        memory.set_capturing(8000);
        metrics.live.ari_connected.set(1);
        metrics.live.deliveries_in_progress.inc();
        metrics.audio_captured_milliseconds.add(2500);
        metrics.audio_missing_milliseconds.add(40);
        let text = exporter.render();
        assert_eq!(value(&text, "callrec_recordings_active"), Some(2.0));
        assert_eq!(value(&text, "callrec_audio_memory_held_bytes"), Some(8000.0));
        assert_eq!(value(&text, "callrec_audio_memory_limit_bytes"), Some(1048576.0));
        assert_eq!(value(&text, "callrec_ari_connected"), Some(1.0));
        assert_eq!(value(&text, "callrec_delivery_queue_depth"), Some(1.0));
        assert_eq!(value(&text, "callrec_audio_captured_seconds_total"), Some(2.5));
        assert_eq!(value(&text, "callrec_audio_missing_seconds_total"), Some(0.04));
        assert!(!text.contains("milliseconds"), "exported in seconds only");
        memory.set_capturing(0);
        assert_eq!(value(&exporter.render(), "callrec_audio_memory_held_bytes"), Some(0.0));
    }

    #[test]
    fn labelled_counts_and_histograms() {
        let (metrics, _, exporter) = exporter();
        let live = &metrics.live;
        live.recording_ended("hangup");
        live.recording_ended("hangup");
        live.deliveries.get_or_create(&DeliveryLabels { target: "default".into(), outcome: "delivered" }).inc();
        live.delivery_attempts.get_or_create(&TargetLabel { target: "default".into() }).inc_by(2);
        live.start_marker_held(Duration::from_millis(30));
        live.delivery_latency.observe(0.2);
        let text = exporter.render();
        assert_eq!(value(&text, "callrec_recordings_finished_total{end_reason=\"hangup\"}"), Some(2.0));
        assert_eq!(text.matches("# TYPE callrec_recordings_finished_total counter").count(), 1, "{text}");
        let delivered = "callrec_deliveries_total{target=\"default\",outcome=\"delivered\"}";
        assert_eq!(value(&text, delivered), Some(1.0));
        assert_eq!(value(&text, "callrec_delivery_attempts_total{target=\"default\"}"), Some(2.0));
        assert!(text.contains("# TYPE callrec_start_marker_dwell_seconds histogram\n"), "{text}");
        assert_eq!(value(&text, "callrec_start_marker_dwell_seconds_count"), Some(1.0));
        assert_eq!(value(&text, "callrec_start_marker_dwell_seconds_bucket{le=\"0.025\"}"), Some(0.0));
        assert_eq!(value(&text, "callrec_start_marker_dwell_seconds_bucket{le=\"0.05\"}"), Some(1.0));
        assert_eq!(value(&text, "callrec_delivery_latency_seconds_bucket{le=\"+Inf\"}"), Some(1.0));
    }

    #[test]
    fn the_readme_lists_every_family() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let (_, _, exporter) = exporter();
        let text = exporter.render();
        let families = text.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next());
        for family in families {
            assert!(readme.contains(&format!("`{family}")), "README's Metrics section lacks {family}");
        }
    }
}
