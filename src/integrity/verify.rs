//! Checking a delivered recording: its audio against the metadata's
//! `sha256`, and the metadata against its `signature` with a public key.
//! `callrec verify` runs this on files; a receiver in another language does
//! the same steps (README, "Verifying a recording").

use serde_json::{Map, Value};

use super::canonical::{canonical_object, first_non_integer};
use super::keys::PublicKey;
use super::signature::SignatureMember;
use super::{is_lowercase_hex, sha256_hex};

/// The metadata member that holds the SHA-256 of the delivered audio bytes.
pub const HASH_MEMBER: &str = "sha256";

/// What `verify` found to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The audio's SHA-256 (lowercase hex), equal to the metadata's; `None`
    /// when no audio was given.
    pub sha256: Option<String>,
    pub signature: SignatureCheck,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Made by the given key over exactly this metadata.
    Valid { key_id: String },
    /// No key was given.
    NotChecked,
}

/// What does not hold, in one line that names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the metadata is not JSON: {0}")]
    NotJson(String),
    #[error("the metadata is not a JSON object")]
    NotAnObject,
    #[error("the metadata has no sha256 to check the audio against")]
    NoHash,
    #[error("the metadata's {field} is malformed: {problem}")]
    Malformed { field: String, problem: String },
    #[error("sha256 does not match the audio: the metadata says {expected}, the audio hashes to {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("the signature is missing: the metadata is not signed")]
    Unsigned,
    #[error("the signature's key_id {found} is not the given key's ({expected}): signed with another key")]
    UnknownKeyId { found: String, expected: String },
    #[error("the signature does not match the metadata (key_id {key_id}): changed after it was signed")]
    BadSignature { key_id: String },
}

/// Checks a recording: the metadata's `sha256` against `audio` when audio is
/// given, and its `signature` when a public key is given (a key with an
/// unsigned metadata is a failure). The signature is checked first: a
/// `sha256` means something only in metadata that is what was signed.
pub fn verify(
    metadata_json: &[u8],
    audio: Option<&[u8]>,
    public_key: Option<&PublicKey>,
) -> Result<VerifyReport, VerifyError> {
    let metadata: Value = serde_json::from_slice(metadata_json).map_err(|e| VerifyError::NotJson(e.to_string()))?;
    let Some(members) = metadata.as_object() else {
        return Err(VerifyError::NotAnObject);
    };
    let signature = match public_key {
        Some(key) => SignatureCheck::Valid { key_id: check_signature(members, key)? },
        None => SignatureCheck::NotChecked,
    };
    let sha256 = audio.map(|audio| check_hash(members, audio)).transpose()?;
    Ok(VerifyReport { sha256, signature })
}

/// The key_id of a signature `key` made over the metadata with these members.
fn check_signature(metadata: &Map<String, Value>, key: &PublicKey) -> Result<String, VerifyError> {
    let member = SignatureMember::read(metadata)?.ok_or(VerifyError::Unsigned)?;
    if member.key_id != key.key_id() {
        return Err(VerifyError::UnknownKeyId { found: member.key_id, expected: key.key_id().into() });
    }
    if let Some(at) = first_non_integer(metadata) {
        return Err(VerifyError::Malformed { field: at, problem: "a number that is not an integer".into() });
    }
    key.key
        .verify_strict(&canonical_object(metadata), &member.signature)
        .map_err(|_| VerifyError::BadSignature { key_id: member.key_id.clone() })?;
    Ok(member.key_id)
}

