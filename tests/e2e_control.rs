//! End to end against the dockerized Asterisk 22: markers from outside
//! Stasis. The partial and entire-call scenarios driven by callrec's FastAGI
//! server (the channel never enters Stasis), checked as the Stasis ones are;
//! and AGI clients that misbehave (hang up mid-session, send garbage), which
//! are cut off without disturbing the calls being recorded.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::audio::{assert_absent, assert_absent_in, assert_present, first_run_of_at_least_ms};
use support::callrec::{Callrec, Options};
use support::checks::{assert_between_marks, assert_delivered, assert_onset_complete, assert_well_formed, PROMPT_MS};
use support::lab::{self, assert_nothing_left, epoch_ms, mark};
use support::sipp::Caller;
use support::webhook::Webhook;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where the lab's dialplan finds callrec's FastAGI server.
const AGI_LISTEN: &str = "127.0.0.1:4573";

async fn callrec_with_agi(webhook: &Webhook) -> Callrec {
    let options = Options { webhook_url: Some(&webhook.url), agi_listen: AGI_LISTEN, ..Default::default() };
    let callrec = Callrec::start(options).await;
    callrec.wait_for_log("FastAGI markers", Duration::from_secs(5)).await;
    callrec
}

#[tokio::test]
async fn a_partial_recording_by_fastagi_holds_exactly_the_bookended_section() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_agi(&webhook).await;
    let tag = lab::tag("agi-partial");

    Caller::new("agi-partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "agi-partial", "stop");
    assert_eq!(meta["missing_ms"], 0);
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    let held = mark(&tag, "start").await - mark(&tag, "before").await;
    assert!(held < 500, "the start marker held the call for {held} ms");
    let id = meta["recording_id"].as_str().unwrap();
    assert_eq!(lab::global(&format!("{tag}_started")).await.as_deref(), Some(format!("RECORDING {id}").as_str()));
    assert_eq!(lab::global(&format!("{tag}_stopped")).await.as_deref(), Some(format!("STOPPED {id}").as_str()));

    let audio = &deliveries[0].audio;
    assert_onset_complete(audio);
    assert_present(audio, 400.0, 250, PROMPT_MS - 20, 0.98, "the prompt the caller hears");
    assert_present(audio, 1000.0, 0, audio.len() / 8 - 20, 0.98, "what the caller says");
    assert_absent(audio, 500.0, "the prompt after the stop marker");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("agi_sessions=2"), "{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "a clean call logs no warning:\n{log}");
}

#[tokio::test]
async fn an_entire_call_by_fastagi_is_recorded_until_the_caller_hangs_up() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_agi(&webhook).await;
    let tag = lab::tag("agi-entire");

    Caller::new("agi-entire", &tag).hang_up_after(Duration::from_millis(4800)).place().finish().await;
    let hung_up_at = lab::now_ms();
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "call_recording", "hangup", "wav", 2);
    let ended_at = epoch_ms(meta["ended_at"].as_str().unwrap());
    assert!((ended_at - hung_up_at).abs() <= 250, "ended_at {ended_at}, the caller hung up at {hung_up_at}");
    assert_between_marks(&meta, mark(&tag, "start").await, ended_at);
    let (caller, heard) = (&tracks[0], &tracks[1]);
    assert_onset_complete(heard);
    assert_present(caller, 1000.0, 0, caller.len() / 8 - 100, 0.97, "the caller, to the end of the call");
    assert_nothing_left().await;
    callrec.stop().await;
}

/// Plays Asterisk's side of a FastAGI session: sends `environment`, then
/// answers every command with `200 result=1`; returns the commands.
async fn agi_session(environment: &str, then: &str) -> Vec<String> {
    let stream = TcpStream::connect(AGI_LISTEN).await.expect("callrec's FastAGI server");
    let (read, mut write) = stream.into_split();
    write.write_all(environment.as_bytes()).await.unwrap();
    write.write_all(then.as_bytes()).await.unwrap();
    if !environment.ends_with("\n\n") {
        // Not an AGI environment: the client is gone.
        write.shutdown().await.unwrap();
    }
    let mut lines = BufReader::new(read).lines();
    let mut commands = Vec::new();
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            commands.push(line);
            let _ = write.write_all(b"200 result=1\n").await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all).await.expect("callrec ends the session");
    commands
}

fn environment(script: &str, uniqueid: &str) -> String {
    format!(
        "agi_network: yes\nagi_network_script: {script}\nagi_request: agi://{AGI_LISTEN}/{script}\n\
         agi_channel: PJSIP/nobody-00000001\nagi_uniqueid: {uniqueid}\nagi_callerid: 5551000\n\n"
    )
}

