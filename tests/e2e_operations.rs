//! End to end against the dockerized Asterisk 22: what an operator sees of
//! callrec while it runs. `/metrics` moves as a real recorded call says it
//! should, `/readyz` follows the ARI connection, and the JSON log of a call
//! can be followed by its `recording_id` from its marker to its delivery.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::callrec::{Callrec, Options};
use support::checks::assert_well_formed;
use support::lab::{self, assert_nothing_left};
use support::proxy::Proxy;
use support::sipp::Caller;
use support::webhook::Webhook;

fn asterisk() -> SocketAddr {
    "127.0.0.1:8088".parse().unwrap()
}

/// A free local address for callrec's `--listen`.
async fn free_listen() -> String {
    Proxy::reserve().await.addr.to_string()
}

async fn get(listen: &str, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{listen}{path}")).await.unwrap()
}

async fn scrape(listen: &str) -> String {
    let response = get(listen, "/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// The value of one series (its name with labels, as exported), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

/// The status and JSON report of `/readyz`.
async fn readiness(listen: &str) -> (u16, Value) {
    let response = get(listen, "/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/readyz` until it answers `status`.
async fn wait_ready(listen: &str, status: u16, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (now, report) = readiness(listen).await;
        if now == status {
            return report;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {now}, not {status}: {report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_move_as_a_recorded_call_says() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let listen = free_listen().await;
    let mut callrec =
        Callrec::start(Options { webhook_url: Some(&webhook.url), listen: &listen, ..Default::default() }).await;
    wait_ready(&listen, 200, Duration::from_secs(5)).await;
    let before = scrape(&listen).await;
    assert_eq!(value(&before, "callrec_ari_connected"), 1.0);
    for series in [
        "callrec_recordings_started_total",
        "callrec_start_marker_dwell_seconds_count",
        "callrec_rtp_packets_received_total",
        "callrec_deliveries_webhook_total",
        "callrec_recordings_active",
    ] {
        assert_eq!(value(&before, series), 0.0, "{series} before any call:\n{before}");
    }

    let tag = lab::tag("metrics");
    Caller::new("partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "partial", "stop");
    let duration_ms = meta["duration_ms"].as_u64().unwrap() as f64;

    // The delivery task counts its outcome right after the webhook answers.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let after = scrape(&listen).await;
        if value(&after, "callrec_delivery_latency_seconds_count") == 1.0 || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let exactly = |series: &str, expected: f64| {
        assert_eq!(value(&after, series), expected, "{series} after one call:\n{after}");
    };
    exactly("callrec_recordings_started_total", 1.0);
    exactly("callrec_recordings_finished_total{end_reason=\"stop\"}", 1.0);
    exactly("callrec_recordings_active", 0.0);
    exactly("callrec_deliveries_webhook_total", 1.0);
    exactly("callrec_deliveries_total{target=\"default\",outcome=\"delivered\"}", 1.0);
    exactly("callrec_delivery_attempts_total{target=\"default\"}", 1.0);
    exactly("callrec_delivery_queue_depth", 0.0);
    exactly("callrec_deliveries_lost_total", 0.0);
    exactly("callrec_ari_connected", 1.0);
    exactly("callrec_audio_captured_bytes_total", deliveries[0].audio.len() as f64);
    exactly("callrec_audio_captured_seconds_total", duration_ms / 1000.0);
    exactly("callrec_audio_missing_seconds_total", meta["missing_ms"].as_f64().unwrap() / 1000.0);

    // One start marker, held while capture was set up: never past the 1 s
    // capture timeout, which lets the call go whatever happens.
    exactly("callrec_start_marker_dwell_seconds_count", 1.0);
    exactly("callrec_start_marker_dwell_seconds_bucket{le=\"1\"}", 1.0);
    let dwell = value(&after, "callrec_start_marker_dwell_seconds_sum");
    assert!(dwell > 0.0 && dwell <= 1.0, "dwell {dwell} s");

    // Mono: one stream of 20 ms packets for the recording's length, plus
    // those that land in the 200 ms drain after the stop (10) and a few in
    // flight at the start.
    let packets = value(&after, "callrec_rtp_packets_received_total");
    let expected = duration_ms / 20.0;
    assert!(packets >= expected - 5.0 && packets <= expected + 25.0, "{packets} packets for {duration_ms} ms");
    let lost: f64 = after
        .lines()
        .filter(|line| line.starts_with("callrec_rtp_packets_dropped_total{cause=\"malformed\"}"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(lost, 0.0, "no malformed RTP from Asterisk");

    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("counters="), "the summary line at exit stays:\n{log}");
}

#[tokio::test]
async fn readiness_follows_the_ari_connection() {
    let _lab = lab::take().await;
    let mut proxy = Proxy::reserve().await;
    let (ari_url, listen) = (proxy.url(), free_listen().await);
    let mut callrec =
        Callrec::start(Options { ari_url: &ari_url, listen: &listen, wait_connected: false, ..Default::default() })
            .await;
    callrec.wait_for_log("cannot connect to ARI", Duration::from_secs(10)).await;

    // Alive, not ready: only the ARI check fails, and says so.
    let health = get(&listen, "/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["ok"], true, "{health}");
    let (status, report) = readiness(&listen).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["failed"], serde_json::json!(["ari"]), "{report}");
    let ari = report["checks"].as_array().unwrap().iter().find(|check| check["name"] == "ari").unwrap();
    assert!(ari["detail"].as_str().unwrap().contains("not connected"), "{report}");
    assert_eq!(value(&scrape(&listen).await, "callrec_ari_connected"), 0.0);

    // ARI answers: ready.
    proxy.start(asterisk()).await;
    let report = wait_ready(&listen, 200, Duration::from_secs(20)).await;
    assert_eq!(report["ok"], true);
    assert_eq!(value(&scrape(&listen).await, "callrec_ari_connected"), 1.0);

    // ARI lost again: not ready until it is back.
    proxy.stop_listening();
    proxy.cut();
    let report = wait_ready(&listen, 503, Duration::from_secs(5)).await;
    assert_eq!(report["failed"], serde_json::json!(["ari"]), "{report}");
    proxy.start(asterisk()).await;
    wait_ready(&listen, 200, Duration::from_secs(20)).await;
    assert!(value(&scrape(&listen).await, "callrec_ari_reconnects_total") >= 1.0);
    callrec.stop().await;
}

/// Whether a JSON log line belongs to `recording_id`: its own field, or the
/// call span it was logged in (`jq 'select(.fields.recording_id == $id or
/// any(.spans[]?; .recording_id == $id))'`, as the README says).
fn of_recording(line: &Value, recording_id: &str) -> bool {
    line["fields"]["recording_id"] == recording_id
        || line["spans"].as_array().is_some_and(|spans| spans.iter().any(|span| span["recording_id"] == recording_id))
}

#[tokio::test]
async fn the_json_log_of_a_call_follows_it_from_marker_to_delivery_by_recording_id() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let options =
        Options { webhook_url: Some(&webhook.url), extra: vec!["--log-format", "json"], ..Default::default() };
    let mut callrec = Callrec::start(options).await;
    let tag = lab::tag("jsonlog");
    Caller::new("partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "partial", "stop");
    let (recording_id, channel_id) = (meta["recording_id"].as_str().unwrap(), meta["channel_id"].as_str().unwrap());
    let log = callrec.stop().await;

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}")))
        .collect();
    let call: Vec<&Value> = lines.iter().filter(|line| of_recording(line, recording_id)).collect();
    let messages: Vec<&str> = call.iter().map(|line| line["fields"]["message"].as_str().unwrap_or_default()).collect();
    let at = |message: &str| {
        messages.iter().position(|said| said.contains(message)).unwrap_or_else(|| {
            panic!("{message:?} is not among the lines of recording {recording_id}: {messages:#?}\nthe log:\n{log}")
        })
    };
    let (set_up, ended, delivered) = (at("setting up capture"), at("recording ended"), at("recording delivered"));
    assert!(set_up < ended && ended < delivered, "{messages:#?}");
    assert_eq!(set_up, 0, "the marker's first line opens the call's lines: {messages:#?}");
    for line in &call {
        let spans = line["spans"].as_array().unwrap();
        assert!(spans.iter().any(|span| span["channel_id"] == channel_id), "the call's channel_id: {line}");
    }
    assert!(lines.iter().all(|line| line["level"].is_string() && line["timestamp"].is_string()));
    assert!(!log.contains("s3cr3t-token"), "the webhook's token never reaches the log");
    assert_nothing_left().await;
}
