//! Liveness and readiness, beside the whole path: every long-running task
//! (recorder, media, ARI events, listeners) runs inside `Health::watch`, which
//! notes when it ends; the media socket and the AGI listener are noted as
//! they are bound, and the ARI connection by the event WebSocket (through
//! `Metrics::live.ari_connected`). `/healthz` and `/readyz` report these.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::metrics::Metrics;

/// What the health endpoints look at.
#[derive(Debug)]
pub struct Health {
    /// Holds `ari_connected`, set by the event WebSocket.
    metrics: Arc<Metrics>,
    /// Each watched task with a flag that turns false when it ends.
    tasks: Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
    media: Mutex<Option<SocketAddr>>,
    /// `None` while not (yet) bound; `Some(None)` when turned off.
    agi: Mutex<Option<Option<SocketAddr>>>,
}

/// One check of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The answer of `/healthz` or `/readyz`: `ok` is true when every check is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Names of the checks that failed.
    pub failed: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    fn of(checks: Vec<Check>) -> Self {
        let failed: Vec<String> = checks.iter().filter(|check| !check.ok).map(|check| check.name.clone()).collect();
        Report { ok: failed.is_empty(), failed, checks }
    }
}

/// Turns its task's flag false when dropped: when the task returns, panics
/// or is aborted.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Health {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Health { metrics, tasks: Mutex::default(), media: Mutex::default(), agi: Mutex::default() })
    }

    /// `task`, noted alive from now until it ends.
    pub fn watch<F: Future>(&self, name: &'static str, task: F) -> impl Future<Output = F::Output> {
        let flag = Arc::new(AtomicBool::new(true));
        lock(&self.tasks).push((name, flag.clone()));
        async move {
            let _alive = Alive(flag);
            task.await
        }
    }

    pub fn media_bound(&self, addr: SocketAddr) {
        *lock(&self.media) = Some(addr);
    }

    /// The FastAGI listener is bound at `addr`, or turned off (`None`).
    pub fn agi_bound(&self, addr: Option<SocketAddr>) {
        *lock(&self.agi) = Some(addr);
    }

    /// Whether the process and every task it started are alive.
    pub fn liveness(&self) -> Report {
        Report::of(self.task_checks())
    }

    /// Whether callrec can record now: alive, holding the Stasis application
    /// over a connected ARI WebSocket, and its sockets bound.
    pub fn readiness(&self) -> Report {
        let mut checks = self.task_checks();
        let connected = self.metrics.live.ari_connected.get() > 0;
        checks.push(Check {
            name: "ari".into(),
            ok: connected,
            detail: if connected {
                "event WebSocket connected, Stasis application registered".into()
            } else {
                "not connected to ARI, or standing aside while another client holds the Stasis application".into()
            },
        });
        let media = *lock(&self.media);
        checks.push(Check {
            name: "media".into(),
            ok: media.is_some(),
            detail: media.map_or("not bound yet".into(), |addr| format!("bound to {addr}")),
        });
        let agi = *lock(&self.agi);
        checks.push(Check {
            name: "agi".into(),
            ok: agi.is_some(),
            detail: match agi {
                None => "not bound yet".into(),
                Some(None) => "off".into(),
                Some(Some(addr)) => format!("bound to {addr}"),
            },
        });
        Report::of(checks)
    }

    fn task_checks(&self) -> Vec<Check> {
        lock(&self.tasks)
            .iter()
            .map(|(name, alive)| {
                let ok = alive.load(Ordering::Relaxed);
                Check { name: format!("task:{name}"), ok, detail: if ok { "running".into() } else { "ended".into() } }
            })
            .collect()
    }
}

/// A poisoned lock still holds plain data worth reading.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_fails_liveness_by_name() {
        let health = Health::new(Arc::new(Metrics::default()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let waiting = tokio::spawn(health.watch("media", async move {
            let _ = rx.await;
        }));
        let forever = tokio::spawn(health.watch("recorder", std::future::pending::<()>()));
        assert!(health.liveness().ok);
        tx.send(()).unwrap();
        waiting.await.unwrap();
        let report = health.liveness();
        assert_eq!((report.ok, report.failed), (false, vec!["task:media".to_string()]));
        forever.abort();
    }

    #[tokio::test]
    async fn a_panicking_task_is_noted_dead() {
        let health = Health::new(Arc::new(Metrics::default()));
        let task = tokio::spawn(health.watch("recorder", async { panic!("boom") }));
        assert!(task.await.is_err());
        assert_eq!(health.liveness().failed, ["task:recorder"]);
    }

    #[test]
    fn readiness_names_each_missing_piece() {
        let metrics = Arc::new(Metrics::default());
        let health = Health::new(metrics.clone());
        assert_eq!(health.readiness().failed, ["ari", "media", "agi"]);
        health.media_bound("127.0.0.1:4000".parse().unwrap());
        health.agi_bound(None);
        assert_eq!(health.readiness().failed, ["ari"]);
        metrics.live.ari_connected.set(1);
        let report = health.readiness();
        assert!(report.ok && report.failed.is_empty(), "{report:?}");
        let agi = report.checks.iter().find(|check| check.name == "agi").unwrap();
        assert_eq!(agi.detail, "off");
    }
}
