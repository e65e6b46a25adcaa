//! Ed25519 key pairs and their files. `callrec keygen` writes them; the
//! private key signs a recording's metadata (`SigningKey::sign`), the public
//! one checks it in `callrec verify` or at any receiver.
//!
//! Each file is one line of text: a label, a space, and the key in standard
//! base64 (with padding):
//! - private: `callrec-ed25519-private <base64 of the 32-byte seed>`
//! - public: `callrec-ed25519-public <base64 of the 32-byte public key>`
//!
//! A key's `key_id` is the first 16 hex digits of the SHA-256 of its 32-byte
//! public key. No error or `Debug` output ever shows key material.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signature, VerifyingKey};
use zeroize::Zeroizing;

pub(super) const PRIVATE_LABEL: &str = "callrec-ed25519-private";
pub(super) const PUBLIC_LABEL: &str = "callrec-ed25519-public";

/// Length of a `key_id`, in hex digits.
pub(super) const KEY_ID_LENGTH: usize = 16;

/// Why a key could not be made, read, written or used, in one line.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {problem}")]
    KeyFile { path: PathBuf, problem: String },
    #[error("{path} already exists: a key file is never overwritten")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(getrandom::Error),
    #[error("the metadata to sign is not a JSON object")]
    NotAnObject,
    #[error("the metadata to sign holds a number that is not an integer at {at}")]
    NotAnInteger { at: String },
}

/// The private half: signs metadata. Its `Debug` shows the `key_id` only.
pub struct SigningKey {
    pub(super) key: ed25519_dalek::SigningKey,
    public: PublicKey,
}

/// The public half: checks signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(super) key: VerifyingKey,
    key_id: String,
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<SigningKey, IntegrityError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(IntegrityError::Random)?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// Reads a private key file (`callrec-ed25519-private <base64 seed>`).
    pub fn load(path: &Path) -> Result<SigningKey, IntegrityError> {
        let seed = read_key_file(path, PRIVATE_LABEL)?;
        Ok(SigningKey::from_seed(&seed))
    }

    pub(super) fn from_seed(seed: &[u8; 32]) -> SigningKey {
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying_key(key.verifying_key());
        SigningKey { key, public }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn key_id(&self) -> &str {
        self.public.key_id()
    }

    pub(super) fn sign_bytes(&self, message: &[u8]) -> Signature {
        use ed25519_dalek::Signer;
        self.key.sign(message)
    }

    /// The private key file's line; wiped from memory when dropped.
    fn private_file_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.key.to_bytes());
        Zeroizing::new(format!("{PRIVATE_LABEL} {}\n", BASE64_STANDARD.encode(seed.as_ref())))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Reads a public key file (`callrec-ed25519-public <base64 key>`).
    pub fn load(path: &Path) -> Result<PublicKey, IntegrityError> {
        let bytes = read_key_file(path, PUBLIC_LABEL)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| IntegrityError::KeyFile {
            path: path.into(),
            problem: "not a valid Ed25519 public key".into(),
        })?;
        Ok(PublicKey::from_verifying_key(key))
    }

    fn from_verifying_key(key: VerifyingKey) -> PublicKey {
        let key_id = super::sha256_hex(key.as_bytes())[..KEY_ID_LENGTH].to_string();
        PublicKey { key, key_id }
    }

    /// The first 16 hex digits of the SHA-256 of the 32-byte public key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key file's line.
    fn file_text(&self) -> String {
        format!("{PUBLIC_LABEL} {}\n", BASE64_STANDARD.encode(self.key.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Writes `key` to `private` (mode 0600 from its creation) and its public
/// half to `private` + `.pub` (mode 0644); returns the public file's path.
/// Neither file may exist; when the second cannot be written the first is
/// removed again.
pub fn write_key_pair(key: &SigningKey, private: &Path) -> Result<PathBuf, IntegrityError> {
    let public = public_path(private);
    for path in [private, public.as_path()] {
        if path.symlink_metadata().is_ok() {
            return Err(IntegrityError::Exists { path: path.into() });
        }
    }
    write_new_file(private, key.private_file_text().as_bytes(), 0o600)?;
    if let Err(error) = write_new_file(&public, key.public_key().file_text().as_bytes(), 0o644) {
        let _ = fs::remove_file(private);
        return Err(error);
    }
    Ok(public)
}

/// `FILE.pub` beside `FILE`.
fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Creates `path` (never replacing a file) with `mode` from the start, so it
/// is never readable more widely even for a moment, then sets `mode` exactly
/// (the umask may have narrowed it).
fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), IntegrityError> {
    let write_error = |source: io::Error| match source.kind() {
        io::ErrorKind::AlreadyExists => IntegrityError::Exists { path: path.into() },
        _ => IntegrityError::Write { path: path.into(), source },
    };
    let mut file = create_new(path, mode).map_err(write_error)?;
    let written = file.write_all(contents).and_then(|()| set_mode(&file, mode)).and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(write_error(source));
    }
    Ok(())
}

#[cfg(unix)]
fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create_new(true).mode(mode).open(path)
}

