//! The `signature` member of a recording's metadata: how `SigningKey::sign`
//! writes it and how `verify` reads it back.
//!
//! ```json
//! "signature": {"alg": "ed25519", "key_id": "<16 hex digits>", "value": "<base64 of 64 bytes>"}
//! ```
//!
//! `value` is the Ed25519 signature (standard base64, with padding) of the
//! metadata's canonical form, which leaves this member out.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::Signature;
use serde_json::{json, Map, Value};

use super::canonical::{canonical_object, first_non_integer};
use super::keys::{IntegrityError, SigningKey, KEY_ID_LENGTH};
use super::verify::VerifyError;

/// The metadata member that holds the signature.
pub const SIGNATURE_MEMBER: &str = "signature";
/// The only signature algorithm: `alg` of the signature member.
pub const ALGORITHM: &str = "ed25519";

impl SigningKey {
    /// Signs a recording's metadata in place: sets its `signature` member
    /// (replacing any) to the signature of its canonical form. Refuses a
    /// value that is not an object, or that holds a number other than an
    /// integer (which the canonical form cannot carry the same way in every
    /// language).
    pub fn sign(&self, metadata: &mut Value) -> Result<(), IntegrityError> {
        let Some(members) = metadata.as_object_mut() else {
            return Err(IntegrityError::NotAnObject);
        };
        if let Some(at) = first_non_integer(members) {
            return Err(IntegrityError::NotAnInteger { at });
        }
        let signature = self.sign_bytes(&canonical_object(members));
        let member = json!({
            "alg": ALGORITHM,
            "key_id": self.key_id(),
            "value": BASE64_STANDARD.encode(signature.to_bytes()),
        });
        members.insert(SIGNATURE_MEMBER.into(), member);
        Ok(())
    }
}

/// A signature member, read and checked for form (not yet for validity).
pub(super) struct SignatureMember {
    pub key_id: String,
    pub signature: Signature,
}

impl SignatureMember {
    /// Reads the signature member among a metadata object's members; `None`
    /// when there is none.
    pub fn read(metadata: &Map<String, Value>) -> Result<Option<SignatureMember>, VerifyError> {
        let Some(member) = metadata.get(SIGNATURE_MEMBER) else {
            return Ok(None);
        };
        let malformed = |field: &str, problem: &str| VerifyError::Malformed {
            field: format!("{SIGNATURE_MEMBER}{field}"),
            problem: problem.into(),
        };
        if !member.is_object() {
            return Err(malformed("", "expected an object with alg, key_id and value"));
        }
        match member.get("alg").and_then(Value::as_str) {
            Some(ALGORITHM) => {}
            Some(_) => return Err(malformed(".alg", "unsupported algorithm: expected \"ed25519\"")),
            None => return Err(malformed(".alg", "missing, or not a string")),
        }
        let key_id = member
            .get("key_id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(".key_id", "missing, or not a string"))?;
        if !super::is_lowercase_hex(key_id, KEY_ID_LENGTH) {
            return Err(malformed(".key_id", "expected 16 lowercase hex digits"));
        }
        let value = member
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(".value", "missing, or not a string"))?;
        let bytes = BASE64_STANDARD.decode(value).map_err(|_| malformed(".value", "not valid base64"))?;
        let bytes: [u8; 64] =
            bytes.as_slice().try_into().map_err(|_| malformed(".value", "expected 64 bytes in base64"))?;
        Ok(Some(SignatureMember { key_id: key_id.into(), signature: Signature::from_bytes(&bytes) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::canonical;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7; 32])
    }

    #[test]
    fn sign_adds_the_signature_member_and_keeps_everything_else() {
        let mut metadata = json!({"name": "n", "duration_ms": 3020});
        let unsigned = metadata.clone();
        key().sign(&mut metadata).unwrap();
        let member = &metadata[SIGNATURE_MEMBER];
        assert_eq!(member["alg"], "ed25519");
        assert_eq!(member["key_id"], key().key_id());
        assert_eq!(BASE64_STANDARD.decode(member["value"].as_str().unwrap()).unwrap().len(), 64);
        assert_eq!(canonical(&metadata), canonical(&unsigned));
        let read = SignatureMember::read(metadata.as_object().unwrap()).unwrap().unwrap();
        assert_eq!(read.key_id, key().key_id());
    }

    #[test]
    fn signing_again_replaces_the_signature() {
        let mut metadata = json!({"name": "n"});
        key().sign(&mut metadata).unwrap();
        let first = metadata.clone();
        key().sign(&mut metadata).unwrap();
        assert_eq!(metadata, first, "Ed25519 is deterministic, and the old signature is not signed");
        let other = SigningKey::from_seed(&[8; 32]);
        other.sign(&mut metadata).unwrap();
        assert_eq!(metadata[SIGNATURE_MEMBER]["key_id"], other.key_id());
    }

    #[test]
    fn sign_refuses_what_it_cannot_sign_the_same_everywhere() {
        for mut value in [json!([1]), json!("text"), Value::Null] {
            assert!(matches!(key().sign(&mut value), Err(IntegrityError::NotAnObject)));
        }
        let mut fraction = json!({"masked": [{"start_ms": 0.5}]});
        let error = key().sign(&mut fraction).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the metadata to sign holds a number that is not an integer at masked[0].start_ms"
        );
        assert!(fraction.get(SIGNATURE_MEMBER).is_none());
    }

    #[test]
    fn malformed_signature_members_are_named() {
        let value = BASE64_STANDARD.encode([0u8; 64]);
        for (member, field) in [
            (json!("abc"), "signature"),
            (json!({"alg": "rsa", "key_id": "0123456789abcdef", "value": value}), "signature.alg"),
            (json!({"key_id": "0123456789abcdef", "value": value}), "signature.alg"),
            (json!({"alg": "ed25519", "key_id": 5, "value": value}), "signature.key_id"),
            (json!({"alg": "ed25519", "key_id": "0123456789ABCDEF", "value": value}), "signature.key_id"),
            (json!({"alg": "ed25519", "key_id": "0123456789abcdef", "value": "***"}), "signature.value"),
            (json!({"alg": "ed25519", "key_id": "0123456789abcdef", "value": "AAAA"}), "signature.value"),
            (json!({"alg": "ed25519", "key_id": "0123456789abcdef"}), "signature.value"),
        ] {
            let metadata = json!({ "signature": member });
            match SignatureMember::read(metadata.as_object().unwrap()) {
                Err(VerifyError::Malformed { field: found, .. }) => assert_eq!(found, field, "{member}"),
                Err(other) => panic!("{member}: {other}"),
                Ok(_) => panic!("{member}: accepted"),
            }
        }
        assert!(SignatureMember::read(json!({"name": "n"}).as_object().unwrap()).unwrap().is_none());
    }
}
