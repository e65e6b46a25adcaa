//! The object-storage target, beside the webhook at the end of the path: a
//! `--target NAME=s3://BUCKET/PREFIX` stores each recording in an
//! S3-compatible bucket (AWS S3, MinIO, Ceph, Garage) as two objects,
//!
//! ```text
//! PREFIX/<yyyy>/<mm>/<dd>/<recording_id>.ul   (or .wav; audio/basic, audio/wav)
//! PREFIX/<yyyy>/<mm>/<dd>/<recording_id>.json (application/json, last)
//! ```
//!
//! dated by the recording's `started_at` in UTC. The JSON is the same bytes
//! the webhook sends as its `metadata` part, and it is written only once the
//! audio is stored: a reader that lists the `.json` objects finds only
//! complete recordings. Audio over 8 MiB goes up as a multipart upload.
//!
//! Endpoint, region and credentials come from the usual `AWS_*` environment
//! variables; `--s3-endpoint` names a MinIO/Ceph/Garage server (path-style
//! requests, plain http only when it says `http://`). Attempts follow the
//! webhook's rules (`attempts`, `retry`): 408, 429, 5xx, timeouts and
//! connection errors are retried within the delivery budget; any other 4xx
//! (403 AccessDenied, 404 NoSuchBucket) is refused for good. object_store
//! retries nothing by itself. The keys never reach a log line, an error or
//! `Debug` output: what is shown of a failure is its HTTP status or kind and
//! the object's key, never the server's answer.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    RetryConfig,
};
use reqwest::StatusCode;
use tokio::sync::watch;
use url::Url;

use super::attempts::{self, Answer, Delivering, DeliveryFailure, Limits};
use super::metadata::parse_rfc3339;
use super::retry::{classify, Verdict, ATTEMPT_TIMEOUT};
use super::{FinishedRecording, Metadata};
use crate::metrics::Metrics;
use crate::recording::encode::AudioFormat;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Audio larger than this goes up in parts of this size (S3 wants parts of
/// at least 5 MiB, but the last).
pub const MULTIPART_PART: usize = 8 * 1024 * 1024;

/// Where an `s3://BUCKET/PREFIX` URL puts recordings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// Key segments joined by `/`, without a leading or trailing one; may
    /// be empty.
    pub prefix: String,
}

