//! Tone analysis of recordings: which known frequencies sound where, measured
//! with a Goertzel filter over short windows of the decoded μ-law.

use callrec::ulaw;

/// Window length in samples (10 ms): fine enough to time an onset.
pub const WINDOW: usize = 80;
/// Magnitude above which a tone counts as present (the prompts are at about
/// 8000 and the callers' tones at about 4900).
pub const PRESENT: f64 = 1500.0;
/// Magnitude below which a tone counts as absent.
pub const ABSENT: f64 = 400.0;

/// Amplitude of `frequency` in `samples` (about half the sine's peak).
pub fn magnitude(samples: &[i16], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &sample in samples {
        let s0 = f64::from(sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coefficient * s1 * s2).max(0.0).sqrt() / samples.len() as f64
}

pub fn decode(audio: &[u8]) -> Vec<i16> {
    audio.iter().map(|&b| ulaw::decode(b)).collect()
}

/// The magnitude of `frequency` in each whole 10 ms window.
pub fn track(audio: &[u8], frequency: f64) -> Vec<f64> {
    decode(audio).chunks_exact(WINDOW).map(|w| magnitude(w, frequency)).collect()
}

/// Milliseconds (at 10 ms resolution) during which `frequency` is present in
/// `audio[from_ms..to_ms]`.
pub fn present_ms(audio: &[u8], frequency: f64, from_ms: usize, to_ms: usize) -> usize {
    let track = track(audio, frequency);
    let (from, to) = (from_ms / 10, (to_ms / 10).min(track.len()));
    track[from.min(to)..to].iter().filter(|&&m| m > PRESENT).count() * 10
}

/// Where `frequency` first sounds without a break, as (start, end) in ms at
/// 10 ms resolution.
pub fn first_run_ms(audio: &[u8], frequency: f64) -> Option<(usize, usize)> {
    first_run_of_at_least_ms(audio, frequency, 0)
}

/// As `first_run_ms`, for the first run lasting at least `min_ms`: a window
/// that straddles another tone's onset splashes into neighbouring bins for
/// a window or two, which is no run of this tone.
pub fn first_run_of_at_least_ms(audio: &[u8], frequency: f64, min_ms: usize) -> Option<(usize, usize)> {
    let track = track(audio, frequency);
    let mut from = 0;
    while let Some(offset) = track[from..].iter().position(|&m| m > PRESENT) {
        let first = from + offset;
        let length = track[first..].iter().take_while(|&&m| m > PRESENT).count();
        if length * 10 >= min_ms {
            return Some((first * 10, (first + length) * 10));
        }
        from = first + length;
    }
    None
}

/// The loudest level of `frequency` in any window.
pub fn peak(audio: &[u8], frequency: f64) -> f64 {
    track(audio, frequency).into_iter().fold(0.0, f64::max)
}

/// The level of `frequency` over `audio[from_ms..to_ms]` as one window, in
/// dB (of the Goertzel magnitude; a track of digital silence is -200 dB).
pub fn level_db(audio: &[u8], frequency: f64, from_ms: usize, to_ms: usize) -> f64 {
    let samples = decode(audio);
    let (from, to) = ((from_ms * 8).min(samples.len()), (to_ms * 8).min(samples.len()));
    20.0 * (magnitude(&samples[from..to], frequency) + 1e-10).log10()
}

/// Where `frequency` starts sounding after a pause of at least 50 ms, in ms,
/// at 5 ms resolution.
pub fn onsets_ms(audio: &[u8], frequency: f64) -> Vec<usize> {
    let window = WINDOW / 2;
    let present: Vec<bool> = decode(audio).chunks_exact(window).map(|w| magnitude(w, frequency) > PRESENT).collect();
    let mut onsets = Vec::new();
    let mut quiet = 0;
    for (index, &on) in present.iter().enumerate() {
        if on && quiet >= 10 {
            onsets.push(index * 5);
        }
        quiet = if on { 0 } else { quiet + 1 };
    }
    onsets
}

/// Asserts that `frequency` never sounds in `audio` (ignoring the last
/// `edge_ms`, where a window may catch the first milliseconds of what came
/// right after the end).
pub fn assert_absent(audio: &[u8], frequency: f64, what: &str) {
    let track = track(audio, frequency);
    let usable = track.len().saturating_sub(2);
    let (at, loudest) =
        track[..usable].iter().cloned().enumerate().fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    assert!(
        loudest < ABSENT,
        "{what}: {frequency} Hz should be absent but peaks at {loudest:.0} at {} ms of {} ms",
        at * 10,
        track.len() * 10
    );
}

/// Asserts that `frequency` never sounds in `audio[from_ms..to_ms]`.
pub fn assert_absent_in(audio: &[u8], frequency: f64, from_ms: usize, to_ms: usize, what: &str) {
    let track = track(audio, frequency);
    let (from, to) = (from_ms / 10, (to_ms / 10).min(track.len()));
    let loudest = track[from.min(to)..to].iter().cloned().fold(0.0, f64::max);
    assert!(
        loudest < ABSENT,
        "{what}: {frequency} Hz should be absent in {from_ms}..{to_ms} ms but peaks at {loudest:.0}"
    );
}

/// Asserts that `frequency` sounds in at least `fraction` of `audio[from_ms..to_ms]`.
pub fn assert_present(audio: &[u8], frequency: f64, from_ms: usize, to_ms: usize, fraction: f64, what: &str) {
    let present = present_ms(audio, frequency, from_ms, to_ms);
    let wanted = ((to_ms - from_ms) as f64 * fraction) as usize;
    assert!(
        present >= wanted,
        "{what}: {frequency} Hz present for {present} ms of {from_ms}..{to_ms} ms, wanted at least {wanted} ms"
    );
}

/// Stretches of exact digital silence (μ-law 0xFF or 0x7F) of 10 ms or
/// more: (where, how long), in ms.
pub fn digital_silence(audio: &[u8]) -> Vec<(usize, usize)> {
    let mut stretches = Vec::new();
    let mut start = None;
    for (at, byte) in audio.iter().chain([&0u8]).enumerate() {
        match (matches!(byte, 0xFF | 0x7F), start) {
            (true, None) => start = Some(at),
            (false, Some(from)) => {
                if at - from >= 80 {
                    stretches.push((from / 8, (at - from).div_ceil(8)));
                }
                start = None;
            }
            _ => {}
        }
    }
    stretches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, ms: usize, amplitude: f64) -> Vec<u8> {
        (0..ms * 8)
            .map(|n| {
                let value = amplitude * (2.0 * std::f64::consts::PI * frequency * n as f64 / 8000.0).sin();
                ulaw::encode(value as i16)
            })
            .collect()
    }

    #[test]
    fn finds_a_tone_where_it_is() {
        let mut audio = tone(600.0, 200, 16000.0);
        audio.extend(tone(400.0, 300, 16000.0));
        assert_eq!(first_run_ms(&audio, 600.0), Some((0, 200)));
        assert_eq!(first_run_ms(&audio, 400.0), Some((200, 500)));
        assert_absent(&audio, 1000.0, "no 1 kHz");
        // A 400 Hz blip of one window is not the run that follows it.
        let mut blip = vec![ulaw::SILENCE; 80];
        blip.extend(tone(400.0, 10, 16000.0));
        blip.extend(vec![ulaw::SILENCE; 160]);
        blip.extend(audio);
        assert_eq!(first_run_ms(&blip, 400.0).map(|(from, _)| from), Some(10));
        assert_eq!(first_run_of_at_least_ms(&blip, 400.0, 30), Some((240, 540)));
    }
}
