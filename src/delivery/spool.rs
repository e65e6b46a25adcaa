//! The spool, beside delivery (`--spool-dir`): a recording the webhook did
//! not take within its budget, or still undelivered when callrec stops, is
//! written here durably (one private file per recording: its format, its
//! metadata and its audio) and re-sent in the background and at the next
//! start-up, oldest first, then removed. A recording leaves the spool only
//! once delivered.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{durable, FinishedRecording, Metadata};
use crate::integrity;
use crate::markers::options::TargetName;
use crate::recording::encode::AudioFormat;

/// The first line of every spool file.
const MAGIC: &str = "callrec-spool 1";
const EXTENSION: &str = "spool";

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// Why a spool file could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a callrec spool file ({0})")]
    Malformed(&'static str),
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spool { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the recording into the spool durably; returns its file. Named
    /// by the time it was spooled, so that names sort oldest first.
    pub async fn store(&self, recording: &FinishedRecording, target: &str) -> std::io::Result<PathBuf> {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let name = format!("{:015}-{}.{EXTENSION}", since_epoch.as_millis(), recording.metadata.recording_id);
        let path = self.dir.join(name);
        let contents = encode(recording, target)?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || durable::write(&target, &contents, true))
            .await
            .map_err(std::io::Error::other)??;
        Ok(path)
    }

    /// The spooled recordings, oldest first.
    pub async fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if path.extension().is_some_and(|extension| extension == EXTENSION) {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    /// Reads a spooled recording back, with the name of its target.
    pub async fn load(path: &Path) -> Result<(FinishedRecording, String), SpoolError> {
        decode(Bytes::from(tokio::fs::read(path).await?))
    }

    /// Removes a recording once delivered.
    pub async fn remove(path: &Path) -> std::io::Result<()> {
        tokio::fs::remove_file(path).await
    }
}

/// `MAGIC`, the format's extension, the target's name, the metadata's
/// length, each on a line; then the metadata (JSON) and the audio.
fn encode(recording: &FinishedRecording, target: &str) -> std::io::Result<Vec<u8>> {
    let metadata = serde_json::to_vec(&recording.metadata).map_err(std::io::Error::other)?;
    let head = format!("{MAGIC}\n{}\n{target}\n{}\n", recording.format.extension(), metadata.len());
    let mut contents = Vec::with_capacity(head.len() + metadata.len() + recording.audio.len());
    contents.extend_from_slice(head.as_bytes());
    contents.extend_from_slice(&metadata);
    contents.extend_from_slice(&recording.audio);
    Ok(contents)
}

fn decode(contents: Bytes) -> Result<(FinishedRecording, String), SpoolError> {
    let mut rest = &contents[..];
    let mut line = || -> Result<&str, SpoolError> {
        let end = rest.iter().position(|&b| b == b'\n').ok_or(SpoolError::Malformed("no header"))?;
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| SpoolError::Malformed("header not text"))?;
        rest = &rest[end + 1..];
        Ok(text)
    };
    if line()? != MAGIC {
        return Err(SpoolError::Malformed("unknown header"));
    }
    let format = match line()? {
        "ul" => AudioFormat::Ulaw,
        "wav" => AudioFormat::Wav,
        _ => return Err(SpoolError::Malformed("unknown format")),
    };
    let target = line()?.to_string();
    if TargetName::parse(&target).is_none() {
        return Err(SpoolError::Malformed("bad target name"));
    }
    let length: usize = line()?.parse().map_err(|_| SpoolError::Malformed("bad metadata length"))?;
    let head = contents.len() - rest.len();
    let metadata = contents.get(head..head + length).ok_or(SpoolError::Malformed("cut short"))?;
    let metadata: Metadata = serde_json::from_slice(metadata).map_err(|_| SpoolError::Malformed("bad metadata"))?;
    let audio = contents.slice(head + length..);
    if integrity::sha256_hex(&audio) != metadata.sha256 {
        return Err(SpoolError::Malformed("the audio does not match its sha256"));
    }
    Ok((FinishedRecording { metadata, audio, format }, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(audio: &'static [u8]) -> FinishedRecording {
        let metadata = Metadata {
            recording_id: uuid::Uuid::new_v4(),
            sha256: integrity::sha256_hex(audio),
            ..crate::delivery::metadata::tests::sample()
        };
        FinishedRecording { metadata, audio: Bytes::from_static(audio), format: AudioFormat::Wav }
    }

    #[tokio::test]
    async fn a_spooled_recording_reads_back_whole_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        assert!(spool.pending().await.unwrap().is_empty(), "no directory yet: nothing pending");
        let (first, second) = (recording(b"RIFF\nfirst\n"), recording(b""));
        let first_path = spool.store(&first, "archive").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let second_path = spool.store(&second, "default").await.unwrap();
        std::fs::write(dir.path().join("spool/other.txt"), "not ours").unwrap();
        assert_eq!(spool.pending().await.unwrap(), vec![first_path.clone(), second_path.clone()]);
        let (back, target) = Spool::load(&first_path).await.unwrap();
        assert_eq!((back.metadata, back.audio, back.format), (first.metadata, first.audio, first.format));
        assert_eq!(target, "archive");
        assert_eq!(Spool::load(&second_path).await.unwrap().0.audio.len(), 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&first_path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        Spool::remove(&first_path).await.unwrap();
        assert_eq!(spool.pending().await.unwrap(), vec![second_path]);
    }

    #[test]
    fn damaged_files_are_refused_not_misread() {
        let good = encode(&recording(b"audio"), "default").unwrap();
        assert!(decode(Bytes::from(good.clone())).is_ok());
        for bad in [&b""[..], b"hello\n", &good[..20], &good[..good.len() - 1]] {
            assert!(decode(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        let mut other_format = good.clone();
        other_format[MAGIC.len() + 1] = b'x';
        assert!(decode(Bytes::from(other_format)).is_err());
    }
}
