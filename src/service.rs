//! Wires the path together for `callrec run`: binds the media socket, starts
//! the ARI connection, the media task and the recorder, and shuts them down in
//! order when asked.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ari::rest::AriClient;
use crate::ari::websocket::EventStream;
use crate::config::Config;
use crate::control::api::operations::Operations;
use crate::control::{agi, api, Markers};
use crate::delivery::metadata::samples_in;
use crate::delivery::post_call::PostCall;
use crate::delivery::s3::{Location, S3Target};
use crate::delivery::target::DEFAULT as DEFAULT_TARGET;
use crate::delivery::{Delivery, Directory, Spool, Target, Targets, Webhook};
use crate::health::Health;
use crate::media;
use crate::memory::AudioMemory;
use crate::metrics::export::Exporter;
use crate::metrics::Metrics;
use crate::recorder::{Recorder, RecorderParts};

/// How often the spool is re-sent while the webhook does not take it.
const SPOOL_RESEND_EVERY: Duration = Duration::from_secs(30);

/// Runs callrec until `shutdown` completes, then finishes every recording.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let health = Health::new(metrics.clone());
    let (stop_tx, stop_rx) = watch::channel(false);

    let (media_events_tx, media_events_rx) = mpsc::unbounded_channel();
    let memory = AudioMemory::new(config.max_memory);
    let (media, receiver) = media::bind(
        config.media_bind,
        samples_in(config.max_recording),
        metrics.clone(),
        memory.clone(),
        media_events_tx,
    )
    .map_err(|error| anyhow::anyhow!("cannot bind the media socket to {}: {error}", config.media_bind))?;
    let media_target = config.media_advertise.clone().unwrap_or_else(|| media.local_addr.to_string());
    health.media_bound(media.local_addr);
    let mut media_task = tokio::spawn(health.watch("media", receiver.run()));

    let directory = Directory::new(&config.output_dir);
    let webhook = |url: &url::Url| Webhook::new(url.clone(), config.delivery_timeout, config.webhook_secret.clone());
    let mut named = Vec::new();
    for (name, url) in &config.targets {
        let target = match url.scheme() {
            "s3" => Location::parse(url.as_str())
                .and_then(|location| S3Target::new(location, config.s3_endpoint.as_ref(), config.delivery_timeout))
                .map(Target::S3)
                .map_err(|error| anyhow::anyhow!("--target {name}: {error}"))?,
            _ => Target::Webhook(webhook(url)),
        };
        named.push((name.clone(), target));
    }
    let targets = Targets::new(named);
    if let Some(endpoint) = &config.s3_endpoint {
        if !targets.iter().any(|(_, target)| matches!(target, Target::S3(_))) {
            warn!(s3_endpoint = %endpoint, "--s3-endpoint has no use without an s3:// --target");
        }
    }
    for (name, target) in targets.iter() {
        info!(
            target = name, to = %target, fallback = %directory, delivery_timeout = ?config.delivery_timeout,
            signed = config.webhook_secret.is_some(), "delivery target"
        );
    }
    if targets.get(DEFAULT_TARGET).is_none() {
        info!(directory = %directory, "no webhook set: recordings without a target go to the output directory");
    }
    info!(bind = %media.local_addr, target = %media_target, "media socket ready");

    let ari = AriClient::new(&config.ari_url, &config.ari_user, config.ari_password.clone(), &config.app);
    let events = EventStream::new(&config.ari_url, &config.app, &config.ari_user, config.ari_password.clone());
    let (ari_tx, ari_rx) = mpsc::channel(1024);
    let mut events_task = {
        let (rest, metrics, stop) = (ari.clone(), metrics.clone(), stop_rx.clone());
        tokio::spawn(health.watch("ARI events", async move { events.run(rest, ari_tx, &metrics, stop).await }))
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
        health.agi_bound(Some(listener.local_addr()?));
        let serving = health.watch("FastAGI server", agi::serve(listener, markers.clone(), metrics.clone()));
        listeners.push(("FastAGI server", tokio::spawn(serving)));
    } else {
        health.agi_bound(None);
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
        let operations = Operations::new(Exporter::new(metrics.clone(), memory.clone()), health.clone());
        let serving = health.watch("HTTP control API", async move {
            if let Err(error) = api::serve(listener, markers, token, metrics, operations, stopped).await {
                tracing::error!(%error, "the HTTP control API stopped");
            }
        });
        listeners.push(("HTTP control API", tokio::spawn(serving)));
    }

    let spool = match (&config.spool_dir, targets.is_empty()) {
        (Some(dir), false) => {
            info!(spool = %dir.display(), "recordings the webhook does not take in time are spooled and re-sent");
            Some(Spool::new(dir))
        }
        (Some(dir), true) => {
            warn!(spool = %dir.display(), "--spool-dir has no use without a webhook or target: recordings go to the output directory");
            None
        }
        (None, _) => None,
    };
    let spool_dir_used = spool.is_some();
    let delivery = Delivery::new(targets, directory.clone(), spool, metrics.clone(), memory.clone(), stop_rx.clone());
    let resend_task = spool_dir_used
        .then(|| tokio::spawn(health.watch("spool re-sender", delivery.clone().resend_spooled(SPOOL_RESEND_EVERY))));
    let post_call = config.post_call_url.clone().map(|url| {
        let webhook = webhook(&url);
        info!(%webhook, signed = config.webhook_secret.is_some(), "post-call summaries go to the webhook");
        PostCall::new(webhook, directory.clone(), metrics.clone(), stop_rx.clone())
    });
    let recorder = Recorder::new(RecorderParts {
        ari,
        media,
        media_target,
        delivery: delivery.clone(),
        metrics: metrics.clone(),
        capture_timeout: config.capture_timeout,
        defaults: config.defaults,
        signing_key: config.signing_key.clone(),
        post_call,
        memory,
    });
    let mut recorder_task =
        tokio::spawn(health.watch("recorder", recorder.run(ari_rx, media_events_rx, control_rx, stop_rx)));

    // Every task runs until callrec stops: one that ends before (a panic, a
    // bug) means recording is broken, so callrec stops too, delivering what it
    // holds, and exits non-zero for its service manager to restart it.
    let mut tasks: Vec<(&'static str, &mut JoinHandle<()>)> =
        vec![("recorder", &mut recorder_task), ("media", &mut media_task), ("ARI events", &mut events_task)];
    let mut resend_task = resend_task;
    if let Some(task) = resend_task.as_mut() {
        tasks.push(("spool re-sender", task));
    }
    for (name, task) in listeners.iter_mut() {
        tasks.push((name, task));
    }
    let failed = tokio::select! {
        () = shutdown => None,
        (failed, ..) = futures_util::future::select_all(tasks.into_iter().map(|(name, task)| Box::pin(async move { (name, task.await) }))) => Some(failed),
    };
    let failure = failed.map(|(name, result)| {
        let how = match result {
            Err(error) if error.is_panic() => "panicked",
            _ => "ended",
        };
        metrics.task_failures.inc();
        tracing::error!(task = name, "callrec's {name} task {how} unexpectedly: stopping, delivering what it holds");
        anyhow::anyhow!("the {name} task {how} unexpectedly; callrec stopped so that it can be restarted")
    });
    info!("shutting down");
    listeners.iter().for_each(|(_, listener)| listener.abort());
    let _ = stop_tx.send(true);
    let recorder_result = if recorder_task.is_finished() && failure.is_some() { Ok(()) } else { recorder_task.await };
    for (name, task) in
        [("spool re-sender", resend_task), ("ARI events", Some(events_task)), ("media", Some(media_task))]
    {
        let Some(task) = task else { continue };
        if task.is_finished() && failure.is_some() {
            continue;
        }
        if let Err(error) = task.await {
            tracing::error!(task = name, %error, "a task failed while stopping");
        }
    }
    recorder_result?;
    let counters: Vec<String> = metrics
        .snapshot()
        .into_iter()
        .filter(|(_, value)| *value > 0)
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    info!(counters = %counters.join(" "), "stopped");
    failure.map_or(Ok(()), Err)
}
