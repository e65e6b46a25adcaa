//! The canonical form of a recording's metadata: the exact bytes its
//! signature covers, defined so that a receiver in any language rebuilds
//! them from the metadata JSON it was given.
//!
//! The metadata object without its top-level `signature` member, written as
//! JSON with
//! - the members of every object sorted by key, keys compared as UTF-8 bytes;
//! - arrays in their order;
//! - no whitespace between tokens;
//! - strings in UTF-8 with only `"`, `\` and the control characters
//!   U+0000–U+001F escaped: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and
//!   `\u00xx` (lowercase hex) for the other control characters;
//! - numbers as integers in plain decimal (metadata holds no other numbers:
//!   signing and verifying refuse a fraction or an exponent);
//! - `true`, `false` and `null` as such.
//!
//! Python's `json.dumps(metadata, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False).encode("utf-8")`, with `signature` removed first,
//! gives the same bytes.

use std::io::Write;

use serde_json::{Map, Value};

use super::signature::SIGNATURE_MEMBER;

/// The bytes a recording's signature covers (see the module documentation).
/// A value that is not an object is written the same way, whole.
pub fn canonical(metadata: &Value) -> Vec<u8> {
    match metadata {
        Value::Object(members) => canonical_object(members),
        other => {
            let mut out = Vec::new();
            write_value(other, &mut out);
            out
        }
    }
}

/// `canonical` of the metadata object with these members.
pub(super) fn canonical_object(members: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    write_object(members.iter().filter(|(key, _)| key.as_str() != SIGNATURE_MEMBER), &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => write_array(items, out),
        Value::Object(members) => write_object(members.iter(), out),
    }
}

fn write_array(items: &[Value], out: &mut Vec<u8>) {
    out.push(b'[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_value(item, out);
    }
    out.push(b']');
}

/// Members sorted by the UTF-8 bytes of their keys, whatever order the map
/// keeps them in.
fn write_object<'a>(members: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut Vec<u8>) {
    let mut members: Vec<(&String, &Value)> = members.collect();
    members.sort_unstable_by(|(a, _), (b, _)| a.as_bytes().cmp(b.as_bytes()));
    out.push(b'{');
    for (index, (key, value)) in members.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(value, out);
    }
    out.push(b'}');
}

