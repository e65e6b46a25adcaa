//! Who the recorded caller was connected to, over time: the IVR (the
//! dialplan) until the call is put through, then each party it is bridged
//! with, one after the other across transfers. Fed by the recorder from ARI's
//! bridge and connected-line events with the time they were seen; read back
//! as spans of a recording's timeline for its metadata (`parties`). Sans-IO.

use std::time::{Duration, Instant};

/// The name the dialplan goes by as a party.
pub const IVR: &str = "ivr";
/// Changes kept per call; a call that changes parties more often than this
/// keeps its latest ones.
const MAX_CHANGES: usize = 256;

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

/// The timeline of one call.
#[derive(Debug, Clone)]
pub struct Parties {
    /// When each party began, in order.
    changes: Vec<(Instant, Party)>,
    /// The caller's connected line, as last seen.
    connected: (String, String),
    /// The other channels in the caller's bridge, when it is in one.
    bridged_with: Option<Vec<String>>,
}

impl Parties {
    /// A call in the dialplan at `at`.
    pub fn new(at: Instant) -> Self {
        Parties { changes: vec![(at, Party::ivr())], connected: Default::default(), bridged_with: None }
    }

    /// The caller's connected line changed (an answer, a transfer).
    pub fn connected_line(&mut self, at: Instant, number: &str, name: &str) {
        self.connected = (number.to_string(), name.to_string());
        if self.bridged_with.is_some() {
            self.note(at);
        }
    }

    /// The caller entered a bridge; `others` are the other channels in it,
    /// as names or ids.
    pub fn entered_bridge(&mut self, at: Instant, others: Vec<String>) {
        self.bridged_with = Some(others);
        self.note(at);
    }

    /// Another channel joined the caller's bridge (the party answered after
    /// the caller was already in it).
    pub fn joined(&mut self, at: Instant, other: &str) {
        if let Some(others) = &mut self.bridged_with {
            if !others.iter().any(|known| known == other) {
                others.push(other.to_string());
                self.note(at);
            }
        }
    }

    /// The caller left its bridge: back in the dialplan.
    pub fn left_bridge(&mut self, at: Instant) {
        self.bridged_with = None;
        self.note(at);
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
            let (from, to) = (from - started, until - started);
            match spans.last_mut() {
                Some(last) if last.party == *party => last.to = to,
                _ => spans.push(PartySpan { from, to, party: party.clone() }),
            }
        }
        spans
    }

    /// Starts a new span with the party as things stand, unless it is the same.
    fn note(&mut self, at: Instant) {
        let party = match &self.bridged_with {
            None => Party::ivr(),
            Some(others) => Party {
                number: self.connected.0.clone(),
                name: self.connected.1.clone(),
                channel: others.last().cloned().unwrap_or_default(),
            },
        };
        if self.changes.last().is_some_and(|(_, current)| *current == party) {
            return;
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
        parties.connected_line(t0 + ms(2000), "2001", "Agent 2001");
        parties.entered_bridge(t0 + ms(2010), vec!["PJSIP/agent-1".into()]);
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
    fn a_transfer_shows_two_agents_one_after_the_other() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.entered_bridge(t0 + ms(1000), vec!["PJSIP/agent-1".into()]);
        parties.connected_line(t0 + ms(1001), "2001", "Agent 2001");
        // The blind transfer moves the caller into a new bridge with the second agent.
        parties.left_bridge(t0 + ms(4000));
        parties.entered_bridge(t0 + ms(4010), Vec::new());
        parties.joined(t0 + ms(5000), "PJSIP/agent-2");
        parties.connected_line(t0 + ms(5001), "2002", "Agent 2002");
        let spans = parties.spans(t0, t0 + ms(9000));
        let who: Vec<(&str, u64)> =
            spans.iter().map(|span| (span.party.name.as_str(), span.from.as_millis() as u64)).collect();
        assert_eq!(who[0], (IVR, 0));
        assert_eq!(spans.last().unwrap().party, agent("2002", "PJSIP/agent-2"));
        assert!(spans.iter().any(|span| span.party == agent("2001", "PJSIP/agent-1")));
        assert!(spans.windows(2).all(|pair| pair[0].to == pair[1].from), "one after the other: {spans:?}");
    }

    #[test]
    fn spans_are_clipped_to_the_recording() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        parties.entered_bridge(t0 + ms(100), vec!["x".into()]);
        assert_eq!(parties.spans(t0 + ms(200), t0 + ms(300)).len(), 1, "only the bridged party");
        assert!(parties.spans(t0 + ms(300), t0 + ms(300)).is_empty());
    }

    #[test]
    fn the_timeline_stays_bounded() {
        let t0 = Instant::now();
        let mut parties = Parties::new(t0);
        for n in 0..1000u64 {
            parties.entered_bridge(t0 + ms(2 * n + 1), vec![format!("c{n}")]);
            parties.left_bridge(t0 + ms(2 * n + 2));
        }
        assert!(parties.changes.len() <= MAX_CHANGES);
    }
}
