//! A real HTTP storage webhook for the tests: it takes callrec's multipart
//! POSTs, keeps every part as received, and can be told to fail first. It
//! also takes post-call summaries (JSON, on `/post-call`), and keeps the
//! order in which recordings and summaries arrived.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// One multipart part as it arrived.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub parts: Vec<Part>,
    pub metadata: Value,
    pub audio: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    attempts: AtomicUsize,
    /// Answer 503 to this many attempts before accepting.
    fail_first: AtomicUsize,
    post_calls: Mutex<Vec<Value>>,
    post_call_attempts: AtomicUsize,
    post_call_fail_first: AtomicUsize,
    /// `recording <id>` and `post-call <channel id>`, in arrival order.
    arrivals: Mutex<Vec<String>>,
    /// How the next recording attempts are answered, before the usual.
    script: Mutex<VecDeque<Answer>>,
    /// Refuses every recording (503) until then.
    down_until: Mutex<Option<Instant>>,
    /// The `Idempotency-Key` of each accepted recording.
    keys: Mutex<Vec<String>>,
}

/// A scripted answer to one recording attempt.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// This status.
    Status(u16),
    /// 429 with `Retry-After: seconds`.
    RetryAfter(u64),
    /// Hold the request this long, then take the recording.
    Hang(Duration),
}

pub struct Webhook {
    pub url: String,
    pub post_call_url: String,
    shared: Arc<Shared>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        Self::failing_first(0).await
    }

    /// A webhook that answers 503 to the first `n` attempts.
    pub async fn failing_first(n: usize) -> Webhook {
        let shared = Arc::new(Shared::default());
        shared.fail_first.store(n, Ordering::SeqCst);
        let app = Router::new()
            .route("/recordings", post(receive))
            .route("/post-call", post(receive_post_call))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Webhook {
            url: format!("http://{addr}/recordings?token=s3cr3t-token"),
            post_call_url: format!("http://{addr}/post-call"),
            shared,
        }
    }

    /// Answer 503 to the next `n` post-call summaries.
    pub fn fail_post_calls(&self, n: usize) {
        self.shared.post_call_fail_first.store(n, Ordering::SeqCst);
    }

    pub fn post_call_attempts(&self) -> usize {
        self.shared.post_call_attempts.load(Ordering::SeqCst)
    }

    /// What arrived, in order: `recording <id>`, `post-call <channel id>`.
    pub fn arrivals(&self) -> Vec<String> {
        self.shared.arrivals.lock().unwrap().clone()
    }

    /// Waits for `n` post-call summaries in all.
    pub async fn wait_for_post_calls(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let documents = self.shared.post_calls.lock().unwrap().clone();
            if documents.len() >= n {
                return documents;
            }
            assert!(Instant::now() < deadline, "only {} of {n} post-call summaries arrived", documents.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers the next recording attempts as scripted, then as usual.
    pub fn script(&self, answers: &[Answer]) {
        self.shared.script.lock().unwrap().extend(answers.iter().copied());
    }

    /// Refuses every recording (503) for `period` from now.
    pub fn down_for(&self, period: Duration) {
        *self.shared.down_until.lock().unwrap() = Some(Instant::now() + period);
    }

    /// The `Idempotency-Key` of each accepted recording, in order.
    pub fn keys(&self) -> Vec<String> {
        self.shared.keys.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().unwrap().clone()
    }

    /// Waits for `n` deliveries in all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            let deliveries = self.deliveries();
            if deliveries.len() >= n {
                return deliveries;
            }
            assert!(Instant::now() < deadline, "only {} of {n} recordings were delivered", deliveries.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, mut multipart: Multipart) -> Response {
    shared.attempts.fetch_add(1, Ordering::SeqCst);
    let scripted = shared.script.lock().unwrap().pop_front();
    match scripted {
        Some(Answer::Status(status)) => return StatusCode::from_u16(status).unwrap().into_response(),
        Some(Answer::RetryAfter(seconds)) => {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", seconds.to_string())]).into_response()
        }
        Some(Answer::Hang(period)) => tokio::time::sleep(period).await,
        None => {}
    }
    if shared.down_until.lock().unwrap().is_some_and(|until| Instant::now() < until) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut parts = Vec::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.unwrap().to_vec();
        parts.push(Part { name, file_name, content_type, bytes });
    }
    let failing = shared.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let metadata: Option<Value> =
        parts.iter().find(|p| p.name == "metadata").map(|p| serde_json::from_slice(&p.bytes).unwrap());
    let audio = parts.iter().find(|p| p.name == "audio").map(|p| p.bytes.clone());
    let (Some(metadata), Some(audio)) = (metadata, audio) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = metadata["recording_id"].as_str().unwrap_or_default().to_string();
    let key = headers.get("idempotency-key").and_then(|key| key.to_str().ok()).unwrap_or_default();
    shared.keys.lock().unwrap().push(key.to_string());
    shared.deliveries.lock().unwrap().push(Delivery { parts, metadata, audio });
    shared.arrivals.lock().unwrap().push(format!("recording {id}"));
    StatusCode::OK.into_response()
}

async fn receive_post_call(State(shared): State<Arc<Shared>>, Json(document): Json<Value>) -> StatusCode {
    shared.post_call_attempts.fetch_add(1, Ordering::SeqCst);
    let failing =
        shared.post_call_fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let channel = document["channel"]["id"].as_str().unwrap_or_default().to_string();
    shared.post_calls.lock().unwrap().push(document);
    shared.arrivals.lock().unwrap().push(format!("post-call {channel}"));
    StatusCode::OK
}
