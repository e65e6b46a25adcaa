//! `callrec convert` as an operator meets it: a `.ul` becomes a WAV any
//! player reads and comes back byte for byte; anything it cannot convert is
//! one clear line on stderr and exit code 2, and no output file.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn callrec_convert(input: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callrec")).arg("convert").arg(input).arg(output).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every μ-law byte, over and over: 3.2 s of audio.
fn every_byte_repeated() -> Vec<u8> {
    (0..100).flat_map(|_| 0..=255u8).collect()
}

fn write_wav(path: &Path, spec: hound::WavSpec, samples: &[i16]) {
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &sample in samples {
        writer.write_sample(sample).unwrap();
    }
    writer.finalize().unwrap();
}

fn spec(channels: u16, sample_rate: u32) -> hound::WavSpec {
    hound::WavSpec { channels, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

/// Exit code 2, one line starting `callrec: ` that contains `expected`, nothing on stdout.
fn assert_refused(output: &Output, expected: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert_eq!(text.lines().count(), 1, "one line, got:\n{text}");
    assert!(text.starts_with("callrec: "), "{text}");
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
    assert!(output.stdout.is_empty(), "{}", stdout(output));
}

#[test]
fn ul_to_wav_and_back_is_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let original = every_byte_repeated();
    let ul = dir.path().join("call.ul");
    let wav = dir.path().join("call.wav");
    let back = dir.path().join("back.ul");
    fs::write(&ul, &original).unwrap();

    let there = callrec_convert(&ul, &wav);
    assert!(there.status.success(), "{}", stderr(&there));
    assert_eq!(stdout(&there), format!("converted {} (mono, 3.20 s) to {}\n", ul.display(), wav.display()));
    let again = callrec_convert(&wav, &back);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).lines().count(), 1);

    assert_eq!(fs::read(&back).unwrap(), original);
}

#[test]
fn the_wav_is_16_bit_pcm_mono_at_8000_hz() {
    let dir = tempfile::tempdir().unwrap();
    let original = every_byte_repeated();
    let ul = dir.path().join("call.ul");
    let wav = dir.path().join("call.WAV");
    fs::write(&ul, &original).unwrap();

    let output = callrec_convert(&ul, &wav);
    assert!(output.status.success(), "{}", stderr(&output));

    let mut reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.spec(), spec(1, 8000));
    assert_eq!(reader.duration() as usize, original.len());
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let expected: Vec<i16> = original.iter().map(|&b| callrec::ulaw::decode(b)).collect();
    assert_eq!(samples, expected);
}

#[test]
fn a_stereo_wav_is_refused_as_a_ul() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("both.wav");
    let ul = dir.path().join("both.ul");
    write_wav(&wav, spec(2, 8000), &[0; 1600]);

    let output = callrec_convert(&wav, &ul);
    assert_refused(&output, "2 channels but a .ul holds one track");
    assert!(!ul.exists());
}

#[test]
fn an_unknown_extension_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ul = dir.path().join("call.ul");
    fs::write(&ul, [0xFF; 80]).unwrap();

    assert_refused(&callrec_convert(&ul, &dir.path().join("call.mp3")), "unknown extension");
    assert_refused(&callrec_convert(&dir.path().join("call.raw"), &ul), "unknown extension");
    assert_refused(&callrec_convert(&ul, &dir.path().join("copy.ul")), "nothing to convert");
}

#[test]
fn a_malformed_wav_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ul = dir.path().join("out.ul");

    let text = dir.path().join("text.wav");
    fs::write(&text, "this is not audio\n").unwrap();
    assert_refused(&callrec_convert(&text, &ul), "not a WAV file");

    let cd = dir.path().join("cd.wav");
    write_wav(&cd, spec(1, 44100), &[0; 441]);
    assert_refused(&callrec_convert(&cd, &ul), "not 8000 Hz: the WAV is 44100 Hz");

    let truncated = dir.path().join("truncated.wav");
    write_wav(&truncated, spec(1, 8000), &[0; 800]);
    let bytes = fs::read(&truncated).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&callrec_convert(&truncated, &ul), "malformed WAV");

    assert!(!ul.exists());
}

#[test]
fn a_missing_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ul");
    let output = callrec_convert(&missing, &dir.path().join("out.wav"));
    assert_refused(&output, &format!("cannot read {}", missing.display()));
}

#[test]
fn an_unwritable_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ul = dir.path().join("call.ul");
    fs::write(&ul, [0xFF; 80]).unwrap();
    let output = callrec_convert(&ul, &dir.path().join("no/such/dir/call.wav"));
    assert_refused(&output, "cannot write");
}

#[test]
fn help_names_the_subcommand() {
    let output = Command::new(env!("CARGO_BIN_EXE_callrec")).arg("--help").output().unwrap();
    assert!(stdout(&output).contains("convert"), "{}", stdout(&output));
    let output = Command::new(env!("CARGO_BIN_EXE_callrec")).args(["convert", "--help"]).output().unwrap();
    let help = stdout(&output);
    assert!(help.contains("IN") && help.contains("OUT"), "{help}");
}
