//! The ids callrec gives the Asterisk resources of each recording, so that
//! events about them are recognised and anything left behind by a crash is
//! found and removed: `{app}-{recording}-snoop`, `{app}-{recording}-media` for
//! the channels, `{app}-{recording}` for the bridge.

use uuid::Uuid;

use crate::session::{RecordingId, Resource};

/// The ARI ids of one recording's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceIds {
    pub snoop: String,
    pub media: String,
    pub bridge: String,
}

impl ResourceIds {
    pub fn new(app: &str, recording: RecordingId) -> Self {
        ResourceIds {
            snoop: format!("{app}-{recording}-snoop"),
            media: format!("{app}-{recording}-media"),
            bridge: format!("{app}-{recording}"),
        }
    }

    pub fn get(&self, resource: Resource) -> &str {
        match resource {
            Resource::Snoop => &self.snoop,
            Resource::Media => &self.media,
            Resource::Bridge => &self.bridge,
        }
    }
}

/// Which recording and resource an id names, if it is one of callrec's.
pub fn parse(app: &str, id: &str) -> Option<(RecordingId, Resource)> {
    let rest = id.strip_prefix(app)?.strip_prefix('-')?;
    let recording = Uuid::try_parse(rest.get(..36)?).ok()?;
    let resource = match &rest[36..] {
        "" => Resource::Bridge,
        "-snoop" => Resource::Snoop,
        "-media" => Resource::Media,
        _ => return None,
    };
    Some((recording, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back() {
        let recording = Uuid::new_v4();
        let ids = ResourceIds::new("callrec", recording);
        for resource in [Resource::Snoop, Resource::Media, Resource::Bridge] {
            assert_eq!(parse("callrec", ids.get(resource)), Some((recording, resource)));
        }
    }

    #[test]
    fn other_ids_are_not_ours() {
        let recording = Uuid::new_v4();
        let ids = ResourceIds::new("callrec-b", recording);
        assert_eq!(parse("callrec", &ids.snoop), None, "another app's resources are left alone");
        assert_eq!(parse("callrec", "1764000000.12"), None);
        assert_eq!(parse("callrec", "callrec-"), None);
        assert_eq!(parse("callrec", &format!("callrec-{recording}-other")), None);
    }
}
