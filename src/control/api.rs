//! The HTTP control API, a transport of markers beside `Stasis` and FastAGI
//! (see `control`): `POST /v1/channels/{channel_id}/recording` turns a JSON
//! body into a `MarkerCommand` (`request`), hands it to the recorder through
//! `Markers` and answers with its `MarkerOutcome` once the recorder has acted
//! (`reply`); `GET /v1/recordings[/{id}]` lists what is being recorded. With
//! a token set, every request passes `auth` first. Every refusal is JSON,
//! logged with its reason and counted in `api_requests_rejected`. The same
//! listener serves `operations` (`/metrics`, `/healthz`, `/readyz`), which
//! need no token.

mod auth;
pub mod operations;
mod reply;
mod request;

use std::future::Future;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tracing::{debug, info, warn};
use uuid::Uuid;

use self::operations::Operations;
use self::reply::{response_for, ApiError, Rejected};
use self::request::{command_from, RecordingRequest, RequestError};
use super::{Markers, RunningRecording};
use crate::config::Secret;
use crate::markers::{MarkerCommand, DEFAULT_NAME};
use crate::metrics::Metrics;

/// The largest request body read: a marker is a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;
/// Asterisk's longest unique id (`AST_MAX_UNIQUEID`): a longer channel id
/// cannot name a channel.
const MAX_CHANNEL_ID: usize = 150;
/// How much of a refused request's path a log line shows.
const LOGGED_PATH: usize = 200;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The way to the recorder; also holds the options' defaults.
    markers: Markers,
    /// The bearer token every request must carry, when set.
    token: Option<Arc<Secret>>,
    metrics: Arc<Metrics>,
}

impl ApiState {
    pub fn new(markers: Markers, token: Option<Secret>, metrics: Arc<Metrics>) -> Self {
        ApiState { markers, token: token.map(Arc::new), metrics }
    }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    markers: Markers,
    token: Option<Secret>,
    metrics: Arc<Metrics>,
    operations: Operations,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        info!(%address, bearer_token = token.is_some(), "control API listening, with /metrics, /healthz and /readyz");
    }
    let app = router(ApiState::new(markers, token, metrics)).merge(operations::routes(operations));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// The router (for tests).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/channels/{channel_id}/recording", post(mark_recording))
        .route("/v1/recordings", get(list_recordings))
        .route("/v1/recordings/{id}", get(one_recording))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), log_rejections))
        .with_state(state)
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        if let Err(refusal) = auth::check_bearer(request.headers(), token) {
            return refusal.into_response();
        }
    }
    next.run(request).await
}

/// Logs and counts every error answer, with the reason it carries (never a
/// header: the token travels in one; never raw client text: it is escaped).
async fn log_rejections(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(LOGGED_PATH).collect();
    let response = next.run(request).await;
    if let Some(Rejected { code, detail }) = response.extensions().get::<Rejected>() {
        metrics.api_requests_rejected.inc();
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            warn!(%method, %path, status, error = code, detail = %detail.escape_debug(), "control API request refused");
        } else {
            info!(%method, %path, status, error = code, detail = %detail.escape_debug(), "control API request refused");
        }
    }
    response
}

async fn mark_recording(
    State(state): State<ApiState>,
    channel_id: Result<Path<String>, PathRejection>,
    body: Result<Json<RecordingRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(channel_id) = channel_id.map_err(ApiError::from_path)?;
    check_channel_id(&channel_id)?;
    let Json(body) = body.map_err(ApiError::from_json)?;
    let request = command_from(body, state.markers.defaults()).inspect_err(|error| {
        if let RequestError::BadOption(_) = error {
            state.metrics.marker_options_invalid.inc();
        }
    })?;
    if let Some(name) = &request.unusable_name {
        // Record anyway, as a `Stasis` start would: a typo in a name must not lose the recording.
        state.metrics.markers_invalid.inc();
        warn!(
            channel_id, name = %name.escape_debug(), fallback = DEFAULT_NAME,
            "unusable recording name; recording under the default name"
        );
    }
    // `restart: false` looks before it marks: a recording started from
    // elsewhere between the look and the mark is still replaced.
    let is_start = matches!(request.command, MarkerCommand::Start { .. });
    if is_start && !request.restart {
        let recordings = state.markers.recordings().await?;
        if let Some(running) = recordings.iter().find(|recording| recording.channel_id == channel_id) {
            let detail = format!("channel {channel_id} is already recording ({}) and restart is false", running.id);
            let refusal = ApiError::new(StatusCode::CONFLICT, "already_recording", detail);
            return Err(ApiError { recording_id: Some(running.id), ..refusal });
        }
    }
    debug!(channel_id, command = ?request.command, "control API marker");
    let outcome = state.markers.mark(&channel_id, Ok(request.command.clone())).await?;
    Ok(response_for(&request, outcome)?.into_response())
}

