//! End to end against the dockerized Asterisk 22: delivery that loses
//! nothing. Storage down past the delivery budget with a spool: the
//! recordings wait in the spool, survive a restart of callrec, and are
//! re-sent and removed once storage is back. Targets picked by name, one of
//! them an S3-compatible bucket (moto's server) read back as any reader of
//! the bucket would. Each test prints what it injected and what came out.

mod support;

use std::time::Duration;

use callrec::delivery::s3::{Location, S3Target};
use callrec::delivery::{FinishedRecording, Metadata};
use callrec::metrics::Metrics;
use callrec::recording::encode::AudioFormat;
use support::callrec::{Callrec, Options};
use support::checks::{assert_between_marks, assert_metadata, assert_onset_complete, assert_well_formed};
use support::lab::{self, assert_nothing_left, mark};
use support::s3::{S3Server, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use support::sipp::Caller;
use support::webhook::{Answer, Webhook};

fn spooled(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir).map(|entries| entries.map(|entry| entry.unwrap().path()).collect()).unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|extension| extension == "spool"));
    files.sort();
    files
}

#[tokio::test]
async fn recordings_spooled_while_storage_is_down_are_resent_after_a_restart() {
    let _lab = lab::take().await;
    let spool = tempfile::tempdir().unwrap();
    let spool_dir = spool.path().to_str().unwrap();
    let down = Webhook::failing_first(usize::MAX).await;
    let extra = vec!["--spool-dir", spool_dir, "--webhook-retry-for", "2s"];
    let mut callrec = Callrec::start(Options { webhook_url: Some(&down.url), extra, ..Default::default() }).await;

    for _ in 0..2 {
        Caller::new("partial", &lab::tag("partial")).place().finish().await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while spooled(spool.path()).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "only {:?} spooled", spooled(spool.path()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let files = spooled(spool.path());
    #[cfg(unix)]
    for file in &files {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(file).unwrap().permissions().mode() & 0o777, 0o600, "{}", file.display());
    }
    assert_nothing_left().await;
    let log = callrec.stop().await;
    println!("injected: storage answering 503 to all {} attempts; spooled: {files:?}", down.attempts());
    assert!(log.contains("recordings_spooled=2"), "{log}");
    assert!(callrec.saved_is_empty(), "nothing went to the output directory instead");

    // Storage is back; a new callrec finds the spool and re-sends it.
    let back = Webhook::start().await;
    let extra = vec!["--spool-dir", spool_dir];
    let mut callrec = Callrec::start(Options { webhook_url: Some(&back.url), extra, ..Default::default() }).await;
    let deliveries = back.wait_for(2, Duration::from_secs(15)).await;
    for delivery in &deliveries {
        let meta = assert_well_formed(delivery, "partial", "stop");
        assert_eq!(meta["missing_ms"], 0);
    }
    let ids: Vec<&str> = deliveries.iter().map(|d| d.metadata["recording_id"].as_str().unwrap()).collect();
    assert!(ids[0] != ids[1], "two recordings, each once: {ids:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !spooled(spool.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "left in the spool: {:?}", spooled(spool.path()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = callrec.stop().await;
    println!("came out: {} recordings re-sent after the restart ({ids:?}); the spool is empty", deliveries.len());
    assert!(log.contains("spool_resent=2"), "{log}");
    assert_eq!(back.attempts(), 2, "each delivered once");
}

#[tokio::test]
async fn a_start_marker_picks_its_target_by_name_and_an_unknown_one_goes_to_the_default() {
    let _lab = lab::take().await;
    let (store, archive) = (Webhook::start().await, Webhook::start().await);
    let target = format!("archive={}", archive.url);
    let extra = vec!["--target", &target];
    let mut callrec = Callrec::start(Options { webhook_url: Some(&store.url), extra, ..Default::default() }).await;

    Caller::new("options", &lab::tag("to")).options("to=archive").place().finish().await;
    let archived = archive.wait_for(1, Duration::from_secs(10)).await;
    assert_well_formed(&archived[0], "options", "stop");
    Caller::new("options", &lab::tag("to")).options("to=nowhere").place().finish().await;
    let stored = store.wait_for(1, Duration::from_secs(10)).await;
    assert_well_formed(&stored[0], "options", "stop");
    println!("to=archive went to the archive; to=nowhere went to the default");
    assert_eq!((store.attempts(), archive.attempts()), (1, 1), "each recording to one target");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("asks for a target that is not configured"), "{log}");
    assert!(log.contains("targets_unknown=1"), "{log}");
}

/// Past --max-memory a new start is refused at once: the call goes on
/// unrecorded, said and counted, while the running recording is kept.
#[tokio::test]
async fn a_start_past_the_memory_bound_is_refused_and_the_call_goes_on() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    // Room for one mono recording to start (a start must find room for a
    // minute: 480 000 bytes), none for a second once the first holds its
    // first second of audio (a block of 8 000 bytes).
    let extra = vec!["--max-memory", "484KB"];
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), extra, ..Default::default() }).await;

    let first = Caller::new("entire", &lab::tag("entire")).hang_up_after(Duration::from_millis(5000)).place();
    callrec.wait_for_log("capture established", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // the media task reports its buffers
    let tag = lab::tag("partial");
    Caller::new("partial", &tag).place().finish().await;
    let held = lab::mark(&tag, "start").await - lab::mark(&tag, "before").await;
    println!("injected: a second start with 484 KB for audio; the call was held {held} ms and went on");
    assert!(held < 500, "refused at once: held {held} ms");
    first.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_well_formed(&deliveries[0], "call_recording", "hangup");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(webhook.deliveries().len(), 1, "the refused start recorded nothing");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("would pass --max-memory"), "{log}");
    assert!(log.contains("recordings_refused_memory=1"), "{log}");
}

