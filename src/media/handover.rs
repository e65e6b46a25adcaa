//! Media capture, step 3: handing an ended recording's audio over. The
//! recorder asks for it as soon as the recording ends; the media task hands
//! it over once every stream holds its audio up to the end (what was said
//! before a stop marker is still on its way then, a snoop's frame or two),
//! or has gone quiet (at a hangup, the rest never comes), or at the latest
//! by the deadline the recorder set. Checked on every turn of the task.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::receiver::TakenCapture;
use crate::session::RecordingId;

/// A stream with no packet for this long has ended: three 20 ms packets
/// missing in a row, beyond the jitter of a loopback path.
pub const QUIET: Duration = Duration::from_millis(60);

/// A recording the recorder asked for whose audio may still be arriving.
#[derive(Debug)]
pub struct PendingTake {
    pub recording: RecordingId,
    pub total_samples: u64,
    /// Handed over by then, whatever has arrived.
    pub deadline: Instant,
    pub reply: oneshot::Sender<Option<TakenCapture>>,
}

/// Where one stream stands when the recording it belongs to has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamProgress {
    /// Every sample up to the recording's end is held, with no gap a late
    /// packet could still fill.
    pub complete: bool,
    /// When its latest packet arrived (`None`: none ever did).
    pub last_arrival: Option<Instant>,
}

impl StreamProgress {
    fn ended(&self, now: Instant) -> bool {
        self.complete || self.last_arrival.is_none_or(|last| now.saturating_duration_since(last) >= QUIET)
    }
}

/// Whether a recording's audio can be handed over at `now`.
pub fn ready(streams: impl IntoIterator<Item = StreamProgress>, now: Instant, deadline: Instant) -> bool {
    now >= deadline || streams.into_iter().all(|stream| stream.ended(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn stream(complete: bool, last_arrival: Option<Instant>) -> StreamProgress {
        StreamProgress { complete, last_arrival }
    }

    #[test]
    fn a_stream_holding_everything_up_to_the_end_is_ready_at_once() {
        let now = Instant::now();
        assert!(ready([stream(true, Some(now))], now, now + 200 * MS));
    }

    #[test]
    fn a_stream_still_sending_short_of_the_end_is_waited_for_until_the_deadline() {
        let start = Instant::now();
        let deadline = start + 200 * MS;
        for at in [0, 20, 100, 199] {
            let now = start + at * MS;
            // A packet came 20 ms ago: the stream goes on.
            assert!(!ready([stream(false, Some(now - 20 * MS))], now, deadline), "at {at} ms");
        }
        assert!(ready([stream(false, Some(deadline))], deadline, deadline));
    }

    #[test]
    fn a_stream_gone_quiet_has_ended() {
        let now = Instant::now() + Duration::from_secs(1);
        let deadline = now + 200 * MS;
        assert!(!ready([stream(false, Some(now - QUIET + MS))], now, deadline));
        assert!(ready([stream(false, Some(now - QUIET))], now, deadline));
        assert!(ready([stream(false, None)], now, deadline), "a stream that never sent has nothing to wait for");
    }

    #[test]
    fn every_stream_of_a_recording_must_have_ended() {
        let now = Instant::now() + Duration::from_secs(1);
        let deadline = now + 200 * MS;
        let quiet = stream(false, Some(now - 100 * MS));
        let sending = stream(false, Some(now - 10 * MS));
        assert!(!ready([stream(true, Some(now)), sending], now, deadline));
        assert!(ready([stream(true, Some(now)), quiet], now, deadline));
        assert!(ready([stream(true, Some(now)), sending], deadline, deadline));
    }
}
