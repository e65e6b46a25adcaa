//! `callrec receive`'s HTTP server: the routes, the page's handler, and the
//! run until shutdown. Deliveries come in on POST `/recordings` (and
//! `/post-call`, and `/`); the page is GET `/`, its media under
//! `/recordings/{id}/`; GET `/healthz` answers while the server runs, with
//! its counters.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tracing::info;

use super::store::Store;
use super::{ingest, page, player, ReceiveConfig, Receiver};

/// The receiver's routes over `receiver`, taking bodies up to `max_body`.
pub fn router(receiver: Arc<Receiver>, max_body: usize) -> Router {
    Router::new()
        .route("/", get(front_page).post(ingest::deliver))
        .route("/recordings", post(ingest::deliver))
        .route("/post-call", post(ingest::deliver))
        .route("/recordings/{id}/audio.wav", get(player::audio))
        .route("/recordings/{id}/waveform.svg", get(player::waveform))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(receiver)
}

/// Serves until `shutdown` completes, then finishes the requests under way.
pub async fn run(config: ReceiveConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let store = Store::new(config.dir.clone());
    let opening = store.clone();
    let found = tokio::task::spawn_blocking(move || opening.open())
        .await?
        .with_context(|| format!("cannot use the directory {}", config.dir.display()))?;
    let recordings = found.listings.len();
    let receiver = Arc::new(Receiver::new(store, found, config.webhook_secret.clone()));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    info!(
        page = %format!("http://{address}/"), dir = %config.dir.display(), recordings,
        signed = config.webhook_secret.is_some(), "receiving callrec's deliveries"
    );
    axum::serve(listener, router(receiver.clone(), config.max_body)).with_graceful_shutdown(shutdown).await?;
    let counters = receiver.counters();
    info!(
        recordings_stored = counters.recordings_stored.get(),
        summaries_stored = counters.summaries_stored.get(),
        duplicates = counters.duplicates.get(),
        refused_signature = counters.refused_signature.get(),
        refused_malformed = counters.refused_malformed.get(),
        storage_failures = counters.storage_failures.get(),
        "stopped"
    );
    Ok(())
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    #[serde(default)]
    q: String,
    /// Anything but a number is the first page.
    #[serde(default)]
    page: Option<String>,
}

async fn front_page(State(receiver): State<Arc<Receiver>>, Query(query): Query<PageQuery>) -> Html<String> {
    let number = query.page.as_deref().and_then(|page| page.parse().ok()).unwrap_or(1);
    let library = receiver.library.read().expect("the library lock is never poisoned");
    Html(page::render(&library.page(&query.q, number), &query.q))
}

async fn healthz(State(receiver): State<Arc<Receiver>>) -> Response {
    let recordings = receiver.library.read().expect("the library lock is never poisoned").len();
    Json(serde_json::json!({"status": "ok", "recordings": recordings, "counters": receiver.counters()})).into_response()
}

#[cfg(test)]
mod tests;
