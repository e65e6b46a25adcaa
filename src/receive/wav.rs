//! Serving audio to a browser's player: a stored `.ul` (raw μ-law, mono,
//! 8000 Hz, which browsers do not play) seen as the 16-bit PCM WAV it
//! decodes to, without writing that WAV anywhere. Any byte range of the
//! WAV is made from the μ-law bytes under it, so a player can seek in a
//! long recording and only those bytes are read.

use std::ops::Range;

use crate::ulaw;

/// The WAV header's length: RIFF, `fmt ` and `data` chunk headers.
pub const HEADER_LEN: u64 = 44;

/// The WAV's length for `samples` μ-law bytes.
pub fn wav_len(samples: u64) -> u64 {
    HEADER_LEN + 2 * samples
}

/// The 44-byte header of a mono 8000 Hz 16-bit PCM WAV of `samples` samples.
pub fn header(samples: u64) -> [u8; HEADER_LEN as usize] {
    let data_len = u32::try_from(2 * samples).unwrap_or(u32::MAX - 36);
    let mut header = [0u8; HEADER_LEN as usize];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        header[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"RIFF");
    put(&(36 + data_len).to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&16u32.to_le_bytes());
    put(&1u16.to_le_bytes()); // PCM
    put(&1u16.to_le_bytes()); // mono
    put(&ulaw::SAMPLE_RATE.to_le_bytes());
    put(&(ulaw::SAMPLE_RATE * 2).to_le_bytes()); // bytes per second
    put(&2u16.to_le_bytes()); // bytes per frame
    put(&16u16.to_le_bytes()); // bits per sample
    put(b"data");
    put(&data_len.to_le_bytes());
    header
}

/// The μ-law bytes (sample indexes) that WAV bytes `start..=end` are made of.
pub fn samples_under(start: u64, end: u64) -> Range<u64> {
    let first = start.saturating_sub(HEADER_LEN) / 2;
    let past = if end < HEADER_LEN { 0 } else { (end - HEADER_LEN) / 2 + 1 };
    first..past.max(first)
}

/// WAV bytes `start..=end` of a recording of `samples` samples, given the
/// μ-law bytes `samples_under(start, end)` (`ul`).
pub fn render(start: u64, end: u64, samples: u64, ul: &[u8]) -> Vec<u8> {
    let header = header(samples);
    let mut out = Vec::with_capacity((end - start + 1) as usize);
    for at in start..=end.min(HEADER_LEN - 1) {
        out.push(header[at as usize]);
    }
    let first = samples_under(start, end).start;
    for (index, &byte) in ul.iter().enumerate() {
        let pcm = ulaw::decode(byte).to_le_bytes();
        let offset = HEADER_LEN + 2 * (first + index as u64);
        for (k, value) in pcm.iter().enumerate() {
            let position = offset + k as u64;
            if (start..=end).contains(&position) {
                out.push(*value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::encode::{decode_wav, encode, AudioFormat};

    fn ul(samples: usize) -> Vec<u8> {
        (0..samples).map(|i| (i * 37 % 256) as u8).collect()
    }

    fn whole(ul: &[u8]) -> Vec<u8> {
        let len = wav_len(ul.len() as u64);
        render(0, len - 1, ul.len() as u64, ul)
    }

    #[test]
    fn the_whole_wav_is_the_one_callrec_writes() {
        let audio = ul(801);
        let written = encode(AudioFormat::Wav, &[&audio]).unwrap();
        assert_eq!(whole(&audio), written);
        assert_eq!(decode_wav(&whole(&audio)).unwrap(), vec![audio]);
    }

    #[test]
    fn every_range_is_the_same_bytes_as_the_whole() {
        let audio = ul(50);
        let full = whole(&audio);
        let len = full.len() as u64;
        for start in 0..len {
            for end in [start, start + 1, start + 2, start + 45, len - 1] {
                let end = end.min(len - 1);
                let under = samples_under(start, end);
                let part = render(start, end, audio.len() as u64, &audio[under.start as usize..under.end as usize]);
                assert_eq!(part, full[start as usize..=end as usize], "{start}..={end}");
            }
        }
    }

    #[test]
    fn a_range_inside_the_header_needs_no_audio() {
        assert!(samples_under(0, 43).is_empty());
        assert_eq!(samples_under(44, 45), 0..1);
        assert_eq!(samples_under(45, 46), 0..2);
        assert_eq!(samples_under(0, 99), 0..28);
    }
}
