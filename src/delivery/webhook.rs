//! Delivery to a webhook, once a recording is finished: each recording is
//! POSTed as `multipart/form-data` (the bytes come from `multipart`), a
//! post-call summary as JSON. Every attempt carries `Idempotency-Key` and,
//! with a secret, a fresh `Callrec-Signature` (`webhook_signature`). What
//! follows an answer is `retry`'s policy: 2xx is delivered; 408, 429, 5xx,
//! timeouts and connection errors are retried after a jittered backoff or
//! the server's `Retry-After`, within the delivery budget; anything else is
//! refused for good and not retried. The URL may carry a token, so logs
//! name only its scheme, host and port.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::sync::watch;
use tracing::{error, warn};
use url::Url;

use super::excerpt::Redactions;
use super::multipart::MultipartBody;
use super::retry::{classify, next_attempt, parse_retry_after, Budget, Next, Verdict};
use super::webhook_signature::{self, signature_header};
use super::FinishedRecording;
use crate::backoff::Backoff;
use crate::config::Secret;
use crate::metrics::Metrics;

/// The header that lets a receiver take a repeated delivery only once.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The first wait between attempts, and the longest the backoff grows to.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);
/// Once callrec is stopping, how much longer an attempt under way may take
/// before the recording goes to the output directory instead: well inside
/// the shutdown grace period, so a hanging webhook cannot lose it.
const STOPPING_ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

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

/// A webhook that never took the recording.
#[derive(Debug)]
pub struct DeliveryFailure {
    pub attempts: u32,
    pub elapsed: Duration,
    pub last_error: String,
    /// Refused for good (a 4xx other than 408 and 429, or a redirect): no
    /// attempt was made after that answer.
    pub permanent: bool,
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attempt(s) over {:.1} s, the last: {}",
            self.attempts,
            self.elapsed.as_secs_f64(),
            self.last_error
        )
    }
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
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        let started = Instant::now();
        let budget = Budget::start(self.budget, started);
        let mut backoff = Backoff::new(FIRST_RETRY, LONGEST_BACKOFF).with_jitter();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timeout = budget.attempt_timeout(Instant::now());
            let (error, retry_after) = match self.attempt_while_running(request, timeout, &mut shutdown).await {
                Answer::Delivered => return Ok(attempts),
                Answer::Refused { status, excerpt } => {
                    metrics.delivery_permanent_failures.inc();
                    error!(
                        of = %request.label, webhook = %self, attempt = attempts, status = status.as_u16(),
                        body = %excerpt, "webhook refused the delivery for good; no more attempts"
                    );
                    let last_error = format!("HTTP {status}, refused for good");
                    return Err(DeliveryFailure { attempts, elapsed: started.elapsed(), last_error, permanent: true });
                }
                Answer::Failed { error, retry_after } => (error, retry_after),
            };
            let give_up =
                |last_error| DeliveryFailure { attempts, elapsed: started.elapsed(), last_error, permanent: false };
            if *shutdown.borrow() {
                return Err(give_up(error));
            }
            let wait = match next_attempt(backoff.next_delay(), retry_after, budget.remaining(Instant::now())) {
                Next::RetryIn(wait) => wait,
                Next::GiveUp => {
                    return Err(give_up(match retry_after {
                        Some(asked) => {
                            format!("{error}; Retry-After {} s is past the delivery budget", asked.as_secs())
                        }
                        None => error,
                    }))
                }
            };
            metrics.delivery_retries.inc();
            warn!(
                of = %request.label, webhook = %self, attempt = attempts,
                error = %error, retry_in = ?wait, "webhook delivery failed; retrying"
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopping(&mut shutdown) => {}
            }
        }
    }

    /// One attempt, cut short `stopping_limit` after callrec starts stopping.
    async fn attempt_while_running(
        &self,
        request: &Outgoing,
        timeout: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Answer {
        let attempt = self.attempt(request, timeout);
        tokio::pin!(attempt);
        tokio::select! {
            answer = &mut attempt => return answer,
            _ = stopping(shutdown) => {}
        }
        tokio::time::timeout(self.stopping_limit, attempt).await.unwrap_or_else(|_| Answer::Failed {
            error: format!("no answer within {:?} of callrec stopping", self.stopping_limit),
            retry_after: None,
        })
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
            Verdict::Permanent => Answer::Refused { status, excerpt: self.excerpt(response).await },
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

/// What came of one attempt.
enum Answer {
    Delivered,
    /// Worth another attempt, after `retry_after` if the server said.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good, with the start of what the webhook said.
    Refused {
        status: StatusCode,
        excerpt: String,
    },
}

/// Text as a header value; anything a header cannot carry becomes `_`.
fn header_value(text: &str) -> HeaderValue {
    let safe: String = text.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    HeaderValue::from_str(&safe).expect("visible ASCII is a valid header value")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Completes once callrec is stopping; never if it cannot tell.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
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
