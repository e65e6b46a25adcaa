//! The storage webhook's request body, built byte by byte so that what
//! delivery signs is exactly what it sends: `multipart/form-data` (RFC 7578)
//! with a `metadata` part (application/json) and an `audio` part
//! (`<name>.ul`, audio/basic, or `<name>.wav`, audio/wav), CRLF line ends,
//! and one random boundary per recording, the same on every attempt. The
//! audio is not copied: the body is three pieces sent back to back.

use bytes::Bytes;
use uuid::Uuid;

use super::FinishedRecording;

/// One recording's request body.
#[derive(Debug, Clone)]
pub struct MultipartBody {
    boundary: String,
    /// The metadata part, then the audio part's headers.
    head: Bytes,
    audio: Bytes,
    /// The CRLF that ends the audio, and the closing delimiter.
    tail: Bytes,
}

impl MultipartBody {
    pub fn new(recording: &FinishedRecording) -> Self {
        // 122 random bits: a boundary no metadata or audio will contain.
        Self::with_boundary(recording, format!("callrec-{}", Uuid::new_v4().simple()))
    }

    fn with_boundary(recording: &FinishedRecording, boundary: String) -> Self {
        let metadata = recording.metadata.to_json();
        let file_name = quoted(&format!("{}.{}", recording.metadata.name, recording.format.extension()));
        let head = format!(
            "--{boundary}\r\n\
             Content-Disposition: form-data; name=\"metadata\"\r\n\
             Content-Type: application/json\r\n\
             \r\n\
             {metadata}\r\n\
             --{boundary}\r\n\
             Content-Disposition: form-data; name=\"audio\"; filename=\"{file_name}\"\r\n\
             Content-Type: {}\r\n\
             \r\n",
            recording.format.content_type()
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        MultipartBody { boundary, head: head.into(), audio: recording.audio.clone(), tail: tail.into() }
    }

    /// The request's `Content-Type`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body's bytes, in the order they are sent.
    pub fn into_pieces(self) -> Vec<Bytes> {
        vec![self.head, self.audio, self.tail]
    }
}

/// A file name inside a quoted header parameter, escaped as RFC 7578 §4.2
/// and browsers do. Recording names are plain already; this keeps the
/// header whole whatever comes.
fn quoted(name: &str) -> String {
    name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use axum::extract::{FromRequest, Multipart};

    use super::*;
    use crate::delivery::metadata::tests::sample;
    use crate::recording::encode::AudioFormat;

    fn recording(format: AudioFormat, audio: &'static [u8]) -> FinishedRecording {
        FinishedRecording { metadata: sample(), audio: Bytes::from_static(audio), format }
    }

    fn concatenated(body: MultipartBody) -> Vec<u8> {
        body.into_pieces().concat()
    }

    #[test]
    fn the_bytes_are_exactly_rfc_7578() {
        let body = MultipartBody::with_boundary(&recording(AudioFormat::Ulaw, b"\xff\x7f"), "BOUNDARY".into());
        assert_eq!(body.content_type(), "multipart/form-data; boundary=BOUNDARY");
        let metadata = serde_json::to_string(&sample()).unwrap();
        let mut expected = format!(
            "--BOUNDARY\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n\
             {metadata}\r\n--BOUNDARY\r\nContent-Disposition: form-data; name=\"audio\"; \
             filename=\"call_recording.ul\"\r\nContent-Type: audio/basic\r\n\r\n"
        )
        .into_bytes();
        expected.extend_from_slice(b"\xff\x7f\r\n--BOUNDARY--\r\n");
        assert_eq!(concatenated(body), expected);
    }

    #[test]
    fn each_recording_has_its_own_boundary() {
        let (one, two) = (recording(AudioFormat::Ulaw, b""), recording(AudioFormat::Ulaw, b""));
        let (one, two) = (MultipartBody::new(&one), MultipartBody::new(&two));
        assert_ne!(one.boundary, two.boundary);
        assert!(one.boundary.len() <= 70, "RFC 2046 allows 70 characters");
        assert!(one.boundary.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn file_names_stay_inside_their_quotes() {
        assert_eq!(quoted("a\"b\r\nc.ul"), "a%22b%0D%0Ac.ul");
        assert_eq!(quoted("payment_1.wav"), "payment_1.wav");
    }

    #[tokio::test]
    async fn a_standard_parser_reads_both_parts_back() {
        // Audio that looks like a delimiter, CRLFs and all, must come back whole.
        let audio: &'static [u8] = b"\r\n--not-the-boundary\r\n\x00\xff\r\n";
        for (format, file_name, content_type) in [
            (AudioFormat::Ulaw, "call_recording.ul", "audio/basic"),
            (AudioFormat::Wav, "call_recording.wav", "audio/wav"),
        ] {
            let body = MultipartBody::new(&recording(format, audio));
            let request = axum::http::Request::post("/recordings")
                .header("content-type", body.content_type())
                .body(axum::body::Body::from(concatenated(body)))
                .unwrap();
            let mut multipart = Multipart::from_request(request, &()).await.unwrap();
            let mut parts = Vec::new();
            while let Some(field) = multipart.next_field().await.unwrap() {
                let name = field.name().map(str::to_string);
                let file = field.file_name().map(str::to_string);
                let kind = field.content_type().map(str::to_string);
                parts.push((name, file, kind, field.bytes().await.unwrap()));
            }
            assert_eq!(parts.len(), 2);
            let (name, file, kind, bytes) = &parts[0];
            assert_eq!(
                (name.as_deref(), file.as_deref(), kind.as_deref()),
                (Some("metadata"), None, Some("application/json"))
            );
            let metadata: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            assert_eq!(metadata, serde_json::to_value(sample()).unwrap());
            let (name, file, kind, bytes) = &parts[1];
            assert_eq!(
                (name.as_deref(), file.as_deref(), kind.as_deref()),
                (Some("audio"), Some(file_name), Some(content_type))
            );
            assert_eq!(bytes.as_ref(), audio);
        }
    }
}