impl Location {
    /// Checks an `s3://` target URL: a valid bucket name, a prefix of plain
    /// key segments, nothing else.
    pub fn parse(text: &str) -> Result<Location, String> {
        let url: Url = text.parse().map_err(|_| "not a URL".to_string())?;
        // The URL parser resolves `.` and `..`; a prefix is taken as written.
        if text.split(['/', '?', '#']).skip(3).any(|segment| segment == "." || segment == "..") {
            return Err("the prefix must not contain . or .. segments".into());
        }
        if url.scheme() != "s3" {
            return Err(format!("expected s3://BUCKET/PREFIX, not {}://", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("an s3:// URL carries no credentials: they come from the AWS_* environment variables".into());
        }
        if url.port().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(
                "an s3:// URL is s3://BUCKET/PREFIX, without port, query or fragment (see --s3-endpoint)".into()
            );
        }
        let bucket = url.host_str().unwrap_or_default();
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "bucket {bucket:?}: use 3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit"
            ));
        }
        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        let prefix = path.strip_suffix('/').unwrap_or(path);
        let segment_ok = |segment: &str| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b))
        };
        if !prefix.is_empty() && !prefix.split('/').all(segment_ok) {
            return Err(format!(
                "prefix {prefix:?}: use segments of A-Z a-z 0-9 ! - _ . * ' ( ) separated by single slashes"
            ));
        }
        Ok(Location { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A recording's two objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub audio: Path,
    pub metadata: Path,
}

/// The keys of a recording: `PREFIX/<yyyy>/<mm>/<dd>/<recording_id>.<ext>`
/// and `.json` beside it, dated by `started_at` in UTC (`ended_at` when it
/// has no start; `now` when neither can be read).
pub fn keys(prefix: &str, metadata: &Metadata, format: AudioFormat, now: DateTime<Utc>) -> Keys {
    let day = parse_rfc3339(&metadata.started_at)
        .or_else(|| parse_rfc3339(&metadata.ended_at))
        .map(DateTime::<Utc>::from)
        .unwrap_or(now);
    let mut stem = String::new();
    if !prefix.is_empty() {
        stem.push_str(prefix);
        stem.push('/');
    }
    stem.push_str(&format!("{:04}/{:02}/{:02}/{}", day.year(), day.month(), day.day(), metadata.recording_id));
    Keys { audio: Path::from(format!("{stem}.{}", format.extension())), metadata: Path::from(format!("{stem}.json")) }
}

/// An S3-compatible bucket recordings are stored in.
#[derive(Clone)]
pub struct S3Target {
    store: AmazonS3,
    location: Arc<Location>,
    /// The server as logs show it: host and port, never credentials.
    endpoint: Arc<str>,
    limits: Limits,
}

impl S3Target {
    /// A target configured from the `AWS_*` environment variables and
    /// `--s3-endpoint`; `budget` bounds each delivery (`--delivery-timeout`).
    pub fn new(location: Location, endpoint: Option<&Url>, budget: Duration) -> Result<S3Target, String> {
        Self::from_builder(AmazonS3Builder::from_env(), location, endpoint, budget)
    }

    /// The same from a builder configured otherwise (explicit credentials).
    pub fn from_builder(
        mut builder: AmazonS3Builder,
        location: Location,
        endpoint: Option<&Url>,
        budget: Duration,
    ) -> Result<S3Target, String> {
        if let Some(endpoint) = endpoint {
            let url = endpoint.as_str().trim_end_matches('/').to_string();
            builder = builder
                // Over AWS_ENDPOINT_URL_S3 too, which would otherwise win.
                .with_config(AmazonS3ConfigKey::S3Endpoint, url.clone())
                .with_endpoint(url)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.scheme() == "http");
        }
        let client = |key| AmazonS3ConfigKey::Client(key);
        builder = builder
            .with_bucket_name(&location.bucket)
            // The budget is ours: object_store retries nothing by itself.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 0,
                retry_timeout: ATTEMPT_TIMEOUT,
            })
            .with_config(client(ClientConfigKey::Timeout), format!("{}s", ATTEMPT_TIMEOUT.as_secs()))
            .with_config(client(ClientConfigKey::ConnectTimeout), format!("{}s", CONNECT_TIMEOUT.as_secs()))
            .with_config(client(ClientConfigKey::UserAgent), concat!("callrec/", env!("CARGO_PKG_VERSION")));
        let endpoint = shown_endpoint(&builder);
        let store = builder.build().map_err(|error| format!("cannot set up the S3 client: {}", describe(&error)))?;
        Ok(S3Target { store, location: Arc::new(location), endpoint: endpoint.into(), limits: Limits::new(budget) })
    }

    /// Stores the audio, then the metadata, attempt after attempt until both
    /// are stored, the bucket refuses for good, the budget is spent or
    /// callrec stops; returns the attempts it took. Audio already stored is
    /// not sent again.
    pub async fn send(
        &self,
        recording: &FinishedRecording,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        let keys = keys(&self.location.prefix, &recording.metadata, recording.format, Utc::now());
        let metadata = Bytes::from(recording.metadata.to_json());
        let audio_stored = AtomicBool::new(false);
        let label = format!("recording {}", recording.metadata.recording_id);
        let delivering = Delivering { label: &label, kind: "s3", to: self };
        let (keys, metadata, audio_stored) = (&keys, &metadata, &audio_stored);
        attempts::run(delivering, self.limits, metrics, shutdown, |timeout| async move {
            let attempt = self.attempt(recording, keys, metadata, audio_stored);
            match tokio::time::timeout(timeout, attempt).await {
                Ok(answer) => answer,
                Err(_) => Answer::Failed { error: format!("no answer within {timeout:?}"), retry_after: None },
            }
        })
        .await
    }

    /// The audio unless an earlier attempt stored it, then the metadata.
    async fn attempt(
        &self,
        recording: &FinishedRecording,
        keys: &Keys,
        metadata: &Bytes,
        audio_stored: &AtomicBool,
    ) -> Answer {
        if !audio_stored.load(Ordering::SeqCst) {
            if let Err(error) = self.put_audio(recording, &keys.audio).await {
                return answer(&keys.audio, &error);
            }
            audio_stored.store(true, Ordering::SeqCst);
        }
        match self.put(&keys.metadata, metadata.clone(), "application/json").await {
            Ok(()) => Answer::Delivered,
            Err(error) => answer(&keys.metadata, &error),
        }
    }

    async fn put(&self, key: &Path, body: Bytes, content_type: &'static str) -> object_store::Result<()> {
        let options = PutOptions { attributes: content_type_of(content_type), ..Default::default() };
        self.store.put_opts(key, PutPayload::from(body), options).await.map(|_| ())
    }

    /// One upload, or parts of `MULTIPART_PART` for larger audio; a failed
    /// multipart upload is aborted (one cut short at shutdown is left to the
    /// bucket's lifecycle rules).
    async fn put_audio(&self, recording: &FinishedRecording, key: &Path) -> object_store::Result<()> {
        let (audio, content_type) = (&recording.audio, recording.format.content_type());
        if audio.len() <= MULTIPART_PART {
            return self.put(key, audio.clone(), content_type).await;
        }
        let options = PutMultipartOptions { attributes: content_type_of(content_type), ..Default::default() };
        let mut upload = self.store.put_multipart_opts(key, options).await?;
        let mut result = Ok(());
        for start in (0..audio.len()).step_by(MULTIPART_PART) {
            let part = audio.slice(start..(start + MULTIPART_PART).min(audio.len()));
            result = upload.put_part(PutPayload::from(part)).await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = upload.complete().await.map(|_| ());
        }
        if result.is_err() {
            let _ = upload.abort().await;
        }
        result
    }
}

