//! The receiver's page, what it lists: every stored recording's metadata in
//! memory, newest first, searched by caller number or name and cut into
//! pages. Filled from the directory at start and by each delivery stored.

use serde::Deserialize;

use crate::delivery::metadata::TimeRange;

/// Recordings on one page.
pub const PER_PAGE: usize = 20;

/// What the page shows of a recording: its metadata, read leniently (a
/// field callrec adds later, or one an older callrec lacked, does no harm).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Listing {
    pub recording_id: String,
    pub name: String,
    pub caller_number: String,
    pub caller_name: String,
    /// RFC 3339, UTC, milliseconds: sorts as text.
    pub started_at: String,
    pub duration_ms: u64,
    pub end_reason: String,
    /// `ulaw` (a `.ul` file) or `wav`.
    pub format: String,
    pub channels: u16,
    pub tracks: Vec<String>,
    pub masked: Vec<TimeRange>,
}

impl Listing {
    /// The audio file's extension.
    pub fn extension(&self) -> &'static str {
        if self.format == "wav" {
            "wav"
        } else {
            "ul"
        }
    }

    /// Whether `query` (already lowercase, trimmed, not empty) is in the
    /// caller's number or name; digits also match a number written with
    /// spaces or dashes (`555-0123`).
    fn matches(&self, query: &str) -> bool {
        if self.caller_name.to_lowercase().contains(query) || self.caller_number.to_lowercase().contains(query) {
            return true;
        }
        let digits: String = query.chars().filter(char::is_ascii_digit).collect();
        !digits.is_empty()
            && digits.len() == query.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).count()
            && self.caller_number.contains(&digits)
    }

    /// Newest first; recordings started in the same millisecond by id.
    fn newer_than(&self, other: &Listing) -> std::cmp::Ordering {
        other.started_at.cmp(&self.started_at).then_with(|| self.recording_id.cmp(&other.recording_id))
    }
}

/// Every stored recording, newest first.
#[derive(Debug, Default)]
pub struct Library {
    listings: Vec<Listing>,
}

/// One page of a search.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<'a> {
    pub listings: Vec<&'a Listing>,
    /// 1-based, within `1..=pages`.
    pub number: usize,
    pub pages: usize,
    /// Recordings that match, on every page.
    pub matching: usize,
}

impl Library {
    pub fn new(mut listings: Vec<Listing>) -> Self {
        listings.sort_by(Listing::newer_than);
        listings.dedup_by(|a, b| a.recording_id == b.recording_id);
        Library { listings }
    }

    pub fn len(&self) -> usize {
        self.listings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listings.is_empty()
    }

    /// Adds a recording in its place (replacing one with the same id).
    pub fn insert(&mut self, listing: Listing) {
        self.listings.retain(|known| known.recording_id != listing.recording_id);
        let at = self.listings.partition_point(|known| known.newer_than(&listing).is_lt());
        self.listings.insert(at, listing);
    }

    pub fn get(&self, recording_id: &str) -> Option<&Listing> {
        self.listings.iter().find(|listing| listing.recording_id == recording_id)
    }

    /// Page `number` (1-based; out of range: the nearest page) of the
    /// recordings whose caller matches `query` (all when it is blank).
    pub fn page(&self, query: &str, number: usize) -> Page<'_> {
        let query = query.trim().to_lowercase();
        let matching: Vec<&Listing> =
            self.listings.iter().filter(|listing| query.is_empty() || listing.matches(&query)).collect();
        let pages = matching.len().div_ceil(PER_PAGE).max(1);
        let number = number.clamp(1, pages);
        let total = matching.len();
        let listings = matching.into_iter().skip((number - 1) * PER_PAGE).take(PER_PAGE).collect();
        Page { listings, number, pages, matching: total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(id: usize, second: usize, number: &str, name: &str) -> Listing {
        Listing {
            recording_id: format!("{id:08}"),
            caller_number: number.into(),
            caller_name: name.into(),
            started_at: format!("2026-11-26T10:{:02}:{:02}.000Z", second / 60, second % 60),
            ..Listing::default()
        }
    }

    fn ids(page: &Page) -> Vec<String> {
        page.listings.iter().map(|listing| listing.recording_id.clone()).collect()
    }

    #[test]
    fn newest_first_whatever_the_order_they_came_in() {
        let mut library = Library::new(vec![listing(1, 10, "1", "a"), listing(2, 30, "2", "b")]);
        library.insert(listing(3, 20, "3", "c"));
        library.insert(listing(4, 40, "4", "d"));
        library.insert(listing(5, 5, "5", "e"));
        assert_eq!(ids(&library.page("", 1)), ["00000004", "00000002", "00000003", "00000001", "00000005"]);
        library.insert(listing(3, 50, "3", "c again"));
        assert_eq!(library.len(), 5, "the same recording stored again replaces itself");
        assert_eq!(ids(&library.page("", 1))[0], "00000003");
    }

    #[test]
    fn thousands_are_cut_into_pages() {
        let library = Library::new((0..2345).map(|i| listing(i, i, "5550100", "Caller")).collect());
        let first = library.page("", 1);
        assert_eq!((first.number, first.pages, first.matching, first.listings.len()), (1, 118, 2345, PER_PAGE));
        assert_eq!(first.listings[0].recording_id, "00002344");
        let last = library.page("", 118);
        assert_eq!(last.listings.len(), 2345 - 117 * PER_PAGE);
        assert_eq!(last.listings.last().unwrap().recording_id, "00000000");
        assert_eq!(library.page("", 0).number, 1, "page 0 is the first");
        assert_eq!(library.page("", 9999).number, 118, "past the end is the last");
        let nothing = Library::default();
        let empty = nothing.page("", 3);
        assert_eq!((empty.number, empty.pages, empty.matching), (1, 1, 0));
    }

    #[test]
    fn search_finds_callers_by_number_or_name() {
        let library = Library::new(vec![
            listing(1, 1, "5550123", "Alice Example"),
            listing(2, 2, "+44 20 7946 0000", "Bob"),
            listing(3, 3, "5559999", "alice cooper"),
        ]);
        assert_eq!(ids(&library.page("alice", 1)), ["00000003", "00000001"]);
        assert_eq!(ids(&library.page("  ALICE ex ", 1)), ["00000001"]);
        assert_eq!(ids(&library.page("0123", 1)), ["00000001"]);
        assert_eq!(ids(&library.page("555-0123", 1)), ["00000001"], "dashes in a number searched for");
        assert_eq!(ids(&library.page("7946", 1)), ["00000002"]);
        assert_eq!(library.page("nobody", 1).matching, 0);
    }

    #[test]
    fn metadata_is_read_leniently() {
        let listing: Listing = serde_json::from_str(
            r#"{"recording_id":"x","caller_number":"1","duration_ms":3020,"format":"wav","masked":[{"start_ms":1,"end_ms":2}],"future":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!((listing.duration_ms, listing.extension(), listing.masked.len()), (3020, "wav", 1));
        assert_eq!(Listing::default().extension(), "ul");
    }
}
