//! Wires the path together for `callrec run`: binds the media socket, starts
//! the ARI connection, the media task and the recorder, and shuts them down in
//! order when asked.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::ari::rest::AriClient;
use crate::ari::websocket::EventStream;
use crate::config::Config;
use crate::control::{agi, api, Markers};
use crate::delivery::metadata::samples_in;
use crate::delivery::post_call::PostCall;
use crate::delivery::{Delivery, Directory, Webhook};
use crate::media;
use crate::metrics::Metrics;
use crate::recorder::{Recorder, RecorderParts};

/// Runs callrec until `shutdown` completes, then finishes every recording.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);

    let (media_events_tx, media_events_rx) = mpsc::unbounded_channel();
    let (media, receiver) =
        media::bind(config.media_bind, samples_in(config.max_recording), metrics.clone(), media_events_tx)
            .map_err(|error| anyhow::anyhow!("cannot bind the media socket to {}: {error}", config.media_bind))?;
    let media_target = config.media_advertise.clone().unwrap_or_else(|| media.local_addr.to_string());
    let media_task = tokio::spawn(receiver.run());

    let directory = Directory::new(&config.output_dir);
    let webhook = |url| Webhook::new(url, config.delivery_timeout, config.webhook_secret.clone());
    let recordings_webhook = config.webhook_url.clone().map(webhook);
    match &recordings_webhook {
        Some(webhook) => info!(
            %webhook, fallback = %directory, delivery_timeout = ?config.delivery_timeout,
            signed = config.webhook_secret.is_some(), "recordings go to the webhook"
        ),
        None => info!(directory = %directory, "no webhook set: recordings go to the output directory"),
    }
    info!(bind = %media.local_addr, target = %media_target, "media socket ready");

    let ari = AriClient::new(&config.ari_url, &config.ari_user, config.ari_password.clone(), &config.app);
    let events = EventStream::new(&config.ari_url, &config.app, &config.ari_user, config.ari_password.clone());
    let (ari_tx, ari_rx) = mpsc::channel(1024);
    let events_task = {
        let (rest, metrics, stop) = (ari.clone(), metrics.clone(), stop_rx.clone());
        tokio::spawn(async move { events.run(rest, ari_tx, &metrics, stop).await })
    };

    let (control_tx, control_rx) = mpsc::channel(256);
    let markers = Markers::new(control_tx, ari.clone(), config.capture_timeout, config.defaults);
    let mut listeners = Vec::new();
    if let Some(addr) = config.agi_listen {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!(
                "cannot listen for FastAGI on {addr}: {error} (set --agi-listen to another address, or off)"
            )
        })?;
        info!(listen = %listener.local_addr()?, "FastAGI markers: AGI(agi://HOST:PORT/start?name=NAME)");
        listeners.push(tokio::spawn(agi::serve(listener, markers.clone(), metrics.clone())));
    }
    if let Some(addr) = config.listen {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            anyhow::anyhow!(
                "cannot listen for the HTTP control API on {addr}: {error} (set --listen to another address, or off)"
            )
        })?;
        let (markers, token, metrics, mut stop) =
            (markers.clone(), config.api_token.clone(), metrics.clone(), stop_rx.clone());
        let stopped = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        listeners.push(tokio::spawn(async move {
            if let Err(error) = api::serve(listener, markers, token, metrics, stopped).await {
                tracing::error!(%error, "the HTTP control API stopped");
            }
        }));
    }

    let post_call = config.post_call_url.clone().map(|url| {
        let webhook = webhook(url);
        info!(%webhook, signed = config.webhook_secret.is_some(), "post-call summaries go to the webhook");
        PostCall::new(webhook, directory.clone(), metrics.clone(), stop_rx.clone())
    });
    let recorder = Recorder::new(RecorderParts {
        ari,
        media,
        media_target,
        delivery: Delivery::new(recordings_webhook, directory, metrics.clone(), stop_rx.clone()),
        metrics: metrics.clone(),
        capture_timeout: config.capture_timeout,
        defaults: config.defaults,
        signing_key: config.signing_key.clone(),
        post_call,
    });
    let recorder_task = tokio::spawn(recorder.run(ari_rx, media_events_rx, control_rx, stop_rx));

    shutdown.await;
    info!("shutting down");
    listeners.iter().for_each(|listener| listener.abort());
    let _ = stop_tx.send(true);
    recorder_task.await?;
    events_task.await?;
    media_task.await?;
    let counters: Vec<String> = metrics
        .snapshot()
        .into_iter()
        .filter(|(_, value)| *value > 0)
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    info!(counters = %counters.join(" "), "stopped");
    Ok(())
}
