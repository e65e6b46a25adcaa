//! Delivery to a webhook, once a recording is finished: each recording is
//! POSTed as `multipart/form-data` (the bytes come from `multipart`), a
//! post-call summary as JSON. Every attempt carries `Idempotency-Key` and,
//! with a secret, a fresh `Callrec-Signature` (`webhook_signature`). What
//! follows an answer is `retry`'s policy, applied by `attempts`: 2xx is
//! delivered; 408, 429, 5xx, timeouts and connection errors are retried
//! after a jittered backoff or the server's `Retry-After`, within the
//! delivery budget; anything else is refused for good and not retried. The
//! URL may carry a token, so logs name only its scheme, host and port.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::watch;
use url::Url;

pub use super::attempts::DeliveryFailure;
use super::attempts::{self, Answer, Delivering, Limits, STOPPING_ATTEMPT_LIMIT};
use super::excerpt::Redactions;
use super::multipart::MultipartBody;
use super::retry::{classify, parse_retry_after, Verdict};
use super::webhook_signature::{self, signature_header};
use super::FinishedRecording;
use crate::config::Secret;
use crate::metrics::Metrics;

/// The header that lets a receiver take a repeated delivery only once.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: Arc<Url>,
    /// How long one delivery may take in all, attempts and waits included.
    budget: Duration,
    /// Signs every attempt, when set.
    secret: Option<Secret>,
    /// What a refusal's body excerpt must never show.
    redactions: Arc<Redactions>,
    /// How long an attempt under way may go on once callrec is stopping.
    stopping_limit: Duration,
}

impl Webhook {
    /// `budget` bounds each delivery; with `secret`, every attempt is signed.
    pub fn new(url: Url, budget: Duration, secret: Option<Secret>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // A redirected POST may come back as a GET answered 200 with
            // nothing stored: a redirect is an answer of its own.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("callrec/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        let redactions = Arc::new(Redactions::new(&url, secret.as_ref().map(Secret::expose)));
        Webhook { client, url: Arc::new(url), budget, secret, redactions, stopping_limit: STOPPING_ATTEMPT_LIMIT }
    }

    /// POSTs `recording` until a 2xx answer, a refusal for good, the end of
    /// the budget or shutdown; returns the number of attempts it took.
    pub async fn send(
        &self,
        recording: &FinishedRecording,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        let id = recording.metadata.recording_id.to_string();
        let body = MultipartBody::new(recording);
        let request = Outgoing::new(format!("recording {id}"), &id, body.content_type(), body.into_pieces());
        self.deliver(&request, metrics, shutdown).await
    }

    /// POSTs a JSON document by the same rules, under `idempotency_key`
    /// (which also names it in the logs).
    pub async fn send_json(
        &self,
        idempotency_key: &str,
        json: &Bytes,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        let request =
            Outgoing::new(idempotency_key.to_string(), idempotency_key, "application/json".into(), vec![json.clone()]);
        self.deliver(&request, metrics, shutdown).await
    }

    async fn deliver(
        &self,
        request: &Outgoing,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        let delivering = Delivering { label: &request.label, kind: "webhook", to: self };
        let limits = Limits { budget: self.budget, stopping_limit: self.stopping_limit };
        attempts::run(delivering, limits, metrics, shutdown, |timeout| self.attempt(request, timeout)).await
    }

    /// One POST of the whole body, signed at the time it is made.
    async fn attempt(&self, request: &Outgoing, timeout: Duration) -> Answer {
        let mut builder = self
            .client
            .post(self.url.as_ref().clone())
            .timeout(timeout)
            .header(CONTENT_TYPE, &request.content_type)
            .header(CONTENT_LENGTH, request.len())
            .header(IDEMPOTENCY_KEY, request.idempotency_key.clone());
        if let Some(secret) = &self.secret {
            builder = builder.header(webhook_signature::HEADER, signature_header(secret, unix_now(), &request.pieces));
        }
        let response = match builder.body(request.body()).send().await {
            Ok(response) => response,
            Err(error) => return Answer::Failed { error: describe(&error.without_url()), retry_after: None },
        };
        let status = response.status();
        match classify(status) {
            Verdict::Delivered => Answer::Delivered,
            Verdict::Retry => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, SystemTime::now()));
                Answer::Failed { error: format!("HTTP {status}"), retry_after }
            }
            Verdict::Permanent => Answer::Refused { status, detail: self.excerpt(response).await },
        }
    }

    /// The start of a refusal's body, for the log.
    async fn excerpt(&self, mut response: reqwest::Response) -> String {
        let mut body = Vec::new();
        while body.len() < self.redactions.read_limit() {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        self.redactions.excerpt(&body)
    }
}

impl fmt::Display for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.url.scheme(), self.url.host_str().unwrap_or("?"))?;
        if let Some(port) = self.url.port() {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// One delivery's request, the same on every attempt but for its signature.
struct Outgoing {
    /// What it is, for the logs: `recording <id>`, or the key of a document.
    label: String,
    idempotency_key: HeaderValue,
    content_type: String,
    /// The body, sent back to back: exactly the bytes that are signed.
    pieces: Vec<Bytes>,
}

impl Outgoing {
    fn new(label: String, idempotency_key: &str, content_type: String, pieces: Vec<Bytes>) -> Self {
        Outgoing { label, idempotency_key: header_value(idempotency_key), content_type, pieces }
    }

    fn len(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum()
    }

    fn body(&self) -> reqwest::Body {
        let pieces = self.pieces.clone().into_iter().map(Ok::<_, std::convert::Infallible>);
        reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
    }
}

/// Text as a header value; anything a header cannot carry becomes `_`.
fn header_value(text: &str) -> HeaderValue {
    let safe: String = text.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    HeaderValue::from_str(&safe).expect("visible ASCII is a valid header value")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// A reqwest error with its causes ("connection refused" rather than "error
/// sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
