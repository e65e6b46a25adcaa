//! The control API's answers, the last step of its path: a `MarkerOutcome`
//! (or the reason the marker never reached the recorder) as an HTTP status
//! and a JSON body. Every error is `{"error": "<code>", "detail": "<sentence>"}`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::request::{ApiCommand, RequestError};
use crate::control::{ControlError, MarkerOutcome, MarkerStatus};
use crate::markers::MarkerCommand;
use crate::session::RecordingId;

/// A request answered with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// snake_case, stable: what clients match on.
    pub code: &'static str,
    /// A sentence for people; free to change.
    pub detail: String,
    /// The recording the error is about, when there is one.
    pub recording_id: Option<RecordingId>,
    /// A 401's `WWW-Authenticate` value.
    pub challenge: Option<&'static str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_id: Option<RecordingId>,
}

/// Left on an error response for the layer that logs and counts rejections.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub code: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), recording_id: None, challenge: None }
    }

    pub fn unauthorized(detail: &str, challenge: &'static str) -> Self {
        ApiError { challenge: Some(challenge), ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail) }
    }

    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint (see /v1/recordings and /v1/channels/{channel_id}/recording)",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
    }

    /// The JSON body could not be read: not JSON, not the expected shape,
    /// not `application/json`, or too large.
    pub fn from_json(rejection: JsonRejection) -> Self {
        let (code, status) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            _ => ("invalid_json", StatusCode::BAD_REQUEST),
        };
        let detail = match &rejection {
            JsonRejection::MissingJsonContentType(_) => "expected Content-Type: application/json".to_string(),
            JsonRejection::BytesRejection(_) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                format!("the request body is larger than {} bytes", super::MAX_BODY)
            }
            _ => rejection.body_text(),
        };
        Self::new(status, code, detail)
    }

    pub fn from_path(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.code, detail: &self.detail, recording_id: self.recording_id };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response.extensions_mut().insert(Rejected { code: self.code, detail: self.detail });
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        let code = match error {
            RequestError::UnknownAction(_) => "unknown_action",
            RequestError::StartOnly { .. } => "start_only",
            RequestError::BadOption(_) | RequestError::OptionValue { .. } => "invalid_option",
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, error.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        let (status, code) = match error {
            ControlError::UnknownChannel(_) => (StatusCode::NOT_FOUND, "unknown_channel"),
            ControlError::AriUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ari_unavailable"),
            ControlError::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ControlError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        };
        ApiError::new(status, code, error.to_string())
    }
}

