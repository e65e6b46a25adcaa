//! What a webhook said when it refused a delivery for good, made fit for a
//! log line: the first 200 bytes of its answer's body, with every secret
//! callrec knows of replaced by `***` (a server may echo the request's URL
//! or headers), and escaped so that no byte can forge a log line.

/// Bytes of the body a log line shows.
pub const EXCERPT_LEN: usize = 200;

/// Shortest piece of a URL's path or query treated as a possible token:
/// shorter ones (`v1`, `hooks`, `id=7`) would only blank out the excerpt.
const SHORTEST_TOKEN: usize = 6;

/// Strings an excerpt must never show.
#[derive(Clone, Default)]
pub struct Redactions {
    /// Longest first, so that a secret containing another goes whole.
    secrets: Vec<Vec<u8>>,
}

impl Redactions {
    /// The webhook secret, and every part of the URL that logs never show
    /// (user, password, path segments, query values).
    pub fn new(url: &url::Url, secret: Option<&str>) -> Self {
        let mut pieces: Vec<String> = Vec::new();
        pieces.extend(url.path_segments().into_iter().flatten().map(str::to_string));
        pieces.extend(url.query_pairs().map(|(_, value)| value.into_owned()));
        pieces.extend(url.query().map(str::to_string));
        pieces.retain(|piece| piece.len() >= SHORTEST_TOKEN);
        // Credentials go whatever their length.
        pieces.extend(secret.map(str::to_string));
        pieces.push(url.username().to_string());
        pieces.extend(url.password().map(str::to_string));
        let mut secrets: Vec<Vec<u8>> =
            pieces.into_iter().filter(|piece| !piece.is_empty()).map(String::into_bytes).collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Redactions { secrets }
    }

    /// How much of a body to read so that a secret starting inside the
    /// excerpt is seen whole, and replaced.
    pub fn read_limit(&self) -> usize {
        EXCERPT_LEN + self.secrets.first().map_or(0, Vec::len)
    }

    /// The excerpt of `body` for a log line.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let mut text = body[..body.len().min(self.read_limit())].to_vec();
        for secret in &self.secrets {
            text = replace_all(&text, secret, b"***");
        }
        text.truncate(EXCERPT_LEN);
        text.escape_ascii().to_string()
    }
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            out.extend_from_slice(with);
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactions() -> Redactions {
        let url = "https://hookuser:p4ssword@store.example/hooks/TOKEN-abc123?key=qu3ry-secret&v=1".parse().unwrap();
        Redactions::new(&url, Some("whsec_0123456789"))
    }

    #[test]
    fn secrets_and_url_tokens_never_show() {
        let body = b"denied for whsec_0123456789 at /hooks/TOKEN-abc123?key=qu3ry-secret&v=1 by hookuser:p4ssword";
        let excerpt = redactions().excerpt(body);
        assert_eq!(excerpt, "denied for *** at /hooks/***?*** by ***:***");
    }

    #[test]
    fn the_excerpt_is_200_escaped_bytes_at_most() {
        let long = vec![b'x'; 1000];
        assert_eq!(redactions().excerpt(&long), "x".repeat(200));
        let excerpt = redactions().excerpt(b"line\r\nforged=1 \"quoted\" \xff\x00");
        assert_eq!(excerpt, "line\\r\\nforged=1 \\\"quoted\\\" \\xff\\x00");
        assert!(!excerpt.contains('\n'));
    }

    #[test]
    fn a_secret_straddling_the_cut_is_still_replaced() {
        let mut body = vec![b'.'; 195];
        body.extend_from_slice(b"whsec_0123456789 and more");
        let excerpt = redactions().excerpt(&body);
        assert_eq!(excerpt, format!("{}*** and more", ".".repeat(195)).chars().take(200).collect::<String>());
        assert!(!excerpt.contains("whsec"));
    }

    #[test]
    fn short_url_pieces_are_left_alone() {
        let url = "http://127.0.0.1:8080/v1/hooks?id=7".parse().unwrap();
        assert_eq!(Redactions::new(&url, None).excerpt(b"bad id=7 on /v1/hooks"), "bad id=7 on /v1/hooks");
        let url = "http://u:pw@127.0.0.1:8080/".parse().unwrap();
        assert_eq!(
            Redactions::new(&url, Some("s")).excerpt(b"u pw s"),
            "*** *** ***",
            "credentials go whatever their length"
        );
    }
}
