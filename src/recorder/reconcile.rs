//! After the ARI connection is (re)established, events may have been missed
//! and a previous callrec may have died: remove recording resources no running
//! recording owns, end recordings whose call is gone, and point out calls left
//! waiting in Stasis so the recorder can let them go.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::info;

use super::finish::teardown;
use super::TaskResult;
use crate::ari::rest::AriClient;
use crate::metrics::Metrics;
use crate::resources;
use crate::session::RecordingId;

/// How long a channel must sit in Stasis, unheld, before it counts as stranded.
const STRANDED_AFTER: Duration = Duration::from_millis(1500);

/// `live`: recordings running here; `calls`: their channels.
pub(super) async fn run(
    ari: AriClient,
    metrics: Arc<Metrics>,
    live: HashSet<RecordingId>,
    calls: Vec<String>,
    results: mpsc::UnboundedSender<TaskResult>,
) {
    let app = ari.app().to_string();
    let stale = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter()
            .filter(|id| resources::parse(&app, id).is_some_and(|(recording, _)| !live.contains(&recording)))
            .collect()
    };
    let channels = ari.channel_ids().await.map(&stale).unwrap_or_default();
    let bridges = ari.bridge_ids().await.map(&stale).unwrap_or_default();
    if !channels.is_empty() || !bridges.is_empty() {
        info!(channels = channels.len(), bridges = bridges.len(), "removing leftover recording resources");
        teardown(&ari, &metrics, channels, bridges).await;
    }
    for call in calls {
        if let Ok(false) = ari.channel_exists(&call).await {
            let _ = results.send(TaskResult::CallGone { call });
        }
    }
    // A channel held by a callrec that went away stays in Stasis until
    // someone lets it go. One seen waiting twice, a while apart, is stranded
    // unless a session here holds it (the recorder checks on arrival).
    let Ok(first) = ari.channels_in_app().await else { return };
    if first.is_empty() {
        return;
    }
    tokio::time::sleep(STRANDED_AFTER).await;
    let Ok(second) = ari.channels_in_app().await else { return };
    let waiting =
        second.into_iter().filter(|channel| first.contains(channel) && resources::parse(&app, channel).is_none());
    for channel in waiting {
        let _ = results.send(TaskResult::MaybeStranded { channel });
    }
}
