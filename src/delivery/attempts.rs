//! The attempts of one delivery, between a target and `retry`'s policy: the
//! webhook and the S3 target each make one attempt at a time; this loop
//! bounds each by the budget, waits a jittered backoff (or the server's
//! `Retry-After`) between them, stops at once on a refusal for good, and
//! waits no more once callrec is stopping — an attempt under way then gets
//! a short, bounded last chance, so that the recording still reaches the
//! spool or the output directory within the shutdown grace period.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, warn};

use super::retry::{next_attempt, Budget, Next};
use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// The first wait between attempts, and the longest the backoff grows to.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);
/// Once callrec is stopping, how much longer an attempt under way may take
/// before the recording goes to the spool or the output directory instead:
/// well inside the shutdown grace period, so a hanging target cannot lose it.
pub const STOPPING_ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

/// What came of one attempt.
#[derive(Debug)]
pub enum Answer {
    Delivered,
    /// Worth another attempt, after `retry_after` if the server said.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good, with what may be shown of the answer.
    Refused {
        status: StatusCode,
        detail: String,
    },
}

/// A target that never took the recording.
#[derive(Debug)]
pub struct DeliveryFailure {
    pub attempts: u32,
    pub elapsed: Duration,
    pub last_error: String,
    /// Refused for good (a 4xx other than 408 and 429, or a redirect): no
    /// attempt was made after that answer.
    pub permanent: bool,
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attempt(s) over {:.1} s, the last: {}",
            self.attempts,
            self.elapsed.as_secs_f64(),
            self.last_error
        )
    }
}

/// How long a delivery may go on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Attempts and waits together (`--delivery-timeout`).
    pub budget: Duration,
    /// How long an attempt under way may go on once callrec is stopping.
    pub stopping_limit: Duration,
}

impl Limits {
    pub fn new(budget: Duration) -> Self {
        Limits { budget, stopping_limit: STOPPING_ATTEMPT_LIMIT }
    }
}

/// What is delivered where, as the log names it.
#[derive(Clone, Copy)]
pub struct Delivering<'a> {
    /// `recording <id>`, or the key of a document.
    pub label: &'a str,
    /// `webhook` or `s3`.
    pub kind: &'static str,
    /// The target as it may be shown (never a credential).
    pub to: &'a (dyn fmt::Display + Sync),
}

/// Makes attempts until one delivers, one is refused for good, the budget
/// is spent or callrec stops; returns the attempts it took. `attempt` is
/// given how long it may take, and keeps to it.
pub async fn run<F, Fut>(
    delivering: Delivering<'_>,
    limits: Limits,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
    mut attempt: F,
) -> Result<u32, DeliveryFailure>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Answer>,
{
    let Delivering { label, kind, to } = delivering;
    let started = Instant::now();
    let budget = Budget::start(limits.budget, started.into_std());
    let mut backoff = Backoff::new(FIRST_RETRY, LONGEST_BACKOFF).with_jitter();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let timeout = budget.attempt_timeout(Instant::now().into_std());
        let answer = while_running(attempt(timeout), limits.stopping_limit, &mut shutdown).await;
        let (error, retry_after) = match answer {
            Answer::Delivered => return Ok(attempts),
            Answer::Refused { status, detail } => {
                metrics.delivery_permanent_failures.inc();
                error!(
                    of = %label, %to, attempt = attempts, status = status.as_u16(), answer = %detail,
                    "{kind} refused the delivery for good; no more attempts"
                );
                let last_error = format!("HTTP {status}, refused for good");
                return Err(DeliveryFailure { attempts, elapsed: started.elapsed(), last_error, permanent: true });
            }
            Answer::Failed { error, retry_after } => (error, retry_after),
        };
        let give_up =
            |last_error| DeliveryFailure { attempts, elapsed: started.elapsed(), last_error, permanent: false };
        if *shutdown.borrow() {
            return Err(give_up(error));
        }
        let wait = match next_attempt(backoff.next_delay(), retry_after, budget.remaining(Instant::now().into_std())) {
            Next::RetryIn(wait) => wait,
            Next::GiveUp => {
                return Err(give_up(match retry_after {
                    Some(asked) => format!("{error}; Retry-After {} s is past the delivery budget", asked.as_secs()),
                    None => error,
                }))
            }
        };
        metrics.delivery_retries.inc();
        warn!(
            of = %label, %to, attempt = attempts, error = %error, retry_in = ?wait,
            "{kind} delivery failed; retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopping(&mut shutdown) => {}
        }
        // A wait that overslept the budget leaves no time for an attempt.
        if budget.remaining(Instant::now().into_std()).is_zero() {
            return Err(give_up(error));
        }
    }
}