/// The webhook down for 90 s: every recording made meanwhile is delivered
/// once it is back — each once (by its Idempotency-Key), none lost.
#[tokio::test]
async fn recordings_made_while_the_webhook_is_down_for_90_s_are_all_delivered_once() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let extra = vec!["--delivery-timeout", "3m"];
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), extra, ..Default::default() }).await;

    let down_at = std::time::Instant::now();
    webhook.down_for(Duration::from_secs(90));
    for _ in 0..3 {
        Caller::new("partial", &lab::tag("partial")).place().finish().await;
    }
    assert!(webhook.deliveries().is_empty(), "nothing is taken while it is down");
    let deliveries = webhook.wait_for(3, Duration::from_secs(150)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut ids: Vec<String> =
        webhook.deliveries().iter().map(|d| d.metadata["recording_id"].as_str().unwrap().to_string()).collect();
    println!(
        "injected: webhook down 90 s ({} refused attempts); came out: {} recordings delivered {} s after it went down, keys {:?}",
        webhook.attempts() - deliveries.len(),
        deliveries.len(),
        down_at.elapsed().as_secs(),
        webhook.keys()
    );
    assert_eq!(webhook.keys(), ids, "each attempt keyed by its recording");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three recordings, each delivered once");
    for delivery in &deliveries {
        assert_well_formed(delivery, "partial", "stop");
    }
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("deliveries_webhook=3") && !log.contains("deliveries_fallback"), "{log}");
}

/// A webhook answering 500, then 429 with Retry-After: 3, then hanging for
/// 30 s: the recording is retried within its budget and delivered, and start
/// markers are answered promptly all the while.
#[tokio::test]
async fn a_struggling_webhook_is_retried_within_budget_while_markers_stay_prompt() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    webhook.script(&[Answer::Status(500), Answer::RetryAfter(3), Answer::Hang(Duration::from_secs(30))]);
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;

    let started = std::time::Instant::now();
    Caller::new("partial", &lab::tag("partial")).place().finish().await;
    // Meanwhile (during the 429's wait and the hang), more calls come.
    let mut dwell = Vec::new();
    for _ in 0..3 {
        let tag = lab::tag("partial");
        Caller::new("partial", &tag).place().finish().await;
        dwell.push(lab::mark(&tag, "start").await - lab::mark(&tag, "before").await);
    }
    let deliveries = webhook.wait_for(4, Duration::from_secs(60)).await;
    println!(
        "injected: 500, then 429 Retry-After 3, then a 30 s hang; came out: 4 recordings in {} s, {} attempts; \
         start-marker dwell meanwhile {dwell:?} ms",
        started.elapsed().as_secs(),
        webhook.attempts()
    );
    assert!(dwell.iter().all(|&ms| ms < 500), "markers answered promptly: {dwell:?}");
    let first = deliveries.iter().position(|d| d.metadata["name"] == "partial").unwrap();
    assert_well_formed(&deliveries[first], "partial", "stop");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("500") && log.contains("429"), "the log names the answers:\n{log}");
    assert!(log.contains("deliveries_webhook=4"), "{log}");
}

