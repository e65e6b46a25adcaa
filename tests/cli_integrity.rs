//! `callrec keygen` and `callrec verify` as an operator meets them, and the
//! integrity fields as a receiver in another language meets them: a key pair
//! on disk with the right modes, a signed recording that verifies, a flipped
//! audio byte or an edited field that fails with what is wrong named, and
//! Python rebuilding the exact signed bytes and checking the signature with
//! the README's own snippet. Python is required: these tests fail, not skip,
//! without it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callrec::integrity::{self, SigningKey};
use serde_json::{json, Value};

fn callrec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callrec")).args(args).env_remove("CALLREC_VERIFY_KEY").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Exit code `code`, one line starting `callrec: ` that contains `expected`, nothing on stdout.
fn assert_fails(output: &Output, code: i32, expected: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}stdout: {}", stdout(output));
    assert_eq!(text.lines().count(), 1, "one line, got:\n{text}");
    assert!(text.starts_with("callrec: "), "{text}");
    assert!(text.contains(expected), "expected {expected:?} in: {text}");
    assert!(output.stdout.is_empty(), "{}", stdout(output));
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `callrec keygen --out DIR/signing.key`: the private key's path.
fn keygen(dir: &Path) -> PathBuf {
    let private = dir.join("signing.key");
    let output = callrec(&["keygen", "--out", path(&private)]);
    assert!(output.status.success(), "{}", stderr(&output));
    private
}

fn public_of(private: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", private.display()))
}

const RECORDING_ID: &str = "1ec81d61-e143-4406-be66-1b4dbf13e7a0";

/// Every μ-law byte, ten times: 0.32 s of audio.
fn audio() -> Vec<u8> {
    (0..10).flat_map(|_| 0..=255u8).collect()
}

/// Metadata shaped like callrec's, with names outside ASCII, paused
/// stretches and stereo tracks.
fn metadata(audio: &[u8]) -> Value {
    json!({
        "recording_id": RECORDING_ID,
        "name": "payment_confirmation",
        "channel_id": "1795489520.42",
        "channel_name": "PJSIP/lab-0000002a",
        "caller_number": "+49 30 5550100",
        "caller_name": "Zoë Ångström-Łukasiewicz",
        "connected_number": "201",
        "connected_name": "山田 太郎 \u{1F4DE}",
        "linkedid": "1795489520.42",
        "accountcode": "",
        "context": "callrec-example-ivr",
        "exten": "400",
        "started_at": "2026-11-24T03:05:20.125Z",
        "ended_at": "2026-11-24T03:05:23.548Z",
        "duration_ms": 3423,
        "end_reason": "stop",
        "format": "wav",
        "sample_rate": 8000,
        "channels": 2,
        "tracks": ["caller", "callee"],
        "bytes": audio.len(),
        "missing_ms": 20,
        "masked": [{"start_ms": 1000, "end_ms": 2500}, {"start_ms": 3000, "end_ms": 3000}],
        "masked_ms": 1500,
        "silent": false,
        "sha256": integrity::sha256_hex(audio),
    })
}

/// A recording as the output directory holds it: `<id>.json` (signed with
/// `private`, pretty-printed) beside `<id>.<extension>`. Returns the
/// metadata's path.
fn write_recording(dir: &Path, private: &Path, extension: &str) -> PathBuf {
    let audio = audio();
    let mut metadata = metadata(&audio);
    SigningKey::load(private).unwrap().sign(&mut metadata).unwrap();
    fs::write(dir.join(format!("{RECORDING_ID}.{extension}")), &audio).unwrap();
    let json = dir.join(format!("{RECORDING_ID}.json"));
    fs::write(&json, serde_json::to_vec_pretty(&metadata).unwrap()).unwrap();
    json
}

fn edit_metadata(json: &Path, edit: impl FnOnce(&mut Value)) {
    let mut metadata: Value = serde_json::from_slice(&fs::read(json).unwrap()).unwrap();
    edit(&mut metadata);
    fs::write(json, serde_json::to_vec_pretty(&metadata).unwrap()).unwrap();
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let public = public_of(&private);
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&public), 0o644);

    let key = SigningKey::load(&private).unwrap();
    assert_eq!(&integrity::PublicKey::load(&public).unwrap(), key.public_key());
    let private_text = fs::read_to_string(&private).unwrap();
    assert!(private_text.starts_with("callrec-ed25519-private ") && private_text.ends_with('\n'));
    assert_eq!(private_text.lines().count(), 1);
    assert!(fs::read_to_string(&public).unwrap().starts_with("callrec-ed25519-public "));

    let output = callrec(&["keygen", "--out", path(&dir.path().join("other.key"))]);
    let printed = stdout(&output);
    let other = SigningKey::load(&dir.path().join("other.key")).unwrap();
    assert!(printed.contains(&format!("key_id {}", other.key_id())), "{printed}");
    assert!(printed.contains(path(&dir.path().join("other.key"))), "{printed}");
    assert!(printed.contains(path(&dir.path().join("other.key.pub"))), "{printed}");
    assert_ne!(other.key_id(), key.key_id(), "every key is new");
    let seed = private_text.split_once(' ').unwrap().1.trim();
    assert!(!printed.contains(seed) && !stderr(&output).contains(seed));
}