#[tokio::test]
async fn misbehaving_agi_clients_are_cut_off_and_answered_plainly() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_agi(&webhook).await;

    // A marker for a channel Asterisk does not have: answered ERROR.
    let commands = agi_session(&environment("start?name=x", "1764000000.999"), "").await;
    assert_eq!(commands.first().map(String::as_str), Some("SET VARIABLE CALLREC_STATUS \"ERROR\""), "{commands:?}");
    // A bad option is refused before anything is looked up: INVALID.
    let commands = agi_session(&environment("start?channels=quad", "1764000000.999"), "").await;
    assert_eq!(commands.first().map(String::as_str), Some("SET VARIABLE CALLREC_STATUS \"INVALID\""), "{commands:?}");
    // The channel hangs up while the marker is handled: no command follows.
    let commands = agi_session(&environment("stop", "1764000000.999"), "HANGUP\n").await;
    assert!(commands.is_empty(), "nothing is sent on a dead channel: {commands:?}");
    // A client that disappears halfway through its environment, one that
    // sends no AGI at all, and one whose line never ends.
    for garbage in
        ["agi_network: yes\nagi_chan".to_string(), "GET / HTTP/1.1\r\n\r\n".to_string(), "agi_x: ".repeat(1000)]
    {
        let commands = agi_session(&garbage, "").await;
        assert!(commands.is_empty(), "{commands:?}");
    }
    callrec.wait_for_log("FastAGI session cut off", Duration::from_secs(5)).await;

    // A real call is recorded all the same.
    let tag = lab::tag("agi-partial");
    Caller::new("agi-partial", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_well_formed(&deliveries[0], "agi-partial", "stop");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("agi_sessions_rejected=3"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// The post-call summary of `channel`, checked against what was delivered:
/// every recording in order, delivered, and the summary after them all.
fn assert_summary(webhook: &Webhook, summary: &Value, deliveries: &[Value], end_reasons: &[&str]) {
    let channel = deliveries[0]["channel_id"].as_str().unwrap();
    assert_eq!(summary["channel"]["id"], channel, "{summary}");
    assert_eq!(summary["channel"]["name"], deliveries[0]["channel_name"], "{summary}");
    assert!(!summary["channel"]["linkedid"].as_str().unwrap_or_default().is_empty(), "{summary}");
    let recordings = summary["recordings"].as_array().unwrap();
    assert_eq!(recordings.len(), deliveries.len(), "{summary}");
    for ((report, delivered), end_reason) in recordings.iter().zip(deliveries).zip(end_reasons) {
        assert_eq!(report["recording_id"], delivered["recording_id"], "in order: {summary}");
        assert_eq!(report["name"], delivered["name"]);
        assert_eq!(report["end_reason"], *end_reason);
        assert_eq!((report["delivered"].as_bool(), report["delivered_to"].as_str()), (Some(true), Some("webhook")));
        let duration = report["duration_ms"].as_i64().unwrap();
        let delivered_duration = delivered["duration_ms"].as_i64().unwrap();
        assert!((duration - delivered_duration).abs() <= 40, "{duration} ms against {delivered_duration} ms");
    }
    let hungup_at = epoch_ms(summary["hungup_at"].as_str().unwrap());
    let last_end = epoch_ms(recordings.last().unwrap()["ended_at"].as_str().unwrap());
    assert!(hungup_at >= last_end - 40, "hung up at {hungup_at}, the last recording ended at {last_end}");
    let arrivals = webhook.arrivals();
    let summary_at = arrivals.iter().position(|a| *a == format!("post-call {channel}")).unwrap();
    for delivered in deliveries {
        let id = delivered["recording_id"].as_str().unwrap();
        let at = arrivals.iter().position(|a| *a == format!("recording {id}")).unwrap();
        assert!(at < summary_at, "the summary arrives after every recording: {arrivals:?}");
    }
}

async fn callrec_with_post_call(webhook: &Webhook, extra: Vec<&str>) -> Callrec {
    let mut args = vec!["--post-call-url", &webhook.post_call_url];
    args.extend(extra);
    Callrec::start(Options { webhook_url: Some(&webhook.url), extra: args, ..Default::default() }).await
}

#[tokio::test]
async fn the_post_call_summary_follows_a_call_with_two_recordings_after_both_deliveries() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_post_call(&webhook, Vec::new()).await;
    let tag = lab::tag("two");

    Caller::new("two", &tag).place().finish().await;
    let summaries = webhook.wait_for_post_calls(1, Duration::from_secs(10)).await;
    let deliveries: Vec<Value> = webhook.deliveries().into_iter().map(|d| d.metadata).collect();
    assert_eq!(deliveries.len(), 2);
    assert_summary(&webhook, &summaries[0], &deliveries, &["stop", "stop"]);
    assert_eq!(summaries.len(), 1, "one summary per call");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("post_call_delivered=1"), "{log}");
}

