//! Recording, the last step before delivery: a finished recording's tracks
//! (raw μ-law, 8000 Hz, one per direction or one mixed) become the file that
//! is delivered, either the μ-law bytes as they are (`.ul`) or a 16-bit PCM
//! WAV. `decode_wav` reads such a WAV back into μ-law tracks, for
//! `callrec convert` and for tests.
//!
//! μ-law → 16-bit PCM → μ-law is lossless (see `ulaw::decode`), so a `.ul`
//! taken through WAV and back is the same file byte for byte.

use std::io::Cursor;

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};

use crate::ulaw;

/// The file a recording is delivered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// Raw μ-law, mono, 8000 Hz, no header.
    Ulaw,
    /// 16-bit PCM WAV, 8000 Hz, one channel per track.
    Wav,
}

impl AudioFormat {
    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Ulaw => "ul",
            AudioFormat::Wav => "wav",
        }
    }

    /// The MIME type the file is sent with.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Ulaw => "audio/basic",
            AudioFormat::Wav => "audio/wav",
        }
    }

    /// The metadata's `format` field.
    pub fn metadata_name(self) -> &'static str {
        match self {
            AudioFormat::Ulaw => "ulaw",
            AudioFormat::Wav => "wav",
        }
    }
}

/// Why a recording's tracks cannot become the file asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("there are no tracks to encode")]
    NoTracks,
    #[error("a .ul file holds one track, not {tracks}")]
    UlawHoldsOneTrack { tracks: usize },
    #[error("track {track} has {samples} samples but track 0 has {expected}; tracks must be the same length")]
    UnequalTracks { track: usize, samples: usize, expected: usize },
    #[error("{tracks} tracks are more than a WAV can hold ({max} channels)")]
    TooManyTracks { tracks: usize, max: u16 },
    #[error("{bytes} bytes of audio are more than a WAV can hold ({max} bytes)")]
    TooLongForWav { bytes: u64, max: u64 },
    #[error("cannot write the WAV: {reason}")]
    Wav { reason: String },
}

/// Why bytes cannot be read back as μ-law tracks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not a WAV file: {reason}")]
    NotWav { reason: String },
    #[error("not 16-bit PCM: the WAV holds {found}")]
    NotPcm16 { found: String },
    #[error("not 8000 Hz: the WAV is {found} Hz")]
    NotRate8000 { found: u32 },
    #[error("malformed WAV: {reason}")]
    Malformed { reason: String },
}

/// Bytes of WAV header hound writes at most (WAVEFORMATEXTENSIBLE, more than
/// two channels); the RIFF size field must count them too.
const WAV_HEADER_BYTES: u64 = 80;
/// The most audio a WAV holds: its sizes are 32-bit.
const MAX_WAV_DATA_BYTES: u64 = u32::MAX as u64 - WAV_HEADER_BYTES;
/// The most channels a WAV holds: a frame (2 bytes per channel) is counted in
/// 16 bits.
const MAX_WAV_CHANNELS: u16 = u16::MAX / 2;
/// Frames written per pass, so that hound's sample buffer stays small.
const FRAMES_PER_CHUNK: usize = 4096;

/// Encodes a finished recording's tracks (raw μ-law, 8000 Hz, all the same
/// length; track 0 = left) as the delivered file: `Ulaw` = the single track's
/// bytes as they are; `Wav` = 16-bit PCM WAV, 8000 Hz, one channel per track,
/// interleaved.
pub fn encode(format: AudioFormat, tracks: &[&[u8]]) -> Result<Vec<u8>, EncodeError> {
    let frames = common_length(tracks)?;
    match format {
        AudioFormat::Ulaw => match tracks {
            [track] => Ok(track.to_vec()),
            _ => Err(EncodeError::UlawHoldsOneTrack { tracks: tracks.len() }),
        },
        AudioFormat::Wav => encode_wav(tracks, frames),
    }
}

