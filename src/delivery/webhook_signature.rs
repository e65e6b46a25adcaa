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
}
