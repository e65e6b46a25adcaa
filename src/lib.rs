//! callrec: call recording for Asterisk.
//!
//! The data path, one module per step:
//! `markers` (dialplan bookends and their options) -> `ari` (events in, REST
//! out) -> `recorder` (the async driver) -> `session` (per-call logic,
//! sans-IO) -> `media` (RTP over UDP) -> `recording` (the in-memory μ-law
//! tracks, paused stretches, the delivered file) -> `delivery` (webhook or
//! output directory). Beside it, `integrity` lets a delivered recording prove
//! itself: the audio's SHA-256 and an Ed25519 signature of its metadata, and
//! their checks (`callrec keygen`, `callrec verify`). `metrics` and `health`
//! tell how the whole path is doing (`/metrics`, `/healthz`, `/readyz`), and
//! `bench` measures the media path (`callrec-bench`, `scripts/bench.sh`). At
//! the far end of delivery, `receive` is a storage webhook that ships with
//! callrec (`callrec receive`): it stores deliveries and serves a page to
//! play them.

pub mod ari;
pub mod backoff;
pub mod bench;
pub mod config;
pub mod control;
pub mod convert;
pub mod delivery;
pub mod health;
pub mod integrity;
pub mod markers;
pub mod media;
pub mod memory;
pub mod metrics;
pub mod parties;
pub mod receive;
pub mod recorder;
pub mod recording;
pub mod resources;
pub mod service;
pub mod session;
pub mod ulaw;

/// What every property test runs with: `cases` cases, a generator that is
/// quick in a debug build, and no regression files written anywhere.
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..proptest::test_runner::Config::default()
    }
}
