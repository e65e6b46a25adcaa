//! The ARI events callrec acts on, read from the event WebSocket. Anything
//! else Asterisk sends parses as `Event::Other` and is left alone (and
//! callrec asks Asterisk not to send most of it: `HANDLED`).

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
    /// `BRIDGEPEER` of a followed channel was set: the channel (or
    /// channels) it is bridged with. (Other variables read as `Other`.)
    ChannelVarset {
        #[serde(default)]
        channel: Option<Box<Channel>>,
        #[serde(default)]
        variable: String,
        #[serde(default)]
        value: String,
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

/// The event types `Event` reads: what callrec asks Asterisk to send it.
pub const HANDLED: [&str; 11] = [
    "StasisStart",
    "StasisEnd",
    "ChannelHangupRequest",
    "ChannelDestroyed",
    "ChannelConnectedLine",
    "Dial",
    "BridgeBlindTransfer",
    "BridgeAttendedTransfer",
    "ChannelDialplan",
    "ChannelVarset",
    "ApplicationReplaced",
];

/// The one channel variable whose changes callrec reads (`ChannelVarset`).
pub const BRIDGEPEER: &str = "BRIDGEPEER";

/// What a first pass over an event reads: its type, and the variable a
/// `ChannelVarset` names.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    variable: Option<std::borrow::Cow<'a, str>>,
}