/// Reads a 16-bit PCM WAV at 8000 Hz (any channel count) back into μ-law
/// tracks (one Vec per channel).
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut reader = WavReader::new(Cursor::new(bytes)).map_err(|error| header_error(bytes, error))?;
    let spec = reader.spec();
    check_pcm16(spec)?;
    if spec.sample_rate != ulaw::SAMPLE_RATE {
        return Err(DecodeError::NotRate8000 { found: spec.sample_rate });
    }
    let channels = usize::from(spec.channels);
    // The header's length is only a claim: never reserve more than the bytes hold.
    let frames = (reader.duration() as usize).min(bytes.len() / 2 / channels);
    let mut tracks = vec![Vec::with_capacity(frames); channels];
    for (index, sample) in reader.samples::<i16>().enumerate() {
        let sample = sample.map_err(sample_error)?;
        tracks[index % channels].push(ulaw::encode(sample));
    }
    Ok(tracks)
}

/// The length every track shares, or why there is none.
fn common_length(tracks: &[&[u8]]) -> Result<usize, EncodeError> {
    let expected = tracks.first().ok_or(EncodeError::NoTracks)?.len();
    match tracks.iter().position(|track| track.len() != expected) {
        Some(track) => Err(EncodeError::UnequalTracks { track, samples: tracks[track].len(), expected }),
        None => Ok(expected),
    }
}

/// The spec of a 16-bit PCM WAV at 8000 Hz with one channel per track.
fn wav_spec(tracks: usize) -> Result<WavSpec, EncodeError> {
    let channels = u16::try_from(tracks)
        .ok()
        .filter(|&channels| channels <= MAX_WAV_CHANNELS)
        .ok_or(EncodeError::TooManyTracks { tracks, max: MAX_WAV_CHANNELS })?;
    Ok(WavSpec { channels, sample_rate: ulaw::SAMPLE_RATE, bits_per_sample: 16, sample_format: SampleFormat::Int })
}

fn encode_wav(tracks: &[&[u8]], frames: usize) -> Result<Vec<u8>, EncodeError> {
    let spec = wav_spec(tracks.len())?;
    let data_bytes = frames as u64 * tracks.len() as u64 * 2;
    if data_bytes > MAX_WAV_DATA_BYTES {
        return Err(EncodeError::TooLongForWav { bytes: data_bytes, max: MAX_WAV_DATA_BYTES });
    }
    let mut file = Vec::with_capacity(WAV_HEADER_BYTES as usize + data_bytes as usize);
    write_wav(&mut file, spec, tracks, frames).map_err(|error| EncodeError::Wav { reason: error.to_string() })?;
    Ok(file)
}

/// Writes the header and the tracks' samples, one frame (a sample of each
/// track, track 0 first) after another.
fn write_wav(file: &mut Vec<u8>, spec: WavSpec, tracks: &[&[u8]], frames: usize) -> hound::Result<()> {
    let mut writer = WavWriter::new(Cursor::new(file), spec)?;
    for start in (0..frames).step_by(FRAMES_PER_CHUNK) {
        let end = (start + FRAMES_PER_CHUNK).min(frames);
        // At most FRAMES_PER_CHUNK × MAX_WAV_CHANNELS samples: fits in a u32.
        let mut chunk = writer.get_i16_writer(((end - start) * tracks.len()) as u32);
        for frame in start..end {
            for track in tracks {
                chunk.write_sample(ulaw::decode(track[frame]));
            }
        }
        chunk.flush()?;
    }
    writer.finalize()
}

/// Only 16-bit integer PCM is read: what `encode` writes.
fn check_pcm16(spec: WavSpec) -> Result<(), DecodeError> {
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, 16) => Ok(()),
        (SampleFormat::Int, bits) => Err(DecodeError::NotPcm16 { found: format!("{bits}-bit PCM") }),
        (SampleFormat::Float, bits) => Err(DecodeError::NotPcm16 { found: format!("{bits}-bit float") }),
    }
}

/// What hound's refusal of a header means here.
fn header_error(bytes: &[u8], error: hound::Error) -> DecodeError {
    match error {
        hound::Error::Unsupported => {
            DecodeError::NotPcm16 { found: format_tag(bytes).map_or("an unsupported encoding".into(), encoding_name) }
        }
        hound::Error::FormatError(reason) => DecodeError::NotWav { reason: reason.into() },
        hound::Error::IoError(_) => DecodeError::NotWav { reason: short_header(bytes).into() },
        other => DecodeError::NotWav { reason: other.to_string() },
    }
}