/// One attempt, cut short `limit` after callrec starts stopping.
async fn while_running(
    attempt: impl Future<Output = Answer>,
    limit: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Answer {
    tokio::pin!(attempt);
    tokio::select! {
        answer = &mut attempt => return answer,
        _ = stopping(shutdown) => {}
    }
    tokio::time::timeout(limit, attempt).await.unwrap_or_else(|_| Answer::Failed {
        error: format!("no answer within {limit:?} of callrec stopping"),
        retry_after: None,
    })
}

/// Completes once callrec is stopping; never if it cannot tell.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What every target's tests share about the attempt loop.
#[cfg(test)]
pub(crate) mod testing {
    use std::future::Future;
    use std::time::Duration;

    use tokio::sync::watch;

    use super::DeliveryFailure;

    /// A server on loopback that takes every connection and never answers;
    /// returns its `http://HOST:PORT`.
    pub async fn hanging_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        url
    }

    /// Starts `send` against a hanging server with a stopping limit of
    /// 200 ms, stops callrec 100 ms in, and checks the one attempt under way
    /// got those 200 ms and no more than a few seconds, not its 60 s timeout.
    pub async fn assert_given_up_soon_after_shutdown<F>(send: impl FnOnce(watch::Receiver<bool>) -> F)
    where
        F: Future<Output = Result<u32, DeliveryFailure>> + Send + 'static,
    {
        let (stop, shutdown) = watch::channel(false);
        let sending = tokio::spawn(send(shutdown));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopped = std::time::Instant::now();
        stop.send(true).unwrap();
        let failure = tokio::time::timeout(Duration::from_secs(5), sending)
            .await
            .expect("the attempt is cut short, not left to its 60 s timeout")
            .unwrap()
            .unwrap_err();
        assert!(stopped.elapsed() >= Duration::from_millis(200), "the attempt had its chance");
        assert_eq!(failure.attempts, 1);
        assert!(failure.last_error.contains("callrec stopping"), "{failure}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    use super::*;

    fn limits(budget: Duration) -> Limits {
        Limits { budget, stopping_limit: Duration::from_millis(200) }
    }

    const DELIVERING: Delivering<'static> = Delivering { label: "recording 1", kind: "test", to: &"store" };

    fn failed(error: &str) -> Answer {
        Answer::Failed { error: error.into(), retry_after: None }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_an_attempt_delivers() {
        let tries = AtomicU32::new(0);
        let metrics = Metrics::default();
        let attempts = run(DELIVERING, limits(Duration::from_secs(600)), &metrics, watch::channel(false).1, |_| {
            let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n < 3 {
                    failed("HTTP 503")
                } else {
                    Answer::Delivered
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((attempts, metrics.delivery_retries.get()), (3, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_next_wait_would_spend_the_budget() {
        let started = Instant::now();
        let failure =
            run(DELIVERING, limits(Duration::from_secs(3)), &Metrics::default(), watch::channel(false).1, |_| async {
                failed("HTTP 503")
            })
            .await
            .unwrap_err();
        assert!(failure.attempts >= 2 && !failure.permanent, "{failure}");
        assert!(started.elapsed() < Duration::from_secs(3), "no attempt past the budget: {:?}", started.elapsed());
        assert_eq!(failure.last_error, "HTTP 503");
    }

    #[tokio::test(start_paused = true)]
    async fn each_attempt_may_take_what_remains_of_the_budget_at_most_a_minute() {
        let given = Mutex::new(Vec::new());
        let budget = Duration::from_secs(80);
        let failure = run(DELIVERING, limits(budget), &Metrics::default(), watch::channel(false).1, |timeout| {
            given.lock().unwrap().push(timeout);
            async move {
                tokio::time::sleep(timeout).await;
                failed("timed out")
            }
        })
        .await
        .unwrap_err();
        let given = given.lock().unwrap();
        assert_eq!(given[0], Duration::from_secs(60), "{given:?}");
        assert!(given[1] < Duration::from_secs(20), "what the first attempt and the wait left: {given:?}");
        assert!(failure.elapsed <= budget, "{failure}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_for_good_is_not_retried() {
        let metrics = Metrics::default();
        let failure = run(DELIVERING, limits(Duration::from_secs(600)), &metrics, watch::channel(false).1, |_| async {
            Answer::Refused { status: StatusCode::FORBIDDEN, detail: "permission denied".into() }
        })
        .await
        .unwrap_err();
        assert_eq!((failure.attempts, failure.permanent), (1, true));
        assert_eq!(failure.last_error, "HTTP 403 Forbidden, refused for good");
        assert_eq!((metrics.delivery_permanent_failures.get(), metrics.delivery_retries.get()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_short_once_callrec_stops() {
        let (stop, shutdown) = watch::channel(false);
        let sending = tokio::spawn(async move {
            run(DELIVERING, limits(Duration::from_secs(600)), &Metrics::default(), shutdown, |_| {
                std::future::pending::<Answer>()
            })
            .await
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped = Instant::now();
        stop.send(true).unwrap();
        let failure = sending.await.unwrap().unwrap_err();
        assert_eq!(stopped.elapsed(), Duration::from_millis(200), "the attempt had its bounded last chance");
        assert_eq!(failure.attempts, 1);
        assert!(failure.last_error.contains("callrec stopping"), "{failure}");
    }
}
