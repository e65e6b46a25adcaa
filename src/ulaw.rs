//! G.711 μ-law, the sample format callrec records in (`.ul`: mono, 8000 Hz).
//!
//! The recording path never transcodes: Asterisk sends μ-law and callrec keeps
//! it as is. These conversions serve what looks at the audio (tests, the WAV
//! writer in `recording::encode`, `callrec convert`) and name the one byte the
//! recorder writes for gaps.

/// The μ-law byte for digital silence; gaps in a recording are filled with it.
pub const SILENCE: u8 = 0xFF;

/// Samples per second of every callrec recording.
pub const SAMPLE_RATE: u32 = 8000;

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample as μ-law (ITU-T G.711).
pub fn encode(sample: i16) -> u8 {
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let exponent = (31 - (value as u32).leading_zeros() - 7) as i32;
    let mantissa = (value >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// μ-law's "negative zero": the byte G.711 decodes to 0 on the negative side.
const NEGATIVE_ZERO: u8 = 0x7F;

/// Decodes one μ-law byte to a 16-bit linear sample (ITU-T G.711).
///
/// The one departure from the table: the negative zero (0x7F) decodes to -1,
/// so that `encode(decode(b)) == b` for every byte and a recording taken
/// through 16-bit PCM and back comes out byte for byte.
pub fn decode(byte: u8) -> i16 {
    if byte == NEGATIVE_ZERO {
        return -1;
    }
    let byte = !byte;
    let exponent = i32::from((byte >> 4) & 0x07);
    let mantissa = i32::from(byte & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if byte & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Milliseconds of audio in `bytes` μ-law samples.
pub fn millis(bytes: u64) -> u64 {
    bytes * 1000 / u64::from(SAMPLE_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_decodes_to_zero() {
        assert_eq!(decode(SILENCE), 0);
        assert_eq!(encode(0), SILENCE);
    }

    #[test]
    fn known_values_match_g711() {
        // Reference points of the G.711 μ-law table.
        assert_eq!(decode(0x00), -32124);
        assert_eq!(decode(0x80), 32124);
        assert_eq!(decode(0xFF), 0);
        assert_eq!(encode(i16::MAX), 0x80);
        assert_eq!(encode(i16::MIN), 0x00);
    }

    #[test]
    fn negative_zero_decodes_to_minus_one() {
        assert_eq!(decode(NEGATIVE_ZERO), -1);
        assert_eq!(encode(-1), NEGATIVE_ZERO);
    }

    #[test]
    fn every_byte_survives_a_round_trip() {
        for byte in 0..=255u8 {
            assert_eq!(encode(decode(byte)), byte, "byte {byte:#04x}");
        }
    }

    #[test]
    fn encoding_error_stays_within_the_segment_step() {
        for sample in (-32000i32..32000).step_by(7) {
            let sample = sample as i16;
            let back = decode(encode(sample));
            let error = (i32::from(sample) - i32::from(back)).abs();
            let step = (i32::from(sample).abs() / 16).max(8);
            assert!(error <= step, "sample {sample} came back as {back}");
        }
    }

    #[test]
    fn millis_counts_eight_samples_per_ms() {
        assert_eq!(millis(8000), 1000);
        assert_eq!(millis(160), 20);
    }
}
