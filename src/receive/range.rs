//! Serving audio to a browser's player (the receiver's page, after storage):
//! the `Range: bytes=…` header of a GET, so that seeking fetches only the
//! bytes it needs (RFC 9110 §14). One range is served; a request for
//! several, or one that is not understood, gets the whole file, as the RFC
//! allows.

/// What a GET asks for, of a file `len` bytes long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// No range (or one this server ignores): the whole file, 200.
    Whole,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// A range wholly past the end: 416.
    Unsatisfiable,
}

/// Reads a `Range` header (`None`: absent) against a file of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> Requested {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return Requested::Whole;
    };
    if spec.contains(',') {
        return Requested::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else { return Requested::Whole };
    let (first, last) = (first.trim(), last.trim());
    let number = |text: &str| -> Option<u64> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    match (first.is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                return Requested::Unsatisfiable;
            }
            Requested::Part { start: len.saturating_sub(suffix), end: len - 1 }
        }
        (false, Some(start), last) if last.is_some() || last_is_open(last, spec) => {
            if start >= len {
                return Requested::Unsatisfiable;
            }
            let end = match last {
                Some(last) if last < start => return Requested::Whole,
                Some(last) => last.min(len - 1),
                None => len - 1,
            };
            Requested::Part { start, end }
        }
        _ => Requested::Whole,
    }
}

/// `bytes=N-`: the end left open (and not a malformed end).
fn last_is_open(last: Option<u64>, spec: &str) -> bool {
    last.is_none() && spec.ends_with('-')
}

impl Requested {
    /// At most `max` bytes of an open-ended or long range: a player asking
    /// for `bytes=0-` gets the first `max` and asks again from there.
    pub fn at_most(self, max: u64) -> Requested {
        match self {
            Requested::Part { start, end } if end - start + 1 > max => Requested::Part { start, end: start + max - 1 },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_forms_of_a_single_range() {
        assert_eq!(parse(Some("bytes=0-99"), 1000), Requested::Part { start: 0, end: 99 });
        assert_eq!(parse(Some("bytes=500-"), 1000), Requested::Part { start: 500, end: 999 });
        assert_eq!(parse(Some("bytes=-100"), 1000), Requested::Part { start: 900, end: 999 });
        assert_eq!(parse(Some("bytes=-5000"), 1000), Requested::Part { start: 0, end: 999 });
        assert_eq!(parse(Some("bytes=990-2000"), 1000), Requested::Part { start: 990, end: 999 });
        assert_eq!(parse(Some(" bytes=1-1"), 1000), Requested::Part { start: 1, end: 1 });
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(parse(Some("bytes=1000-"), 1000), Requested::Unsatisfiable);
        assert_eq!(parse(Some("bytes=1000-1001"), 1000), Requested::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 1000), Requested::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Requested::Unsatisfiable);
    }

    #[test]
    fn anything_else_is_the_whole_file() {
        for header in [
            None,
            Some(""),
            Some("items=0-1"),
            Some("bytes=0-1,5-6"),
            Some("bytes=5-1"),
            Some("bytes=a-b"),
            Some("bytes=1"),
            Some("bytes=-"),
            Some("bytes=+1-2"),
            Some("bytes=1-2x"),
            Some("bytes=99999999999999999999999-"),
        ] {
            assert_eq!(parse(header, 1000), Requested::Whole, "{header:?}");
        }
    }

    #[test]
    fn long_ranges_are_cut_to_the_limit() {
        assert_eq!(Requested::Part { start: 10, end: 999 }.at_most(100), Requested::Part { start: 10, end: 109 });
        assert_eq!(Requested::Part { start: 10, end: 19 }.at_most(100), Requested::Part { start: 10, end: 19 });
        assert_eq!(Requested::Whole.at_most(100), Requested::Whole);
    }
}