#[tokio::test]
async fn the_post_call_summary_of_an_entire_call_comes_after_the_hangup() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_post_call(&webhook, Vec::new()).await;
    let tag = lab::tag("entire");

    Caller::new("entire", &tag).hang_up_after(Duration::from_millis(3500)).place().finish().await;
    let hung_up_at = lab::now_ms();
    let summaries = webhook.wait_for_post_calls(1, Duration::from_secs(10)).await;
    let deliveries: Vec<Value> = webhook.deliveries().into_iter().map(|d| d.metadata).collect();
    assert_summary(&webhook, &summaries[0], &deliveries, &["hangup"]);
    let summary_hangup = epoch_ms(summaries[0]["hungup_at"].as_str().unwrap());
    assert!(
        (summary_hangup - hung_up_at).abs() <= 250,
        "hungup_at {summary_hangup}, the caller hung up at {hung_up_at}"
    );
    assert_nothing_left().await;
    callrec.stop().await;
}

#[tokio::test]
async fn a_post_call_webhook_down_is_retried_then_falls_back_to_the_output_directory() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_post_call(&webhook, vec!["--webhook-retry-for", "3s"]).await;

    // Down, then back: the summary arrives on the third attempt.
    webhook.fail_post_calls(2);
    Caller::new("partial", &lab::tag("partial")).place().finish().await;
    let summaries = webhook.wait_for_post_calls(1, Duration::from_secs(15)).await;
    assert_eq!(webhook.post_call_attempts(), 3);
    let deliveries: Vec<Value> = webhook.deliveries().into_iter().map(|d| d.metadata).collect();
    assert_summary(&webhook, &summaries[0], &deliveries, &["stop"]);

    // Down for good: written to the output directory instead.
    webhook.fail_post_calls(usize::MAX);
    Caller::new("partial", &lab::tag("partial")).place().finish().await;
    let second = webhook.wait_for(2, Duration::from_secs(10)).await;
    let channel = second[1].metadata["channel_id"].as_str().unwrap().to_string();
    let file = callrec.output_dir.path().join(format!("{channel}.post-call.json"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "no {}", file.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["channel"]["id"], channel.as_str());
    assert_eq!(saved["recordings"][0]["recording_id"], second[1].metadata["recording_id"]);
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("post_call_delivered=1") && log.contains("post_call_fallback=1"), "{log}");
    assert!(log.contains("post-call webhook failed; summary saved to the output directory instead"), "{log}");
}

/// Where the HTTP control API listens in these tests, and its token.
const API_LISTEN: &str = "127.0.0.1:8090";
const API_TOKEN: &str = "lab-api-token";

async fn callrec_with_api(webhook: &Webhook) -> Callrec {
    let options = Options {
        webhook_url: Some(&webhook.url),
        listen: API_LISTEN,
        extra: vec!["--api-token", API_TOKEN],
        ..Default::default()
    };
    let callrec = Callrec::start(options).await;
    callrec.wait_for_log("control API listening", Duration::from_secs(5)).await;
    callrec
}

