//! `callrec keygen` and `callrec verify`: beside the data path, before and
//! after it. keygen makes the key pair recordings are signed with; verify checks a
//! delivered recording's files, found the way the output directory lays them
//! out (`<recording_id>.json` beside `<recording_id>.ul` or `.wav`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::keys::{write_key_pair, IntegrityError, PublicKey, SigningKey};
use super::verify::{verify, SignatureCheck, VerifyError};

/// `callrec keygen --out FILE`: writes a new key pair and returns what to
/// print.
pub fn keygen(private: &Path) -> Result<Vec<String>, IntegrityError> {
    let key = SigningKey::generate()?;
    let public = write_key_pair(&key, private)?;
    Ok(vec![
        format!("key_id {}", key.key_id()),
        format!("private key {} (keep it secret)", private.display()),
        format!("public key {}", public.display()),
    ])
}

/// Why `callrec verify` did not pass: either the recording does not prove
/// itself (exit code 1) or it could not be checked at all (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyCommandError {
    #[error("{metadata} (audio {audio}): {error}")]
    Failed { metadata: PathBuf, audio: PathBuf, error: VerifyError },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("no audio beside {metadata}: neither {ul} nor {wav} exists; name the audio after the metadata")]
    NoAudio { metadata: PathBuf, ul: PathBuf, wav: PathBuf },
    #[error("both {ul} and {wav} are beside {metadata}: name the audio to check after the metadata")]
    TwoAudios { metadata: PathBuf, ul: PathBuf, wav: PathBuf },
    #[error("--key {0}")]
    Key(IntegrityError),
}

impl VerifyCommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyCommandError::Failed { .. } => 1,
            _ => 2,
        }
    }
}

/// `callrec verify METADATA [AUDIO] [--key FILE.pub]`: checks the recording
/// and returns one line per check that passed, and one saying the signature
/// was not checked when no key was given.
pub fn verify_files(
    metadata: &Path,
    audio: Option<&Path>,
    key: Option<&Path>,
) -> Result<Vec<String>, VerifyCommandError> {
    let metadata_json = read(metadata)?;
    let public_key = key.map(PublicKey::load).transpose().map_err(VerifyCommandError::Key)?;
    let audio = match audio {
        Some(audio) => audio.to_path_buf(),
        None => audio_beside(metadata)?,
    };
    let audio_bytes = read(&audio)?;
    let report = verify(&metadata_json, Some(&audio_bytes), public_key.as_ref())
        .map_err(|error| VerifyCommandError::Failed { metadata: metadata.into(), audio: audio.clone(), error })?;
    let mut lines = vec![format!("sha256 matches audio {}", audio.display())];
    lines.push(match report.signature {
        SignatureCheck::Valid { key_id } => format!("signature valid (key_id {key_id})"),
        SignatureCheck::NotChecked => "signature not checked: no --key given".into(),
    });
    Ok(lines)
}

/// The `.ul` or `.wav` with the metadata's stem, beside it: there must be
/// exactly one.
fn audio_beside(metadata: &Path) -> Result<PathBuf, VerifyCommandError> {
    let ul = metadata.with_extension("ul");
    let wav = metadata.with_extension("wav");
    match (ul.is_file(), wav.is_file()) {
        (true, false) => Ok(ul),
        (false, true) => Ok(wav),
        (false, false) => Err(VerifyCommandError::NoAudio { metadata: metadata.into(), ul, wav }),
        (true, true) => Err(VerifyCommandError::TwoAudios { metadata: metadata.into(), ul, wav }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, VerifyCommandError> {
    fs::read(path).map_err(|source| VerifyCommandError::Read { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_found_beside_the_metadata_by_its_stem() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = dir.path().join("1ec81d61.json");
        assert!(matches!(audio_beside(&metadata), Err(VerifyCommandError::NoAudio { .. })));
        fs::write(dir.path().join("1ec81d61.wav"), b"RIFF").unwrap();
        assert_eq!(audio_beside(&metadata).unwrap(), dir.path().join("1ec81d61.wav"));
        fs::write(dir.path().join("1ec81d61.ul"), b"\xFF").unwrap();
        let error = audio_beside(&metadata).unwrap_err();
        assert!(matches!(error, VerifyCommandError::TwoAudios { .. }), "{error}");
        assert_eq!(error.exit_code(), 2);
        fs::remove_file(dir.path().join("1ec81d61.wav")).unwrap();
        assert_eq!(audio_beside(&metadata).unwrap(), dir.path().join("1ec81d61.ul"));
    }

    #[test]
    fn only_a_recording_that_does_not_prove_itself_is_exit_code_1() {
        let failed = VerifyCommandError::Failed {
            metadata: "a.json".into(),
            audio: "a.ul".into(),
            error: VerifyError::Unsigned,
        };
        assert_eq!(failed.exit_code(), 1);
        assert_eq!(failed.to_string(), "a.json (audio a.ul): the signature is missing: the metadata is not signed");
        let unreadable = VerifyCommandError::Read { path: "a.json".into(), source: io::ErrorKind::NotFound.into() };
        assert_eq!(unreadable.exit_code(), 2);
    }
}
