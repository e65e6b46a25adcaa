//! Who the recorded caller was connected to, over time: the IVR (the
//! dialplan) until the call is put through, then each party it is connected
//! to, one after the other across transfers. Fed by the recorder from the ARI
//! events a followed channel gets (a dial answered, its connected line, the
//! dialplan application it runs) with the time they were seen; read back as
//! spans of a recording's timeline for its metadata (`parties`). Sans-IO.

use std::time::{Duration, Instant};

/// The name the dialplan goes by as a party.
pub const IVR: &str = "ivr";
/// Changes kept per call; a call that changes parties more often than this
/// keeps its latest ones.
const MAX_CHANGES: usize = 256;
/// A party shorter than a frame (20 ms) is a passing state of the signalling
/// (a connected line updated in two steps), not someone the caller heard.
/// The IVR, however briefly, is kept: it says the caller was with no one.
const MIN_SPAN: Duration = Duration::from_millis(20);

/// One party the caller was connected to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    pub number: String,
    pub name: String,
    /// The other party's channel, when it is one (empty for the IVR).
    pub channel: String,
}

impl Party {
    pub fn ivr() -> Party {
        Party { number: String::new(), name: IVR.to_string(), channel: String::new() }
    }
}

/// A party over a stretch of a recording, in time from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartySpan {
    pub from: Duration,
    pub to: Duration,
    pub party: Party,
}

/// Dialplan applications that connect the caller to someone else: while one
/// runs, the caller is not talking to the IVR.
const CONNECTING_APPS: [&str; 4] = ["Dial", "Queue", "Bridge", "BridgeWait"];

/// The prefix of Local channels' names.
const LOCAL: &str = "Local/";

/// The timeline of one call.
#[derive(Debug, Clone)]
pub struct Parties {
    /// When each party began, in order.
    changes: Vec<(Instant, Party)>,
    /// The caller's connected line, as last seen.
    connected: (String, String),
    /// The channel the caller was put through to, while it is.
    put_through_to: Option<String>,
}

impl Parties {
    /// A call in the dialplan at `at`.
    pub fn new(at: Instant) -> Self {
        Parties { changes: vec![(at, Party::ivr())], connected: Default::default(), put_through_to: None }
    }

    /// The caller's connected line changed (an answer, a transfer).
    pub fn connected_line(&mut self, at: Instant, number: &str, name: &str) {
        self.connected = (number.to_string(), name.to_string());
        if self.put_through_to.is_some() {
            self.note(at);
        }
    }

    /// A dial of the caller's was answered by `peer` (a channel name).
    pub fn put_through(&mut self, at: Instant, peer: &str) {
        self.put_through_to = Some(peer.to_string());
        self.note(at);
    }

    /// The caller's `BRIDGEPEER` became `peers`: the channel (or channels,
    /// comma-separated) it is bridged with, however it got there (`Dial()`,
    /// `Queue()`, a switchboard's bridge, an ARI bridge, a masquerade). Its
    /// connected line names the party. A Local channel is plumbing: the party
    /// is whoever answers behind it. Leaving a bridge (an empty value) is told
    /// by what follows: the dialplan, a transfer, the hangup.
    pub fn bridged_with(&mut self, at: Instant, peers: &str) {
        if peers.is_empty() || peers.starts_with(LOCAL) {
            return;
        }
        self.put_through(at, peers);
    }

    /// The caller runs dialplan application `app`: unless it is one that
    /// connects it to someone, it is back with the IVR.
    pub fn in_dialplan(&mut self, at: Instant, app: &str) {
        if !CONNECTING_APPS.iter().any(|connecting| connecting.eq_ignore_ascii_case(app)) {
            self.back_with_ivr(at);
        }
    }

    /// The caller left its party: transferred, or dialing someone new (and
    /// hearing the dialplan's ringback until they answer).
    pub fn back_with_ivr(&mut self, at: Instant) {
        self.put_through_to = None;
        self.note(at);
    }