#[test]
fn keygen_never_overwrites_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let before = fs::read(&private).unwrap();
    assert_fails(&callrec(&["keygen", "--out", path(&private)]), 2, "already exists");
    assert_eq!(fs::read(&private).unwrap(), before);

    let lone_public = dir.path().join("lone.key.pub");
    fs::write(&lone_public, "someone else's\n").unwrap();
    let lone = dir.path().join("lone.key");
    assert_fails(&callrec(&["keygen", "--out", path(&lone)]), 2, "lone.key.pub already exists");
    assert!(!lone.exists());
    assert_eq!(fs::read_to_string(&lone_public).unwrap(), "someone else's\n");

    assert_fails(&callrec(&["keygen", "--out", path(&dir.path().join("no/such/dir/k"))]), 2, "cannot write");
    assert_fails(&callrec(&["keygen"]), 2, "--out");
}

#[test]
fn a_signed_recording_verifies_with_its_audio_found_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let key_id = SigningKey::load(&private).unwrap().key_id().to_string();
    let recordings = dir.path().join("recordings");
    fs::create_dir(&recordings).unwrap();
    let json = write_recording(&recordings, &private, "wav");
    let audio = recordings.join(format!("{RECORDING_ID}.wav"));

    let output = callrec(&["verify", path(&json), "--key", path(&public_of(&private))]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("sha256 matches audio {}\nsignature valid (key_id {key_id})\n", audio.display())
    );
    assert!(output.stderr.is_empty(), "{}", stderr(&output));

    let named = callrec(&["verify", path(&json), path(&audio), "--key", path(&public_of(&private))]);
    assert_eq!(stdout(&named), stdout(&output));

    let from_environment = Command::new(env!("CARGO_BIN_EXE_callrec"))
        .args(["verify", path(&json)])
        .env("CALLREC_VERIFY_KEY", public_of(&private))
        .output()
        .unwrap();
    assert_eq!(stdout(&from_environment), stdout(&output), "{}", stderr(&from_environment));
}

#[test]
fn a_ul_beside_the_metadata_is_found_too() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let json = write_recording(dir.path(), &private, "ul");
    let output = callrec(&["verify", path(&json), "--key", path(&public_of(&private))]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with(&format!("sha256 matches audio {}\n", json.with_extension("ul").display())));
}

#[test]
fn without_a_key_only_the_hash_is_checked_and_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let json = write_recording(dir.path(), &private, "ul");
    let output = callrec(&["verify", path(&json)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(printed.contains("sha256 matches audio"), "{printed}");
    assert!(printed.contains("signature not checked"), "{printed}");
}

#[test]
fn a_flipped_audio_byte_fails_naming_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let json = write_recording(dir.path(), &private, "ul");
    let audio = json.with_extension("ul");
    let mut bytes = fs::read(&audio).unwrap();
    bytes[1234] ^= 0x01;
    fs::write(&audio, &bytes).unwrap();

    let expected =
        format!("sha256 does not match the audio: the metadata says {}", integrity::sha256_hex(&self::audio()));
    assert_fails(&callrec(&["verify", path(&json), "--key", path(&public_of(&private))]), 1, &expected);
    assert_fails(&callrec(&["verify", path(&json)]), 1, "sha256 does not match the audio");
}

#[test]
fn an_edited_metadata_field_fails_naming_the_signature() {
    for (field, value) in [("duration_ms", json!(3424)), ("caller_number", json!("+49 30 5550199"))] {
        let dir = tempfile::tempdir().unwrap();
        let private = keygen(dir.path());
        let json = write_recording(dir.path(), &private, "ul");
        edit_metadata(&json, |metadata| metadata[field] = value);
        let output = callrec(&["verify", path(&json), "--key", path(&public_of(&private))]);
        assert_fails(&output, 1, "the signature does not match the metadata");
        assert!(stderr(&output).contains(path(&json)), "{}", stderr(&output));
    }
}

#[test]
fn another_key_or_no_signature_fails() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let json = write_recording(dir.path(), &private, "ul");
    let other_dir = tempfile::tempdir().unwrap();
    let other = keygen(other_dir.path());
    let other_id = SigningKey::load(&other).unwrap().key_id().to_string();
    let output = callrec(&["verify", path(&json), "--key", path(&public_of(&other))]);
    assert_fails(&output, 1, "key_id");
    assert!(stderr(&output).contains(&other_id), "{}", stderr(&output));

    edit_metadata(&json, |metadata| {
        metadata.as_object_mut().unwrap().remove("signature");
    });
    assert_fails(&callrec(&["verify", path(&json), "--key", path(&public_of(&private))]), 1, "signature is missing");
}