/// Reads one WebSocket text message. Events of other types, and changes of
/// variables other than `BRIDGEPEER`, are `Event::Other` after a first pass
/// that reads only their type (and variable): most of a call's events end
/// there.
pub fn parse(text: &str) -> Result<Event, EventError> {
    if let Ok(head) = serde_json::from_str::<Head>(text) {
        let ignored = !HANDLED.contains(&head.kind.as_ref())
            || head.kind == "ChannelVarset" && head.variable.as_deref() != Some(BRIDGEPEER);
        if ignored {
            return Ok(Event::Other);
        }
    }
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
        let text = r#"{"type":"ChannelUserevent","eventname":"X"}"#;
        assert_eq!(parse(text).unwrap(), Event::Other);
    }

    #[test]
    fn of_variables_set_only_bridgepeer_is_read() {
        let text = r#"{"type":"ChannelVarset","variable":"X","value":"1","channel":{"id":"a"}}"#;
        assert_eq!(parse(text).unwrap(), Event::Other);
        let text = r#"{"type":"ChannelVarset","variable":"BRIDGEPEER","value":"1"}"#;
        let Event::ChannelVarset { channel, variable, value } = parse(text).unwrap() else { panic!() };
        assert_eq!((channel, variable.as_str(), value.as_str()), (None, "BRIDGEPEER", "1"), "a global one");
        let text = r#"{"type":"ChannelVarset","variable":"BRIDGEPEER","value":"PJSIP/agent-1","channel":{"id":"a"}}"#;
        let Event::ChannelVarset { channel, value, .. } = parse(text).unwrap() else { panic!() };
        assert_eq!((channel.unwrap().id.as_str(), value.as_str()), ("a", "PJSIP/agent-1"));
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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::*;

    /// Every event type `Event` names.
    const KNOWN: [&str; 11] = HANDLED;

    /// The fields the events and their channels read: random objects use
    /// them as often as random keys, so that wrong types reach each one.
    const FIELDS: [&str; 21] = [
        "channel",
        "variable",
        "value",
        "args",
        "peer",
        "caller",
        "dialstatus",
        "transferee",
        "transfer_target",
        "transferer_first_leg",
        "transferer_second_leg",
        "dialplan_app",
        "application",
        "id",
        "name",
        "number",
        "connected",
        "accountcode",
        "dialplan",
        "context",
        "exten",
    ];

    /// Any text of up to `max` characters (cheaper to draw than a regex).
    fn text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..=max).prop_map(String::from_iter)
    }

    fn variant(event: &Event) -> &'static str {
        match event {
            Event::StasisStart { .. } => "StasisStart",
            Event::StasisEnd { .. } => "StasisEnd",
            Event::ChannelHangupRequest { .. } => "ChannelHangupRequest",
            Event::ChannelDestroyed { .. } => "ChannelDestroyed",
            Event::ChannelConnectedLine { .. } => "ChannelConnectedLine",
            Event::Dial { .. } => "Dial",
            Event::BridgeBlindTransfer { .. } => "BridgeBlindTransfer",
            Event::BridgeAttendedTransfer { .. } => "BridgeAttendedTransfer",
            Event::ChannelDialplan { .. } => "ChannelDialplan",
            Event::ChannelVarset { .. } => "ChannelVarset",
            Event::ApplicationReplaced { .. } => "ApplicationReplaced",
            Event::Other => "Other",
        }
    }

    /// A field name: one callrec reads, or any other (never `type`).
    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(&FIELDS[..]).prop_map(str::to_string),
            "[a-z_]{1,12}".prop_filter("not the tag", |key| key != "type"),
        ]
    }

    /// Any JSON value, a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text(16).prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 16, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    /// A channel as ARI describes one, with its id, some of the fields
    /// callrec reads, and fields it does not know.
    fn channel() -> impl Strategy<Value = (Value, String)> {
        let optional_text = || prop::option::of(text(12));
        (
            text(24),
            optional_text(),
            prop::option::of((optional_text(), optional_text())),
            optional_text(),
            prop::option::of(("[a-z-]{0,8}", "[0-9s]{0,6}", any::<u16>())),
            prop::collection::vec(("[a-z]{1,8}".prop_map(|key| format!("x_{key}")), any_json()), 0..3),
        )
            .prop_map(|(id, name, caller, accountcode, dialplan, extra)| {
                let mut channel = Map::new();
                channel.insert("id".into(), Value::from(id.clone()));
                if let Some(name) = name {
                    channel.insert("name".into(), name.into());
                }
                if let Some((name, number)) = caller {
                    let mut caller = Map::new();
                    caller.extend(name.map(|name| ("name".to_string(), Value::from(name))));
                    caller.extend(number.map(|number| ("number".to_string(), Value::from(number))));
                    channel.insert("caller".into(), Value::Object(caller));
                }
                if let Some(accountcode) = accountcode {
                    channel.insert("accountcode".into(), accountcode.into());
                }
                if let Some((context, exten, priority)) = dialplan {
                    channel
                        .insert("dialplan".into(), json!({"context": context, "exten": exten, "priority": priority}));
                }
                channel.extend(extra);
                (Value::Object(channel), id)
            })
    }

    /// A well-formed event of type `kind`: its required fields, some of its
    /// optional ones, and fields no event reads; with the id of the channel
    /// the event is about, if it names one for sure.
    fn valid_event() -> impl Strategy<Value = (String, Map<String, Value>, Option<String>)> {
        (
            prop::sample::select(&KNOWN[..]),
            channel(),
            prop::option::of(channel()),
            prop::collection::vec(text(8), 0..4),
            text(12),
            prop::collection::vec(("[a-z]{1,8}".prop_map(|key| format!("x_{key}")), any_json()), 0..4),
        )
            .prop_map(|(kind, (main, id), other, args, text, extra)| {
                let mut fields = Map::new();
                let other = other.map(|(channel, _)| channel);
                let mut id = Some(id);
                match kind {
                    "StasisStart" => {
                        fields.insert("channel".into(), main);
                        fields.insert("args".into(), args.into());
                    }
                    "Dial" => {
                        fields.insert("peer".into(), main);
                        fields.extend(other.map(|caller| ("caller".to_string(), caller)));
                        fields.insert("dialstatus".into(), text.into());
                    }
                    "BridgeBlindTransfer" => {
                        fields.insert("transferee".into(), main);
                        fields.extend(other.map(|channel| ("channel".to_string(), channel)));
                    }
                    "BridgeAttendedTransfer" => {
                        fields.insert("transferer_first_leg".into(), main);
                        fields.extend(other.map(|target| ("transfer_target".to_string(), target)));
                    }
                    "ChannelDialplan" => {
                        fields.insert("channel".into(), main);
                        fields.insert("dialplan_app".into(), text.into());
                    }
                    "ApplicationReplaced" => {
                        fields.insert("application".into(), text.into());
                        id = None;
                    }
                    "ChannelVarset" => {
                        fields.insert("channel".into(), main);
                        fields.insert("variable".into(), BRIDGEPEER.into());
                        fields.insert("value".into(), text.into());
                    }
                    _ => {
                        fields.insert("channel".into(), main);
                    }
                }
                fields.extend(extra);
                (kind.to_string(), fields, id)
            })
    }

    /// The id of the channel an event is mainly about.
    fn main_channel(event: &Event) -> Option<&str> {
        match event {
            Event::StasisStart { channel, .. }
            | Event::StasisEnd { channel }
            | Event::ChannelHangupRequest { channel }
            | Event::ChannelDestroyed { channel }
            | Event::ChannelConnectedLine { channel }
            | Event::ChannelDialplan { channel, .. } => Some(&channel.id),
            Event::Dial { peer, .. } => Some(&peer.id),
            Event::BridgeBlindTransfer { transferee, .. } => transferee.as_deref().map(|channel| channel.id.as_str()),
            Event::ChannelVarset { channel, .. } => channel.as_deref().map(|channel| channel.id.as_str()),
            Event::BridgeAttendedTransfer { transferer_first_leg, .. } => {
                transferer_first_leg.as_deref().map(|channel| channel.id.as_str())
            }
            Event::ApplicationReplaced { .. } | Event::Other => None,
        }
    }

    /// An object's text with `"type": kind` placed among its fields at
    /// `at`, the way Asterisk may order them (first, or anywhere).
    fn render(kind: &Value, fields: &Map<String, Value>, at: prop::sample::Index) -> String {
        let mut members: Vec<String> =
            fields.iter().map(|(key, value)| format!("{}:{value}", Value::from(key.as_str()))).collect();
        members.insert(at.index(members.len() + 1), format!("\"type\":{kind}"));
        format!("{{{}}}", members.join(","))
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Any text, and text made of JSON's punctuation, never panics; only
        /// JSON objects parse.
        #[test]
        fn arbitrary_text_never_panics(text in prop_oneof!["\\PC{0,200}", "[{}\\[\\]\":,0-9a-zA-Z \\\\]{0,200}"]) {
            if parse(&text).is_ok() {
                let value = serde_json::from_str::<Value>(&text);
                prop_assert!(matches!(value, Ok(Value::Object(_))), "{text:?} parsed");
            }
        }

        /// An object of any known type with random fields either parses as
        /// that type or is refused naming it; of an unknown type (or a
        /// change of another variable than BRIDGEPEER), it is `Other`.
        #[test]
        fn random_fields_of_every_type_parse_as_that_type_or_are_refused_naming_it(
            kind in prop_oneof![
                3 => prop::sample::select(&KNOWN[..]).prop_map(str::to_string),
                1 => "[A-Z][A-Za-z]{0,20}",
            ],
            fields in prop::collection::vec(
                (key(), prop_oneof![any_json(), channel().prop_map(|(channel, _)| channel)]),
                0..8,
            ),
            at in any::<prop::sample::Index>(),
        ) {
            let fields: Map<String, Value> = fields.into_iter().collect();
            let text = render(&Value::from(kind.as_str()), &fields, at);
            // A variable other than BRIDGEPEER, or none, is not read.
            let other_variable = kind == "ChannelVarset"
                && fields.get("variable").is_none_or(|variable| variable.is_string() && variable != BRIDGEPEER);
            match parse(&text) {
                Ok(Event::Other) => {
                    prop_assert!(!KNOWN.contains(&kind.as_str()) || other_variable, "{text}: Other")
                }
                Ok(event) => prop_assert_eq!(variant(&event), kind.as_str(), "{}", text),
                Err(error) => {
                    prop_assert!(KNOWN.contains(&kind.as_str()), "{text}: {error}");
                    prop_assert_eq!(error.kind.as_deref(), Some(kind.as_str()), "{}", text);
                }
            }
        }

        /// A `type` that is not a string is refused without a kind.
        #[test]
        fn a_type_that_is_not_a_string_is_refused(
            kind in any_json().prop_filter("not a string", |kind| !kind.is_string()),
            fields in prop::collection::vec((key(), any_json()), 0..4),
            at in any::<prop::sample::Index>(),
        ) {
            let text = render(&kind, &fields.into_iter().collect(), at);
            let error = parse(&text).expect_err("a non-string type");
            prop_assert_eq!(error.kind, None);
        }

        /// Well-formed events of every type, with fields callrec does not
        /// read, parse as their type about their channel; cut short
        /// anywhere, they are refused.
        #[test]
        fn well_formed_events_parse_and_cut_short_are_refused(
            (kind, fields, id) in valid_event(),
            at in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let text = render(&Value::from(kind.as_str()), &fields, at);
            let event = parse(&text).map_err(|error| TestCaseError::fail(format!("{text}: {error}")))?;
            prop_assert_eq!(variant(&event), kind.as_str());
            prop_assert_eq!(main_channel(&event), id.as_deref(), "{}", text);
            let mut end = cut.index(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let error = parse(&text[..end]).expect_err("a cut-short event");
            prop_assert_eq!(error.kind, None);
        }
    }
}