    /// Whether the caller has been put through to anyone so far.
    pub fn was_put_through(&self) -> bool {
        self.changes.iter().any(|(_, party)| *party != Party::ivr())
    }

    /// The parties over `started..ended`, as spans from `started`.
    pub fn spans(&self, started: Instant, ended: Instant) -> Vec<PartySpan> {
        let mut spans: Vec<PartySpan> = Vec::new();
        for (index, (at, party)) in self.changes.iter().enumerate() {
            let until = self.changes.get(index + 1).map_or(ended, |(next, _)| *next).min(ended);
            let from = (*at).max(started);
            if until <= from {
                continue;
            }
            spans.push(PartySpan { from: from - started, to: until - started, party: party.clone() });
        }
        // A passing state gives its time to the party that follows it.
        let mut kept: Vec<PartySpan> = Vec::with_capacity(spans.len());
        let mut carried_from = None;
        let last = spans.len().saturating_sub(1);
        for (index, mut span) in spans.into_iter().enumerate() {
            if let Some(from) = carried_from.take() {
                span.from = from;
            }
            if index < last && span.to - span.from < MIN_SPAN && span.party != Party::ivr() {
                carried_from = Some(span.from);
                continue;
            }
            match kept.last_mut() {
                Some(previous) if previous.party == span.party => previous.to = span.to,
                // Under a millisecond (the hangup right after a bridge ends)
                // is nothing a listener could hear.
                Some(previous) if span.to - span.from < Duration::from_millis(1) => previous.to = span.to,
                _ => kept.push(span),
            }
        }
        kept
    }

    /// Starts a new span with the party as things stand, unless it is the same.
    fn note(&mut self, at: Instant) {
        let party = match &self.put_through_to {
            None => Party::ivr(),
            Some(peer) => {
                Party { number: self.connected.0.clone(), name: self.connected.1.clone(), channel: peer.clone() }
            }
        };
        match self.changes.last_mut() {
            Some((_, current)) if *current == party => return,
            // A Local channel optimized away hands its place to the channel
            // behind it: the same party.
            Some((_, current))
                if current.channel.starts_with(LOCAL)
                    && (&current.number, &current.name) == (&party.number, &party.name) =>
            {
                current.channel = party.channel;
                return;
            }
            _ => {}
        }
        if self.changes.len() >= MAX_CHANGES {
            self.changes.remove(0);
        }
        self.changes.push((at, party));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn agent(number: &str, channel: &str) -> Party {
        Party { number: number.into(), name: format!("Agent {number}"), channel: channel.into() }
    }

    #[test]
    fn the_ivr_then_the_agent_the_call_is_put_through_to() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.in_dialplan(t0 + ms(900), "Dial");
        parties.connected_line(t0 + ms(2000), "2001", "Agent 2001");
        parties.put_through(t0 + ms(2010), "PJSIP/agent-1");
        let spans = parties.spans(t0 + ms(500), t0 + ms(6000));
        assert_eq!(
            spans,
            [
                PartySpan { from: ms(0), to: ms(1510), party: Party::ivr() },
                PartySpan { from: ms(1510), to: ms(5500), party: agent("2001", "PJSIP/agent-1") },
            ]
        );
    }

    #[test]
    fn a_bridge_made_without_a_dial_names_the_party_by_its_connected_line() {
        // A switchboard bridges the caller (a masquerade takes it out of the
        // dialplan): BRIDGEPEER comes first, the connected line a moment later.
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.in_dialplan(t0 + ms(100), "Wait");
        parties.bridged_with(t0 + ms(1000), "PJSIP/agent-1");
        parties.connected_line(t0 + ms(1001), "2001", "Agent 2001");
        parties.bridged_with(t0 + ms(4000), "");
        parties.in_dialplan(t0 + ms(4001), "Hangup");
        let spans = parties.spans(t0, t0 + ms(4002));
        assert_eq!(
            spans,
            [
                PartySpan { from: ms(0), to: ms(1000), party: Party::ivr() },
                PartySpan { from: ms(1000), to: ms(4001), party: agent("2001", "PJSIP/agent-1") },
                PartySpan { from: ms(4001), to: ms(4002), party: Party::ivr() },
            ]
        );
        // The hangup a fraction of a millisecond after the bridge ended.
        let spans = parties.spans(t0, t0 + ms(4001) + Duration::from_micros(300));
        assert_eq!(spans.last().unwrap().party, agent("2001", "PJSIP/agent-1"));
    }

