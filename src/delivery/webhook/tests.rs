//! The webhook against real local HTTP servers: what each attempt carries,
//! and how answers end or continue a delivery.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha2::Sha256;

use super::*;
use crate::delivery::metadata::tests::sample;
use crate::integrity::hex;
use crate::recording::encode::AudioFormat;

const SECRET: &str = "whsec_unit-test-secret";

/// One answer of the scripted webhook: status, headers, body.
type Reply = (u16, Vec<(&'static str, &'static str)>, &'static str);

/// A request as the webhook received it.
struct Seen {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Script {
    /// Answered in turn; 200 once they are used up.
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

/// A webhook on 127.0.0.1 answering `replies` in turn.
async fn webhook(replies: Vec<Reply>) -> (Url, Arc<Script>) {
    async fn answer(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
        script.seen.lock().unwrap().push(Seen { at: Instant::now(), headers, body });
        let (status, headers, body) = script.replies.lock().unwrap().pop_front().unwrap_or((200, vec![], ""));
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        for (name, value) in headers {
            response.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        response
    }
    let script = Arc::new(Script { replies: Mutex::new(replies.into()), ..Script::default() });
    let app = axum::Router::new().fallback(answer).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/recordings?token=url-t0ken", listener.local_addr().unwrap()).parse().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, script)
}

fn recording() -> FinishedRecording {
    FinishedRecording { metadata: sample(), audio: Bytes::from_static(&[0xFF; 160]), format: AudioFormat::Ulaw }
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).map(|value| value.to_str().unwrap())
}

/// What a receiver does: the header's `t`, once `v1` is checked against the
/// HMAC of `"<t>."` and the body as received.
fn verified_time(seen: &Seen, secret: &str) -> u64 {
    let signature = header(seen, "callrec-signature").expect("a signature on every attempt");
    let (t, v1) = signature.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&seen.body);
    assert_eq!(v1, hex(&mac.finalize().into_bytes()), "the signature covers the bytes as received");
    t.parse().unwrap()
}

/// A shutdown that never comes (its sender is gone).
fn no_shutdown() -> watch::Receiver<bool> {
    watch::channel(false).1
}

#[test]
fn display_hides_path_query_and_credentials() {
    let webhook = Webhook::new(
        "https://user:secret@store.example:8443/hook/TOKEN?key=SECRET".parse().unwrap(),
        Duration::from_secs(60),
        None,
    );
    assert_eq!(webhook.to_string(), "https://store.example:8443");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_long_and_signed_anew() {
    let (url, script) = webhook(vec![(429, vec![("retry-after", "1")], "slow down")]).await;
    let webhook = Webhook::new(url, Duration::from_secs(60), Some(Secret::new(SECRET.into())));
    let metrics = Metrics::default();
    let attempts = webhook.send(&recording(), &metrics, no_shutdown()).await.unwrap();
    assert_eq!(attempts, 2);
    assert_eq!((metrics.delivery_retries.get(), metrics.delivery_permanent_failures.get()), (1, 0));

    let seen = script.seen.lock().unwrap();
    let (first, second) = (&seen[0], &seen[1]);
    assert!(second.at - first.at >= Duration::from_secs(1), "waited {:?}", second.at - first.at);
    let id = sample().recording_id.to_string();
    for attempt in [first, second] {
        assert_eq!(header(attempt, "idempotency-key"), Some(id.as_str()));
        assert_eq!(header(attempt, "content-length"), Some(attempt.body.len().to_string().as_str()));
        let content_type = header(attempt, "content-type").unwrap();
        assert!(content_type.starts_with("multipart/form-data; boundary=callrec-"), "{content_type}");
    }
    assert_eq!(first.body, second.body, "the same bytes, boundary included, on every attempt");
    assert_eq!(header(first, "content-type"), header(second, "content-type"));
    let (t1, t2) = (verified_time(first, SECRET), verified_time(second, SECRET));
    assert!(t2 > t1, "each attempt is signed at its own time: {t1}, then {t2}");
    assert!(unix_now().abs_diff(t2) <= 2, "t is the attempt's unix time");
}

#[tokio::test]
async fn a_refusal_for_good_stops_at_one_attempt() {
    let body = "no such bucket for url-t0ken; sent whsec_unit-test-secret, rejected";
    let (url, script) = webhook(vec![(400, vec![], body)]).await;
    let webhook = Webhook::new(url, Duration::from_secs(60), Some(Secret::new(SECRET.into())));
    let metrics = Metrics::default();
    let started = Instant::now();
    let failure = webhook.send(&recording(), &metrics, no_shutdown()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "failed at once");
    assert!(failure.permanent);
    assert_eq!(failure.attempts, 1);
    assert!(failure.to_string().contains("400") && !failure.to_string().contains(SECRET), "{failure}");
    assert_eq!((metrics.delivery_permanent_failures.get(), metrics.delivery_retries.get()), (1, 0));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(script.seen.lock().unwrap().len(), 1, "never tried again");
}

#[tokio::test]
async fn a_redirect_is_not_followed_but_refused() {
    let (url, script) = webhook(vec![(302, vec![("location", "/login")], "")]).await;
    let webhook = Webhook::new(url, Duration::from_secs(60), None);
    let failure = webhook.send(&recording(), &Metrics::default(), no_shutdown()).await.unwrap_err();
    assert!(failure.permanent && failure.attempts == 1, "{failure}");
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "no GET to the redirect's target");
    assert!(header(&seen[0], "callrec-signature").is_none(), "no secret, no signature");
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let (url, script) = webhook(vec![(503, vec![], ""), (500, vec![], ""), (408, vec![], "")]).await;
    let webhook = Webhook::new(url, Duration::from_secs(60), None);
    let metrics = Metrics::default();
    assert_eq!(webhook.send(&recording(), &metrics, no_shutdown()).await.unwrap(), 4);
    assert_eq!(metrics.delivery_retries.get(), 3);
    let seen = script.seen.lock().unwrap();
    // Jittered: each wait is at least half its backoff step (500 ms, 1 s, 2 s).
    for (n, step) in [(1, 500), (2, 1000), (3, 2000)] {
        let waited = seen[n].at - seen[n - 1].at;
        assert!(waited >= Duration::from_millis(step / 2), "wait {n}: {waited:?}");
    }
}

#[tokio::test]
async fn a_retry_after_past_the_budget_gives_up_at_once() {
    let (url, script) = webhook(vec![(503, vec![("retry-after", "3600")], "")]).await;
    let webhook = Webhook::new(url, Duration::from_secs(60), None);
    let started = Instant::now();
    let failure = webhook.send(&recording(), &Metrics::default(), no_shutdown()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "no hour-long wait");
    assert!(!failure.permanent);
    assert!(failure.last_error.contains("past the delivery budget"), "{failure}");
    assert_eq!(script.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_webhook_is_retried_within_the_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap()).parse().unwrap();
    drop(listener);
    let webhook = Webhook::new(url, Duration::from_millis(1500), None);
    let metrics = Metrics::default();
    let started = Instant::now();
    let failure = webhook.send(&recording(), &metrics, no_shutdown()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "within the budget: {:?}", started.elapsed());
    assert!(failure.attempts >= 2 && !failure.permanent, "{failure}");
    assert_eq!(metrics.delivery_retries.get(), u64::from(failure.attempts - 1));
    assert!(failure.last_error.to_lowercase().contains("connect"), "{failure}");
}

#[tokio::test]
async fn a_document_carries_its_own_key_and_signature() {
    let (url, script) = webhook(vec![]).await;
    let webhook = Webhook::new(url, Duration::from_secs(60), Some(Secret::new(SECRET.into())));
    let json = Bytes::from_static(br#"{"channel":{"id":"1764000000.42"}}"#);
    let attempts = webhook.send_json("post-call-1764000000.42", &json, &Metrics::default(), no_shutdown()).await;
    assert_eq!(attempts.unwrap(), 1);
    let seen = script.seen.lock().unwrap();
    assert_eq!(header(&seen[0], "idempotency-key"), Some("post-call-1764000000.42"));
    assert_eq!(header(&seen[0], "content-type"), Some("application/json"));
    assert_eq!(seen[0].body, json);
    verified_time(&seen[0], SECRET);
}

#[test]
fn header_values_keep_only_visible_ascii() {
    assert_eq!(header_value("post-call-1764000000.42"), "post-call-1764000000.42");
    assert_eq!(header_value("a b\r\nc\u{e9}"), "a_b__c_");
}

#[tokio::test]
async fn a_hanging_webhook_gives_the_recording_up_soon_after_shutdown() {
    let url = format!("{}/hook", attempts::testing::hanging_server().await).parse().unwrap();
    let mut webhook = Webhook::new(url, Duration::from_secs(60), None);
    webhook.stopping_limit = Duration::from_millis(200);
    attempts::testing::assert_given_up_soon_after_shutdown(|shutdown| async move {
        webhook.send(&recording(), &Metrics::default(), shutdown).await
    })
    .await;
}
