//! Exponential backoff between retries, shared by the ARI connection and
//! webhook delivery. Delivery adds jitter, so that recordings that failed
//! together (the webhook went down) do not all retry in the same instant.

use std::time::Duration;

/// Delays that double from `initial` up to `max`, each optionally jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    /// With jitter, each delay is drawn from its upper half.
    jitter: Option<Jitter>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, next: initial, jitter: None }
    }

    /// Each delay `d` becomes a random one between `d / 2` and `d`
    /// ("equal jitter"): the doubling still spaces attempts out, and the
    /// random half spreads the attempts of many senders apart.
    pub fn with_jitter(mut self) -> Self {
        self.jitter = Some(Jitter::from_entropy());
        self
    }

    /// The delay to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        match &mut self.jitter {
            Some(jitter) => jitter.upper_half(delay),
            None => delay,
        }
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// A small xorshift64* generator: statistical spread is all jitter needs,
/// not secrecy, so one seed from the OS serves a whole delivery.
#[derive(Debug, Clone)]
struct Jitter {
    state: u64,
}

impl Jitter {
    fn from_entropy() -> Self {
        // Without entropy, the clock's nanoseconds still tell senders apart.
        let seed = getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|since| since.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15)
        });
        Self::seeded(seed)
    }

    fn seeded(seed: u64) -> Self {
        // xorshift never leaves zero, so zero is replaced.
        Jitter { state: if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed } }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform pick in `[delay / 2, delay]`, to the nanosecond.
    fn upper_half(&mut self, delay: Duration) -> Duration {
        let nanos = delay.as_nanos().min(u64::MAX as u128) as u64;
        let half = nanos / 2;
        let spread = nanos - half;
        let offset = if spread == 0 { 0 } else { self.next_u64() % (spread + 1) };
        Duration::from_nanos(half + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let delays: Vec<u64> = (0..5).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, vec![500, 1000, 2000, 3000, 3000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn jittered_delays_stay_in_the_upper_half_of_each_step() {
        for _ in 0..20 {
            let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10)).with_jitter();
            let steps = [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000];
            for step in steps {
                let step = Duration::from_millis(step);
                let delay = backoff.next_delay();
                assert!(delay >= step / 2 && delay <= step, "{delay:?} outside [{:?}, {step:?}]", step / 2);
            }
        }
    }

    #[test]
    fn jitter_spreads_senders_apart() {
        let mut jitter = Jitter::seeded(42);
        let picks: Vec<Duration> = (0..1000).map(|_| jitter.upper_half(Duration::from_secs(2))).collect();
        let (low, high) = (picks.iter().min().unwrap(), picks.iter().max().unwrap());
        assert!(*low >= Duration::from_secs(1) && *high <= Duration::from_secs(2));
        assert!(*low < Duration::from_millis(1100) && *high > Duration::from_millis(1900), "{low:?}..{high:?}");
        let below_middle = picks.iter().filter(|pick| **pick < Duration::from_millis(1500)).count();
        assert!((400..600).contains(&below_middle), "{below_middle} of 1000 below the middle");
        let first = |seed| Jitter::seeded(seed).upper_half(Duration::from_secs(2));
        assert_ne!(first(1), first(2), "two seeds, two delays");
    }

    #[test]
    fn a_zero_delay_or_seed_is_harmless() {
        assert_eq!(Jitter::seeded(0).upper_half(Duration::ZERO), Duration::ZERO);
        assert!(Jitter::seeded(7).upper_half(Duration::from_nanos(1)) <= Duration::from_nanos(1));
        assert_ne!(Jitter::seeded(0).next_u64(), 0);
    }
}
