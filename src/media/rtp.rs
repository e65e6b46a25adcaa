//! Media capture, step 1: reads the RTP header (RFC 3550) of each datagram
//! that reaches the media socket, without copying its payload.

use thiserror::Error;

/// RTP payload type 0: PCMU (μ-law, 8000 Hz), the only one callrec records.
pub const PAYLOAD_TYPE_PCMU: u8 = 0;

const FIXED_HEADER_LEN: usize = 12;

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