/// A request to the control API with the right token; `token: None` sends none.
fn api(method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new().request(method, format!("http://{API_LISTEN}{path}"));
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

async fn post_marker(channel: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/channels/{channel}/recording");
    let response = api(reqwest::Method::POST, &path, Some(API_TOKEN)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_http_api_starts_pauses_and_stops_a_recording_on_a_live_call() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_api(&webhook).await;
    let tag = lab::tag("api-live");

    let call = Caller::new("api-live", &tag).hang_up_after(Duration::from_millis(6000)).place();
    let mut channel = None;
    for _ in 0..50 {
        channel = lab::global(&format!("{tag}_channel")).await;
        if channel.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let channel = channel.expect("the caller's channel id");

    // Refused: no token, a wrong token, an unknown channel, bad JSON, a bad option.
    let path = format!("/v1/channels/{channel}/recording");
    let start = serde_json::json!({"action": "start", "name": "api-live"});
    for token in [None, Some("wrong")] {
        let response = api(reqwest::Method::POST, &path, token).json(&start).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "unauthorized");
    }
    assert_eq!(post_marker("1764000000.999", start.clone()).await.0, 404);
    let bad_json = api(reqwest::Method::POST, &path, Some(API_TOKEN))
        .header("content-type", "application/json")
        .body("{\"action\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status().as_u16(), 400);
    assert_eq!(bad_json.json::<Value>().await.unwrap()["error"], "invalid_json");
    let (status, body) =
        post_marker(&channel, serde_json::json!({"action": "start", "options": {"channels": "quad"}})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_option")), "{body}");
    let (status, body) = post_marker(&channel, serde_json::json!({"action": "stop"})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("no_recording")), "{body}");

    // Start: answered once capture runs; listed while it runs.
    let (status, started) = post_marker(&channel, start).await;
    let started_at = lab::now_ms();
    assert_eq!(status, 201, "{started}");
    let id = started["recording_id"].as_str().unwrap().to_string();
    let listed: Value =
        api(reqwest::Method::GET, "/v1/recordings", Some(API_TOKEN)).send().await.unwrap().json().await.unwrap();
    let running = &listed["recordings"][0];
    assert_eq!((running["id"].as_str(), running["channel_id"].as_str()), (Some(id.as_str()), Some(channel.as_str())));
    assert_eq!(running["state"], "recording", "{listed}");
    let one = api(reqwest::Method::GET, &format!("/v1/recordings/{id}"), Some(API_TOKEN)).send().await.unwrap();
    assert_eq!(one.status().as_u16(), 200);
    let unknown = api(reqwest::Method::GET, "/v1/recordings/6f0c3c1e-0000-4000-8000-000000000000", Some(API_TOKEN));
    assert_eq!(unknown.send().await.unwrap().status().as_u16(), 404);

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let pause_sent_at = lab::now_ms();
    assert_eq!(post_marker(&channel, serde_json::json!({"action": "pause"})).await.0, 200);
    let paused: Value =
        api(reqwest::Method::GET, "/v1/recordings", Some(API_TOKEN)).send().await.unwrap().json().await.unwrap();
    assert_eq!(paused["recordings"][0]["state"], "paused");
    assert_eq!(post_marker(&channel, serde_json::json!({"action": "pause"})).await.0, 409, "already paused");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(post_marker(&channel, serde_json::json!({"action": "resume"})).await.0, 200);
    let paused = lab::now_ms() - pause_sent_at;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stop_sent_at = lab::now_ms();
    let (status, stopped) = post_marker(&channel, serde_json::json!({"action": "stop"})).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["ended"]["recording_id"], id.as_str());
    assert_eq!(stopped["ended"]["end_reason"], "stop");
    call.finish().await;

    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let meta = assert_well_formed(&deliveries[0], "api-live", "stop");
    assert_eq!(meta["recording_id"], id.as_str());
    // The recording spans the start's answer to the stop's request (the
    // HTTP round trips on loopback add a few ms to the 60 ms of the markers).
    assert_between_marks(&meta, started_at, stop_sent_at);
    let masked = meta["masked"].as_array().unwrap();
    assert_eq!(masked.len(), 1, "{meta}");
    let masked_ms = meta["masked_ms"].as_i64().unwrap();
    assert!((masked_ms - paused).abs() <= 60, "masked {masked_ms} ms, paused {paused} ms");
    assert_present(&deliveries[0].audio, 1000.0, 0, 900, 0.95, "the caller before the pause");
    assert_eq!(lab::channel_ids().await.iter().filter(|c| c.contains(&channel)).count(), 0);
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(!log.contains(API_TOKEN), "the token never reaches the log");
    assert!(log.contains("api_requests_rejected=8"), "{log}");
}

#[tokio::test]
async fn the_dialplan_drives_the_http_api_with_curl() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = callrec_with_api(&webhook).await;
    let tag = lab::tag("api-dialplan");

    Caller::new("api-dialplan", &tag).place().finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    let (meta, tracks) = assert_delivered(&deliveries[0], "api-dialplan", "stop", "wav", 2);
    let started: Value = serde_json::from_str(&lab::global(&format!("{tag}_started")).await.unwrap()).unwrap();
    assert_eq!((started["status"].as_str(), &started["recording_id"]), (Some("recording"), &meta["recording_id"]));
    let stopped: Value = serde_json::from_str(&lab::global(&format!("{tag}_stopped")).await.unwrap()).unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert_between_marks(&meta, mark(&tag, "start").await, mark(&tag, "stop").await);
    assert_onset_complete(&tracks[1]);
    // From the 400 Hz prompt to the end: a 10 ms window that straddles the
    // onset's start, or its turn from 600 to 400 Hz, has energy at 500 Hz
    // too (where the turn falls in a window depends on where the recording
    // began, to the sample).
    let (prompt_from, _) = first_run_of_at_least_ms(&tracks[1], 400.0, 30).expect("the 400 Hz prompt");
    assert_absent_in(&tracks[1], 500.0, prompt_from + 10, tracks[1].len() / 8, "the prompt after the stop");
    assert_nothing_left().await;
    callrec.stop().await;
}
