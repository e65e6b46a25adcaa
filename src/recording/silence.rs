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
/// wrote itself. The tracks are read eight samples at a time.
pub fn digital_silences(tracks: &[&[u8]], inserted: &[Range<u64>]) -> Vec<Range<u64>> {
    let length = tracks.iter().map(|track| track.len()).min().unwrap_or(0) as u64;
    let mut silences = Vec::new();
    // Asterisk's audio lies between the stretches callrec inserted.
    let mut from = 0;
    for ours in inserted.iter().chain(std::iter::once(&(length..length))) {
        let to = ours.start.min(length);
        if from < to {
            find_runs(tracks, from as usize..to as usize, &mut silences);
        }
        from = from.max(ours.end);
    }
    silences
}

/// Appends the long runs of silence in every track within `span`.
fn find_runs(tracks: &[&[u8]], span: Range<usize>, silences: &mut Vec<Range<u64>>) {
    let mut run_start: Option<u64> = None;
    let mut position = span.start;
    while position < span.end {
        if position + 8 <= span.end {
            let silent =
                tracks.iter().fold(ALL_SILENT, |mask, track| mask & silent_bytes(&track[position..position + 8]));
            if silent == ALL_SILENT && run_start.is_some() || silent == 0 && run_start.is_none() {
                position += 8;
                continue;
            }
        }
        let silent = tracks.iter().all(|track| is_digital_silence(track[position]));
        match (silent, run_start) {
            (true, None) => run_start = Some(position as u64),
            (false, Some(_)) => close_run(&mut run_start, position as u64, silences),
            _ => {}
        }
        position += 1;
    }
    close_run(&mut run_start, span.end as u64, silences);
}

/// The high bit of every byte of a word.
const ALL_SILENT: u64 = 0x8080_8080_8080_8080;

/// Of eight samples, the high bit of each byte set where the sample is
/// digital silence (0xFF or 0x7F: all low seven bits set).
fn silent_bytes(samples: &[u8]) -> u64 {
    let word = u64::from_le_bytes(samples.try_into().expect("eight samples"));
    // Each byte's low bits inverted: zero exactly where the sample is silent.
    let rest = !word & !ALL_SILENT;
    // Adding 0x7F to a byte of at most 0x7F sets its high bit unless it is
    // zero, and never carries into the next byte.
    !(rest + !ALL_SILENT) & ALL_SILENT
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

    /// The plain definition, a sample at a time.
    fn reference(tracks: &[&[u8]], inserted: &[Range<u64>]) -> Vec<Range<u64>> {
        let length = tracks.iter().map(|track| track.len()).min().unwrap_or(0) as u64;
        let mut silences = Vec::new();
        let mut run_start = None;
        for position in 0..length {
            let ours = inserted.iter().any(|range| range.contains(&position));
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

    #[test]
    fn eight_samples_at_a_time_finds_what_one_at_a_time_does() {
        use proptest::prelude::*;
        // Runs of silence (both codes), sound, and bytes one bit from silence.
        let piece = prop_oneof![
            (1usize..1200).prop_map(|n| vec![0xFF; n]),
            (1usize..1200).prop_map(|n| vec![0x7F; n]),
            (1usize..300).prop_map(tone),
            prop::collection::vec(prop::sample::select(vec![0xFE, 0x7E, 0xFD, 0x80, 0x00, 0xFF, 0x7F]), 1..20),
        ];
        let track = prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat());
        let ranges = prop::collection::vec((0u64..6000, 0u64..900), 0..4)
            .prop_map(|ranges| merged(ranges.into_iter().map(|(start, len)| start..start + len).collect()));
        proptest!(|(left in track.clone(), right in track, inserted in ranges)| {
            prop_assert_eq!(digital_silences(&[&left], &inserted), reference(&[&left], &inserted));
            prop_assert_eq!(digital_silences(&[&left, &right], &inserted), reference(&[&left, &right], &inserted));
        });
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
