//! The end of a recording's path through the recorder: once a session says a
//! recording is finished, this lets RTP still in flight land, takes the audio
//! from the media task (cut or padded to the wall-clock length), then at the
//! same time tears down the snoop, externalMedia channel and bridge and hands
//! the recording with its metadata to delivery.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use crate::ari::events::Channel;
use crate::ari::rest::AriClient;
use crate::delivery::metadata::{rfc3339, samples_in, WallClock};
use crate::delivery::{Delivery, FinishedRecording, Metadata};
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::resources::ResourceIds;
use crate::session::Finished;
use crate::ulaw;

/// Time given to RTP still in flight after a recording ends, before its
/// stream is collected and its resources are torn down.
const DRAIN: Duration = Duration::from_millis(200);

/// Everything needed to finish one recording, away from the recorder's loop.
pub(super) struct FinishJob {
    pub finished: Finished,
    pub channel: Channel,
    pub ids: ResourceIds,
    pub ari: AriClient,
    pub media: MediaHandle,
    pub delivery: Delivery,
    pub metrics: Arc<Metrics>,
    pub clock: WallClock,
}

impl FinishJob {
    pub async fn run(self) {
        let FinishJob { finished, channel, ids, ari, media, delivery, metrics, clock } = self;
        tokio::time::sleep_until((finished.ended_at + DRAIN).into()).await;
        let total_samples = finished.started_at.map_or(0, |start| samples_in(finished.ended_at - start));
        let audio = media.take(finished.recording, total_samples).await;
        let (ulaw, missing_samples) = match audio {
            Some(audio) => (audio.ulaw, audio.missing_samples),
            None => (vec![ulaw::SILENCE; total_samples as usize], total_samples),
        };
        let started_at = finished.started_at.unwrap_or(finished.ended_at);
        let bytes = ulaw.len() as u64;
        let metadata = Metadata {
            recording_id: finished.recording,
            name: finished.name,
            channel_id: channel.id,
            channel_name: channel.name,
            caller_number: channel.caller.number,
            caller_name: channel.caller.name,
            started_at: rfc3339(clock.at(started_at)),
            ended_at: rfc3339(clock.at(finished.ended_at)),
            duration_ms: ulaw::millis(bytes),
            end_reason: finished.reason,
            format: "ulaw".into(),
            sample_rate: ulaw::SAMPLE_RATE,
            channels: 1,
            bytes,
            missing_ms: ulaw::millis(missing_samples),
            error: finished.error,
        };
        // Side by side: a slow Asterisk must not hold up delivery, nor a slow
        // webhook the removal of the capture channels.
        tokio::join!(
            teardown(&ari, &metrics, vec![ids.snoop, ids.media], vec![ids.bridge]),
            delivery.deliver(FinishedRecording { metadata, audio: ulaw.into() }),
        );
    }
}

/// Destroys bridges and hangs up channels; what is already gone is fine.
pub(super) async fn teardown(ari: &AriClient, metrics: &Metrics, channels: Vec<String>, bridges: Vec<String>) {
    for bridge in bridges {
        if let Err(error) = ari.destroy_bridge(&bridge).await {
            metrics.teardown_failures.inc();
            warn!(%bridge, %error, "could not destroy a recording bridge");
        }
    }
    for channel in channels {
        if let Err(error) = ari.hangup(&channel).await {
            metrics.teardown_failures.inc();
            warn!(%channel, %error, "could not hang up a recording channel");
        }
    }
}
