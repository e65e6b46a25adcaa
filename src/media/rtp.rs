//! Media capture, step 1: reads the RTP header (RFC 3550) of each datagram
//! that reaches the media socket, without copying its payload.

use thiserror::Error;

/// RTP payload type 0: PCMU (μ-law, 8000 Hz), the only one callrec records.
pub const PAYLOAD_TYPE_PCMU: u8 = 0;

pub const FIXED_HEADER_LEN: usize = 12;

/// One parsed RTP packet; `payload` borrows from the received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("datagram of {0} bytes is shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    #[error("RTP header extension or CSRC list runs past the datagram")]
    HeaderOverrun,
    #[error("RTP padding of {0} bytes is larger than the payload")]
    BadPadding(u8),
}

/// Parses one datagram. CSRC lists, header extensions and padding are
/// skipped so that `payload` holds only the audio bytes.
pub fn parse(datagram: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if datagram.len() < FIXED_HEADER_LEN {
        return Err(RtpError::TooShort(datagram.len()));
    }
    let first = datagram[0];
    let version = first >> 6;
    if version != 2 {
        return Err(RtpError::Version(version));
    }
    let has_padding = first & 0x20 != 0;
    let has_extension = first & 0x10 != 0;
    let csrc_count = usize::from(first & 0x0F);

    let mut start = FIXED_HEADER_LEN + 4 * csrc_count;
    if has_extension {
        let words = datagram.get(start + 2..start + 4).ok_or(RtpError::HeaderOverrun)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if start > datagram.len() {
        return Err(RtpError::HeaderOverrun);
    }
    let mut end = datagram.len();
    if has_padding {
        let padding = datagram[end - 1];
        if padding == 0 || usize::from(padding) > end - start {
            return Err(RtpError::BadPadding(padding));
        }
        end -= usize::from(padding);
    }

    Ok(RtpPacket {
        payload_type: datagram[1] & 0x7F,
        marker: datagram[1] & 0x80 != 0,
        sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
        timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
        ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
        payload: &datagram[start..end],
    })
}

/// Writes a 12-byte RTP header for a PCMU packet; used by tests and benchmarks
/// that play the part of Asterisk.
pub fn write_header(out: &mut [u8; FIXED_HEADER_LEN], sequence: u16, timestamp: u32, ssrc: u32) {
    out[0] = 0x80;
    out[1] = PAYLOAD_TYPE_PCMU;
    out[2..4].copy_from_slice(&sequence.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; FIXED_HEADER_LEN];
        write_header(&mut header, sequence, timestamp, 0xDEAD_BEEF);
        [&header[..], payload].concat()
    }

    #[test]
    fn parses_a_plain_pcmu_packet() {
        let bytes = packet(65535, 0xFFFF_FF60, &[1, 2, 3]);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.payload_type, PAYLOAD_TYPE_PCMU);
        assert!(!parsed.marker);
        assert_eq!(parsed.sequence, 65535);
        assert_eq!(parsed.timestamp, 0xFFFF_FF60);
        assert_eq!(parsed.ssrc, 0xDEAD_BEEF);
        assert_eq!(parsed.payload, &[1, 2, 3]);
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut bytes = packet(7, 160, &[]);
        bytes[0] = 0x80 | 0x20 | 0x10 | 2; // padding, extension, two CSRCs
        bytes[1] = 0x80; // marker bit, payload type 0
        bytes.extend_from_slice(&[0; 8]); // CSRCs
        bytes.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one extension word
        bytes.extend_from_slice(&[0x55, 0x66]); // audio
        bytes.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let parsed = parse(&bytes).unwrap();
        assert!(parsed.marker);
        assert_eq!(parsed.payload, &[0x55, 0x66]);
    }

    #[test]
    fn rejects_what_is_not_rtp() {
        assert_eq!(parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        let mut bytes = packet(1, 1, &[0]);
        bytes[0] = 0x40;
        assert_eq!(parse(&bytes), Err(RtpError::Version(1)));
        let mut bytes = packet(1, 1, &[]);
        bytes[0] = 0x8F; // fifteen CSRCs that are not there
        assert_eq!(parse(&bytes), Err(RtpError::HeaderOverrun));
        let mut bytes = packet(1, 1, &[]);
        bytes[0] = 0x90; // an extension header that is not there
        assert_eq!(parse(&bytes), Err(RtpError::HeaderOverrun));
        let mut bytes = packet(1, 1, &[1, 200]);
        bytes[0] = 0xA0; // padding longer than the payload
        assert_eq!(parse(&bytes), Err(RtpError::BadPadding(200)));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut state = 0x1234_5678u32;
        for len in 0..64 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        state as u8
                    })
                    .collect();
                let _ = parse(&bytes);
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Any bytes, and as often bytes that claim version 2, so that the
    /// header flags (CSRC count, extension, padding) are exercised rather
    /// than most datagrams stopping at the version check.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        (prop::collection::vec(any::<u8>(), 0..2000), any::<bool>(), any::<u8>()).prop_map(
            |(mut bytes, version_2, flags)| {
                if let (true, Some(first)) = (version_2, bytes.first_mut()) {
                    *first = 0x80 | (flags & 0x3F);
                }
                bytes
            },
        )
    }

    /// Where the payload of `bytes` must start per RFC 3550, if its header fits.
    fn header_len(bytes: &[u8]) -> Option<usize> {
        let mut len = FIXED_HEADER_LEN + 4 * usize::from(bytes[0] & 0x0F);
        if bytes[0] & 0x10 != 0 {
            let words = bytes.get(len + 2..len + 4)?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        (len <= bytes.len()).then_some(len)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Arbitrary datagrams never panic the parser; what parses has a
        /// payload that is the sub-slice of the datagram between the header
        /// (fixed part, CSRCs, extension) and the padding, and every refusal
        /// is the right one.
        #[test]
        fn arbitrary_datagrams_parse_to_a_sub_slice_or_the_right_error(bytes in datagram()) {
            let result = parse(&bytes);
            if bytes.len() < FIXED_HEADER_LEN {
                prop_assert_eq!(result, Err(RtpError::TooShort(bytes.len())));
                return Ok(());
            }
            if bytes[0] >> 6 != 2 {
                prop_assert_eq!(result, Err(RtpError::Version(bytes[0] >> 6)));
                return Ok(());
            }
            let Some(start) = header_len(&bytes) else {
                prop_assert_eq!(result, Err(RtpError::HeaderOverrun));
                return Ok(());
            };
            let padding = if bytes[0] & 0x20 != 0 { usize::from(bytes[bytes.len() - 1]) } else { 0 };
            if bytes[0] & 0x20 != 0 && (padding == 0 || padding > bytes.len() - start) {
                prop_assert_eq!(result, Err(RtpError::BadPadding(padding as u8)));
                return Ok(());
            }
            let packet = result.expect("a well-formed header parses");
            // A sub-slice of the datagram, found by address, not by value.
            let offset = packet.payload.as_ptr() as usize - bytes.as_ptr() as usize;
            prop_assert!(offset + packet.payload.len() <= bytes.len());
            prop_assert_eq!(offset, start);
            prop_assert_eq!(offset + packet.payload.len(), bytes.len() - padding);
            prop_assert_eq!(packet.payload_type, bytes[1] & 0x7F);
            prop_assert_eq!(packet.marker, bytes[1] & 0x80 != 0);
            prop_assert_eq!(packet.sequence, u16::from_be_bytes([bytes[2], bytes[3]]));
            prop_assert_eq!(packet.timestamp, u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]));
            prop_assert_eq!(packet.ssrc, u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]));
        }

        /// A packet built from parts (CSRCs, an extension, audio, padding)
        /// parses back to exactly its audio and header fields; cut short
        /// anywhere inside its header it is refused, never misread.
        #[test]
        fn built_packets_parse_back_to_their_parts(
            sequence in any::<u16>(),
            timestamp in any::<u32>(),
            ssrc in any::<u32>(),
            marker in any::<bool>(),
            payload_type in 0u8..128,
            csrcs in 0usize..16,
            extension in prop::option::of(0usize..20),
            audio in prop::collection::vec(any::<u8>(), 0..400),
            padding in 0u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = [0u8; FIXED_HEADER_LEN].to_vec();
            bytes[0] = 0x80 | csrcs as u8;
            bytes[1] = payload_type | if marker { 0x80 } else { 0 };
            bytes[2..4].copy_from_slice(&sequence.to_be_bytes());
            bytes[4..8].copy_from_slice(&timestamp.to_be_bytes());
            bytes[8..12].copy_from_slice(&ssrc.to_be_bytes());
            bytes.extend((0..4 * csrcs).map(|i| i as u8));
            if let Some(words) = extension {
                bytes[0] |= 0x10;
                bytes.extend_from_slice(&[0xBE, 0xDE]);
                bytes.extend_from_slice(&(words as u16).to_be_bytes());
                bytes.extend((0..4 * words).map(|i| !(i as u8)));
            }
            let header = bytes.len();
            bytes.extend_from_slice(&audio);
            if padding > 0 {
                bytes[0] |= 0x20;
                bytes.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
                bytes.push(padding);
            }
            let packet = parse(&bytes).expect("a packet built by the rules parses");
            prop_assert_eq!(packet.payload, &audio[..]);
            prop_assert_eq!(
                (packet.payload_type, packet.marker, packet.sequence, packet.timestamp, packet.ssrc),
                (payload_type, marker, sequence, timestamp, ssrc)
            );
            let short = &bytes[..cut.index(header)];
            prop_assert!(parse(short).is_err(), "{} of {} header bytes parsed", short.len(), header);
        }
    }
}