/// The answer to a marker the recorder acted on (or refused). A start that
/// had to fall back to the default name says so in `warning`.
pub fn response_for(
    request: &ApiCommand,
    outcome: MarkerOutcome,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let refuse = |status, code, fallback: &str| {
        let detail = outcome.detail.clone().unwrap_or_else(|| fallback.to_string());
        Err(ApiError { recording_id: outcome.recording_id, ..ApiError::new(status, code, detail) })
    };
    let status = match outcome.status {
        MarkerStatus::Recording => StatusCode::CREATED,
        MarkerStatus::Stopped | MarkerStatus::Paused | MarkerStatus::Resumed => StatusCode::OK,
        MarkerStatus::Ignored if request.command == MarkerCommand::Stop => {
            return refuse(StatusCode::CONFLICT, "no_recording", "the channel has no recording to stop")
        }
        MarkerStatus::Ignored => {
            return refuse(
                StatusCode::CONFLICT,
                "marker_ignored",
                "nothing to do: the recording is not in a state for it",
            )
        }
        MarkerStatus::Invalid => return refuse(StatusCode::BAD_REQUEST, "invalid_marker", "the marker was refused"),
        MarkerStatus::Error => {
            return refuse(StatusCode::BAD_GATEWAY, "capture_failed", "the recording could not be set up")
        }
        MarkerStatus::HungUp => {
            return refuse(StatusCode::NOT_FOUND, "channel_gone", "the channel hung up before the marker took effect")
        }
        MarkerStatus::Unavailable => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "callrec is shutting down")
        }
    };
    let mut body = serde_json::to_value(&outcome).expect("an outcome serializes");
    if let (Some(name), MarkerStatus::Recording) = (&request.unusable_name, outcome.status) {
        let warning = format!("recording name {name:?} is not usable; recording as {:?}", crate::markers::DEFAULT_NAME);
        body["warning"] = warning.into();
    }
    Ok((status, Json(body)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::control::EndedRecording;
    use crate::markers::{RecordingOptions, DEFAULT_NAME};

    fn command(command: MarkerCommand) -> ApiCommand {
        ApiCommand { command, restart: true, unusable_name: None }
    }

    fn start() -> ApiCommand {
        command(MarkerCommand::Start { name: "pay".to_string(), options: RecordingOptions::for_tests() })
    }

    fn ended(id: Uuid, reason: &str) -> EndedRecording {
        EndedRecording {
            recording_id: id,
            name: "pay".to_string(),
            started_at: Some("2025-01-01T00:00:00Z".to_string()),
            ended_at: "2025-01-01T00:00:05Z".to_string(),
            duration_ms: 5000,
            end_reason: reason.to_string(),
            error: None,
        }
    }

    #[test]
    fn a_start_answers_201_with_what_it_replaced() {
        let (id, old) = (Uuid::new_v4(), Uuid::new_v4());
        let outcome = MarkerOutcome {
            recording_id: Some(id),
            replaced: Some(ended(old, "restart")),
            ..MarkerOutcome::new(MarkerStatus::Recording)
        };
        let (status, Json(body)) = response_for(&start(), outcome).unwrap();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["status"], "recording");
        assert_eq!(body["recording_id"], id.to_string());
        assert_eq!(body["replaced"]["recording_id"], old.to_string());
        assert_eq!(body["replaced"]["end_reason"], "restart");
        assert!(body.get("warning").is_none());
    }

    #[test]
    fn a_start_under_the_default_name_warns() {
        let request = ApiCommand { unusable_name: Some("a b".to_string()), ..start() };
        let outcome =
            MarkerOutcome { recording_id: Some(Uuid::new_v4()), ..MarkerOutcome::new(MarkerStatus::Recording) };
        let (_, Json(body)) = response_for(&request, outcome).unwrap();
        let warning = body["warning"].as_str().unwrap();
        assert!(warning.contains("a b") && warning.contains(DEFAULT_NAME), "{warning}");
    }

    #[test]
    fn stop_pause_and_resume_answer_200_with_the_outcome() {
        let id = Uuid::new_v4();
        let outcome = MarkerOutcome {
            recording_id: Some(id),
            ended: Some(ended(id, "stop")),
            ..MarkerOutcome::new(MarkerStatus::Stopped)
        };
        let (status, Json(body)) = response_for(&command(MarkerCommand::Stop), outcome).unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "stopped");
        assert_eq!(body["ended"]["duration_ms"], 5000);
        for (marker, status, text) in [
            (MarkerCommand::Pause, MarkerStatus::Paused, "paused"),
            (MarkerCommand::Resume, MarkerStatus::Resumed, "resumed"),
        ] {
            let (code, Json(body)) = response_for(&command(marker), MarkerOutcome::new(status)).unwrap();
            assert_eq!((code, body), (StatusCode::OK, json!({"status": text})));
        }
    }

    #[test]
    fn what_the_recorder_refused_maps_to_a_status_and_code() {
        let cases = [
            (MarkerCommand::Stop, MarkerStatus::Ignored, StatusCode::CONFLICT, "no_recording"),
            (MarkerCommand::Pause, MarkerStatus::Ignored, StatusCode::CONFLICT, "marker_ignored"),
            (MarkerCommand::Resume, MarkerStatus::Ignored, StatusCode::CONFLICT, "marker_ignored"),
            (MarkerCommand::Stop, MarkerStatus::Invalid, StatusCode::BAD_REQUEST, "invalid_marker"),
            (start().command, MarkerStatus::Error, StatusCode::BAD_GATEWAY, "capture_failed"),
            (start().command, MarkerStatus::HungUp, StatusCode::NOT_FOUND, "channel_gone"),
            (start().command, MarkerStatus::Unavailable, StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        ];
        for (marker, outcome, status, code) in cases {
            let error = response_for(&command(marker), MarkerOutcome::with_detail(outcome, "because")).unwrap_err();
            assert_eq!((error.status, error.code, error.detail.as_str()), (status, code, "because"), "{outcome:?}");
            // Without a detail, still a sentence.
            let error = response_for(&start(), MarkerOutcome::new(outcome)).unwrap_err();
            assert!(!error.detail.is_empty());
        }
        let id = Uuid::new_v4();
        let failed =
            MarkerOutcome { recording_id: Some(id), ..MarkerOutcome::with_detail(MarkerStatus::Error, "no RTP") };
        assert_eq!(response_for(&start(), failed).unwrap_err().recording_id, Some(id));
    }

    #[test]
    fn control_errors_map_to_a_status_and_code() {
        for (error, status, code) in [
            (ControlError::UnknownChannel("c1".into()), StatusCode::NOT_FOUND, "unknown_channel"),
            (ControlError::AriUnavailable("refused".into()), StatusCode::SERVICE_UNAVAILABLE, "ari_unavailable"),
            (ControlError::Stopping, StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            (ControlError::Timeout(Duration::from_secs(7)), StatusCode::GATEWAY_TIMEOUT, "timeout"),
        ] {
            let error = ApiError::from(error);
            assert_eq!((error.status, error.code), (status, code));
        }
    }

    #[tokio::test]
    async fn errors_are_json_and_marked_for_the_log() {
        let response = ApiError::unauthorized("no token", "Bearer").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.extensions().get::<Rejected>().map(|r| r.code), Some("unauthorized"));
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"error": "unauthorized", "detail": "no token"}));
    }
}
