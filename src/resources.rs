//! The ids callrec gives the Asterisk resources of each recording, so that
//! events about them are recognised and anything left behind by a crash is
//! found and removed. For each track of a recording:
//! `{app}-{recording}-{track}-snoop` and `{app}-{recording}-{track}-media` for
//! the channels, `{app}-{recording}-{track}` for the bridge. A snoop made anew
//! for a running recording (after a transfer) carries its generation:
//! `…-snoop1`, `…-snoop2`.

use uuid::Uuid;

use crate::session::{RecordingId, Resource, Track};

/// The ARI ids of one track's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceIds {
    pub snoop: String,
    pub media: String,
    pub bridge: String,
}

impl ResourceIds {
    pub fn new(app: &str, recording: RecordingId, track: Track) -> Self {
        Self::at(app, recording, track, 0)
    }

    /// The ids with the snoop of `generation` (0: the first).
    pub fn at(app: &str, recording: RecordingId, track: Track, generation: u32) -> Self {
        let bridge = format!("{app}-{recording}-{}", track.label());
        let snoop = match generation {
            0 => format!("{bridge}-snoop"),
            n => format!("{bridge}-snoop{n}"),
        };
        ResourceIds { snoop, media: format!("{bridge}-media"), bridge }
    }

    /// The channels of every track (its snoop of `generation`), then the
    /// bridges: what a teardown removes.
    pub fn of_tracks(
        app: &str,
        recording: RecordingId,
        tracks: &[Track],
        generation: u32,
    ) -> (Vec<String>, Vec<String>) {
        let ids: Vec<ResourceIds> =
            tracks.iter().map(|&track| ResourceIds::at(app, recording, track, generation)).collect();
        let channels = ids.iter().flat_map(|ids| [ids.snoop.clone(), ids.media.clone()]).collect();
        let bridges = ids.into_iter().map(|ids| ids.bridge).collect();
        (channels, bridges)
    }

    pub fn get(&self, resource: Resource) -> &str {
        match resource {
            Resource::Snoop(_) => &self.snoop,
            Resource::Media(_) => &self.media,
            Resource::Bridge(_) => &self.bridge,
        }
    }
}

/// Which recording and resource an id names, if it is one of callrec's.
pub fn parse(app: &str, id: &str) -> Option<(RecordingId, Resource)> {
    let rest = id.strip_prefix(app)?.strip_prefix('-')?;
    let recording = Uuid::try_parse(rest.get(..36)?).ok()?;
    let rest = rest[36..].strip_prefix('-')?;
    let (label, kind) = rest.split_once('-').unwrap_or((rest, ""));
    let track = Track::ALL.into_iter().find(|track| track.label() == label)?;
    let resource = match kind {
        "" => Resource::Bridge(track),
        "media" => Resource::Media(track),
        _ if snoop_generation(kind).is_some() => Resource::Snoop(track),
        _ => return None,
    };
    Some((recording, resource))
}

/// The generation of a snoop id's kind (`snoop` is 0, `snoop2` is 2).
fn snoop_generation(kind: &str) -> Option<u32> {
    match kind.strip_prefix("snoop")? {
        "" => Some(0),
        digits if digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') => digits.parse().ok(),
        _ => None,
    }
}

/// The generation of one of callrec's snoop channels, from its id.
pub fn generation(id: &str) -> Option<u32> {
    snoop_generation(id.rsplit_once('-')?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back() {
        let recording = Uuid::new_v4();
        for track in Track::ALL {
            let ids = ResourceIds::new("callrec", recording, track);
            for resource in [Resource::Snoop(track), Resource::Media(track), Resource::Bridge(track)] {
                assert_eq!(parse("callrec", ids.get(resource)), Some((recording, resource)));
            }
        }
    }

    #[test]
    fn a_teardown_covers_every_track() {
        let recording = Uuid::new_v4();
        let (channels, bridges) = ResourceIds::of_tracks("callrec", recording, &[Track::Caller, Track::Callee], 0);
        assert_eq!(channels.len(), 4);
        assert_eq!(bridges.len(), 2);
        assert!(channels.iter().chain(&bridges).all(|id| parse("callrec", id).is_some()));
    }

    #[test]
    fn a_snoop_made_anew_carries_its_generation() {
        let recording = Uuid::new_v4();
        let again = ResourceIds::at("callrec", recording, Track::Callee, 3);
        assert!(again.snoop.ends_with("-callee-snoop3"), "{}", again.snoop);
        assert_eq!(parse("callrec", &again.snoop), Some((recording, Resource::Snoop(Track::Callee))));
        assert_eq!(generation(&again.snoop), Some(3));
        assert_eq!(generation(&ResourceIds::new("callrec", recording, Track::Both).snoop), Some(0));
        assert_eq!(again.media, ResourceIds::new("callrec", recording, Track::Callee).media, "the rest stays");
        assert_eq!(parse("callrec", &format!("callrec-{recording}-both-snoop01")), None);
        assert_eq!(parse("callrec", &format!("callrec-{recording}-both-snoopy")), None);
    }

    #[test]
    fn other_ids_are_not_ours() {
        let recording = Uuid::new_v4();
        let ids = ResourceIds::new("callrec-b", recording, Track::Both);
        assert_eq!(parse("callrec", &ids.snoop), None, "another app's resources are left alone");
        assert_eq!(parse("callrec", "1764000000.12"), None);
        assert_eq!(parse("callrec", "callrec-"), None);
        assert_eq!(parse("callrec", &format!("callrec-{recording}")), None);
        assert_eq!(parse("callrec", &format!("callrec-{recording}-both-other")), None);
        assert_eq!(parse("callrec", &format!("callrec-{recording}-left-snoop")), None);
    }
}