    #[test]
    fn a_bridge_the_dial_already_told_changes_nothing() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.connected_line(t0 + ms(1000), "2001", "Agent 2001");
        parties.put_through(t0 + ms(1000), "PJSIP/agent-1");
        parties.bridged_with(t0 + ms(1005), "PJSIP/agent-1");
        assert_eq!(parties.spans(t0, t0 + ms(2000)).len(), 2);
    }

    #[test]
    fn a_local_channel_optimized_away_is_the_party_behind_it() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.connected_line(t0 + ms(1000), "2001", "Agent 2001");
        parties.put_through(t0 + ms(1000), "Local/agent@lab-1;1");
        parties.bridged_with(t0 + ms(1001), "Local/agent@lab-1;1");
        parties.bridged_with(t0 + ms(1300), "PJSIP/agent-1");
        let spans = parties.spans(t0, t0 + ms(3000));
        assert_eq!(spans[1], PartySpan { from: ms(1000), to: ms(3000), party: agent("2001", "PJSIP/agent-1") });
        assert_eq!(spans.len(), 2, "{spans:?}");
    }

    #[test]
    fn a_transfer_shows_two_agents_one_after_the_other() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.put_through(t0 + ms(1000), "PJSIP/agent-1");
        parties.connected_line(t0 + ms(1001), "2001", "Agent 2001");
        // The blind transfer sends the caller to the dialplan, which dials the
        // second agent; the connected line changes on the way.
        parties.back_with_ivr(t0 + ms(4000));
        parties.in_dialplan(t0 + ms(4001), "Dial");
        parties.connected_line(t0 + ms(4002), "agent2", "Agent 2001");
        parties.connected_line(t0 + ms(5000), "2002", "Agent 2002");
        parties.put_through(t0 + ms(5001), "PJSIP/agent-2");
        let spans = parties.spans(t0, t0 + ms(9000));
        let who: Vec<(&str, u64)> =
            spans.iter().map(|span| (span.party.name.as_str(), span.from.as_millis() as u64)).collect();
        assert_eq!(who[0], (IVR, 0));
        assert_eq!(spans.last().unwrap().party, agent("2002", "PJSIP/agent-2"));
        assert!(spans.iter().any(|span| span.party == agent("2001", "PJSIP/agent-1")));
        assert!(spans.windows(2).all(|pair| pair[0].to == pair[1].from), "one after the other: {spans:?}");
        assert_eq!(spans.len(), 4, "ivr, the first agent, ringing, the second agent: {spans:?}");
        assert_eq!((spans[2].party.name.as_str(), spans[2].from), (IVR, ms(4000)));
    }

    #[test]
    fn a_passing_state_shorter_than_a_frame_is_no_party() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.put_through(t0 + ms(1000), "PJSIP/agent-1");
        parties.connected_line(t0 + ms(1001), "2001", "Agent 2001");
        let spans = parties.spans(t0, t0 + ms(2000));
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!((spans[1].from, spans[1].party.number.as_str()), (ms(1000), "2001"));
    }

    #[test]
    fn spans_are_clipped_to_the_recording() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.put_through(t0 + ms(100), "x");
        assert_eq!(parties.spans(t0 + ms(200), t0 + ms(300)).len(), 1, "only the party put through to");
        assert!(parties.spans(t0 + ms(300), t0 + ms(300)).is_empty());
    }

    #[test]
    fn the_timeline_stays_bounded() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        for n in 0..1000u64 {
            parties.put_through(t0 + ms(2 * n + 1), &format!("c{n}"));
            parties.in_dialplan(t0 + ms(2 * n + 2), "Playback");
        }
        assert!(parties.changes.len() <= MAX_CHANGES);
    }
}