fn check_channel_id(channel_id: &str) -> Result<(), ApiError> {
    if channel_id.len() <= MAX_CHANNEL_ID && channel_id.chars().all(|c| c.is_ascii_graphic()) {
        return Ok(());
    }
    let detail = format!("a channel id is at most {MAX_CHANNEL_ID} visible ASCII characters (Asterisk's uniqueid)");
    Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_channel_id", detail))
}

#[derive(serde::Serialize)]
struct Recordings {
    recordings: Vec<RunningRecording>,
}

async fn list_recordings(State(state): State<ApiState>) -> Result<Json<Recordings>, ApiError> {
    Ok(Json(Recordings { recordings: state.markers.recordings().await? }))
}

async fn one_recording(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RunningRecording>, ApiError> {
    let Path(id) = id.map_err(ApiError::from_path)?;
    let unknown = || {
        let detail = format!("no running recording {:?}", id.chars().take(64).collect::<String>());
        ApiError::new(StatusCode::NOT_FOUND, "unknown_recording", detail)
    };
    let wanted: Uuid = id.parse().map_err(|_| unknown())?;
    let recordings = state.markers.recordings().await?;
    recordings.into_iter().find(|recording| recording.id == wanted).map(Json).ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{header, Method};
    use serde_json::{json, Value};
    use tokio::sync::mpsc;
    use tower::ServiceExt;
    use url::Url;

    use super::*;
    use crate::ari::rest::AriClient;
    use crate::control::{ControlRequest, EndedRecording, MarkerOutcome, MarkerStatus};
    use crate::health::Health;
    use crate::markers::RecordingOptions;
    use crate::memory::AudioMemory;
    use crate::metrics::export::Exporter;

    const TOKEN: &str = "s3cret-token";
    /// The channel the fake ARI knows.
    const CHANNEL: &str = "1764000000.42";

    /// An ARI base URL nothing listens on: every lookup fails to connect.
    async fn dead_ari() -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        Url::parse(&format!("http://{address}")).unwrap()
    }

    /// A stand-in for Asterisk's ARI that knows one channel, `CHANNEL`.
    async fn fake_ari() -> Url {
        let app = Router::new().route(
            "/ari/channels/{id}",
            get(|Path(id): Path<String>| async move {
                if id == CHANNEL {
                    Json(json!({"id": id, "name": "PJSIP/caller-00000001"})).into_response()
                } else {
                    (StatusCode::NOT_FOUND, Json(json!({"message": "Channel not found"}))).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Url::parse(&format!("http://{address}")).unwrap()
    }

    fn markers(requests: mpsc::Sender<ControlRequest>, ari: &Url) -> Markers {
        let ari = AriClient::new(ari, "callrec", Secret::new("ari-password".to_string()), "callrec");
        Markers::new(requests, ari, Duration::from_millis(500), RecordingOptions::for_tests())
    }

    /// A router whose recorder has gone: every marker fails with `Stopping`
    /// (or `AriUnavailable` first, as no ARI listens).
    async fn stopped(token: Option<&str>) -> (Router, Arc<Metrics>) {
        let (requests, _) = mpsc::channel(1);
        let metrics = Arc::new(Metrics::default());
        let token = token.map(|token| Secret::new(token.to_string()));
        (router(ApiState::new(markers(requests, &dead_ari().await), token, metrics.clone())), metrics)
    }

    /// A recorder that records `CHANNEL` on a start (replacing what ran),
    /// ends it on a stop, and ignores a stop when nothing runs.
    fn fake_recorder() -> mpsc::Sender<ControlRequest> {
        let (requests, mut incoming) = mpsc::channel(8);
        tokio::spawn(async move {
            let mut running: Option<RunningRecording> = None;
            while let Some(request) = incoming.recv().await {
                match request {
                    ControlRequest::Recordings(reply) => {
                        let _ = reply.send(running.iter().cloned().collect());
                    }
                    ControlRequest::Marker(marker) => {
                        let ended = |recording: &RunningRecording, reason: &str| EndedRecording {
                            recording_id: recording.id,
                            name: recording.name.clone(),
                            started_at: recording.started_at.clone(),
                            ended_at: "2025-01-01T00:00:09Z".to_string(),
                            duration_ms: 9000,
                            end_reason: reason.to_string(),
                            error: None,
                        };
                        let outcome = match marker.command {
                            Ok(MarkerCommand::Start { name, .. }) => {
                                let replaced = running.take().map(|old| ended(&old, "restart"));
                                let id = Uuid::new_v4();
                                running = Some(RunningRecording {
                                    id,
                                    name,
                                    channel: marker.channel.name.clone(),
                                    channel_id: marker.channel.id.clone(),
                                    started_at: Some("2025-01-01T00:00:00Z".to_string()),
                                    duration_ms: 0,
                                    state: "recording",
                                });
                                MarkerOutcome {
                                    recording_id: Some(id),
                                    replaced,
                                    ..MarkerOutcome::new(MarkerStatus::Recording)
                                }
                            }
                            Ok(MarkerCommand::Stop) => match running.take() {
                                Some(old) => MarkerOutcome {
                                    recording_id: Some(old.id),
                                    ended: Some(ended(&old, "stop")),
                                    ..MarkerOutcome::new(MarkerStatus::Stopped)
                                },
                                None => MarkerOutcome::with_detail(MarkerStatus::Ignored, "no recording to stop"),
                            },
                            _ => MarkerOutcome::with_detail(MarkerStatus::Invalid, "not in this fake"),
                        };
                        let _ = marker.reply.send(outcome);
                    }
                }
            }
        });
        requests
    }

    async fn working() -> (Router, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let markers = markers(fake_recorder(), &fake_ari().await);
        (router(ApiState::new(markers, None, metrics.clone())), metrics)
    }

    fn post(path: &str, body: impl Into<Body>) -> axum::http::Request<Body> {
        axum::http::Request::post(path).header(header::CONTENT_TYPE, "application/json").body(body.into()).unwrap()
    }

    fn mark(channel: &str, body: Value) -> axum::http::Request<Body> {
        post(&format!("/v1/channels/{channel}/recording"), body.to_string())
    }

    fn get_path(path: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(path).body(Body::empty()).unwrap()
    }

    /// Sends `request`, and answers the status and the JSON body.
    async fn send(app: &Router, request: axum::http::Request<Body>) -> (StatusCode, Value) {
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json", "{status}: always JSON");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// An error answer's status and code, checking its shape.
    async fn refusal(app: &Router, request: axum::http::Request<Body>) -> (StatusCode, String) {
        let (status, body) = send(app, request).await;
        assert!(body["detail"].as_str().is_some_and(|detail| !detail.is_empty()), "{body}");
        (status, body["error"].as_str().expect("an error code").to_string())
    }

    #[tokio::test]
    async fn start_restart_and_stop_through_the_api() {
        let (app, _) = working().await;
        let (status, first) = send(&app, mark(CHANNEL, json!({"action": "start", "name": "pay"}))).await;
        assert_eq!((status, first["status"].as_str()), (StatusCode::CREATED, Some("recording")), "{first}");
        assert!(first.get("replaced").is_none());

        let refused = mark(CHANNEL, json!({"action": "start", "restart": false}));
        assert_eq!(refusal(&app, refused).await, (StatusCode::CONFLICT, "already_recording".to_string()));

        let (status, second) = send(&app, mark(CHANNEL, json!({"action": "start", "name": "pay2"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(second["replaced"]["recording_id"], first["recording_id"]);
        assert_eq!(second["replaced"]["end_reason"], "restart");

        let (status, listed) = send(&app, get_path("/v1/recordings")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed["recordings"][0]["id"], second["recording_id"]);
        assert_eq!(listed["recordings"][0]["channel_id"], CHANNEL);
        let id = second["recording_id"].as_str().unwrap();
        let (status, one) = send(&app, get_path(&format!("/v1/recordings/{id}"))).await;
        assert_eq!((status, one["name"].as_str()), (StatusCode::OK, Some("pay2")));

        let (status, stopped) = send(&app, mark(CHANNEL, json!({"action": "stop"}))).await;
        assert_eq!((status, &stopped["ended"]["recording_id"]), (StatusCode::OK, &second["recording_id"]));
        assert_eq!(stopped["ended"]["end_reason"], "stop");

        let again = mark(CHANNEL, json!({"action": "stop"}));
        assert_eq!(refusal(&app, again).await, (StatusCode::CONFLICT, "no_recording".to_string()));
        let gone = get_path(&format!("/v1/recordings/{id}"));
        assert_eq!(refusal(&app, gone).await, (StatusCode::NOT_FOUND, "unknown_recording".to_string()));
        let (_, listed) = send(&app, get_path("/v1/recordings")).await;
        assert_eq!(listed, json!({"recordings": []}));
    }

    #[tokio::test]
    async fn a_start_with_restart_false_goes_ahead_on_a_quiet_channel() {
        let (app, _) = working().await;
        let (status, _) = send(&app, mark(CHANNEL, json!({"action": "start", "restart": false}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn an_unusable_name_records_under_the_default_name_and_counts() {
        let (app, metrics) = working().await;
        let (status, body) = send(&app, mark(CHANNEL, json!({"action": "start", "name": "../x"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(body["warning"].as_str().unwrap().contains(DEFAULT_NAME), "{body}");
        let (_, listed) = send(&app, get_path("/v1/recordings")).await;
        assert_eq!(listed["recordings"][0]["name"], DEFAULT_NAME);
        assert_eq!(metrics.markers_invalid.get(), 1);
    }

    #[tokio::test]
    async fn an_unknown_channel_is_404() {
        let (app, _) = working().await;
        let request = mark("no-such-channel", json!({"action": "start"}));
        assert_eq!(refusal(&app, request).await, (StatusCode::NOT_FOUND, "unknown_channel".to_string()));
    }

    #[tokio::test]
    async fn bad_requests_are_400_in_json_and_counted() {
        let (app, metrics) = stopped(None).await;
        let cases = [
            (post("/v1/channels/c1/recording", "{\"action\": "), "invalid_json"),
            (post("/v1/channels/c1/recording", ""), "invalid_json"),
            (mark("c1", json!({"action": 5})), "invalid_json"),
            (mark("c1", json!({"action": "start", "colour": "red"})), "invalid_json"),
            (mark("c1", json!({"action": "record"})), "unknown_action"),
            (mark("c1", json!({"action": "stop", "name": "pay"})), "start_only"),
            (mark("c1", json!({"action": "start", "options": {"channels": "quad"}})), "invalid_option"),
            (mark("c1", json!({"action": "start", "options": {"max": null}})), "invalid_option"),
            (mark(&"9".repeat(151), json!({"action": "stop"})), "invalid_channel_id"),
        ];
        let count = cases.len() as u64;
        for (request, code) in cases {
            assert_eq!(refusal(&app, request).await, (StatusCode::BAD_REQUEST, code.to_string()));
        }
        assert_eq!(metrics.api_requests_rejected.get(), count);
        assert_eq!(metrics.marker_options_invalid.get(), 1, "only the parser's refusal is a bad option");
    }

    #[tokio::test]
    async fn a_body_over_16_kib_is_413() {
        let (app, _) = stopped(None).await;
        let name = "n".repeat(MAX_BODY);
        let request = mark("c1", json!({"action": "start", "name": name}));
        assert_eq!(refusal(&app, request).await, (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".to_string()));
        // Just under the limit is read, and goes on to the (absent) ARI.
        let request = mark("c1", json!({"action": "start", "name": "n".repeat(MAX_BODY - 64)}));
        assert_eq!(refusal(&app, request).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_415() {
        let (app, _) = stopped(None).await;
        let request = axum::http::Request::post("/v1/channels/c1/recording")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(r#"{"action": "stop"}"#))
            .unwrap();
        let expected = (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".to_string());
        assert_eq!(refusal(&app, request).await, expected);
        let request = axum::http::Request::post("/v1/channels/c1/recording").body(Body::empty()).unwrap();
        assert_eq!(refusal(&app, request).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_in_json() {
        let (app, metrics) = stopped(None).await;
        assert_eq!(refusal(&app, get_path("/v1/nothing")).await, (StatusCode::NOT_FOUND, "not_found".to_string()));
        assert_eq!(refusal(&app, get_path("/")).await.0, StatusCode::NOT_FOUND);
        let request = axum::http::Request::delete("/v1/recordings").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.headers().get(header::ALLOW).map(|v| v.to_str().unwrap()), Some("GET,HEAD"));
        let request = axum::http::Request::delete("/v1/recordings").body(Body::empty()).unwrap();
        let expected = (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".to_string());
        assert_eq!(refusal(&app, request).await, expected);
        let request = get_path("/v1/channels/c1/recording");
        assert_eq!(refusal(&app, request).await.0, StatusCode::METHOD_NOT_ALLOWED);
        let id = get_path("/v1/recordings/not-a-uuid");
        assert_eq!(refusal(&app, id).await, (StatusCode::NOT_FOUND, "unknown_recording".to_string()));
        assert_eq!(metrics.api_requests_rejected.get(), 6);
    }

    #[tokio::test]
    async fn when_the_recorder_or_ari_is_gone_the_answer_is_503() {
        let (app, _) = stopped(None).await;
        let list = get_path("/v1/recordings");
        assert_eq!(refusal(&app, list).await, (StatusCode::SERVICE_UNAVAILABLE, "shutting_down".to_string()));
        let start = mark("c1", json!({"action": "start"}));
        assert_eq!(refusal(&app, start).await, (StatusCode::SERVICE_UNAVAILABLE, "ari_unavailable".to_string()));
        let start = mark("c1", json!({"action": "start", "restart": false}));
        assert_eq!(refusal(&app, start).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn with_a_token_every_request_needs_it() {
        let (app, metrics) = stopped(Some(TOKEN)).await;
        let requests = || {
            [
                (Method::GET, "/v1/recordings", None),
                (Method::GET, "/v1/recordings/00000000-0000-0000-0000-000000000000", None),
                (Method::POST, "/v1/channels/c1/recording", Some(json!({"action": "stop"}))),
                (Method::GET, "/v1/nothing", None),
                (Method::DELETE, "/v1/recordings", None),
            ]
        };
        let build = |method: Method, path: &str, body: Option<Value>, authorization: Option<&str>| {
            let mut request = axum::http::Request::builder().method(method).uri(path);
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            match body {
                Some(body) => {
                    request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string()))
                }
                None => request.body(Body::empty()),
            }
            .unwrap()
        };
        for (method, path, body) in requests() {
            for authorization in [None, Some("Bearer wrong"), Some(TOKEN), Some("Basic czNjcmV0LXRva2Vu")] {
                let response = app.clone().oneshot(build(method.clone(), path, body.clone(), authorization)).await;
                let response = response.unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} {authorization:?}");
                let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
                assert!(challenge.starts_with("Bearer"), "{challenge}");
                let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["error"], "unauthorized");
                assert!(!body.to_string().contains(TOKEN));
            }
            let bearer = format!("Bearer {TOKEN}");
            let (status, body) = send(&app, build(method.clone(), path, body, Some(&bearer))).await;
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        }
        assert_eq!(
            metrics.api_requests_rejected.get(),
            5 * 5,
            "four 401s per request, and its answer past the door (503, 404 or 405)"
        );
    }

    #[tokio::test]
    async fn without_a_token_no_header_is_needed() {
        let (app, _) = stopped(None).await;
        let (status, _) = send(&app, get_path("/v1/recordings")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "past the door, to a recorder that is gone");
    }

    #[tokio::test]
    async fn serve_answers_on_its_listener_until_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (requests, _) = mpsc::channel(1);
        let markers = markers(requests, &dead_ari().await);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let token = Some(Secret::new(TOKEN.to_string()));
        let metrics = Arc::new(Metrics::default());
        let health = Health::new(metrics.clone());
        let operations = Operations::new(Exporter::new(metrics.clone(), AudioMemory::new(1 << 20)), health.clone());
        let server = tokio::spawn(serve(listener, markers, token, metrics.clone(), operations, async {
            let _ = stopped.await;
        }));
        let url = format!("http://{address}/v1/recordings");
        let response = reqwest::Client::new().get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE.as_u16());
        let response = reqwest::get(&url).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED.as_u16());

        // The operations endpoints need no token.
        let at = |path: &str| format!("http://{address}{path}");
        let response = reqwest::get(at("/metrics")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK.as_u16());
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        assert!(response.text().await.unwrap().contains("\ncallrec_api_requests_rejected_total 2\n"));
        let response = reqwest::get(at("/healthz")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK.as_u16());
        let response = reqwest::get(at("/readyz")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE.as_u16());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ok"], false);
        assert_eq!(body["failed"], json!(["ari", "media", "agi"]));
        health.media_bound("127.0.0.1:4000".parse().unwrap());
        health.agi_bound(None);
        metrics.live.ari_connected.set(1);
        let response = reqwest::get(at("/readyz")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK.as_u16());
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
    }
}