#[cfg(not(unix))]
fn create_new(path: &Path, _mode: u32) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// The 32 key bytes of a key file whose label is `label`. Problems are named
/// without ever quoting the file's contents.
fn read_key_file(path: &Path, label: &str) -> Result<Zeroizing<[u8; 32]>, IntegrityError> {
    let bytes = read_small_file(path)?;
    let problem = |problem: String| IntegrityError::KeyFile { path: path.into(), problem };
    if bytes.len() > KEY_FILE_LIMIT {
        return Err(problem(format!("too large for a key file (more than {KEY_FILE_LIMIT} bytes)")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| problem(not_a_key_file(label)))?;
    let line = text.trim_end();
    let (found, encoded) = line.split_once(' ').ok_or_else(|| problem(not_a_key_file(label)))?;
    if found != label {
        return Err(problem(wrong_label(found, label)));
    }
    if encoded.contains(char::is_whitespace) {
        return Err(problem(not_a_key_file(label)));
    }
    let decoded =
        Zeroizing::new(BASE64_STANDARD.decode(encoded).map_err(|_| problem("the key is not valid base64".into()))?);
    let mut key = Zeroizing::new([0u8; 32]);
    if decoded.len() != key.len() {
        return Err(problem(format!("the key is {} bytes, expected 32", decoded.len())));
    }
    key.copy_from_slice(&decoded);
    Ok(key)
}

/// A key file is one short line; anything longer is not one (and is not
/// read whole: `--key /dev/zero` ends at once).
const KEY_FILE_LIMIT: usize = 1024;

/// Up to one byte more than `KEY_FILE_LIMIT` of `path`; wiped from memory
/// when dropped.
fn read_small_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, IntegrityError> {
    let read_error = |source: io::Error| IntegrityError::Read { path: path.into(), source };
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_FILE_LIMIT + 1));
    file.take(KEY_FILE_LIMIT as u64 + 1).read_to_end(&mut bytes).map_err(read_error)?;
    Ok(bytes)
}

fn not_a_key_file(label: &str) -> String {
    format!("not a callrec key file: expected one line `{label} <base64>`")
}

