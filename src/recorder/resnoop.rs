//! Snooping a call anew when it gets a new party (`Action::Reattach`): the
//! recording's old snoops are hung up, and only once Asterisk has removed
//! them — with the call's last audiohook it frees the translator that
//! remembers the last party's RTP and would drop the new party's frames —
//! are new snoops made; each joins its capture bridge when it reaches Stasis.
//! The recording keeps its timeline throughout.

use std::time::Duration;

use tracing::{debug, warn};

use crate::ari::rest::AriClient;
use crate::markers;
use crate::metrics::Metrics;
use crate::session::{RecordingId, Track};

/// How often the old snoops are looked for until they are gone (a snoop
/// channel is gone only once its audiohook has left the call).
const POLL: Duration = Duration::from_millis(5);
/// The longest wait for that; the new snoops are made after it regardless.
const WAIT: Duration = Duration::from_millis(200);

/// Hangs up `old`, waits until they are gone, then makes the `new` snoops
/// on `call`.
pub(super) async fn snoop_anew(
    ari: &AriClient,
    metrics: &Metrics,
    call: &str,
    recording: RecordingId,
    old: &[String],
    new: &[(Track, String)],
) {
    for snoop in old {
        if let Err(error) = ari.hangup(snoop).await {
            debug!(%snoop, %error, "could not hang up the old snoop");
        }
    }
    let all_gone = async {
        for snoop in old {
            while !matches!(ari.channel_exists(snoop).await, Ok(false)) {
                tokio::time::sleep(POLL).await;
            }
        }
    };
    if tokio::time::timeout(WAIT, all_gone).await.is_err() {
        warn!(
            channel = %call, %recording,
            "the old snoops outlived the wait; snooping anew all the same (the new party's first moments may be lost)"
        );
    }
    for (track, snoop) in new {
        if let Err(error) = ari.snoop(call, snoop, track.spy()).await {
            metrics.reattach_failures.inc();
            warn!(channel = %call, %recording, %error, "cannot snoop the call anew; its audio stops here");
        }
    }
}

/// Puts a new snoop into its track's capture `bridge`, and names the
/// recording's snoops (`names`) on the call again for the dialplan.
pub(super) async fn rejoin(
    ari: &AriClient,
    metrics: &Metrics,
    call: &str,
    recording: RecordingId,
    bridge: &str,
    snoop: &str,
    names: &str,
) {
    if let Err(error) = ari.add_to_bridge(bridge, &[snoop]).await {
        metrics.reattach_failures.inc();
        warn!(channel = %call, %recording, %error, "cannot put the new snoop into the capture bridge");
        return;
    }
    if let Err(error) = ari.set_variable(call, markers::SNOOP_VARIABLE, names).await {
        debug!(channel = %call, %error, "could not name the new snoop on the channel");
    }
}