impl fmt::Display for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.location, self.endpoint)
    }
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Target({self})")
    }
}

fn content_type_of(content_type: &'static str) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.into());
    attributes
}

/// The server's host and port as the built client will reach it.
fn shown_endpoint(builder: &AmazonS3Builder) -> String {
    let configured = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    match configured {
        Some(endpoint) => match Url::parse(&endpoint) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_string(),
                (None, _) => "?".into(),
            },
            Err(_) => "?".into(),
        },
        None => {
            let region = builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
            format!("s3.{region}.amazonaws.com")
        }
    }
}

/// What a failed upload means for the delivery: a status the policy calls
/// permanent is a refusal for good; anything else is worth another attempt.
fn answer(key: &Path, error: &object_store::Error) -> Answer {
    let shown = format!("storing {key}: {}", describe(error));
    match status_of(error).map(|status| (status, classify(status))) {
        Some((status, Verdict::Permanent)) => Answer::Refused { status, detail: shown },
        _ => Answer::Failed { error: shown, retry_after: None },
    }
}

/// The HTTP status an object_store error carries, if any.
fn status_of(error: &object_store::Error) -> Option<StatusCode> {
    causes(error).find_map(|error| status_in(&error.to_string())).and_then(|code| StatusCode::from_u16(code).ok())
}

fn causes<'a>(error: &'a object_store::Error) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |error| error.source())
}

/// What may be shown of an object_store error: its kind, the HTTP status,
/// or what went wrong with the connection. Never its text, which can carry
/// the request and the server's answer (an S3 error body names the access
/// key).
pub fn describe(error: &object_store::Error) -> String {
    use object_store::Error as E;
    let kind = match error {
        E::NotFound { .. } => Some("not found"),
        E::PermissionDenied { .. } => Some("permission denied"),
        E::Unauthenticated { .. } => Some("not authenticated"),
        E::Precondition { .. } => Some("precondition failed"),
        E::AlreadyExists { .. } => Some("already exists"),
        E::NotModified { .. } => Some("not modified"),
        E::NotSupported { .. } | E::NotImplemented { .. } => Some("not supported"),
        E::InvalidPath { .. } => Some("invalid key"),
        E::UnknownConfigurationKey { .. } => Some("unknown configuration key"),
        _ => None,
    };
    let status = status_of(error).map(|status| status.as_u16());
    let transport = causes(error).find_map(|error| error.downcast_ref::<HttpError>()).map(|error| error.kind());
    match (status, kind, transport) {
        (Some(status), Some(kind), _) => format!("HTTP {status} ({kind})"),
        (Some(status), None, _) => format!("HTTP {status}"),
        (None, _, Some(transport)) => transport_failure(transport).to_string(),
        (None, Some(kind), None) => kind.to_string(),
        (None, None, None) => "the S3 request failed".into(),
    }
}

fn transport_failure(kind: HttpErrorKind) -> &'static str {
    match kind {
        HttpErrorKind::Connect => "cannot connect",
        HttpErrorKind::Request => "the request could not be sent",
        HttpErrorKind::Timeout => "timed out",
        HttpErrorKind::Interrupted => "the connection was interrupted",
        HttpErrorKind::Decode => "the answer could not be read",
        _ => "HTTP error",
    }
}

