//! The storage webhook: each recording is POSTed as `multipart/form-data` with
//! a `metadata` part (application/json) and an `audio` part (`<name>.ul`,
//! audio/basic, or `<name>.wav`, audio/wav). A 2xx answer is success; anything else is retried with
//! backoff for the configured time. The post-call webhook takes a JSON
//! document by the same rules. The URL may carry a token, so logs name only
//! its scheme, host and port.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use tokio::sync::watch;
use tracing::warn;
use url::Url;

use super::FinishedRecording;
use crate::backoff::Backoff;
use crate::metrics::Metrics;

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Once callrec is stopping, how much longer an attempt under way may take
/// before the recording goes to the output directory instead: well inside
/// the shutdown grace period, so a hanging webhook cannot lose it.
const STOPPING_ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: Arc<Url>,
    /// How long failed attempts are retried before giving up.
    retry_for: Duration,
    /// How long an attempt under way may go on once callrec is stopping.
    stopping_limit: Duration,
}

/// A webhook that never took the recording.
#[derive(Debug)]
pub struct DeliveryFailure {
    pub attempts: u32,
    pub elapsed: Duration,
    pub last_error: String,
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
    pub fn new(url: Url, retry_for: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("callrec/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with static settings");
        Webhook { client, url: Arc::new(url), retry_for, stopping_limit: STOPPING_ATTEMPT_LIMIT }
    }

    /// POSTs until a 2xx answer or until the retry time is used up (or
    /// shutdown); returns the number of attempts it took.
    pub async fn send(
        &self,
        recording: &FinishedRecording,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        self.send_payload(Payload::Recording(recording), metrics, shutdown).await
    }

    /// POSTs a JSON document (about `what`, for the logs) by the same rules.
    pub async fn send_json(
        &self,
        what: &str,
        json: &bytes::Bytes,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        self.send_payload(Payload::Json { what, json }, metrics, shutdown).await
    }

    async fn send_payload(
        &self,
        payload: Payload<'_>,
        metrics: &Metrics,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        let started = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last_error = match self.attempt_while_running(&payload, &mut shutdown).await {
                Ok(()) => return Ok(attempts),
                Err(error) => error,
            };
            let elapsed = started.elapsed();
            if elapsed >= self.retry_for || *shutdown.borrow() {
                return Err(DeliveryFailure { attempts, elapsed, last_error });
            }
            let delay = backoff.next_delay();
            metrics.delivery_retries.inc();
            warn!(
                of = %payload, webhook = %self, attempt = attempts,
                error = %last_error, retry_in = ?delay, "webhook delivery failed; retrying"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopping(&mut shutdown) => {}
            }
        }
    }

    /// One attempt, cut short `stopping_limit` after callrec starts stopping.
    async fn attempt_while_running(
        &self,
        payload: &Payload<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let attempt = self.attempt(payload);
        tokio::pin!(attempt);
        tokio::select! {
            result = &mut attempt => return result,
            _ = stopping(shutdown) => {}
        }
        tokio::time::timeout(self.stopping_limit, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?} of callrec stopping", self.stopping_limit)))
    }

    async fn attempt(&self, payload: &Payload<'_>) -> Result<(), String> {
        let request = self.client.post(self.url.as_ref().clone());
        let request = match payload {
            Payload::Recording(recording) => request.multipart(form(recording)),
            Payload::Json { json, .. } => {
                request.header(reqwest::header::CONTENT_TYPE, "application/json").body((*json).clone())
            }
        };
        let response = request.send().await.map_err(|error| describe(&error.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
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

/// What a webhook is sent.
enum Payload<'a> {
    Recording(&'a FinishedRecording),
    Json { what: &'a str, json: &'a bytes::Bytes },
}

impl fmt::Display for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Recording(recording) => write!(f, "recording {}", recording.metadata.recording_id),
            Payload::Json { what, .. } => f.write_str(what),
        }
    }
}

/// Completes once callrec is stopping; never if it cannot tell.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The multipart body: `metadata` then `audio`.
pub fn form(recording: &FinishedRecording) -> Form {
    let metadata = serde_json::to_string(&recording.metadata).expect("metadata serializes");
    let metadata = Part::text(metadata).mime_str("application/json").expect("a valid MIME type");
    let audio = Part::stream_with_length(recording.audio.clone(), recording.audio.len() as u64)
        .file_name(format!("{}.{}", recording.metadata.name, recording.format.extension()))
        .mime_str(recording.format.content_type())
        .expect("a valid MIME type");
    Form::new().part("metadata", metadata).part("audio", audio)
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
mod tests {
    use super::*;

    #[test]
    fn display_hides_path_query_and_credentials() {
        let webhook = Webhook::new(
            "https://user:secret@store.example:8443/hook/TOKEN?key=SECRET".parse().unwrap(),
            Duration::from_secs(60),
        );
        assert_eq!(webhook.to_string(), "https://store.example:8443");
    }

    #[tokio::test]
    async fn a_hanging_webhook_gives_the_recording_up_soon_after_shutdown() {
        // A webhook that takes the connection and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        let mut webhook = Webhook::new(url, Duration::from_secs(60));
        webhook.stopping_limit = Duration::from_millis(200);
        let (stop, shutdown) = watch::channel(false);
        let recording = FinishedRecording {
            metadata: crate::delivery::metadata::tests::sample(),
            audio: bytes::Bytes::from_static(&[0xFF; 160]),
            format: crate::recording::encode::AudioFormat::Ulaw,
        };
        let sending = tokio::spawn(async move { webhook.send(&recording, &Metrics::default(), shutdown).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = Instant::now();
        stop.send(true).unwrap();
        let failure = tokio::time::timeout(Duration::from_secs(5), sending)
            .await
            .expect("the attempt is cut short, not left to its 60 s timeout")
            .unwrap()
            .unwrap_err();
        assert!(stopped.elapsed() >= Duration::from_millis(200), "the attempt had its chance");
        assert_eq!(failure.attempts, 1);
        assert!(failure.last_error.contains("callrec stopping"), "{failure}");
    }
}
