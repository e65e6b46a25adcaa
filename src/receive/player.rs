//! The receiver's page, its media: a stored recording's audio as WAV (a
//! `.ul` made into WAV on the fly by `wav`, a `.wav` as it is) in the byte
//! range the browser's player asks for, and its waveform picture (drawn
//! once, then kept beside the recording).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{ACCEPT_RANGES, CACHE_CONTROL, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::library::Listing;
use super::range::{self, Requested};
use super::{wav, waveform, Receiver};
use crate::delivery::durable;
use crate::recording::encode::decode_wav;

/// The most one answer to a range carries: a player asking for `bytes=0-`
/// of a long recording gets this much and asks for more as it plays.
pub const MAX_RANGE: u64 = 4 << 20;

/// GET `/recordings/{id}/audio.wav`.
pub async fn audio(
    State(receiver): State<Arc<Receiver>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(listing) = listing(&receiver, &id) else { return StatusCode::NOT_FOUND.into_response() };
    let path = receiver.store.audio_path(&listing);
    let range_header = headers.get(RANGE).and_then(|value| value.to_str().ok()).map(str::to_string);
    let served = tokio::task::spawn_blocking(move || read_audio(&path, &listing, range_header.as_deref()))
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
    match served {
        Ok(Served { status, bytes, content_range }) => {
            let mut response =
                (status, [(CONTENT_TYPE, "audio/wav"), (ACCEPT_RANGES, "bytes"), (CACHE_CONTROL, "no-cache")], bytes)
                    .into_response();
            if let Some(value) = content_range.and_then(|value| value.parse().ok()) {
                response.headers_mut().insert(CONTENT_RANGE, value);
            }
            response
        }
        Err(error) => {
            warn!(recording = %id, %error, "cannot read a stored recording's audio");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// One answer's status, body and `Content-Range`.
struct Served {
    status: StatusCode,
    bytes: Vec<u8>,
    content_range: Option<String>,
}

/// The bytes of the WAV a recording plays as, in the range asked for.
fn read_audio(path: &Path, listing: &Listing, range_header: Option<&str>) -> io::Result<Served> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let is_ulaw = listing.extension() == "ul";
    let len = if is_ulaw { wav::wav_len(file_len) } else { file_len };
    let (start, end, status) = match range::parse(range_header, len).at_most(MAX_RANGE) {
        Requested::Whole if len == 0 => {
            return Ok(Served { status: StatusCode::OK, bytes: Vec::new(), content_range: None })
        }
        Requested::Whole => (0, len - 1, StatusCode::OK),
        Requested::Part { start, end } => (start, end, StatusCode::PARTIAL_CONTENT),
        Requested::Unsatisfiable => {
            let content_range = Some(format!("bytes */{len}"));
            return Ok(Served { status: StatusCode::RANGE_NOT_SATISFIABLE, bytes: Vec::new(), content_range });
        }
    };
    let bytes = if is_ulaw {
        let samples = wav::samples_under(start, end);
        let ul = read_at(&mut file, samples.start, samples.end - samples.start)?;
        wav::render(start, end, file_len, &ul)
    } else {
        read_at(&mut file, start, end - start + 1)?
    };
    let content_range = (status == StatusCode::PARTIAL_CONTENT).then(|| format!("bytes {start}-{end}/{len}"));
    Ok(Served { status, bytes, content_range })
}

fn read_at(file: &mut File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// GET `/recordings/{id}/waveform.svg`.
pub async fn waveform(State(receiver): State<Arc<Receiver>>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(listing) = listing(&receiver, &id) else { return StatusCode::NOT_FOUND.into_response() };
    let store = receiver.store.clone();
    let drawn = tokio::task::spawn_blocking(move || {
        let kept = store.waveform_path(&listing.recording_id);
        if let Ok(svg) = std::fs::read(&kept) {
            return Ok(svg);
        }
        let svg = draw(&std::fs::read(store.audio_path(&listing))?, &listing)?.into_bytes();
        if let Err(error) = durable::write(&kept, &svg, false) {
            warn!(path = %kept.display(), %error, "cannot keep a waveform picture: drawn anew next time");
        }
        Ok::<_, io::Error>(svg)
    })
    .await
    .unwrap_or_else(|join| Err(io::Error::other(join)));
    match drawn {
        Ok(svg) => ([(CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(error) => {
            warn!(recording = %id, %error, "cannot draw a stored recording's waveform");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The picture of a stored file: a `.ul` is one track, a WAV one per channel.
fn draw(audio: &[u8], listing: &Listing) -> io::Result<String> {
    let tracks =
        if listing.extension() == "wav" { decode_wav(audio).map_err(io::Error::other)? } else { vec![audio.to_vec()] };
    Ok(waveform::svg(&tracks, &listing.tracks, &listing.masked))
}

fn listing(receiver: &Receiver, id: &str) -> Option<Listing> {
    receiver.library.read().expect("the library lock is never poisoned").get(id).cloned()
}
