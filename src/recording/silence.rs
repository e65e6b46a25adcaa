//! Completeness, at the end of the recording step: where the audio Asterisk
//! sent was exact digital silence for a while (nobody made a sound, or one
//! side of a transfer was not yet connected), told apart from silence callrec
//! put there itself (packets that never came, paused stretches); and which
//! tracks never carried speech at all (one-way audio).

use std::ops::Range;

/// Shorter runs are the gaps of ordinary speech, not worth reporting (100 ms).
pub const MIN_SILENCE_SAMPLES: u64 = 800;
/// Samples in the frames a track is judged by (20 ms).
const FRAME: usize = 160;
/// A frame whose RMS rises above this carries speech (about -40 dBFS).
const SPEECH_RMS: f64 = 328.0;

/// μ-law's two codes for zero.
fn is_digital_silence(byte: u8) -> bool {
    byte == 0xFF || byte == 0x7F
}

/// Sorts and merges ranges that overlap or touch.
pub fn merged(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|range| range.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges.into_iter().filter(|range| !range.is_empty()) {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

/// Stretches of at least `MIN_SILENCE_SAMPLES` where every track holds exact
/// digital silence, leaving out `inserted` (merged, in order): silence callrec
/// wrote itself.
pub fn digital_silences(tracks: &[&[u8]], inserted: &[Range<u64>]) -> Vec<Range<u64>> {
    let length = tracks.iter().map(|track| track.len()).min().unwrap_or(0) as u64;
    let mut silences = Vec::new();
    let mut run_start: Option<u64> = None;
    let mut next_inserted = inserted.iter().peekable();
    for position in 0..length {
        while next_inserted.peek().is_some_and(|range| range.end <= position) {
            next_inserted.next();
        }
        let ours = next_inserted.peek().is_some_and(|range| range.start <= position);
        let silent = !ours && tracks.iter().all(|track| is_digital_silence(track[position as usize]));
        match (silent, run_start) {
            (true, None) => run_start = Some(position),
            (false, Some(_)) => close_run(&mut run_start, position, &mut silences),
            _ => {}
        }
    }
    close_run(&mut run_start, length, &mut silences);
    silences
}

/// Ends the running stretch at `at`, keeping it if it is long enough.
fn close_run(run_start: &mut Option<u64>, at: u64, silences: &mut Vec<Range<u64>>) {
    if let Some(start) = run_start.take() {
        if at - start >= MIN_SILENCE_SAMPLES {
            silences.push(start..at);
        }
    }
}

/// Whether no 20 ms frame of `track` rises above speech level.
pub fn without_speech(track: &[u8]) -> bool {
    !track.chunks(FRAME).any(|frame| {
        let energy: f64 = frame.iter().map(|&byte| f64::from(crate::ulaw::decode(byte)).powi(2)).sum();
        (energy / frame.len() as f64).sqrt() > SPEECH_RMS
    })
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::ulaw;

    fn tone(samples: usize) -> Vec<u8> {
        (0..samples).map(|n| ulaw::encode(if n % 4 < 2 { 6000 } else { -6000 })).collect()
    }

    #[test]
    fn long_digital_silence_is_found_and_short_is_not() {
        let mut track = tone(800);
        track.extend(vec![0xFF; 1600]); // 200 ms
        track.extend(tone(800));
        track.extend(vec![0x7F; 400]); // 50 ms: a breath
        track.extend(tone(800));
        assert_eq!(digital_silences(&[&track], &[]), [800..2400]);
    }

    #[test]
    fn silence_callrec_inserted_is_not_asterisks() {
        let mut track = tone(800);
        track.extend(vec![0xFF; 2400]);
        track.extend(tone(800));
        // Lost packets in the middle leave two stretches; the second is short.
        assert_eq!(digital_silences(&[&track], &[1600..2800]), [800..1600]);
        assert!(digital_silences(&[&track], &[800..3200]).is_empty());
    }

    #[test]
    fn a_stretch_counts_only_where_every_track_is_silent() {
        let mut left = vec![0xFF; 2400];
        left.extend(tone(800));
        let mut right = tone(800);
        right.extend(vec![0xFF; 2400]);
        // Both silent only from 800 to 2400.
        assert_eq!(digital_silences(&[&left, &right], &[]), [800..2400]);
        assert_eq!(digital_silences(&[&left, &tone(3200)], &[]), Vec::<Range<u64>>::new());
    }

    #[test]
    fn silence_at_the_end_is_reported() {
        let mut track = tone(160);
        track.extend(vec![0xFF; 1000]);
        assert_eq!(digital_silences(&[&track], &[]), [160..1160]);
    }

    #[test]
    fn ranges_merge() {
        assert_eq!(merged(vec![5..8, 0..2, 2..3, 7..10, 12..12]), [0..3, 5..10]);
    }

    #[test]
    fn a_track_of_hiss_has_no_speech_and_a_tone_has() {
        assert!(without_speech(&[0xFF; 8000]));
        assert!(without_speech(&vec![ulaw::encode(100); 8000]), "about -50 dBFS");
        let mut track = vec![0xFF; 8000];
        track.extend(tone(160));
        assert!(!without_speech(&track));
    }
}