/// The audio's SHA-256, when it is the one the metadata holds.
fn check_hash(metadata: &Map<String, Value>, audio: &[u8]) -> Result<String, VerifyError> {
    let expected = metadata.get(HASH_MEMBER).ok_or(VerifyError::NoHash)?;
    let expected = expected.as_str().filter(|hash| is_lowercase_hex(hash, 64)).ok_or_else(|| {
        VerifyError::Malformed { field: HASH_MEMBER.into(), problem: "expected 64 lowercase hex digits".into() }
    })?;
    let actual = sha256_hex(audio);
    if actual != expected {
        return Err(VerifyError::HashMismatch { expected: expected.into(), actual });
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::integrity::SigningKey;

    const AUDIO: &[u8] = &[0xFF, 0x7F, 0x00, 0x80, 0x55, 0xAA, 0xFF, 0xFF];

    fn key() -> SigningKey {
        SigningKey::from_seed(&[42; 32])
    }

    /// Shaped like callrec's metadata, with a caller name outside ASCII.
    fn metadata(audio: &[u8]) -> Value {
        json!({
            "recording_id": "1ec81d61-e143-4406-be66-1b4dbf13e7a0",
            "name": "payment_confirmation",
            "channel_id": "1795489520.42",
            "channel_name": "PJSIP/lab-0000002a",
            "caller_number": "5550100",
            "caller_name": "Zoë Ångström",
            "started_at": "2026-11-24T03:05:20.125Z",
            "ended_at": "2026-11-24T03:05:23.548Z",
            "duration_ms": 3423,
            "end_reason": "stop",
            "format": "ulaw",
            "sample_rate": 8000,
            "channels": 1,
            "bytes": audio.len(),
            "missing_ms": 0,
            "masked": [{"start_ms": 1000, "end_ms": 2500}],
            "masked_ms": 1500,
            "silent": false,
            "sha256": sha256_hex(audio),
        })
    }

    fn signed(audio: &[u8]) -> Vec<u8> {
        let mut metadata = metadata(audio);
        key().sign(&mut metadata).unwrap();
        serde_json::to_vec_pretty(&metadata).unwrap()
    }

    fn edited(json: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut metadata: Value = serde_json::from_slice(json).unwrap();
        edit(&mut metadata);
        serde_json::to_vec(&metadata).unwrap()
    }

    #[test]
    fn a_signed_recording_verifies() {
        let report = verify(&signed(AUDIO), Some(AUDIO), Some(key().public_key())).unwrap();
        assert_eq!(report.sha256.as_deref(), Some(sha256_hex(AUDIO).as_str()));
        assert_eq!(report.signature, SignatureCheck::Valid { key_id: key().key_id().into() });
    }

    #[test]
    fn delivered_metadata_signs_and_verifies_as_written_to_disk() {
        let mut metadata = serde_json::to_value(crate::delivery::metadata::tests::sample()).unwrap();
        metadata[HASH_MEMBER] = json!(sha256_hex(AUDIO));
        key().sign(&mut metadata).unwrap();
        let pretty = serde_json::to_vec_pretty(&metadata).unwrap();
        assert!(verify(&pretty, Some(AUDIO), Some(key().public_key())).is_ok());
    }

    #[test]
    fn without_a_key_only_the_hash_is_checked() {
        let report = verify(&signed(AUDIO), Some(AUDIO), None).unwrap();
        assert_eq!(report.signature, SignatureCheck::NotChecked);
        let unsigned = serde_json::to_vec(&metadata(AUDIO)).unwrap();
        assert!(verify(&unsigned, Some(AUDIO), None).is_ok());
        let report = verify(&unsigned, None, None).unwrap();
        assert_eq!(report, VerifyReport { sha256: None, signature: SignatureCheck::NotChecked });
    }

    #[test]
    fn a_flipped_audio_byte_fails_the_hash() {
        let mut tampered = AUDIO.to_vec();
        tampered[3] ^= 0x01;
        let error = verify(&signed(AUDIO), Some(&tampered), Some(key().public_key())).unwrap_err();
        assert_eq!(error, VerifyError::HashMismatch { expected: sha256_hex(AUDIO), actual: sha256_hex(&tampered) });
        assert!(error.to_string().starts_with("sha256 does not match the audio"), "{error}");
        let shorter = verify(&signed(AUDIO), Some(&AUDIO[1..]), None).unwrap_err();
        assert!(matches!(shorter, VerifyError::HashMismatch { .. }), "{shorter}");
    }

    #[test]
    fn a_changed_metadata_field_fails_the_signature() {
        let json = signed(AUDIO);
        let edits: [(&str, Value); 6] = [
            ("duration_ms", json!(3424)),
            ("caller_number", json!("5550199")),
            ("caller_name", json!("Zoe Angstrom")),
            ("masked", json!([])),
            ("silent", json!(true)),
            ("extra", json!("added")),
        ];
        for (field, value) in edits {
            let tampered = edited(&json, |metadata| metadata[field] = value);
            let error = verify(&tampered, Some(AUDIO), Some(key().public_key())).unwrap_err();
            assert_eq!(error, VerifyError::BadSignature { key_id: key().key_id().into() }, "{field}");
            assert!(error.to_string().starts_with("the signature does not match"), "{error}");
        }
        let removed = edited(&json, |metadata| {
            metadata.as_object_mut().unwrap().remove("caller_name");
        });
        assert!(matches!(verify(&removed, None, Some(key().public_key())), Err(VerifyError::BadSignature { .. })));
    }

    #[test]
    fn new_audio_with_its_own_hash_fails_the_signature() {
        let other_audio = [0x11u8; 8];
        let tampered = edited(&signed(AUDIO), |metadata| metadata["sha256"] = json!(sha256_hex(&other_audio)));
        let error = verify(&tampered, Some(&other_audio), Some(key().public_key())).unwrap_err();
        assert!(matches!(error, VerifyError::BadSignature { .. }), "{error}");
    }

    #[test]
    fn the_order_and_layout_of_the_json_do_not_matter() {
        let compact = edited(&signed(AUDIO), |_| {});
        assert!(verify(&compact, Some(AUDIO), Some(key().public_key())).is_ok());
    }

    #[test]
    fn another_key_is_named_by_its_key_id() {
        let other = SigningKey::from_seed(&[43; 32]);
        let error = verify(&signed(AUDIO), Some(AUDIO), Some(other.public_key())).unwrap_err();
        assert_eq!(error, VerifyError::UnknownKeyId { found: key().key_id().into(), expected: other.key_id().into() });
        assert!(error.to_string().contains(key().key_id()), "{error}");
    }

    #[test]
    fn a_key_id_that_lies_fails_the_signature() {
        let other = SigningKey::from_seed(&[43; 32]);
        let mut metadata = metadata(AUDIO);
        other.sign(&mut metadata).unwrap();
        metadata["signature"]["key_id"] = json!(key().key_id());
        let json = serde_json::to_vec(&metadata).unwrap();
        let error = verify(&json, Some(AUDIO), Some(key().public_key())).unwrap_err();
        assert!(matches!(error, VerifyError::BadSignature { .. }), "{error}");
    }

    #[test]
    fn a_key_with_unsigned_metadata_is_a_missing_signature() {
        let unsigned = serde_json::to_vec(&metadata(AUDIO)).unwrap();
        let error = verify(&unsigned, Some(AUDIO), Some(key().public_key())).unwrap_err();
        assert_eq!(error, VerifyError::Unsigned);
        assert!(error.to_string().contains("signature is missing"));
    }

    #[test]
    fn malformed_metadata_is_named_and_never_panics() {
        let public = key().public_key().clone();
        let signed = signed(AUDIO);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "not JSON"),
            (b"{\"sha256\": ".to_vec(), "not JSON"),
            (vec![0xFF, 0xFE, b'{', b'}'], "not JSON"),
            (b"[1, 2]".to_vec(), "not a JSON object"),
            (b"\"text\"".to_vec(), "not a JSON object"),
            (b"{}".to_vec(), "signature is missing"),
            (edited(&signed, |m| m["signature"] = json!(null)), "signature is malformed"),
            (edited(&signed, |m| m["signature"]["value"] = json!("not base64!")), "signature.value is malformed"),
            (edited(&signed, |m| m["signature"]["alg"] = json!("ed448")), "signature.alg is malformed"),
            (edited(&signed, |m| m["signature"]["key_id"] = json!("x\ny")), "signature.key_id is malformed"),
            (edited(&signed, |m| m["duration_ms"] = json!(3423.5)), "duration_ms is malformed"),
        ];
        for (json, expected) in cases {
            let error = verify(&json, Some(AUDIO), Some(&public)).unwrap_err().to_string();
            assert!(error.contains(expected), "{}: {error}", String::from_utf8_lossy(&json));
            assert_eq!(error.lines().count(), 1, "{error}");
        }
        for (json, expected) in [
            (edited(&signed, |m| m["sha256"] = json!(5)), "sha256 is malformed"),
            (edited(&signed, |m| m["sha256"] = json!(sha256_hex(AUDIO).to_uppercase())), "sha256 is malformed"),
            (edited(&signed, |m| m["sha256"] = json!("abc")), "sha256 is malformed"),
            (edited(&signed, |m| m.as_object_mut().unwrap().clear()), "no sha256"),
        ] {
            let error = verify(&json, Some(AUDIO), None).unwrap_err().to_string();
            assert!(error.contains(expected), "{}: {error}", String::from_utf8_lossy(&json));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let public = key().public_key().clone();
        let signed = signed(AUDIO);
        for end in 0..signed.len() {
            let _ = verify(&signed[..end], Some(AUDIO), Some(&public));
        }
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..500 {
            let mut json = signed.clone();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % json.len() as u64) as usize;
            json[at] = (state >> 32) as u8;
            let _ = verify(&json, Some(AUDIO), Some(&public));
        }
        let deep = "[".repeat(10_000);
        assert!(verify(deep.as_bytes(), None, Some(&public)).is_err());
    }
}
