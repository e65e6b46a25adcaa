//! `callrec receive`: a storage webhook that ships with callrec, the other
//! end of `delivery`. It takes callrec's deliveries (a recording as
//! `multipart/form-data`, a post-call summary as JSON), checks their
//! signature when it holds the webhook secret, takes each `Idempotency-Key`
//! once, stores them in a directory, and serves a page to find and listen to
//! the recordings.
//!
//! The path of a delivery: `ingest` (the POST: `webhook_signature::verify`,
//! then `check`, then `dedupe`) -> `store` (the directory) -> `library` (what
//! the page lists). The path back out: `server` (routes) -> `page` (the HTML)
//! and `player` (audio, as WAV made on the fly by `wav`, in the byte ranges
//! `range` reads; the picture `waveform` draws).

pub mod args;
pub mod check;
pub mod dedupe;
pub mod ingest;
pub mod library;
pub mod page;
pub mod player;
pub mod range;
pub mod server;
pub mod store;
pub mod wav;
pub mod waveform;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use serde::Serialize;

pub use args::{ReceiveArgs, ReceiveConfig};
pub use server::run;

use crate::config::Secret;
use dedupe::Keys;
use library::Library;
use store::Store;

/// What every request of the receiver shares.
pub struct Receiver {
    store: Store,
    library: RwLock<Library>,
    keys: Mutex<Keys>,
    /// Deliveries must be signed with it, when set.
    secret: Option<Secret>,
    counters: Counters,
}

impl Receiver {
    pub fn new(store: Store, found: store::Found, secret: Option<Secret>) -> Self {
        Receiver {
            store,
            library: RwLock::new(Library::new(found.listings)),
            keys: Mutex::new(Keys::new(found.keys)),
            secret,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// What the receiver did, since it started (`/healthz` shows them).
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    /// Recordings stored.
    pub recordings_stored: Counter,
    /// Post-call summaries stored.
    pub summaries_stored: Counter,
    /// Deliveries already stored, answered 200 and dropped.
    pub duplicates: Counter,
    /// Refused for a missing, wrong or stale signature (401).
    pub refused_signature: Counter,
    /// Refused as malformed (400).
    pub refused_malformed: Counter,
    /// Not stored for a storage error (500: callrec sends them again).
    pub storage_failures: Counter,
}

/// One monotonic count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.get())
    }
}