/// A JSON string: UTF-8 as it is, with only `"`, `\` and control characters
/// escaped.
fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x00..=0x1F => {
                let _ = write!(out, "\\u{byte:04x}");
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

/// Where the members the canonical form covers (all but `signature`) hold a
/// number that is not an integer (a fraction, an exponent, or beyond 64
/// bits), e.g. `masked[0].end_ms`: the canonical form has integers only, and
/// other numbers are written differently by different JSON libraries.
pub(super) fn first_non_integer(members: &Map<String, Value>) -> Option<String> {
    let mut path = String::new();
    let signed = members.iter().filter(|(key, _)| key.as_str() != SIGNATURE_MEMBER);
    any_member_non_integer(signed, &mut path).then_some(path)
}

fn find_non_integer(value: &Value, path: &mut String) -> bool {
    match value {
        Value::Number(number) => !(number.is_i64() || number.is_u64()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .any(|(index, item)| descend(path, &format!("[{index}]"), |path| find_non_integer(item, path))),
        Value::Object(members) => any_member_non_integer(members.iter(), path),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

fn any_member_non_integer<'a>(mut members: impl Iterator<Item = (&'a String, &'a Value)>, path: &mut String) -> bool {
    members.any(|(key, value)| {
        let step = if path.is_empty() { key_step(key).trim_start_matches('.').to_string() } else { key_step(key) };
        descend(path, &step, |path| find_non_integer(value, path))
    })
}

/// `.key` for a plain key, `["odd key"]` (a JSON string, on one line) for
/// any other.
fn key_step(key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        format!(".{key}")
    } else {
        let mut quoted = Vec::new();
        write_string(key, &mut quoted);
        format!("[{}]", String::from_utf8_lossy(&quoted))
    }
}

/// Runs `check` with `step` appended to `path`; keeps the step only when the
/// check found something.
fn descend(path: &mut String, step: &str, check: impl FnOnce(&mut String) -> bool) -> bool {
    let length = path.len();
    path.push_str(step);
    let found = check(path);
    if !found {
        path.truncate(length);
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: &Value) -> String {
        String::from_utf8(canonical(value)).unwrap()
    }

    #[test]
    fn keys_are_sorted_at_every_level_and_whitespace_is_gone() {
        let metadata = json!({
            "b": 1,
            "a": {"z": [3, {"y": true, "x": null}], "m": "text"},
            "A": false,
        });
        assert_eq!(text(&metadata), r#"{"A":false,"a":{"m":"text","z":[3,{"x":null,"y":true}]},"b":1}"#);
    }

    #[test]
    fn the_order_members_arrive_in_does_not_matter() {
        let one: Value =
            serde_json::from_str(r#"{"duration_ms": 3020, "name": "n", "masked": [{"start_ms": 1, "end_ms": 2}]}"#)
                .unwrap();
        let other: Value =
            serde_json::from_str(r#"{"masked":[{"end_ms":2,"start_ms":1}],"name":"n","duration_ms":3020}"#).unwrap();
        assert_eq!(canonical(&one), canonical(&other));
        assert_eq!(text(&one), r#"{"duration_ms":3020,"masked":[{"end_ms":2,"start_ms":1}],"name":"n"}"#);
    }

    #[test]
    fn the_signature_member_is_left_out_at_the_top_only() {
        let signed = json!({"name": "n", "signature": {"value": "x"}, "nested": {"signature": 1}});
        assert_eq!(text(&signed), r#"{"name":"n","nested":{"signature":1}}"#);
        assert_eq!(canonical(&signed), canonical(&json!({"name": "n", "nested": {"signature": 1}})));
    }

    #[test]
    fn keys_sort_by_their_utf8_bytes() {
        let metadata = json!({"é": 1, "z": 2, "Z": 3, "_": 4, "ä": 5, "€": 6});
        assert_eq!(text(&metadata), r#"{"Z":3,"_":4,"z":2,"ä":5,"é":1,"€":6}"#);
    }

    #[test]
    fn strings_escape_only_quotes_backslashes_and_control_characters() {
        let metadata = json!({"s": "Zoë \"Ο\" \\ 日本\u{1F600} / \u{7F} \u{2028}\t\n\r\u{8}\u{C}\u{0}\u{1F}"});
        assert_eq!(
            text(&metadata),
            "{\"s\":\"Zoë \\\"Ο\\\" \\\\ 日本\u{1F600} / \u{7F} \u{2028}\\t\\n\\r\\b\\f\\u0000\\u001f\"}"
        );
    }

    #[test]
    fn integers_are_plain_decimal() {
        let metadata = json!({"big": u64::MAX, "negative": i64::MIN, "zero": 0});
        assert_eq!(text(&metadata), r#"{"big":18446744073709551615,"negative":-9223372036854775808,"zero":0}"#);
    }

    #[test]
    fn a_value_that_is_not_an_object_is_written_whole() {
        assert_eq!(text(&json!([1, "a"])), r#"[1,"a"]"#);
        assert_eq!(text(&json!("signature")), r#""signature""#);
        assert_eq!(text(&Value::Null), "null");
    }

    fn non_integer(value: Value) -> Option<String> {
        first_non_integer(value.as_object().unwrap())
    }

    #[test]
    fn numbers_that_are_not_integers_are_found_with_their_path() {
        assert_eq!(non_integer(json!({"a": 1, "b": [1, -2], "c": {"d": "1.5"}})), None);
        assert_eq!(non_integer(json!({"duration_ms": 1.5})), Some("duration_ms".into()));
        assert_eq!(
            non_integer(json!({"masked": [{"start_ms": 0, "end_ms": 2}, {"start_ms": 1e3}]})),
            Some("masked[1].start_ms".into())
        );
        assert_eq!(non_integer(json!({"odd\nkey": [0.5]})), Some(r#"["odd\nkey"][0]"#.into()));
        assert_eq!(non_integer(json!({"a": {"b c": 0.5}})), Some(r#"a["b c"]"#.into()));
        let huge: Value = serde_json::from_str(r#"{"n": 18446744073709551616}"#).unwrap();
        assert_eq!(non_integer(huge), Some("n".into()));
        assert_eq!(non_integer(json!({"signature": {"value": 0.5}})), None, "the canonical form leaves it out");
    }
}