/// Why a file ended before hound had read its header.
fn short_header(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        "the file is empty"
    } else if !b"RIFF".starts_with(&bytes[..bytes.len().min(4)]) {
        "no RIFF tag found"
    } else {
        "the file ends inside its header"
    }
}

/// What a failure while reading the samples means here.
fn sample_error(error: hound::Error) -> DecodeError {
    let reason = match error {
        hound::Error::IoError(_) => "the audio data ends before the length its header gives".into(),
        hound::Error::TooWide | hound::Error::Unsupported => "its samples are not stored as 2 bytes each".into(),
        other => other.to_string(),
    };
    DecodeError::Malformed { reason }
}

/// The `fmt ` chunk's format tag (WAVE_FORMAT_EXTENSIBLE's sub-format where
/// there is one), found by walking the RIFF chunks; `None` if there is none.
fn format_tag(bytes: &[u8]) -> Option<u16> {
    let mut rest = bytes.get(12..)?;
    while rest.len() >= 8 {
        let (id, size) = (&rest[..4], u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize);
        let body = &rest[8..];
        if id == b"fmt " {
            let tag = u16::from_le_bytes([*body.first()?, *body.get(1)?]);
            const EXTENSIBLE: u16 = 0xFFFE;
            // The sub-format GUID starts with the format tag it stands for.
            return if tag == EXTENSIBLE {
                Some(u16::from_le_bytes([*body.get(24)?, *body.get(25)?]))
            } else {
                Some(tag)
            };
        }
        // Chunks are padded to an even length.
        rest = body.get(size.checked_add(size % 2)?..)?;
    }
    None
}

