//! The receiver's check of a recording delivery, before anything is stored
//! (sans-IO): the body's two parts (`metadata`, `audio`) as callrec sends
//! them (see `delivery::multipart`), a metadata document that names a
//! recording by a UUID, and audio that is the file the metadata describes
//! (its format, its length, its SHA-256).

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::library::Listing;
use crate::integrity::hex;

/// A delivery's parts, as they arrived.
#[derive(Debug, Default)]
pub struct Parts {
    pub metadata: Option<Vec<u8>>,
    pub audio: Option<Vec<u8>>,
    /// The audio part's file name (`<name>.ul` or `<name>.wav`).
    pub audio_file_name: Option<String>,
}

/// Why a delivery is refused for good (400): sending it again will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not multipart/form-data: {0}")]
    NotMultipart(String),
    #[error("no {0} part")]
    MissingPart(&'static str),
    #[error("the metadata is not a JSON object of a recording: {0}")]
    BadMetadata(String),
    #[error("recording_id {0:?} is not a UUID")]
    BadRecordingId(String),
    #[error("format {format:?} does not match the audio file {file_name:?}")]
    FormatMismatch { format: String, file_name: String },
    #[error("the audio is {got} bytes, the metadata says {expected}")]
    LengthMismatch { got: u64, expected: u64 },
    #[error("the audio's SHA-256 is not the metadata's sha256")]
    HashMismatch,
}

/// What a recording delivery stores: its listing (the recording id in its
/// canonical form), the metadata as delivered, and the audio.
#[derive(Debug)]
pub struct Checked {
    pub listing: Listing,
    pub metadata: Vec<u8>,
    pub audio: Vec<u8>,
}

/// Checks a delivery's parts.
pub fn recording(parts: Parts) -> Result<Checked, Refusal> {
    let metadata = parts.metadata.ok_or(Refusal::MissingPart("metadata"))?;
    let audio = parts.audio.ok_or(Refusal::MissingPart("audio"))?;
    let document: serde_json::Value =
        serde_json::from_slice(&metadata).map_err(|error| Refusal::BadMetadata(error.to_string()))?;
    if !document.is_object() {
        return Err(Refusal::BadMetadata("not an object".into()));
    }
    let mut listing: Listing =
        serde_json::from_value(document.clone()).map_err(|error| Refusal::BadMetadata(error.to_string()))?;
    let id =
        Uuid::parse_str(&listing.recording_id).map_err(|_| Refusal::BadRecordingId(listing.recording_id.clone()))?;
    listing.recording_id = id.hyphenated().to_string();
    if let Some(file_name) = &parts.audio_file_name {
        let extension = file_name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase());
        if extension.as_deref() != Some(listing.extension()) {
            return Err(Refusal::FormatMismatch { format: listing.format.clone(), file_name: file_name.clone() });
        }
    }
    if let Some(expected) = document.get("bytes").and_then(serde_json::Value::as_u64) {
        if expected != audio.len() as u64 {
            return Err(Refusal::LengthMismatch { got: audio.len() as u64, expected });
        }
    }
    if let Some(sha256) = document.get("sha256").and_then(serde_json::Value::as_str).filter(|hash| !hash.is_empty()) {
        if !sha256.eq_ignore_ascii_case(&hex(&Sha256::digest(&audio))) {
            return Err(Refusal::HashMismatch);
        }
    }
    Ok(Checked { listing, metadata, audio })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6F9619FF-8B86-D011-B42D-00C04FC964FF";

    fn parts(metadata: serde_json::Value, audio: &[u8], file_name: &str) -> Parts {
        Parts {
            metadata: Some(serde_json::to_vec(&metadata).unwrap()),
            audio: Some(audio.to_vec()),
            audio_file_name: Some(file_name.into()),
        }
    }

    #[test]
    fn a_whole_delivery_passes_with_its_id_made_canonical() {
        let sha = hex(&Sha256::digest(b"\xff\xfe"));
        let metadata = serde_json::json!({"recording_id": ID, "format": "ulaw", "bytes": 2, "sha256": sha});
        let checked = recording(parts(metadata, b"\xff\xfe", "call.ul")).unwrap();
        assert_eq!(checked.listing.recording_id, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
        assert_eq!(checked.audio, b"\xff\xfe");
        let wav = serde_json::json!({"recording_id": ID, "format": "wav"});
        assert!(recording(parts(wav, b"RIFF", "stereo.WAV")).is_ok());
    }

    #[test]
    fn what_does_not_hold_together_is_refused() {
        let cases = [
            (
                serde_json::json!({"recording_id": "../etc/passwd"}),
                "a.ul",
                Refusal::BadRecordingId("../etc/passwd".into()),
            ),
            (
                serde_json::json!({"recording_id": ID, "format": "wav"}),
                "a.ul",
                Refusal::FormatMismatch { format: "wav".into(), file_name: "a.ul".into() },
            ),
            (
                serde_json::json!({"recording_id": ID, "bytes": 3}),
                "a.ul",
                Refusal::LengthMismatch { got: 2, expected: 3 },
            ),
            (serde_json::json!({"recording_id": ID, "sha256": "00"}), "a.ul", Refusal::HashMismatch),
        ];
        for (metadata, file_name, refusal) in cases {
            assert_eq!(recording(parts(metadata, b"\xff\xfe", file_name)).unwrap_err(), refusal);
        }
        let not_json = Parts { metadata: Some(b"{".to_vec()), audio: Some(vec![]), audio_file_name: None };
        assert!(matches!(recording(not_json), Err(Refusal::BadMetadata(_))));
        let array = Parts { metadata: Some(b"[1]".to_vec()), audio: Some(vec![]), audio_file_name: None };
        assert!(matches!(recording(array), Err(Refusal::BadMetadata(_))));
        let wrong_type =
            Parts { metadata: Some(br#"{"duration_ms":"long"}"#.to_vec()), audio: Some(vec![]), audio_file_name: None };
        assert!(matches!(recording(wrong_type), Err(Refusal::BadMetadata(_))));
        assert_eq!(recording(Parts::default()).unwrap_err(), Refusal::MissingPart("metadata"));
        let no_audio = Parts { metadata: Some(b"{}".to_vec()), ..Parts::default() };
        assert_eq!(recording(no_audio).unwrap_err(), Refusal::MissingPart("audio"));
    }
}
