//! After the ARI connection is (re)established, events may have been missed
//! and a previous callrec may have died: point out recording resources on
//! Asterisk (the recorder removes those no running recording owns), end
//! recordings whose call is gone or whose capture the dialplan cut (at a stop
//! marker it could not deliver), and point out calls left waiting in Stasis
//! so the recorder can let them go.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::TaskResult;
use crate::ari::rest::AriClient;
use crate::markers;
use crate::resources;
use crate::session::RecordingId;

/// How long a channel must sit in Stasis, unheld, before it counts as stranded.
const STRANDED_AFTER: Duration = Duration::from_millis(1500);

/// A recording running here, as reconciliation needs it.
pub(super) struct Running {
    pub call: String,
    pub recording: RecordingId,
    /// Its snoop channels' ids.
    pub snoops: Vec<String>,
    /// Capture runs (a recording still setting up may not have its snoop yet).
    pub capturing: bool,
}

pub(super) async fn run(ari: AriClient, running: Vec<Running>, results: mpsc::UnboundedSender<TaskResult>) {
    let app = ari.app().to_string();
    // Which of these a running recording owns is decided by the recorder when
    // the list arrives: a recording may start while it is being made.
    let ours = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter().filter(|id| resources::parse(&app, id).is_some()).collect()
    };
    let channels = ari.channel_ids().await.map(&ours).unwrap_or_default();
    let bridges = ari.bridge_ids().await.map(&ours).unwrap_or_default();
    if !channels.is_empty() || !bridges.is_empty() {
        let _ = results.send(TaskResult::RecordingResources { channels, bridges });
    }
    for Running { call, recording, snoops, capturing } in running {
        match ari.channel_exists(&call).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = results.send(TaskResult::CallGone { call });
                continue;
            }
            Err(_) => continue,
        }
        if capturing && any_gone(&ari, &snoops).await {
            let stopped_at = noted_cut(&ari, &call).await;
            let _ = results.send(TaskResult::CaptureCut { call, recording, stopped_at });
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

/// Whether any of these channels is known to be gone.
async fn any_gone(ari: &AriClient, channels: &[String]) -> bool {
    for channel in channels {
        if matches!(ari.channel_exists(channel).await, Ok(false)) {
            return true;
        }
    }
    false
}

/// Like `noted_cut`, but through an ARI outage: asks again every second for
/// up to a minute while Asterisk cannot be reached.
pub(super) async fn cut_noted_once_reachable(ari: &AriClient, call: &str) -> Option<SystemTime> {
    for _ in 0..60 {
        match ari.variable(call, markers::STOPPED_AT_VARIABLE).await {
            Ok(noted) => return noted.as_deref().and_then(markers::parse_dialplan_time),
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    None
}

/// When the dialplan's stop subroutine cut the call's capture, if it did.
pub(super) async fn noted_cut(ari: &AriClient, call: &str) -> Option<SystemTime> {
    let noted = ari.variable(call, markers::STOPPED_AT_VARIABLE).await.ok().flatten();
    noted.as_deref().and_then(markers::parse_dialplan_time)
}
