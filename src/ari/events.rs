//! The ARI events callrec acts on, read from the event WebSocket. Anything
//! else Asterisk sends parses as `Event::Other` and is left alone.

use serde::Deserialize;

/// A channel as ARI describes it (the fields callrec uses).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub caller: CallerId,
    /// The other party: who the caller is connected to (an agent, say).
    #[serde(default)]
    pub connected: CallerId,
    #[serde(default)]
    pub accountcode: String,
    /// Where in the dialplan the channel is.
    #[serde(default)]
    pub dialplan: DialplanLocation,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct DialplanLocation {
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub exten: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct CallerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub number: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type")]
pub enum Event {
    /// A channel entered the application: a marker, or one of callrec's own channels.
    StasisStart {
        channel: Channel,
        #[serde(default)]
        args: Vec<String>,
    },
    StasisEnd {
        channel: Channel,
    },
    ChannelHangupRequest {
        channel: Channel,
    },
    ChannelDestroyed {
        channel: Channel,
    },
    /// The channel's connected party changed (a call was answered, transferred).
    ChannelConnectedLine {
        channel: Channel,
    },
    /// A dial from a followed channel progressed; `ANSWER` puts it through to `peer`.
    Dial {
        #[serde(default)]
        caller: Option<Box<Channel>>,
        peer: Channel,
        #[serde(default)]
        dialstatus: String,
    },
    /// A blind transfer involving a followed channel (REFER, BlindTransfer(),
    /// a feature code): the transferee goes to the dialplan for its new party.
    BridgeBlindTransfer {
        #[serde(default)]
        transferee: Option<Box<Channel>>,
        #[serde(default)]
        channel: Option<Box<Channel>>,
    },
    /// An attended transfer involving a followed channel.
    BridgeAttendedTransfer {
        #[serde(default)]
        transferee: Option<Box<Channel>>,
        #[serde(default)]
        transfer_target: Option<Box<Channel>>,
        #[serde(default)]
        transferer_first_leg: Option<Box<Channel>>,
        #[serde(default)]
        transferer_second_leg: Option<Box<Channel>>,
    },
    /// A followed channel runs a dialplan application (it is back in the dialplan).
    ChannelDialplan {
        channel: Channel,
        #[serde(default)]
        dialplan_app: String,
    },
    /// Another connection took over the application name.
    ApplicationReplaced {
        #[serde(default)]
        application: String,
    },
    #[serde(other)]
    Other,
}

/// Why an event message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable ARI event{}: {source}", kind.as_deref().map(|k| format!(" {k}")).unwrap_or_default())]
pub struct EventError {
    /// The event's `type`, when at least that could be read.
    pub kind: Option<String>,
    #[source]
    pub source: serde_json::Error,
}

/// Reads one WebSocket text message.
pub fn parse(text: &str) -> Result<Event, EventError> {
    serde_json::from_str(text).map_err(|source| {
        let kind = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|value| value.get("type")?.as_str().map(str::to_string));
        EventError { kind, source }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stasis_start_marker() {
        let text = r#"{"type":"StasisStart","timestamp":"2026-11-24T10:00:00.000+0000",
            "args":["start","payment"],
            "channel":{"id":"1764000000.12","name":"PJSIP/lab-00000001","state":"Up",
              "caller":{"name":"Alice","number":"1001"},"connected":{"name":"","number":""},
              "accountcode":"","dialplan":{"context":"c","exten":"s","priority":2},
              "creationtime":"2026-11-24T10:00:00.000+0000","language":"en"},
            "application":"callrec"}"#;
        let Event::StasisStart { channel, args } = parse(text).unwrap() else {
            panic!("not a StasisStart");
        };
        assert_eq!(channel.id, "1764000000.12");
        assert_eq!(channel.caller.number, "1001");
        assert_eq!(channel.caller.name, "Alice");
        assert_eq!(args, vec!["start", "payment"]);
        assert_eq!((channel.dialplan.context.as_str(), channel.dialplan.exten.as_str()), ("c", "s"));
    }

    #[test]
    fn transfers_name_their_channels() {
        let text = r#"{"type":"BridgeBlindTransfer","channel":{"id":"agent"},"transferee":{"id":"caller"},
            "exten":"agent2","context":"lab","result":"Success","is_external":true}"#;
        let Event::BridgeBlindTransfer { transferee, channel } = parse(text).unwrap() else { panic!() };
        assert_eq!((transferee.unwrap().id.as_str(), channel.unwrap().id.as_str()), ("caller", "agent"));
        let text = r#"{"type":"BridgeAttendedTransfer","transferer_first_leg":{"id":"a"},
            "transferer_second_leg":{"id":"b"},"result":"Success","destination_type":"bridge"}"#;
        let Event::BridgeAttendedTransfer { transferee, transferer_first_leg, .. } = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!((transferee, transferer_first_leg.unwrap().id.as_str()), (None, "a"));
    }

    #[test]
    fn unknown_events_are_other() {
        let text = r#"{"type":"ChannelVarset","variable":"X","value":"1"}"#;
        assert_eq!(parse(text).unwrap(), Event::Other);
    }

    #[test]
    fn missing_caller_reads_as_empty() {
        let text = r#"{"type":"ChannelDestroyed","channel":{"id":"a"}}"#;
        let Event::ChannelDestroyed { channel } = parse(text).unwrap() else { panic!() };
        assert_eq!(channel.caller, CallerId::default());
    }

    #[test]
    fn a_malformed_event_names_its_type() {
        let error = parse(r#"{"type":"StasisStart","channel":42}"#).unwrap_err();
        assert_eq!(error.kind.as_deref(), Some("StasisStart"));
        assert!(error.to_string().contains("StasisStart"));
        let error = parse("not json").unwrap_err();
        assert_eq!(error.kind, None);
    }
}
