//! Delivery's proof of origin: with a webhook secret, every attempt carries
//! `Callrec-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the HMAC keyed
//! with the secret over `"<t>."` followed by the request body's exact bytes.
//! A receiver holding the secret recomputes it to know the request came from
//! callrec and its body is whole, and rejects old `t` to stop replays.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::integrity::hex;

/// The header's name.
pub const HEADER: &str = "Callrec-Signature";

/// The header's value for a body sent in `pieces` (back to back) at `t`.
pub fn signature_header(secret: &Secret, t: u64, pieces: &[Bytes]) -> String {
    let prefix = format!("{t}.");
    let parts = std::iter::once(prefix.as_bytes()).chain(pieces.iter().map(|piece| piece.as_ref()));
    format!("t={t},v1={}", hmac_sha256_hex(secret.expose().as_bytes(), parts))
}

/// How far a signature's `t` may be from the receiver's clock, either way.
pub const TOLERANCE_SECONDS: u64 = 5 * 60;

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Callrec-Signature header")]
    Missing,
    #[error("malformed Callrec-Signature")]
    Malformed,
    #[error("timestamp too old (or in the future): a replay?")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a `Callrec-Signature` header (`None`: absent) against the raw body
/// at `now` (Unix seconds): the HMAC in constant time, then `t` within
/// `TOLERANCE_SECONDS`.
pub fn verify(secret: &Secret, header: Option<&str>, body: &[u8], now: u64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let (mut t, mut v1) = (None, None);
    for field in header.split(',') {
        match field.trim().split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return Err(SignatureError::Malformed) };
    let at: u64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    let v1 = unhex(v1).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).map_err(|_| SignatureError::Mismatch)?;
    if now.abs_diff(at) > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Lowercase or uppercase hex to bytes; `None` for anything else.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// HMAC-SHA256 of the concatenation of `parts`, as lowercase hex.
fn hmac_sha256_hex<'a>(key: &[u8], parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in parts {
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hmac_sha256_hex(b"Jefe", [&b"what do ya want for nothing?"[..]]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The same bytes in pieces give the same HMAC.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", [&b"what do ya "[..], b"", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_header_signs_the_time_then_the_body() {
        let secret = Secret::new("whsec_test".into());
        let body = [Bytes::from_static(b"{\"hello\":"), Bytes::from_static(b"\"world\"}")];
        // hmac.new(b"whsec_test", b'1764000000.{"hello":"world"}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature_header(&secret, 1_764_000_000, &body),
            "t=1764000000,v1=e93957e398508df943e7bdb91537296bc64865e33de35a04255ad5ac507bf8d1"
        );
        let later = signature_header(&secret, 1_764_000_001, &body);
        assert!(later.starts_with("t=1764000001,v1="), "{later}");
        assert!(!later.ends_with("e93957e398508df943e7bdb91537296bc64865e33de35a04255ad5ac507bf8d1"), "t is signed");
    }

    #[test]
    fn verify_accepts_what_signature_header_signs_and_nothing_else() {
        let secret = Secret::new("whsec_test".into());
        let pieces = [Bytes::from_static(b"{\"hello\":"), Bytes::from_static(b"\"world\"}")];
        let body = pieces.concat();
        let header = signature_header(&secret, 1_764_000_000, &pieces);
        assert_eq!(verify(&secret, Some(&header), &body, 1_764_000_000), Ok(()));
        assert_eq!(verify(&secret, Some(&header), &body, 1_764_000_000 + TOLERANCE_SECONDS), Ok(()));
        assert_eq!(verify(&secret, Some(&header), &body, 1_764_000_000 - TOLERANCE_SECONDS), Ok(()));
        assert_eq!(
            verify(&secret, Some(&header), &body, 1_764_000_000 + TOLERANCE_SECONDS + 1),
            Err(SignatureError::Stale)
        );
        assert_eq!(verify(&secret, Some(&header), b"{}", 1_764_000_000), Err(SignatureError::Mismatch));
        let other = Secret::new("whsec_other".into());
        assert_eq!(verify(&other, Some(&header), &body, 1_764_000_000), Err(SignatureError::Mismatch));
        assert_eq!(verify(&secret, None, &body, 0), Err(SignatureError::Missing));
        for malformed in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=0", "t=1,v1=zz"] {
            assert_eq!(verify(&secret, Some(malformed), &body, 1), Err(SignatureError::Malformed), "{malformed}");
        }
    }
}
