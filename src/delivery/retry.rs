//! Delivery's retry policy, between a webhook's answer and the next attempt:
//! what an answer means (delivered, worth another try, refused for good),
//! how long a `Retry-After` asks to wait, and the total budget that bounds
//! attempts and waits alike. No IO and no clock: times are passed in.

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;

/// The longest one attempt may take, when the budget leaves that much.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// What an answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the webhook took it.
    Delivered,
    /// 408, 429, 5xx (and, outside this table, timeouts and connection
    /// errors): worth another attempt.
    Retry,
    /// Anything else (400, 401, 403, 404, 413, 422, …, and a redirect, which
    /// is not followed): asking again would get the same answer.
    Permanent,
}

pub fn classify(status: StatusCode) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

/// A `Retry-After` value: delay-seconds, or an HTTP-date (a date already
/// past means now). Anything else is ignored (`None`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The time a delivery may take in all, attempts and waits included.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    started: Instant,
    total: Duration,
}

impl Budget {
    pub fn start(total: Duration, now: Instant) -> Self {
        Budget { started: now, total }
    }

    pub fn remaining(&self, now: Instant) -> Duration {
        self.total.saturating_sub(now.saturating_duration_since(self.started))
    }

    /// How long the attempt starting `now` may take: `ATTEMPT_TIMEOUT`, or
    /// less if the budget ends sooner.
    pub fn attempt_timeout(&self, now: Instant) -> Duration {
        ATTEMPT_TIMEOUT.min(self.remaining(now))
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then try again.
    RetryIn(Duration),
    /// The wait would use up the rest of the budget: give up now rather than
    /// wait for an attempt that could not happen.
    GiveUp,
}

/// The wait before the next attempt: the backoff's delay, or the server's
/// `Retry-After` when it asks for longer (never sooner than either), capped
/// at what remains of the budget; a wait that reaches the budget's end gives
/// up at once.
pub fn next_attempt(backoff_delay: Duration, retry_after: Option<Duration>, remaining: Duration) -> Next {
    let wait = retry_after.map_or(backoff_delay, |asked| asked.max(backoff_delay));
    if wait >= remaining {
        Next::GiveUp
    } else {
        Next::RetryIn(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_delivered_retried_or_refused_for_good() {
        for (status, verdict) in [
            (200, Verdict::Delivered),
            (201, Verdict::Delivered),
            (204, Verdict::Delivered),
            (299, Verdict::Delivered),
            (408, Verdict::Retry),
            (429, Verdict::Retry),
            (500, Verdict::Retry),
            (502, Verdict::Retry),
            (503, Verdict::Retry),
            (504, Verdict::Retry),
            (599, Verdict::Retry),
            (400, Verdict::Permanent),
            (401, Verdict::Permanent),
            (403, Verdict::Permanent),
            (404, Verdict::Permanent),
            (405, Verdict::Permanent),
            (409, Verdict::Permanent),
            (410, Verdict::Permanent),
            (413, Verdict::Permanent),
            (415, Verdict::Permanent),
            (422, Verdict::Permanent),
            (499, Verdict::Permanent),
            (301, Verdict::Permanent),
            (302, Verdict::Permanent),
            (307, Verdict::Permanent),
            (308, Verdict::Permanent),
        ] {
            assert_eq!(classify(StatusCode::from_u16(status).unwrap()), verdict, "HTTP {status}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_ignores_the_rest() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_717); // Sun, 06 Nov 1994 08:48:37 GMT
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(parse_retry_after("120", now), secs(120));
        assert_eq!(parse_retry_after(" 3 ", now), secs(3));
        assert_eq!(parse_retry_after("0", now), secs(0));
        assert_eq!(parse_retry_after("99999999999999999999999", now), secs(u64::MAX));
        // The three HTTP-date forms (RFC 9110 §5.6.7), a minute after `now`.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), secs(60));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), secs(60));
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), secs(60));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), secs(0), "a past date means now");
        for garbage in
            ["", " ", "-1", "1.5", "soon", "10s", "0x10", "Sun, 06 Nov 1994", "Sun, 32 Nov 1994 08:49:37 GMT"]
        {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn the_budget_bounds_each_attempt_and_runs_out() {
        let start = Instant::now();
        let budget = Budget::start(Duration::from_secs(600), start);
        assert_eq!(budget.attempt_timeout(start), ATTEMPT_TIMEOUT);
        let late = start + Duration::from_secs(570);
        assert_eq!(budget.remaining(late), Duration::from_secs(30));
        assert_eq!(budget.attempt_timeout(late), Duration::from_secs(30), "bounded by the remaining budget");
        assert_eq!(budget.remaining(start + Duration::from_secs(700)), Duration::ZERO);
        assert_eq!(budget.attempt_timeout(start + Duration::from_secs(700)), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_honoured_but_never_past_the_budget() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        assert_eq!(next_attempt(ms(500), None, s(600)), Next::RetryIn(ms(500)));
        assert_eq!(next_attempt(ms(500), Some(s(3)), s(600)), Next::RetryIn(s(3)), "the server asks for longer");
        assert_eq!(next_attempt(s(8), Some(s(1)), s(600)), Next::RetryIn(s(8)), "never sooner than the backoff");
        assert_eq!(next_attempt(ms(500), Some(Duration::ZERO), s(600)), Next::RetryIn(ms(500)));
        assert_eq!(next_attempt(ms(500), Some(s(3600)), s(300)), Next::GiveUp, "an hour is past the budget");
        assert_eq!(next_attempt(s(4), None, s(3)), Next::GiveUp);
        assert_eq!(next_attempt(s(3), None, s(3)), Next::GiveUp, "no time would be left for the attempt");
    }
}