/// The status in object_store's "…status code: 503 Service Unavailable…".
fn status_in(text: &str) -> Option<u16> {
    let (_, after) = text.split_once("status code: ")?;
    let digits = after.get(..3)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::delivery::metadata::tests::sample;

    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    const KEY_ID: &str = "AKIDCALLRECTEST";

    fn location(url: &str) -> Result<Location, String> {
        Location::parse(url)
    }

    fn target(endpoint: &str, budget: Duration) -> S3Target {
        let builder = AmazonS3Builder::new()
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .with_region("eu-central-1");
        let location = location("s3://recordings/calls/ivr").unwrap();
        S3Target::from_builder(builder, location, Some(&endpoint.parse().unwrap()), budget).unwrap()
    }

    fn recording() -> FinishedRecording {
        FinishedRecording { metadata: sample(), audio: Bytes::from_static(&[0xFF; 160]), format: AudioFormat::Ulaw }
    }

    #[test]
    fn bucket_and_prefix_forms() {
        let parsed = |url| location(url).map(|l| (l.bucket, l.prefix));
        assert_eq!(parsed("s3://recordings"), Ok(("recordings".into(), "".into())));
        assert_eq!(parsed("s3://recordings/"), Ok(("recordings".into(), "".into())));
        assert_eq!(parsed("s3://recordings/rec"), Ok(("recordings".into(), "rec".into())));
        assert_eq!(parsed("s3://recordings/rec/"), Ok(("recordings".into(), "rec".into())));
        assert_eq!(parsed("s3://my.bucket-1/a/b_c/(d)"), Ok(("my.bucket-1".into(), "a/b_c/(d)".into())));
        for bad in [
            "s3://ab/rec",
            "s3://Recordings/rec",
            "s3://-recordings/rec",
            "s3://recordings-/rec",
            "s3://rec_ordings/rec",
            "s3://recordings/a//b",
            "s3://recordings//a",
            "s3://recordings/a/../b",
            "s3://recordings/a/./b",
            "s3://recordings/..",
            "s3://recordings/a b",
            "s3://recordings/a?b=c",
            "s3://recordings/a#b",
            "s3://recordings:9000/a",
            "s3://key:secret@recordings/a",
            "s3:///a",
        ] {
            assert!(location(bad).is_err(), "{bad} was taken");
        }
        let shown = location("s3://key:secret@recordings/a").unwrap_err();
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn objects_are_dated_by_the_start_in_utc() {
        let mut meta = sample();
        meta.started_at = "2026-11-24T23:59:59.999Z".into();
        meta.ended_at = "2026-11-25T00:00:03.019Z".into();
        let now = DateTime::<Utc>::from(std::time::UNIX_EPOCH);
        let keys = keys("calls/ivr", &meta, AudioFormat::Ulaw, now);
        assert_eq!(keys.audio.as_ref(), "calls/ivr/2026/11/24/00000000-0000-0000-0000-000000000000.ul");
        assert_eq!(keys.metadata.as_ref(), "calls/ivr/2026/11/24/00000000-0000-0000-0000-000000000000.json");
        let wav = super::keys("", &meta, AudioFormat::Wav, now);
        assert_eq!(wav.audio.as_ref(), "2026/11/24/00000000-0000-0000-0000-000000000000.wav");
        meta.started_at = String::new();
        assert!(super::keys("", &meta, AudioFormat::Ulaw, now).audio.as_ref().starts_with("2026/11/25/"));
        meta.ended_at = String::new();
        assert!(super::keys("", &meta, AudioFormat::Ulaw, now).audio.as_ref().starts_with("1970/01/01/"));
    }

    #[test]
    fn display_and_debug_show_the_place_never_the_keys() {
        let target = target("http://127.0.0.1:9000/", Duration::from_secs(1));
        assert_eq!(target.to_string(), "s3://recordings/calls/ivr (127.0.0.1:9000)");
        let debug = format!("{target:?}");
        assert!(!debug.contains(SECRET) && !debug.contains(KEY_ID), "{debug}");
        let aws = S3Target::from_builder(
            AmazonS3Builder::new().with_region("eu-west-3"),
            location("s3://recordings").unwrap(),
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(aws.to_string(), "s3://recordings/ (s3.eu-west-3.amazonaws.com)");
    }

    #[test]
    fn statuses_are_read_from_object_store_errors() {
        assert_eq!(status_in("Server returned non-2xx status code: 503 Service Unavailable: <x>"), Some(503));
        assert_eq!(status_in("status code: 40"), None);
        assert_eq!(status_in("no status"), None);
    }

    /// A server that answers each request with the status `answer` gives
    /// its request line (and how many came before it), an S3 error body
    /// naming the access key for failures (as a signature mismatch does);
    /// it keeps the request lines in order.
    async fn fake_s3(answer: fn(&str, usize) -> &'static str) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut connection, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 65536];
                    let read = connection.read(&mut buffer).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buffer[..read]);
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let status = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(line.clone());
                        answer(&line, seen.len() - 1)
                    };
                    let body = if status.starts_with('2') {
                        String::new()
                    } else {
                        format!(
                            "<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>{KEY_ID}</AWSAccessKeyId>\
                             <StringToSign>{SECRET}</StringToSign></Error>"
                        )
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nETag: \"e\"\r\nContent-Type: application/xml\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = connection.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, requests)
    }

    #[tokio::test]
    async fn the_metadata_is_stored_after_the_audio_and_the_audio_only_once() {
        // The first metadata upload fails: it alone is tried again.
        let (url, requests) =
            fake_s3(|line, n| if line.contains(".json") && n == 1 { "500 Internal" } else { "200 OK" }).await;
        let store = target(&url, Duration::from_secs(10));
        let attempts = store.send(&recording(), &Metrics::default(), watch::channel(false).1).await.unwrap();
        assert_eq!(attempts, 2);
        let key = "/recordings/calls/ivr/2026/11/24/00000000-0000-0000-0000-000000000000";
        let expected: Vec<String> =
            ["ul", "json", "json"].iter().map(|ext| format!("PUT {key}.{ext} HTTP/1.1")).collect();
        assert_eq!(*requests.lock().unwrap(), expected, "path-style, audio first, metadata last");
    }

    #[tokio::test]
    async fn a_failing_server_is_retried_within_the_budget_and_its_answer_is_never_shown() {
        let (url, requests) = fake_s3(|_, _| "503 Service Unavailable").await;
        let store = target(&url, Duration::from_secs(2));
        let (_stop, shutdown) = watch::channel(false);
        let metrics = Metrics::default();
        let failure = store.send(&recording(), &metrics, shutdown).await.unwrap_err();
        assert!(failure.attempts >= 2 && !failure.permanent, "{failure}");
        // The last attempt may have had too little of the budget left to
        // reach the server; none was retried by object_store.
        let requests = requests.lock().unwrap().len() as u32;
        assert!(requests + 1 >= failure.attempts && requests <= failure.attempts, "{requests} requests, {failure}");
        let shown = failure.to_string();
        println!("a server answering 503 with the key in its body: {shown}");
        let key = "calls/ivr/2026/11/24/00000000-0000-0000-0000-000000000000.ul";
        assert!(shown.ends_with(&format!("{key}: HTTP 503")) || shown.contains("no answer within"), "{shown}");
        assert!(!shown.contains(SECRET) && !shown.contains(KEY_ID), "{shown}");
    }

    #[tokio::test]
    async fn a_refusal_for_good_is_not_retried() {
        let (url, requests) = fake_s3(|_, _| "403 Forbidden").await;
        let metrics = Metrics::default();
        let failure = target(&url, Duration::from_secs(60)).send(&recording(), &metrics, watch::channel(false).1).await;
        let failure = failure.unwrap_err();
        assert_eq!((failure.attempts, failure.permanent), (1, true), "{failure}");
        assert_eq!(failure.last_error, "HTTP 403 Forbidden, refused for good");
        assert_eq!((requests.lock().unwrap().len(), metrics.delivery_permanent_failures.get()), (1, 1));
        let answer = answer(&Path::from("a/b.ul"), &permission_denied());
        match answer {
            Answer::Refused { status, detail } => {
                assert_eq!((status.as_u16(), detail.as_str()), (403, "storing a/b.ul: HTTP 403 (permission denied)"))
            }
            other => panic!("{other:?}"),
        }
    }

    /// An object_store error as a 403 with the key in its body leaves it.
    fn permission_denied() -> object_store::Error {
        let source = format!("Server returned non-2xx status code: 403 Forbidden: <AWSAccessKeyId>{KEY_ID}");
        object_store::Error::PermissionDenied { path: "a/b.ul".into(), source: source.into() }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_by_what_failed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let budget = Duration::from_millis(300);
        let failure = target(&url, budget).send(&recording(), &Metrics::default(), watch::channel(false).1).await;
        let shown = failure.unwrap_err().to_string();
        assert!(shown.ends_with(".ul: cannot connect"), "{shown}");
    }

    #[tokio::test]
    async fn a_hanging_server_gives_the_recording_up_soon_after_shutdown() {
        let mut target = target(&attempts::testing::hanging_server().await, Duration::from_secs(60));
        target.limits.stopping_limit = Duration::from_millis(200);
        attempts::testing::assert_given_up_soon_after_shutdown(|shutdown| async move {
            target.send(&recording(), &Metrics::default(), shutdown).await
        })
        .await;
    }
}
