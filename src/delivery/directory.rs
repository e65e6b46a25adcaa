//! The output directory: the embedded default destination, and the fallback
//! when the webhook never takes a recording. Each recording is
//! `<recording_id>.ul` (raw μ-law) or `<recording_id>.wav` beside
//! `<recording_id>.json` (its metadata);
//! the JSON is written last, so its presence means the pair is complete.

use std::fmt;
use std::path::{Path, PathBuf};

use super::FinishedRecording;

#[derive(Debug, Clone)]
pub struct Directory {
    path: PathBuf,
}

impl Directory {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Directory { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the recording and its metadata; returns the audio file's path.
    pub async fn write(&self, recording: &FinishedRecording) -> std::io::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.path).await?;
        let id = recording.metadata.recording_id;
        let audio = self.path.join(format!("{id}.{}", recording.format.extension()));
        let metadata = self.path.join(format!("{id}.json"));
        let json = serde_json::to_vec_pretty(&recording.metadata).map_err(std::io::Error::other)?;
        write_atomically(&audio, &recording.audio).await?;
        write_atomically(&metadata, &json).await?;
        Ok(audio)
    }
}

impl Directory {
    /// Writes one more file (a post-call summary) into the directory.
    pub async fn write_file(&self, name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.path).await?;
        let path = self.path.join(name);
        write_atomically(&path, contents).await?;
        Ok(path)
    }
}

impl fmt::Display for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path.display().fmt(f)
    }
}

/// Writes next to the target, flushes, then renames (see `durable`): readers
/// never see half a file, and a written file survives a crash.
async fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let (path, contents) = (path.to_path_buf(), contents.to_vec());
    tokio::task::spawn_blocking(move || super::durable::write(&path, &contents, false))
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Metadata;
    use crate::recording::encode::AudioFormat;
    use crate::session::EndReason;

    #[tokio::test]
    async fn writes_audio_and_metadata_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let directory = Directory::new(dir.path().join("nested/recordings"));
        let metadata = Metadata {
            recording_id: uuid::Uuid::new_v4(),
            end_reason: EndReason::Hangup,
            ..crate::delivery::metadata::tests::sample()
        };
        let recording =
            FinishedRecording { metadata: metadata.clone(), audio: vec![0xFF; 8].into(), format: AudioFormat::Ulaw };
        let path = directory.write(&recording).await.unwrap();
        assert_eq!(path, directory.path().join(format!("{}.ul", metadata.recording_id)));
        assert_eq!(std::fs::read(&path).unwrap(), vec![0xFF; 8]);
        let json = std::fs::read(path.with_extension("json")).unwrap();
        let back: Metadata = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, metadata);
        let leftovers: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
