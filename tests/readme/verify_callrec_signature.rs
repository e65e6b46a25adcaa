use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Checks a `Callrec-Signature` header against the raw body; `now` is the
/// receiver's Unix time in seconds. Rejects signatures older than 5 minutes.
pub fn verify_callrec_signature(secret: &[u8], header: &str, body: &[u8], now: u64) -> Result<(), &'static str> {
    let (mut t, mut v1) = (None, None);
    for field in header.split(',') {
        match field.trim().split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return Err("malformed Callrec-Signature") };
    let at: u64 = t.parse().map_err(|_| "malformed Callrec-Signature")?;
    if now.abs_diff(at) > 5 * 60 {
        return Err("timestamp too old (or in the future): a replay?");
    }
    let v1: Vec<u8> = (0..v1.len())
        .step_by(2)
        .map(|i| v1.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<_>>()
        .ok_or("malformed Callrec-Signature")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).map_err(|_| "signature does not match")
}
