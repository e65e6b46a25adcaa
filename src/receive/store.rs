//! The receiver's storage, after a delivery is verified and admitted: the
//! directory it owns. Each recording is `<recording_id>.ul` or `.wav` beside
//! `<recording_id>.json` (its metadata, as delivered), the layout of
//! `callrec run --output-dir`; each file is written to a temporary name,
//! flushed and renamed (see `delivery::durable`), the JSON last, so that a
//! JSON means a whole recording. Post-call summaries go to `post-call/`,
//! waveform pictures are kept as `<recording_id>.waveform.svg` once drawn.
//! Blocking: call from a blocking thread.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::library::Listing;
use crate::delivery::durable;

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// What the directory held at start.
#[derive(Debug, Default)]
pub struct Found {
    pub listings: Vec<Listing>,
    /// The keys of everything stored: recording ids and summaries' keys.
    pub keys: Vec<String>,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory if needed and reads what it holds. A metadata
    /// file that cannot be read, or whose audio is missing, is logged and
    /// left out.
    pub fn open(&self) -> io::Result<Found> {
        fs::create_dir_all(self.summaries())?;
        let mut found = Found::default();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let listing = fs::read(&path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| serde_json::from_slice::<Listing>(&bytes).map_err(|error| error.to_string()));
            match listing {
                Ok(listing) if self.audio_path(&listing).is_file() => {
                    found.keys.push(listing.recording_id.clone());
                    found.listings.push(listing);
                }
                Ok(_) => warn!(path = %path.display(), "metadata without its audio file: not listed"),
                Err(error) => warn!(path = %path.display(), %error, "unreadable metadata: not listed"),
            }
        }
        for entry in fs::read_dir(self.summaries())? {
            let path = entry?.path();
            if let Some(key) = path.file_name().and_then(|name| name.to_str()).and_then(|n| n.strip_suffix(".json")) {
                found.keys.push(key.to_string());
            }
        }
        Ok(found)
    }

    /// Writes a recording: the audio, then its metadata.
    pub fn write_recording(&self, listing: &Listing, audio: &[u8], metadata: &[u8]) -> io::Result<()> {
        durable::write(&self.audio_path(listing), audio, false)?;
        durable::write(&self.metadata_path(&listing.recording_id), metadata, false)
    }

    /// Writes a post-call summary under its key.
    pub fn write_summary(&self, key: &str, json: &[u8]) -> io::Result<()> {
        durable::write(&self.summaries().join(format!("{}.json", file_safe(key))), json, false)
    }

    /// `recording_id` must be one `Listing::recording_id` checked as a UUID.
    pub fn metadata_path(&self, recording_id: &str) -> PathBuf {
        self.dir.join(format!("{recording_id}.json"))
    }

    pub fn audio_path(&self, listing: &Listing) -> PathBuf {
        self.dir.join(format!("{}.{}", listing.recording_id, listing.extension()))
    }

    pub fn waveform_path(&self, recording_id: &str) -> PathBuf {
        self.dir.join(format!("{recording_id}.waveform.svg"))
    }

    fn summaries(&self) -> PathBuf {
        self.dir.join("post-call")
    }
}

/// A key as a file name: kept from leaving the directory whatever it holds.
pub fn file_safe(key: &str) -> String {
    let safe: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    match safe.trim_start_matches('.') {
        "" => "key".to_string(),
        safe => safe.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(id: &str, format: &str) -> Listing {
        Listing { recording_id: id.into(), format: format.into(), ..Listing::default() }
    }

    #[test]
    fn what_is_written_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("received"));
        assert!(store.open().unwrap().listings.is_empty());
        let mono = listing("11111111-1111-1111-1111-111111111111", "ulaw");
        store
            .write_recording(&mono, b"\xff\xff", br#"{"recording_id":"11111111-1111-1111-1111-111111111111"}"#)
            .unwrap();
        let stereo = listing("22222222-2222-2222-2222-222222222222", "wav");
        let json =
            serde_json::to_vec(&serde_json::json!({"recording_id": stereo.recording_id, "format": "wav"})).unwrap();
        store.write_recording(&stereo, b"RIFF", &json).unwrap();
        store.write_summary("post-call-1764.1", b"{}").unwrap();
        // A metadata file without audio, and one that is not JSON.
        fs::write(store.metadata_path("33333333-3333-3333-3333-333333333333"), br#"{"recording_id":"3"}"#).unwrap();
        fs::write(store.dir().join("broken.json"), b"{").unwrap();

        let mut found = store.open().unwrap();
        found.keys.sort();
        assert_eq!(found.keys, [&mono.recording_id, &stereo.recording_id, "post-call-1764.1"]);
        assert_eq!(found.listings.len(), 2);
        assert_eq!(fs::read(store.audio_path(&stereo)).unwrap(), b"RIFF");
        assert!(store.audio_path(&stereo).ends_with("22222222-2222-2222-2222-222222222222.wav"));
    }

    #[test]
    fn keys_stay_inside_the_directory() {
        assert_eq!(file_safe("post-call-1764.1"), "post-call-1764.1");
        assert_eq!(file_safe("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_safe(".."), "key");
    }
}
