//! The receiver's page (sans-IO): one page of the library as plain
//! server-rendered HTML. A search box (caller number or name), the
//! recordings newest first with what the metadata says of each, an audio
//! player and the waveform picture per recording, and links to the other
//! pages. No script: the browser's own `<audio>` plays and seeks.

use maud::{html, Markup, DOCTYPE};

use super::library::{Listing, Page};
use crate::delivery::metadata::TimeRange;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 980px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: .5rem; }
form.search { margin: 1rem 0; display: flex; gap: .5rem; }
form.search input[type=search] { flex: 1; padding: .4rem; font-size: 1rem; }
ol.recordings { list-style: none; padding: 0; }
li.recording { border: 1px solid #d8dde3; border-radius: 6px; padding: .8rem 1rem; margin-bottom: .8rem; }
li.recording h2 { font-size: 1.05rem; margin: 0 0 .4rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0 0 .6rem; font-size: .92rem; }
dt { color: #666; }
dd { margin: 0; }
audio { width: 100%; }
img.waveform { width: 100%; height: auto; display: block; margin-top: .4rem; border-radius: 3px; }
nav.pages { display: flex; gap: 1rem; align-items: center; margin: 1rem 0; }
p.empty { color: #666; }
";

/// The whole page for `page` of a search for `query`.
pub fn render(page: &Page, query: &str) -> String {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "callrec recordings" }
                style { (STYLE) }
            }
            body {
                h1 { "Recordings" }
                form.search method="get" action="/" {
                    input type="search" name="q" value=(query) placeholder="Caller number or name" aria-label="Search by caller";
                    button type="submit" { "Search" }
                }
                p.summary {
                    (page.matching) (if page.matching == 1 { " recording" } else { " recordings" })
                    @if !query.trim().is_empty() { " matching “" (query.trim()) "”" }
                }
                @if page.listings.is_empty() {
                    p.empty { "Nothing here yet." }
                } @else {
                    ol.recordings {
                        @for listing in &page.listings { (recording(listing)) }
                    }
                }
                (pages(page, query))
            }
        }
    };
    markup.into_string()
}

fn recording(listing: &Listing) -> Markup {
    let id = &listing.recording_id;
    html! {
        li.recording data-recording-id=(id) data-duration-ms=(listing.duration_ms) {
            h2 { (if listing.name.is_empty() { "recording" } else { &listing.name }) }
            dl {
                dt { "Caller" } dd.caller { (caller(listing)) }
                dt { "Started" } dd.started { (started(&listing.started_at)) }
                dt { "Duration" } dd.duration { (clock(listing.duration_ms)) }
                dt { "Ended by" } dd.end-reason { (listing.end_reason) }
                @if !listing.masked.is_empty() {
                    dt { "Masked" } dd.masked { (masked(&listing.masked)) }
                }
            }
            audio controls preload="metadata" src=(format!("/recordings/{id}/audio.wav")) {}
            img.waveform src=(format!("/recordings/{id}/waveform.svg")) alt="waveform" loading="lazy";
        }
    }
}

fn pages(page: &Page, query: &str) -> Markup {
    html! {
        @if page.pages > 1 {
            nav.pages {
                @if page.number > 1 { a rel="prev" href=(page_link(query, page.number - 1)) { "← Newer" } }
                span { "Page " (page.number) " of " (page.pages) }
                @if page.number < page.pages { a rel="next" href=(page_link(query, page.number + 1)) { "Older →" } }
            }
        }
    }
}

fn page_link(query: &str, number: usize) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    if !query.trim().is_empty() {
        form.append_pair("q", query.trim());
    }
    form.append_pair("page", &number.to_string());
    format!("/?{}", form.finish())
}

fn caller(listing: &Listing) -> String {
    match (listing.caller_number.is_empty(), listing.caller_name.is_empty()) {
        (true, true) => "unknown".into(),
        (false, true) => listing.caller_number.clone(),
        (true, false) => listing.caller_name.clone(),
        (false, false) => format!("{} <{}>", listing.caller_name, listing.caller_number),
    }
}

/// `2026-11-26T10:00:00.125Z` as `2026-11-26 10:00:00 UTC`.
fn started(rfc3339: &str) -> String {
    match crate::delivery::metadata::parse_rfc3339(rfc3339) {
        Some(time) => chrono::DateTime::<chrono::Utc>::from(time).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => rfc3339.to_string(),
    }
}

/// Milliseconds as `m:ss.d` (or `h:mm:ss.d`).
fn clock(ms: u64) -> String {
    let tenths = (ms + 50) / 100;
    let (hours, minutes, seconds, tenth) = (tenths / 36_000, tenths / 600 % 60, tenths / 10 % 60, tenths % 10);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}.{tenth}")
    } else {
        format!("{minutes}:{seconds:02}.{tenth}")
    }
}

fn masked(ranges: &[TimeRange]) -> String {
    let each: Vec<String> = ranges
        .iter()
        .map(|range| {
            if range.start_ms == range.end_ms {
                format!("cut at {}", clock(range.start_ms))
            } else {
                format!("{}–{}", clock(range.start_ms), clock(range.end_ms))
            }
        })
        .collect();
    each.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::library::{Library, PER_PAGE};

    fn listing(id: usize) -> Listing {
        Listing {
            recording_id: format!("id-{id}"),
            name: "payment".into(),
            caller_number: "5550123".into(),
            caller_name: "Alice <script>".into(),
            started_at: format!("2026-11-26T10:00:{:02}.125Z", id % 60),
            duration_ms: 61_230,
            end_reason: "stop".into(),
            masked: vec![TimeRange { start_ms: 5_200, end_ms: 9_840 }, TimeRange { start_ms: 20_000, end_ms: 20_000 }],
            ..Listing::default()
        }
    }

    #[test]
    fn each_recording_shows_its_metadata_a_player_and_a_waveform() {
        let library = Library::new(vec![listing(1)]);
        let html = render(&library.page("", 1), "");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(r#"data-recording-id="id-1" data-duration-ms="61230""#), "{html}");
        assert!(html.contains("Alice &lt;script&gt; &lt;5550123&gt;"), "escaped: {html}");
        assert!(html.contains("2026-11-26 10:00:01 UTC"));
        assert!(html.contains(">1:01.2<"));
        assert!(html.contains("0:05.2–0:09.8, cut at 0:20.0"));
        assert!(html.contains(r#"<audio controls preload="metadata" src="/recordings/id-1/audio.wav">"#));
        assert!(html.contains(r#"src="/recordings/id-1/waveform.svg""#));
        assert!(!html.contains("<nav"), "one page needs no links");
    }

    #[test]
    fn pages_link_to_each_other_keeping_the_search() {
        let library = Library::new((0..PER_PAGE * 2 + 1).map(listing).collect());
        let html = render(&library.page(" alice ", 2), " alice ");
        assert!(html.contains(r#"href="/?q=alice&amp;page=1""#), "{html}");
        assert!(html.contains(r#"href="/?q=alice&amp;page=3""#));
        assert!(html.contains("Page 2 of 3"));
        assert_eq!(page_link("alice & bob", 2), "/?q=alice+%26+bob&page=2");
        let searched = render(&Library::default().page("a & b", 1), "a & b");
        assert!(searched.contains(r#"value="a &amp; b""#));
        let empty = render(&Library::default().page("", 1), "");
        assert!(empty.contains("Nothing here yet."));
    }

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(clock(0), "0:00.0");
        assert_eq!(clock(3_020), "0:03.0");
        assert_eq!(clock(61_250), "1:01.3");
        assert_eq!(clock(3_723_400), "1:02:03.4");
    }
}
