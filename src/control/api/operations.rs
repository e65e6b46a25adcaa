//! Operations endpoints on the control API's listener, beside the path and
//! outside its bearer token (they take no action and show no call):
//! `/metrics` (Prometheus text from `metrics::export`), `/healthz` and
//! `/readyz` (200 or 503 with the `health` report in JSON).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::health::{Health, Report};
use crate::metrics::export::{Exporter, CONTENT_TYPE};

/// What the operations endpoints read.
#[derive(Clone)]
pub struct Operations {
    exporter: Arc<Exporter>,
    health: Arc<Health>,
}

impl Operations {
    pub fn new(exporter: Exporter, health: Arc<Health>) -> Self {
        Operations { exporter: Arc::new(exporter), health }
    }
}

/// `/metrics`, `/healthz`, `/readyz`.
pub fn routes(operations: Operations) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(operations)
}

async fn metrics(State(operations): State<Operations>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], operations.exporter.render()).into_response()
}

async fn healthz(State(operations): State<Operations>) -> Response {
    answer(operations.health.liveness())
}

async fn readyz(State(operations): State<Operations>) -> Response {
    answer(operations.health.readiness())
}

fn answer(report: Report) -> Response {
    let status = if report.ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report)).into_response()
}
