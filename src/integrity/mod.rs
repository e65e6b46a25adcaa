//! Integrity: beside the data path, at its end. A delivered recording proves
//! itself with two members of its metadata: `sha256`, the hash of the audio
//! bytes as delivered (`sha256_hex`), and `signature`, an Ed25519 signature
//! over the metadata's canonical form (`SigningKey::sign`), which holds
//! `sha256` and so covers the audio too. `verify` checks both as any receiver
//! would; `command` is `callrec keygen`, which makes the key pair, and
//! `callrec verify`, which checks a delivered recording's files.

mod canonical;
pub mod command;
mod keys;
mod signature;
mod verify;

use sha2::{Digest, Sha256};

pub use canonical::canonical;
pub use keys::{write_key_pair, IntegrityError, PublicKey, SigningKey};
pub use signature::{ALGORITHM, SIGNATURE_MEMBER};
pub use verify::{verify, SignatureCheck, VerifyError, VerifyReport, HASH_MEMBER};

/// The SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    text
}

/// `length` lowercase hex digits, as `hex` writes them.
fn is_lowercase_hex(text: &str, length: usize) -> bool {
    text.len() == length && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex_of_the_bytes() {
        assert_eq!(sha256_hex(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hex_is_recognised_only_lowercase_and_whole() {
        assert!(is_lowercase_hex(&sha256_hex(b"abc"), 64));
        assert!(!is_lowercase_hex(&sha256_hex(b"abc").to_uppercase(), 64));
        assert!(!is_lowercase_hex("abc", 64));
        assert!(!is_lowercase_hex("0123456789abcdeg", 16));
    }
}