fn wrong_label(found: &str, expected: &str) -> String {
    match (found, expected) {
        (PUBLIC_LABEL, PRIVATE_LABEL) => "holds a public key where a private key belongs".into(),
        (PRIVATE_LABEL, PUBLIC_LABEL) => "holds a private key where a public key belongs: give the .pub file".into(),
        _ => not_a_key_file(expected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, section 7.1, test 1.
    const RFC_SEED: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    const RFC_PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn key_files_load_and_the_key_id_follows_the_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let private = write(dir.path(), "k", &format!("{PRIVATE_LABEL} {RFC_SEED}\n"));
        let public = write(dir.path(), "k.pub", &format!("{PUBLIC_LABEL} {RFC_PUBLIC}\n"));
        let key = SigningKey::load(&private).unwrap();
        let public = PublicKey::load(&public).unwrap();
        assert_eq!(key.public_key(), &public);
        let public_bytes = BASE64_STANDARD.decode(RFC_PUBLIC).unwrap();
        assert_eq!(key.key_id(), &super::super::sha256_hex(&public_bytes)[..16]);
        assert_eq!(public.file_text(), format!("{PUBLIC_LABEL} {RFC_PUBLIC}\n"));
        assert_eq!(key.private_file_text().as_str(), format!("{PRIVATE_LABEL} {RFC_SEED}\n"));
    }

    #[test]
    fn a_written_pair_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let private = dir.path().join("signing");
        let public = write_key_pair(&key, &private).unwrap();
        assert_eq!(public, dir.path().join("signing.pub"));
        assert_eq!(SigningKey::load(&private).unwrap().key_id(), key.key_id());
        assert_eq!(&PublicKey::load(&public).unwrap(), key.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(&public).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let private = write(dir.path(), "taken", "keep me");
        let error = write_key_pair(&key, &private).unwrap_err();
        assert!(matches!(error, IntegrityError::Exists { .. }), "{error}");
        assert_eq!(fs::read_to_string(&private).unwrap(), "keep me");
        assert!(!dir.path().join("taken.pub").exists());

        let free = dir.path().join("free");
        write(dir.path(), "free.pub", "keep me too");
        let error = write_key_pair(&key, &free).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}.pub already exists: a key file is never overwritten", free.display())
        );
        assert!(!free.exists(), "no half pair is left");
    }

    #[test]
    fn a_pair_in_a_missing_directory_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let error = write_key_pair(&key, &dir.path().join("no/such/key")).unwrap_err();
        assert!(matches!(error, IntegrityError::Write { .. }), "{error}");
    }

    #[test]
    fn bad_key_files_are_named_without_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let secret_looking = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
        for (text, expected) in [
            (format!("{PRIVATE_LABEL} {secret_looking}"), "not valid base64"),
            (format!("{PRIVATE_LABEL} {}", BASE64_STANDARD.encode([7u8; 31])), "the key is 31 bytes, expected 32"),
            (format!("{PUBLIC_LABEL} {RFC_PUBLIC}"), "holds a public key where a private key belongs"),
            (format!("ssh-ed25519 {secret_looking}"), "not a callrec key file"),
            (format!("{PRIVATE_LABEL} {RFC_SEED}\n{PRIVATE_LABEL} {RFC_SEED}"), "not a callrec key file"),
            (String::new(), "not a callrec key file"),
            (secret_looking.to_string(), "not a callrec key file"),
        ] {
            let path = write(dir.path(), "bad", &text);
            let error = SigningKey::load(&path).unwrap_err().to_string();
            assert!(error.starts_with(&path.display().to_string()), "{error}");
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains(secret_looking) && !error.contains(RFC_SEED), "{error}");
        }
        let huge = write(dir.path(), "huge", &format!("{PRIVATE_LABEL} {}", "A".repeat(5000)));
        assert!(SigningKey::load(&huge).unwrap_err().to_string().contains("too large for a key file"));
        #[cfg(unix)]
        assert!(PublicKey::load(Path::new("/dev/zero")).unwrap_err().to_string().contains("too large"));
        let binary = dir.path().join("binary");
        fs::write(&binary, [0xFF, 0xFE, 0x00]).unwrap();
        assert!(SigningKey::load(&binary).unwrap_err().to_string().contains("not a callrec key file"));
        let private = write(dir.path(), "private", &format!("{PRIVATE_LABEL} {RFC_SEED}\n"));
        let error = PublicKey::load(&private).unwrap_err().to_string();
        assert!(error.contains("holds a private key where a public key belongs"), "{error}");
        assert!(!error.contains(RFC_SEED));
        let missing = SigningKey::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, IntegrityError::Read { .. }), "{missing}");
    }

    #[test]
    fn a_public_key_that_is_no_curve_point_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // y = 2 has no x on the curve.
        let mut bytes = [0u8; 32];
        bytes[0] = 2;
        let path = write(dir.path(), "k.pub", &format!("{PUBLIC_LABEL} {}", BASE64_STANDARD.encode(bytes)));
        let error = PublicKey::load(&path).unwrap_err().to_string();
        assert!(error.contains("not a valid Ed25519 public key"), "{error}");
    }

    #[test]
    fn debug_shows_the_key_id_and_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let private = write(dir.path(), "k", &format!("{PRIVATE_LABEL} {RFC_SEED}\n"));
        let key = SigningKey::load(&private).unwrap();
        let debug = format!("{key:?} {:?}", key.public_key());
        assert!(debug.contains(key.key_id()), "{debug}");
        let seed = BASE64_STANDARD.decode(RFC_SEED).unwrap();
        let seed_hex = super::super::hex(&seed);
        assert!(!debug.contains(RFC_SEED) && !debug.contains(&seed_hex[..8]), "{debug}");
        assert!(!debug.contains(&format!("{:?}", &seed[..4])), "{debug}");
    }
}
