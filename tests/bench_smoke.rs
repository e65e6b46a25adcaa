//! The benchmarks, kept from rotting. The media path: `scripts/bench.sh
//! --smoke` (20 streams for 2 s into callrec's media task, then the floor
//! receiver) with this build's `callrec-bench`; loopback at 1,000 packets a
//! second loses nothing, so every frame must come back intact. The full path:
//! `scripts/bench-pbx.sh --smoke` (3 calls of 4 s through the lab's Asterisk,
//! not recorded, by MixMonitor, by callrec) with this build's `callrec`; every
//! call must be recorded and stored. CPU figures are not judged here (a debug
//! build, a shared machine).

mod support;

use std::process::Command;

#[test]
fn the_media_path_benchmark_runs_and_every_frame_comes_back() {
    // Source ports of their own, apart from a concurrent run's.
    let base_port = 23_000 + (std::process::id() % 400) * 50;
    let output = Command::new("scripts/bench.sh")
        .arg("--smoke")
        .env("CALLREC_BENCH", env!("CARGO_BIN_EXE_callrec-bench"))
        .env("CALLREC_BENCH_BASE_PORT", base_port.to_string())
        .output()
        .expect("scripts/bench.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("a result")).expect("the result is JSON");
    assert_eq!(result["packets_sent"], 2000, "{result}");
    assert_eq!(result["media"]["frames_intact"], 2000, "every frame where it belongs: {result}");
    assert_eq!(result["media"]["packets"], 2000, "{result}");
    assert_eq!(result["floor"]["packets"], 2000, "{result}");
    assert!(result["callrec_us_per_packet"].as_f64().unwrap() > 0.0, "{result}");
    assert!(result["resident_bytes_per_recorded_second"].as_f64().is_some(), "{result}");
    let row = stdout.lines().nth(1).expect("a table row");
    assert!(row.starts_with("| 20 | 2000 |"), "{row}");
}

#[tokio::test]
async fn the_full_path_benchmark_runs_and_every_call_is_recorded() {
    let _lab = support::lab::take().await;
    let output = tokio::process::Command::new("scripts/bench-pbx.sh")
        .arg("--smoke")
        .env("CALLREC_BIN", env!("CARGO_BIN_EXE_callrec"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("scripts/bench-pbx.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("a result")).expect("the result is JSON");
    assert_eq!(result["recordings_stored"], 3, "{result}");
    // 3 calls of 4 s, 50 packets a second each: 600, less the set-up.
    assert!(result["rtp_packets"].as_u64().unwrap() > 3 * 150, "{result}");
    for key in ["none", "mixmonitor", "callrec"] {
        assert!(result["asterisk_core_pct"][key].as_f64().unwrap() > 0.0, "{result}");
    }
    assert!(result["callrec_core_pct"].as_f64().unwrap() > 0.0, "{result}");
    assert!(result["dwell_ms"]["p99"].as_f64().is_some(), "{result}");
    assert!(result["end_to_stored_ms"]["p99"].as_f64().is_some(), "{result}");
    let row = stdout.lines().nth(1).expect("a table row");
    assert!(row.starts_with("| 3 | "), "{row}");
}
