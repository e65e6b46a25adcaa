//! `callrec convert`: beside the data path, after delivery. Turns a delivered
//! `.ul` (raw μ-law, mono, 8000 Hz) into a 16-bit PCM WAV and such a WAV back
//! into a `.ul`, with the same encoder the recorder uses
//! (`recording::encode`). The direction follows the file extensions; the
//! output is written beside its final name and renamed into place.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::recording::encode::{self, AudioFormat, DecodeError, EncodeError};
use crate::ulaw;

/// Why a conversion did not happen, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: unknown extension; expected .ul (raw μ-law) or .wav")]
    UnknownExtension { path: PathBuf },
    #[error("{input} and {output} are both .{extension}: nothing to convert")]
    NothingToConvert { input: PathBuf, output: PathBuf, extension: &'static str },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Decode { path: PathBuf, source: DecodeError },
    #[error(
        "{path} has {channels} channels but a .ul holds one track: take one first (e.g. `sox {path} left.wav remix 1`) and convert that"
    )]
    NotMono { path: PathBuf, channels: usize },
    #[error("cannot convert {path}: {source}")]
    Encode { path: PathBuf, source: EncodeError },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Converts `input` to `output` (`.ul` → `.wav` or `.wav` → `.ul`, by
/// extension, in any case) and returns a one-line summary of what was done.
pub fn convert(input: &Path, output: &Path) -> Result<String, ConvertError> {
    let from = format_of(input)?;
    let to = format_of(output)?;
    if from == to {
        return Err(ConvertError::NothingToConvert {
            input: input.into(),
            output: output.into(),
            extension: from.extension(),
        });
    }
    let tracks = read_tracks(input, from)?;
    if to == AudioFormat::Ulaw && tracks.len() != 1 {
        return Err(ConvertError::NotMono { path: input.into(), channels: tracks.len() });
    }
    let slices: Vec<&[u8]> = tracks.iter().map(Vec::as_slice).collect();
    let bytes = encode::encode(to, &slices).map_err(|source| ConvertError::Encode { path: output.into(), source })?;
    write_atomically(output, &bytes).map_err(|source| ConvertError::Write { path: output.into(), source })?;
    Ok(summary(input, output, &tracks))
}

/// The format a file's extension names, whatever its case.
fn format_of(path: &Path) -> Result<AudioFormat, ConvertError> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    [AudioFormat::Ulaw, AudioFormat::Wav]
        .into_iter()
        .find(|format| extension.as_deref() == Some(format.extension()))
        .ok_or_else(|| ConvertError::UnknownExtension { path: path.into() })
}

/// The input's audio as μ-law tracks: a `.ul` is one track as it is.
fn read_tracks(path: &Path, format: AudioFormat) -> Result<Vec<Vec<u8>>, ConvertError> {
    let bytes = fs::read(path).map_err(|source| ConvertError::Read { path: path.into(), source })?;
    match format {
        AudioFormat::Ulaw => Ok(vec![bytes]),
        AudioFormat::Wav => {
            encode::decode_wav(&bytes).map_err(|source| ConvertError::Decode { path: path.into(), source })
        }
    }
}

/// Writes next to the target, then renames: no reader ever sees half a file,
/// and a failed conversion leaves an existing output as it was.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let partial = partial_path(path);
    let written = write_and_sync(&partial, contents).and_then(|()| fs::rename(&partial, path));
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

/// `<output>.<pid>.partial`: two conversions at once never share one.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{}.partial", std::process::id()));
    PathBuf::from(name)
}

fn write_and_sync(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// "converted a.ul (mono, 3.02 s) to a.wav"
fn summary(input: &Path, output: &Path, tracks: &[Vec<u8>]) -> String {
    let samples = tracks.first().map_or(0, Vec::len);
    let seconds = samples as f64 / f64::from(ulaw::SAMPLE_RATE);
    format!("converted {} ({}, {seconds:.2} s) to {}", input.display(), channels_name(tracks.len()), output.display())
}

fn channels_name(channels: usize) -> String {
    match channels {
        1 => "mono".into(),
        2 => "stereo".into(),
        n => format!("{n} channels"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulaw_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn extensions_choose_the_direction_in_any_case() {
        assert_eq!(format_of(Path::new("a.ul")).unwrap(), AudioFormat::Ulaw);
        assert_eq!(format_of(Path::new("dir/A.UL")).unwrap(), AudioFormat::Ulaw);
        assert_eq!(format_of(Path::new("a.Wav")).unwrap(), AudioFormat::Wav);
        for path in ["a.mp3", "a", "ul", ".wav", "a.ulaw", "a.wav.partial"] {
            let error = format_of(Path::new(path));
            assert!(matches!(error, Err(ConvertError::UnknownExtension { .. })), "{path}");
        }
        let error = format_of(Path::new("take.mp3")).unwrap_err().to_string();
        assert_eq!(error, "take.mp3: unknown extension; expected .ul (raw μ-law) or .wav");
    }

    #[test]
    fn ul_to_wav_and_back_is_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let original: Vec<u8> = (0..24_160u32).map(|i| i as u8).collect();
        let ul = ulaw_file(dir.path(), "a.ul", &original);
        let wav = dir.path().join("a.wav");
        let back = dir.path().join("b.UL");
        let summary = convert(&ul, &wav).unwrap();
        assert_eq!(summary, format!("converted {} (mono, 3.02 s) to {}", ul.display(), wav.display()));
        convert(&wav, &back).unwrap();
        assert_eq!(fs::read(&back).unwrap(), original);
    }

    #[test]
    fn the_same_format_on_both_sides_is_nothing_to_convert() {
        let error = convert(Path::new("a.wav"), Path::new("b.WAV")).unwrap_err();
        assert_eq!(error.to_string(), "a.wav and b.WAV are both .wav: nothing to convert");
    }

    #[test]
    fn a_stereo_wav_does_not_become_a_ul() {
        let dir = tempfile::tempdir().unwrap();
        let stereo = dir.path().join("s.wav");
        fs::write(&stereo, encode::encode(AudioFormat::Wav, &[&[0xFF; 8], &[0xFF; 8]]).unwrap()).unwrap();
        let output = dir.path().join("s.ul");
        let error = convert(&stereo, &output).unwrap_err();
        assert!(matches!(error, ConvertError::NotMono { channels: 2, .. }), "{error}");
        assert!(!output.exists());
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let ul = ulaw_file(dir.path(), "a.ul", &[0xFF; 8]);
        let output = dir.path().join("missing/a.wav");
        let error = convert(&ul, &output).unwrap_err();
        assert!(matches!(error, ConvertError::Write { .. }), "{error}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_existing_output_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        fs::write(&wav, encode::encode(AudioFormat::Wav, &[&[0x00; 8000]]).unwrap()).unwrap();
        let ul = ulaw_file(dir.path(), "a.ul", &[0x7F; 4]);
        convert(&wav, &ul).unwrap();
        assert_eq!(fs::read(&ul).unwrap(), vec![0x00; 8000]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "no partial file is left");
    }

    #[test]
    fn channel_counts_read_as_words() {
        assert_eq!(channels_name(1), "mono");
        assert_eq!(channels_name(2), "stereo");
        assert_eq!(channels_name(4), "4 channels");
    }
}
