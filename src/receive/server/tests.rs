//! The receiver's routes, driven in process with real callrec request
//! bodies (`delivery::multipart`) and signatures.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use super::*;
use crate::config::Secret;
use crate::delivery::metadata::{tests::sample, TimeRange};
use crate::delivery::multipart::MultipartBody;
use crate::delivery::webhook_signature::{signature_header, HEADER};
use crate::delivery::FinishedRecording;
use crate::integrity::hex;
use crate::recording::encode::AudioFormat;

const SECRET: &str = "whsec-receiver-test";

struct Fixture {
    _dir: tempfile::TempDir,
    router: Router,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("received"));
    let found = store.open().unwrap();
    let receiver = Arc::new(Receiver::new(store, found, Some(Secret::new(SECRET.into()))));
    Fixture { router: router(receiver, 1 << 20), _dir: dir }
}

fn recording(caller: &str, audio: Vec<u8>) -> FinishedRecording {
    let mut metadata = sample();
    metadata.recording_id = uuid::Uuid::new_v4();
    metadata.caller_number = caller.into();
    metadata.caller_name = format!("Caller {caller}");
    metadata.bytes = audio.len() as u64;
    metadata.duration_ms = audio.len() as u64 / 8;
    metadata.sha256 = hex(&Sha256::digest(&audio));
    metadata.masked = vec![TimeRange { start_ms: 100, end_ms: 200 }];
    FinishedRecording { metadata, audio: audio.into(), format: AudioFormat::Ulaw }
}

/// The POST callrec's webhook makes, signed at `t` with `secret`.
fn post(recording: &FinishedRecording, secret: &str, t: u64) -> Request<Body> {
    let body = MultipartBody::new(recording);
    let content_type = body.content_type();
    let pieces = body.into_pieces();
    let signature = signature_header(&Secret::new(secret.into()), t, &pieces);
    Request::post("/recordings")
        .header("content-type", content_type)
        .header("idempotency-key", recording.metadata.recording_id.to_string())
        .header(HEADER, signature)
        .body(Body::from(pieces.concat()))
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, axum::body::to_bytes(body, usize::MAX).await.unwrap())
}

async fn get(router: &Router, uri: &str, range: Option<&str>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let mut request = Request::get(uri);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    send(router, request.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn a_signed_delivery_is_stored_once_listed_and_played() {
    let fixture = fixture();
    let audio: Vec<u8> = (0..8000u32).map(|i| (i % 256) as u8).collect();
    let delivered = recording("5550123", audio.clone());
    let id = delivered.metadata.recording_id.to_string();
    assert_eq!(send(&fixture.router, post(&delivered, SECRET, now())).await.0, StatusCode::OK);
    assert_eq!(send(&fixture.router, post(&delivered, SECRET, now())).await.0, StatusCode::OK, "a repeat");

    let (status, _, health) = get(&fixture.router, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let health: serde_json::Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(health["recordings"], 1);
    assert_eq!(
        (health["counters"]["recordings_stored"].as_u64(), health["counters"]["duplicates"].as_u64()),
        (Some(1), Some(1))
    );

    let (_, _, page) = get(&fixture.router, "/", None).await;
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(page.contains(&format!("data-recording-id=\"{id}\"")), "{page}");
    assert!(page.contains("Caller 5550123"));
    let (_, _, searched) = get(&fixture.router, "/?q=nobody&page=x", None).await;
    assert!(!String::from_utf8_lossy(&searched).contains(&id));

    // The whole WAV, then a range of it, as a player seeking would ask.
    let (status, headers, whole) = get(&fixture.router, &format!("/recordings/{id}/audio.wav"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(whole.len(), 44 + 2 * audio.len());
    assert_eq!(crate::recording::encode::decode_wav(&whole).unwrap(), vec![audio.clone()]);
    let (status, headers, part) =
        get(&fixture.router, &format!("/recordings/{id}/audio.wav"), Some("bytes=1000-")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], format!("bytes 1000-16043/16044"));
    assert_eq!(part, whole[1000..]);
    let (status, headers, _) = get(&fixture.router, &format!("/recordings/{id}/audio.wav"), Some("bytes=20000-")).await;
    assert_eq!(
        (status, headers["content-range"].to_str().unwrap()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "bytes */16044")
    );

    let (status, headers, svg) = get(&fixture.router, &format!("/recordings/{id}/waveform.svg"), None).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "image/svg+xml"));
    assert!(String::from_utf8_lossy(&svg).contains("class=\"masked\""));
    assert_eq!(get(&fixture.router, "/recordings/unknown/audio.wav", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unsigned_wrongly_signed_stale_and_malformed_deliveries_are_refused() {
    let fixture = fixture();
    let delivered = recording("5550123", vec![0xFF; 800]);
    let mut unsigned = post(&delivered, SECRET, now());
    unsigned.headers_mut().remove(HEADER);
    assert_eq!(send(&fixture.router, unsigned).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&fixture.router, post(&delivered, "another", now())).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&fixture.router, post(&delivered, SECRET, now() - 3600)).await.0, StatusCode::UNAUTHORIZED);

    let mut tampered = recording("5550123", vec![0xFF; 800]);
    tampered.metadata.sha256 = "00".repeat(32);
    let (status, _, body) = send(&fixture.router, post(&tampered, SECRET, now())).await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).into_owned()),
        (StatusCode::BAD_REQUEST, "the audio's SHA-256 is not the metadata's sha256".into())
    );

    let (_, _, health) = get(&fixture.router, "/healthz", None).await;
    let health: serde_json::Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(health["recordings"], 0);
    assert_eq!(health["counters"]["refused_signature"], 3);
    assert_eq!(health["counters"]["refused_malformed"], 1);
}

#[tokio::test]
async fn a_post_call_summary_is_stored_once_by_its_key() {
    let fixture = fixture();
    let json = br#"{"channel":{"id":"1764.1"},"recordings":[]}"#;
    let request = || {
        let signature = signature_header(&Secret::new(SECRET.into()), now(), &[Bytes::from_static(json)]);
        Request::post("/post-call")
            .header("content-type", "application/json")
            .header("idempotency-key", "post-call-1764.1")
            .header(HEADER, signature)
            .body(Body::from(&json[..]))
            .unwrap()
    };
    assert_eq!(send(&fixture.router, request()).await.0, StatusCode::OK);
    assert_eq!(send(&fixture.router, request()).await.0, StatusCode::OK);
    let (_, _, health) = get(&fixture.router, "/healthz", None).await;
    let health: serde_json::Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(
        (health["counters"]["summaries_stored"].as_u64(), health["counters"]["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
}