/// A WAV format tag as a person would name it.
fn encoding_name(tag: u16) -> String {
    let name = match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "μ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0055 => "MP3",
        _ => return format!("an unsupported encoding (format tag {tag:#06x})"),
    };
    format!("{name} (format tag {tag:#06x})")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_BYTES: [u8; 256] = {
        let mut bytes = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            bytes[i] = i as u8;
            i += 1;
        }
        bytes
    };

    fn read_spec(wav: &[u8]) -> (WavSpec, u32) {
        let reader = WavReader::new(Cursor::new(wav)).unwrap();
        (reader.spec(), reader.len())
    }

    /// A WAV written by hound itself, for the formats callrec never writes.
    fn foreign_wav(spec: WavSpec, samples: &[i32]) -> Vec<u8> {
        let mut file = Vec::new();
        let mut writer = WavWriter::new(Cursor::new(&mut file), spec).unwrap();
        for &sample in samples {
            writer.write_sample(sample).unwrap();
        }
        writer.finalize().unwrap();
        file
    }

    fn spec(channels: u16, sample_rate: u32, bits_per_sample: u16) -> WavSpec {
        WavSpec { channels, sample_rate, bits_per_sample, sample_format: SampleFormat::Int }
    }

    #[test]
    fn formats_name_their_extension_type_and_metadata() {
        assert_eq!(AudioFormat::Ulaw.extension(), "ul");
        assert_eq!(AudioFormat::Wav.extension(), "wav");
        assert_eq!(AudioFormat::Ulaw.content_type(), "audio/basic");
        assert_eq!(AudioFormat::Wav.content_type(), "audio/wav");
        assert_eq!(AudioFormat::Ulaw.metadata_name(), "ulaw");
        assert_eq!(AudioFormat::Wav.metadata_name(), "wav");
    }

    #[test]
    fn ulaw_is_the_track_as_it_is() {
        assert_eq!(encode(AudioFormat::Ulaw, &[&ALL_BYTES]).unwrap(), ALL_BYTES.to_vec());
        assert_eq!(encode(AudioFormat::Ulaw, &[&[]]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn mono_wav_header() {
        let wav = encode(AudioFormat::Wav, &[&[0xFF; 800]]).unwrap();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..12], b"WAVE");
        assert_eq!(wav.len(), 44 + 1600);
        let (spec, samples) = read_spec(&wav);
        assert_eq!(
            spec,
            WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: SampleFormat::Int }
        );
        assert_eq!(samples, 800);
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 1600, "data chunk length");
    }

    #[test]
    fn stereo_wav_header() {
        let wav = encode(AudioFormat::Wav, &[&[0xFF; 800], &[0x7F; 800]]).unwrap();
        assert_eq!(wav.len(), 44 + 3200);
        let (spec, samples) = read_spec(&wav);
        assert_eq!(
            spec,
            WavSpec { channels: 2, sample_rate: 8000, bits_per_sample: 16, sample_format: SampleFormat::Int }
        );
        assert_eq!(samples, 1600);
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 3200, "data chunk length");
    }

    #[test]
    fn stereo_interleaves_left_first() {
        let left = [0x00, 0x10];
        let right = [0x80, 0x90];
        let wav = encode(AudioFormat::Wav, &[&left, &right]).unwrap();
        let samples: Vec<i16> = WavReader::new(Cursor::new(&wav)).unwrap().samples().map(Result::unwrap).collect();
        let expected: Vec<i16> = [0x00, 0x80, 0x10, 0x90].into_iter().map(ulaw::decode).collect();
        assert_eq!(samples, expected);
    }

    #[test]
    fn every_byte_round_trips_through_mono_wav() {
        let wav = encode(AudioFormat::Wav, &[&ALL_BYTES]).unwrap();
        assert_eq!(decode_wav(&wav).unwrap(), vec![ALL_BYTES.to_vec()]);
    }

    #[test]
    fn every_byte_round_trips_through_stereo_wav() {
        let reversed: Vec<u8> = ALL_BYTES.iter().rev().copied().collect();
        let wav = encode(AudioFormat::Wav, &[&ALL_BYTES, &reversed]).unwrap();
        assert_eq!(decode_wav(&wav).unwrap(), vec![ALL_BYTES.to_vec(), reversed]);
    }

    #[test]
    fn long_tracks_span_several_chunks() {
        let track: Vec<u8> = (0..FRAMES_PER_CHUNK * 2 + 17).map(|i| i as u8).collect();
        let wav = encode(AudioFormat::Wav, &[&track, &track]).unwrap();
        assert_eq!(decode_wav(&wav).unwrap(), vec![track.clone(), track]);
    }

    #[test]
    fn more_than_two_tracks_round_trip_too() {
        let tracks: Vec<Vec<u8>> = (0..3u8).map(|n| ALL_BYTES.iter().map(|b| b.wrapping_add(n)).collect()).collect();
        let slices: Vec<&[u8]> = tracks.iter().map(Vec::as_slice).collect();
        let wav = encode(AudioFormat::Wav, &slices).unwrap();
        assert_eq!(read_spec(&wav).0.channels, 3);
        assert_eq!(decode_wav(&wav).unwrap(), tracks);
    }

    #[test]
    fn an_empty_recording_is_an_empty_wav() {
        let wav = encode(AudioFormat::Wav, &[&[]]).unwrap();
        assert_eq!(wav.len(), 44);
        assert_eq!(decode_wav(&wav).unwrap(), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn tracks_that_cannot_be_encoded_are_refused() {
        assert_eq!(encode(AudioFormat::Wav, &[]), Err(EncodeError::NoTracks));
        assert_eq!(encode(AudioFormat::Ulaw, &[]), Err(EncodeError::NoTracks));
        assert_eq!(encode(AudioFormat::Ulaw, &[&[1], &[2]]), Err(EncodeError::UlawHoldsOneTrack { tracks: 2 }));
        assert_eq!(
            encode(AudioFormat::Wav, &[&[1, 2], &[3]]),
            Err(EncodeError::UnequalTracks { track: 1, samples: 1, expected: 2 })
        );
        let many = vec![&[][..]; usize::from(MAX_WAV_CHANNELS) + 1];
        assert!(matches!(encode(AudioFormat::Wav, &many), Err(EncodeError::TooManyTracks { .. })));
        let error = encode(AudioFormat::Wav, &[&[1, 2], &[3]]).unwrap_err().to_string();
        assert!(error.contains("track 1 has 1 samples but track 0 has 2"), "{error}");
    }

    #[test]
    fn what_is_not_a_wav_is_named() {
        for bytes in [&b""[..], b"RIFF", b"hello, this is not audio at all", &ALL_BYTES] {
            let error = decode_wav(bytes).unwrap_err();
            assert!(matches!(error, DecodeError::NotWav { .. }), "{error}");
            assert!(error.to_string().starts_with("not a WAV file: "), "{error}");
        }
    }

    #[test]
    fn a_short_file_says_why_it_is_not_a_wav() {
        let reason = |bytes: &[u8]| match decode_wav(bytes) {
            Err(DecodeError::NotWav { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(reason(b""), "the file is empty");
        assert_eq!(reason(b"hi\n"), "no RIFF tag found");
        assert_eq!(reason(b"RIF"), "the file ends inside its header");
        assert_eq!(reason(b"RIFF\x24\0\0\0WAVEfmt "), "the file ends inside its header");
    }

    #[test]
    fn other_sample_formats_are_named() {
        let eight_bit = foreign_wav(spec(1, 8000, 8), &[0, 1]);
        assert_eq!(decode_wav(&eight_bit), Err(DecodeError::NotPcm16 { found: "8-bit PCM".into() }));
        let float = {
            let mut file = Vec::new();
            let spec =
                WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 32, sample_format: SampleFormat::Float };
            let mut writer = WavWriter::new(Cursor::new(&mut file), spec).unwrap();
            writer.write_sample(0.5f32).unwrap();
            writer.finalize().unwrap();
            file
        };
        let error = decode_wav(&float).unwrap_err();
        assert_eq!(error.to_string(), "not 16-bit PCM: the WAV holds 32-bit float");
    }

    #[test]
    fn a_ulaw_wav_is_named_as_such() {
        // The header of a μ-law WAV (format tag 7), which callrec does not read.
        let mut wav = encode(AudioFormat::Wav, &[&[0xFF; 4]]).unwrap();
        wav[20..22].copy_from_slice(&7u16.to_le_bytes());
        let error = decode_wav(&wav).unwrap_err();
        assert_eq!(error.to_string(), "not 16-bit PCM: the WAV holds μ-law (format tag 0x0007)");
    }

    #[test]
    fn an_extensible_wav_is_named_by_its_sub_format() {
        // Three channels make the header WAVE_FORMAT_EXTENSIBLE; its sub-format
        // GUID starts at byte 44 (fmt body at 20, GUID 24 bytes into it).
        let mut wav = encode(AudioFormat::Wav, &[&[0xFF; 4], &[0xFF; 4], &[0xFF; 4]]).unwrap();
        assert_eq!(&wav[20..22], &0xFFFEu16.to_le_bytes());
        wav[44..46].copy_from_slice(&6u16.to_le_bytes());
        let error = decode_wav(&wav).unwrap_err();
        assert_eq!(error.to_string(), "not 16-bit PCM: the WAV holds A-law (format tag 0x0006)");
    }

    #[test]
    fn another_sample_rate_is_named() {
        let wav = foreign_wav(spec(1, 44100, 16), &[0, 1]);
        let error = decode_wav(&wav).unwrap_err();
        assert_eq!(error, DecodeError::NotRate8000 { found: 44100 });
        assert_eq!(error.to_string(), "not 8000 Hz: the WAV is 44100 Hz");
    }

    #[test]
    fn truncated_audio_is_malformed() {
        let wav = encode(AudioFormat::Wav, &[&[0xFF; 100]]).unwrap();
        let error = decode_wav(&wav[..100]).unwrap_err();
        assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
    }

    #[test]
    fn a_header_claiming_gigabytes_reserves_nothing_it_cannot_fill() {
        let mut wav = encode(AudioFormat::Wav, &[&[0xFF; 2]]).unwrap();
        wav[40..44].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
        assert!(matches!(decode_wav(&wav), Err(DecodeError::Malformed { .. })));
    }
}