/// Secrets never reach logs, errors or metadata: callrec runs with every
/// secret set (the ARI password, the webhook's signing secret, the API token
/// from a file) through a fault run — a webhook refusing twice, API requests
/// refused for wrong tokens — with its most verbose log, which is then
/// searched for each secret, as are the metadata and `--help`.
#[tokio::test]
async fn no_secret_reaches_the_log_or_the_metadata_in_a_fault_run() {
    const ARI_PASSWORD: &str = "ari-Pw-7f3c9e1d-never-logged";
    const WEBHOOK_SECRET: &str = "whsec-91b2c4d6-never-logged";
    const API_TOKEN: &str = "api-tok-5e8a0f2b-never-logged";
    let _lab = lab::take().await;
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), format!("{API_TOKEN}\n")).unwrap();
    let webhook = Webhook::start().await;
    webhook.script(&[Answer::Status(503), Answer::Status(503)]);
    let extra = vec!["--api-token-file", token_file.path().to_str().unwrap()];
    let env = vec![("CALLREC_WEBHOOK_SECRET", WEBHOOK_SECRET), ("CALLREC_LOG", "trace")];
    let (ari_user, ari_password) = ("callrec-secrets-test", ARI_PASSWORD);
    let options = Options {
        webhook_url: Some(&webhook.url),
        ari_user,
        ari_password,
        extra,
        env,
        listen: "127.0.0.1:8091",
        ..Default::default()
    };
    let mut callrec = Callrec::start(options).await;

    Caller::new("partial", &lab::tag("partial")).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(20)).await;
    let client = reqwest::Client::new();
    for token in ["wrong", &API_TOKEN[..10]] {
        let response = client.get("http://127.0.0.1:8091/v1/recordings").bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    assert_nothing_left().await;
    let log = callrec.stop().await;
    let metadata = deliveries[0].metadata.to_string();
    println!("injected: two 503s, wrong API tokens; searched {} bytes of trace log and the metadata", log.len());
    for secret in [ARI_PASSWORD, WEBHOOK_SECRET, API_TOKEN, &API_TOKEN[..10]] {
        assert!(!log.contains(secret), "{secret} reached the log");
        assert!(!metadata.contains(secret), "{secret} reached the metadata");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(["run", "--help"])
        .env("CALLREC_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("CALLREC_ARI_PASSWORD", ARI_PASSWORD)
        .env("CALLREC_API_TOKEN", API_TOKEN)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for secret in [ARI_PASSWORD, WEBHOOK_SECRET, API_TOKEN] {
        assert!(!help.contains(secret), "{secret} shown by --help");
    }
}

#[tokio::test]
async fn a_recording_sent_to_an_s3_target_is_stored_as_audio_and_metadata_by_date() {
    let _lab = lab::take().await;
    let s3 = S3Server::start("callrec-e2e").await;
    let target = format!("s3=s3://{}/rec", s3.bucket);
    let extra = vec!["--target", &target, "--s3-endpoint", &s3.endpoint];
    let mut callrec = Callrec::start(Options { extra, env: s3.env(), ..Default::default() }).await;

    let tag = lab::tag("s3");
    Caller::new("options", &tag).options("to=s3").place().finish().await;
    let keys = s3.wait_for_keys("rec", 2, Duration::from_secs(15)).await;
    let json_key = keys.iter().find(|key| key.ends_with(".json")).expect("a metadata object");
    let metadata = s3.get(json_key).await;
    assert_eq!(metadata.content_type.as_deref(), Some("application/json"));
    let meta: serde_json::Value = serde_json::from_slice(&metadata.bytes).expect("the metadata object is JSON");
    let id = meta["recording_id"].as_str().unwrap();
    let started = chrono::DateTime::parse_from_rfc3339(meta["started_at"].as_str().unwrap()).unwrap();
    let day = started.with_timezone(&chrono::Utc).format("%Y/%m/%d");
    assert_eq!(keys, [format!("rec/{day}/{id}.json"), format!("rec/{day}/{id}.ul")], "exactly the two objects");
    let audio = s3.get(&format!("rec/{day}/{id}.ul")).await;
    assert_eq!(audio.content_type.as_deref(), Some("audio/basic"));
    let meta = assert_metadata(&meta, &audio.bytes, "options", "stop");
    assert_eq!(meta["sha256"], callrec::integrity::sha256_hex(&audio.bytes), "the hash of the stored audio");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&audio.bytes);
    assert_nothing_left().await;
    let log = callrec.stop().await;
    println!(
        "came out: {keys:?} in s3://{}/ ({} bytes of audio, {} ms), the onset complete",
        s3.bucket,
        audio.bytes.len(),
        meta["duration_ms"]
    );
    assert!(log.contains("deliveries_s3=1"), "{log}");
    assert!(log.contains(&format!("to=s3://{}/rec (127.0.0.1:", s3.bucket)), "{log}");
    for secret in [SECRET_ACCESS_KEY, ACCESS_KEY_ID] {
        assert!(!log.contains(secret), "callrec's log shows {secret}:\n{log}");
    }
    assert!(callrec.saved_is_empty(), "nothing went to the output directory instead");
}

/// A metadata document for a recording made up here, with `audio`.
fn made_up(audio: &[u8]) -> Metadata {
    serde_json::from_value(serde_json::json!({
        "recording_id": uuid::Uuid::new_v4(),
        "name": "long_call",
        "channel_id": "1764000000.1",
        "channel_name": "PJSIP/lab-00000001",
        "caller_number": "", "caller_name": "", "connected_number": "", "connected_name": "",
        "linkedid": "1764000000.1", "accountcode": "", "context": "ivr", "exten": "100",
        "started_at": "2026-11-24T23:40:00.000Z",
        "ended_at": "2026-11-25T00:00:18.000Z",
        "duration_ms": audio.len() / 8,
        "end_reason": "stop",
        "format": "ulaw", "sample_rate": 8000, "channels": 1,
        "bytes": audio.len(),
        "missing_ms": 0, "masked": [], "masked_ms": 0, "silent": false, "silences": [], "silence_ms": 0,
        "rtp": {},
        "sha256": callrec::integrity::sha256_hex(audio),
        "parties": [],
    }))
    .expect("a valid metadata document")
}

#[tokio::test]
async fn a_long_recording_goes_to_s3_as_a_multipart_upload() {
    // No call: a recording of 20 minutes (9.2 MB of μ-law) made up here.
    let s3 = S3Server::start("callrec-multipart").await;
    let audio: Vec<u8> = (0..20 * 60 * 8000u32).map(|i| (i % 251) as u8).collect();
    let recording =
        FinishedRecording { metadata: made_up(&audio), audio: audio.clone().into(), format: AudioFormat::Ulaw };
    let location = Location::parse(&format!("s3://{}/big", s3.bucket)).unwrap();
    let endpoint = s3.endpoint.parse().unwrap();
    let target = S3Target::from_builder(s3.builder(), location, Some(&endpoint), Duration::from_secs(10)).unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let attempts = target.send(&recording, &Metrics::default(), shutdown).await.expect("stored");
    let id = recording.metadata.recording_id;
    let keys = s3.keys("big").await;
    assert_eq!(keys, [format!("big/2026/11/24/{id}.json"), format!("big/2026/11/24/{id}.ul")]);
    let stored = s3.get(&format!("big/2026/11/24/{id}.ul")).await;
    assert_eq!(stored.content_type.as_deref(), Some("audio/basic"));
    assert!(stored.bytes == audio, "the parts were put together into the recording, byte for byte");
    let e_tag = stored.e_tag.clone().unwrap_or_default();
    assert!(e_tag.trim_matches('"').ends_with("-2"), "a multipart upload of 2 parts, not {e_tag}");
    let metadata = s3.get(&format!("big/2026/11/24/{id}.json")).await;
    assert_eq!(metadata.bytes, recording.metadata.to_json().into_bytes(), "the webhook's metadata, byte for byte");
    println!(
        "came out: {} bytes stored in parts of at most {} bytes (ETag {e_tag}), in {attempts} attempt(s)",
        audio.len(),
        callrec::delivery::s3::MULTIPART_PART
    );
}
