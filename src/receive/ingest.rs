//! The receiver's door: a POST from callrec's delivery. The signature is
//! checked over the raw body first (when the receiver holds the secret),
//! then the body is read as a recording (multipart) or a post-call summary
//! (JSON), admitted once by its `Idempotency-Key`, and stored. Answers are
//! what callrec's retry policy expects: 200 stored or already stored; 401 a
//! bad signature and 400 a malformed delivery (both for good: callrec keeps
//! the recording in its output directory); 503 with `Retry-After` while the
//! same key is being stored; 500 when storing failed (sent again).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{error, info, warn};

use super::check::{self, Parts, Refusal};
use super::dedupe::Admission;
use super::Receiver;
use crate::delivery::post_call::idempotency_key as post_call_key;
use crate::delivery::webhook::IDEMPOTENCY_KEY;
use crate::delivery::webhook_signature::{self, HEADER as SIGNATURE};

/// POST `/recordings`, `/post-call` or `/`: any delivery.
pub async fn deliver(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &receiver.secret {
        let signature = headers.get(SIGNATURE).and_then(|value| value.to_str().ok());
        if let Err(error) = webhook_signature::verify(secret, signature, &body, unix_now()) {
            receiver.counters.refused_signature.inc();
            warn!(%error, bytes = body.len(), "delivery refused: its signature does not check");
            return (StatusCode::UNAUTHORIZED, error.to_string()).into_response();
        }
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let key = headers.get(IDEMPOTENCY_KEY).and_then(|value| value.to_str().ok()).map(str::to_string);
    let outcome = if content_type.starts_with("application/json") {
        summary(&receiver, key, &body).await
    } else {
        recording(&receiver, key, content_type, body).await
    };
    match outcome {
        Ok(answer) => answer,
        Err(refusal) => {
            receiver.counters.refused_malformed.inc();
            warn!(%refusal, "delivery refused as malformed");
            (StatusCode::BAD_REQUEST, refusal.to_string()).into_response()
        }
    }
}

async fn recording(
    receiver: &Arc<Receiver>,
    key: Option<String>,
    content_type: &str,
    body: Bytes,
) -> Result<Response, Refusal> {
    let checked = check::recording(parts(content_type, body).await?)?;
    let id = checked.listing.recording_id.clone();
    let key = key.unwrap_or_else(|| id.clone());
    if let Some(answer) = admit(receiver, &key) {
        info!(recording = %id, %key, "recording already stored: duplicate dropped");
        return Ok(answer);
    }
    let store = receiver.store.clone();
    let listing = checked.listing.clone();
    let written =
        tokio::task::spawn_blocking(move || store.write_recording(&checked.listing, &checked.audio, &checked.metadata))
            .await
            .unwrap_or_else(|join| Err(std::io::Error::other(join)));
    if let Err(error) = written {
        return Ok(failed(receiver, &key, &format!("recording {id}"), &error));
    }
    info!(
        recording = %id, name = %listing.name, caller = %listing.caller_number,
        duration_ms = listing.duration_ms, "recording stored"
    );
    receiver.library.write().expect("the library lock is never poisoned").insert(listing);
    receiver.keys.lock().expect("the keys lock is never poisoned").stored(&key);
    receiver.counters.recordings_stored.inc();
    Ok(StatusCode::OK.into_response())
}

async fn summary(receiver: &Arc<Receiver>, key: Option<String>, body: &Bytes) -> Result<Response, Refusal> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| Refusal::BadMetadata(error.to_string()))?;
    let channel = document.pointer("/channel/id").and_then(serde_json::Value::as_str);
    let Some(key) = key.or_else(|| channel.map(post_call_key)) else {
        return Err(Refusal::BadMetadata("a JSON delivery without Idempotency-Key or channel.id".into()));
    };
    if let Some(answer) = admit(receiver, &key) {
        info!(%key, "post-call summary already stored: duplicate dropped");
        return Ok(answer);
    }
    let (store, json, name) = (receiver.store.clone(), body.clone(), key.clone());
    let written = tokio::task::spawn_blocking(move || store.write_summary(&name, &json))
        .await
        .unwrap_or_else(|join| Err(std::io::Error::other(join)));
    if let Err(error) = written {
        return Ok(failed(receiver, &key, &key, &error));
    }
    info!(%key, "post-call summary stored");
    receiver.keys.lock().expect("the keys lock is never poisoned").stored(&key);
    receiver.counters.summaries_stored.inc();
    Ok(StatusCode::OK.into_response())
}

/// `None`: go on and store it; else the answer to a repeat.
fn admit(receiver: &Receiver, key: &str) -> Option<Response> {
    match receiver.keys.lock().expect("the keys lock is never poisoned").admit(key) {
        Admission::New => None,
        Admission::Duplicate => {
            receiver.counters.duplicates.inc();
            Some(StatusCode::OK.into_response())
        }
        Admission::InProgress => {
            Some((StatusCode::SERVICE_UNAVAILABLE, [(RETRY_AFTER, "1")], "being stored").into_response())
        }
    }
}

fn failed(receiver: &Receiver, key: &str, what: &str, error: &std::io::Error) -> Response {
    receiver.keys.lock().expect("the keys lock is never poisoned").failed(key);
    receiver.counters.storage_failures.inc();
    error!(%what, dir = %receiver.store.dir().display(), %error, "cannot store a delivery: callrec will send it again");
    (StatusCode::INTERNAL_SERVER_ERROR, "cannot store it").into_response()
}

/// The body's parts, read by a standard multipart parser.
async fn parts(content_type: &str, body: Bytes) -> Result<Parts, Refusal> {
    let request = Request::builder()
        .header(CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|error| Refusal::NotMultipart(error.to_string()))?;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|rejection| Refusal::NotMultipart(rejection.body_text()))?;
    let mut parts = Parts::default();
    while let Some(field) = multipart.next_field().await.map_err(|error| Refusal::NotMultipart(error.body_text()))? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|error| Refusal::NotMultipart(error.body_text()))?;
        match name.as_str() {
            "metadata" => parts.metadata = Some(bytes.to_vec()),
            "audio" => (parts.audio, parts.audio_file_name) = (Some(bytes.to_vec()), file_name),
            _ => {}
        }
    }
    Ok(parts)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}