#[test]
fn what_cannot_be_checked_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let private = keygen(dir.path());
    let json = write_recording(dir.path(), &private, "ul");
    let key = public_of(&private);

    assert_fails(&callrec(&["verify", path(&dir.path().join("missing.json"))]), 2, "cannot read");
    assert_fails(&callrec(&["verify", path(&json), path(&dir.path().join("missing.ul"))]), 2, "cannot read");
    assert_fails(&callrec(&["verify", path(&json), "--key", path(&dir.path().join("missing.pub"))]), 2, "--key");
    assert_fails(&callrec(&["verify"]), 2, "METADATA.json");

    // The private key where the public one belongs: named, never printed.
    let output = callrec(&["verify", path(&json), "--key", path(&private)]);
    assert_fails(&output, 2, "holds a private key where a public key belongs");
    let seed = fs::read_to_string(&private).unwrap().split_once(' ').unwrap().1.trim().to_string();
    assert!(!stderr(&output).contains(&seed));

    fs::write(json.with_extension("wav"), audio()).unwrap();
    assert_fails(&callrec(&["verify", path(&json), "--key", path(&key)]), 2, "both");
    fs::remove_file(json.with_extension("wav")).unwrap();
    fs::remove_file(json.with_extension("ul")).unwrap();
    assert_fails(&callrec(&["verify", path(&json), "--key", path(&key)]), 2, "no audio beside");
}

#[test]
fn help_names_the_subcommands_and_the_key_variable() {
    let top = stdout(&callrec(&["--help"]));
    assert!(top.contains("keygen") && top.contains("verify"), "{top}");
    let help = stdout(&callrec(&["verify", "--help"]));
    assert!(help.contains("--key") && help.contains("CALLREC_VERIFY_KEY") && help.contains("AUDIO"), "{help}");
    let help = stdout(&callrec(&["keygen", "--help"]));
    assert!(help.contains("--out") && help.contains("0600"), "{help}");
}

/// Runs python3 with `args`; fails the test when there is no python3.
fn python3(args: &[&str]) -> Output {
    Command::new("python3")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("python3 is needed to check the canonical form across languages: {error}"))
}

const PYTHON_CANONICAL: &str = r#"
import json, sys
with open(sys.argv[1], "rb") as f:
    metadata = json.load(f)
metadata.pop("signature", None)
sys.stdout.buffer.write(json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
"#;

#[test]
fn python_rebuilds_the_canonical_form_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::load(&keygen(dir.path())).unwrap();
    let mut hard = metadata(&audio());
    hard["caller_name"] =
        json!("\"Zoë\" \\ O'Brien\t\n\r\u{8}\u{C}\u{0}\u{1}\u{1F}\u{7F}\u{80}\u{2028}\u{2029}\u{FEFF}/</script>");
    hard["nested"] = json!({"ünïcode_kéy": [[1, [2, {"b": null, "a": true}]], [], {}], "\u{FF61}": 1, "\u{1F600}": 2, "Z": -5, "big": u64::MAX, "small": i64::MIN});
    hard["error"] = json!("");
    for mut metadata in [metadata(&audio()), hard] {
        key.sign(&mut metadata).unwrap();
        for (name, bytes) in [
            ("pretty.json", serde_json::to_vec_pretty(&metadata).unwrap()),
            ("compact.json", serde_json::to_vec(&metadata).unwrap()),
        ] {
            let file = dir.path().join(name);
            fs::write(&file, bytes).unwrap();
            let output = python3(&["-c", PYTHON_CANONICAL, path(&file)]);
            assert!(output.status.success(), "{}", stderr(&output));
            let ours = integrity::canonical(&metadata);
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&ours),
                "python's canonical form differs"
            );
            assert_eq!(output.stdout, ours);
        }
    }
}

/// The README's "In Python" snippet, as it stands.
fn readme_python_snippet() -> String {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split_once("## Verifying a recording").expect("README has a section on verifying").1;
    let block = section.split_once("```python\n").expect("the section has a Python snippet").1;
    block.split_once("```").unwrap().0.to_string()
}

#[test]
fn the_readme_python_snippet_verifies_a_recording_and_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify.py");
    fs::write(&script, readme_python_snippet()).unwrap();
    let imports = python3(&["-c", "import cryptography"]);
    assert!(
        imports.status.success(),
        "the README's snippet needs Python's cryptography (pip install cryptography): {}",
        stderr(&imports)
    );
    let private = keygen(dir.path());
    let public = public_of(&private);
    let json = write_recording(dir.path(), &private, "ul");
    let audio = json.with_extension("ul");
    let run = || python3(&[path(&script), path(&json), path(&audio), path(&public)]);

    let output = run();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "ok\n");

    let original = fs::read(&json).unwrap();
    edit_metadata(&json, |metadata| metadata["duration_ms"] = json!(1));
    let output = run();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("InvalidSignature"), "{}", stderr(&output));

    fs::write(&json, original).unwrap();
    let mut bytes = fs::read(&audio).unwrap();
    bytes[0] ^= 0x80;
    fs::write(&audio, bytes).unwrap();
    let output = run();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("sha256 does not match the audio"), "{}", stderr(&output));
}
