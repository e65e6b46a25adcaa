//! The receiver's page: a picture of a stored recording's audio, drawn on
//! the server as SVG. One lane per track (a stereo recording shows the
//! caller above what the caller heard), each column the loudest sample
//! under it, and the paused stretches (`masked`) shaded across every lane
//! (a cut of `pause=skip`, zero long, as a thin line).

use maud::{html, Markup, PreEscaped};

use crate::delivery::metadata::TimeRange;
use crate::ulaw;

/// The picture's width in columns (and SVG user units).
pub const WIDTH: usize = 600;
/// Each lane's height.
pub const LANE_HEIGHT: usize = 60;

/// The loudest sample (0.0–1.0 of full scale) in each of `columns` equal
/// stretches of a μ-law track; silence where the track is shorter.
pub fn peaks(track: &[u8], columns: usize) -> Vec<f32> {
    (0..columns)
        .map(|column| {
            let from = column * track.len() / columns;
            let to = ((column + 1) * track.len() / columns).max(from);
            let loudest = track[from..to].iter().map(|&byte| ulaw::decode(byte).unsigned_abs()).max().unwrap_or(0);
            f32::from(loudest) / 32768.0
        })
        .collect()
}

/// The SVG of `tracks` (μ-law, 8000 Hz, equal lengths), labelled `labels`
/// (by index; missing labels are left out), with `masked` shaded.
pub fn svg(tracks: &[Vec<u8>], labels: &[String], masked: &[TimeRange]) -> String {
    let lanes = tracks.len().max(1);
    let height = lanes * LANE_HEIGHT;
    let samples = tracks.first().map_or(0, Vec::len) as f64;
    let duration_ms = samples / f64::from(ulaw::SAMPLE_RATE / 1000);
    let x_of =
        |ms: u64| if duration_ms > 0.0 { (ms as f64 / duration_ms * WIDTH as f64).min(WIDTH as f64) } else { 0.0 };
    let picture: Markup = html! {
        svg xmlns="http://www.w3.org/2000/svg" class="waveform" width=(WIDTH) height=(height)
            viewBox=(format!("0 0 {WIDTH} {height}")) preserveAspectRatio="none" role="img" {
            title { "waveform, " (lanes) (if lanes == 1 { " track" } else { " tracks" }) }
            rect x="0" y="0" width=(WIDTH) height=(height) fill="#f4f6f8" {}
            @for range in masked {
                @let (from, to) = (x_of(range.start_ms), x_of(range.end_ms));
                rect class="masked" x=(format!("{from:.1}")) y="0" width=(format!("{:.1}", (to - from).max(2.0)))
                    height=(height) fill="#f2b8b5" fill-opacity="0.7" {}
            }
            @for (lane, track) in tracks.iter().enumerate() {
                @let middle = lane * LANE_HEIGHT + LANE_HEIGHT / 2;
                line x1="0" x2=(WIDTH) y1=(middle) y2=(middle) stroke="#c5ccd3" stroke-width="0.5" {}
                path class="lane" fill="none" stroke="#1f5f8b" stroke-width="1" d=(PreEscaped(lane_path(track, middle))) {}
                @if let Some(label) = labels.get(lane) {
                    text x="4" y=(lane * LANE_HEIGHT + 12) font-size="11" font-family="sans-serif" fill="#333" { (label) }
                }
                @if lane > 0 {
                    line x1="0" x2=(WIDTH) y1=(lane * LANE_HEIGHT) y2=(lane * LANE_HEIGHT) stroke="#888" stroke-width="1" {}
                }
            }
        }
    };
    picture.into_string()
}

/// One vertical stroke per column, as long as its peak, about `middle`.
fn lane_path(track: &[u8], middle: usize) -> String {
    let half = (LANE_HEIGHT / 2 - 2) as f32;
    let mut d = String::new();
    for (column, peak) in peaks(track, WIDTH).into_iter().enumerate() {
        let reach = (peak * half).max(0.5);
        d.push_str(&format!("M{column}.5 {:.1}V{:.1}", middle as f32 - reach, middle as f32 + reach));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(samples: usize, level: f32) -> Vec<u8> {
        (0..samples).map(|i| ulaw::encode((level * 32767.0 * (i as f32 * 0.7).sin()) as i16)).collect()
    }

    #[test]
    fn peaks_follow_the_loudness_of_each_stretch() {
        let mut track = tone(800, 0.5);
        track.extend(vec![ulaw::SILENCE; 800]);
        let peaks = peaks(&track, 4);
        assert_eq!(peaks.len(), 4);
        assert!((0.45..0.52).contains(&peaks[0]) && (0.45..0.52).contains(&peaks[1]), "{peaks:?}");
        assert_eq!(&peaks[2..], &[0.0, 0.0]);
        assert_eq!(super::peaks(&[], 3), vec![0.0; 3], "an empty track is silence");
        assert_eq!(super::peaks(&tone(2, 1.0), 5).len(), 5, "more columns than samples");
    }

    #[test]
    fn stereo_is_two_labelled_lanes_and_masked_stretches_are_shaded() {
        let tracks = vec![tone(8000, 0.9), tone(8000, 0.1)];
        let labels = vec!["caller".to_string(), "callee <&>".to_string()];
        let masked = [TimeRange { start_ms: 250, end_ms: 500 }, TimeRange { start_ms: 750, end_ms: 750 }];
        let svg = svg(&tracks, &labels, &masked);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert_eq!(svg.matches("class=\"lane\"").count(), 2);
        assert!(svg.contains("height=\"120\""));
        assert!(svg.contains(">caller</text>") && svg.contains(">callee &lt;&amp;&gt;</text>"), "labels are escaped");
        // 250–500 ms of one second, 600 columns wide; the cut at 750 ms is a thin line.
        assert!(svg.contains("class=\"masked\" x=\"150.0\" y=\"0\" width=\"150.0\""), "{svg}");
        assert!(svg.contains("class=\"masked\" x=\"450.0\" y=\"0\" width=\"2.0\""), "{svg}");
        // The loud lane's strokes reach further than the quiet one's.
        let reach = |lane: usize| {
            let d = svg.split("d=\"").nth(lane + 1).unwrap().split('"').next().unwrap();
            let stroke = d.split('M').nth(10).unwrap();
            let (top, bottom) = stroke.split_once(' ').unwrap().1.split_once('V').unwrap();
            bottom.parse::<f32>().unwrap() - top.parse::<f32>().unwrap()
        };
        assert!(reach(0) > 40.0 && reach(1) < 10.0, "{} {}", reach(0), reach(1));
    }

    #[test]
    fn a_mono_recording_is_one_lane() {
        let svg = svg(&[tone(100, 0.5)], &[], &[]);
        assert_eq!(svg.matches("class=\"lane\"").count(), 1);
        assert!(svg.contains("height=\"60\"") && !svg.contains("<text"));
    }
}
