//! End to end against the dockerized Asterisk 22: a recording follows its
//! call through a transfer. The caller is put through to an agent, who
//! blind-transfers it with a SIP REFER to a second agent; one recording holds
//! the whole call, the second agent from the moment it answers (Asterisk's
//! snoop would hear it as seconds of silence without callrec snooping anew),
//! and its metadata says who was on the line when. Likewise a blind transfer
//! by a switchboard, an attended transfer, a call put through a Local
//! channel that Asterisk optimizes away, a call put through by a queue, and a
//! caller swapped for another channel by a masquerade.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::ami;
use support::audio::{
    assert_absent_in, assert_present, decode, digital_silence, first_run_ms, magnitude, track, PRESENT,
};
use support::callrec::{Callrec, Options};
use support::checks::assert_delivered;
use support::heard::{Capture, HeardPacket};
use support::lab::{self, assert_nothing_left, epoch_ms};
use support::sipp::{Agent, Caller, Consult, AGENT2_NAME, AGENT2_NUMBER, AGENT_NAME, AGENT_NUMBER};
use support::webhook::Webhook;

/// The test oracle: every 20 ms packet in which the caller heard `frequency`
/// must have it in the recording (what the caller hears) within 60 ms of its
/// place (20 ms packets, the snoop's 20 ms timer, jitter on loopback), and no
/// stretch of digital silence over 100 ms may stand where the caller heard it.
fn assert_heard_is_recorded(meta: &Value, recorded: &[u8], heard: &[HeardPacket], frequency: f64, what: &str) {
    let started = epoch_ms(meta["started_at"].as_str().unwrap());
    let duration = recorded.len() as i64 / 8;
    let windows = track(recorded, frequency);
    let recorded_near = |at: i64| {
        let (from, to) = (((at - 60).max(0) / 10) as usize, (((at + 60) / 10) as usize).min(windows.len()));
        windows[from.min(to)..to].iter().any(|&level| level > PRESENT)
    };
    let moments: Vec<i64> = heard
        .iter()
        .filter(|packet| magnitude(&decode(&packet.audio), frequency) > PRESENT)
        .map(|packet| packet.at_ms - started)
        .filter(|at| (60..duration - 60).contains(at))
        .collect();
    assert!(moments.len() > 50, "{what}: the caller heard {frequency} Hz in only {} packets", moments.len());
    let missed: Vec<i64> = moments.iter().copied().filter(|&at| !recorded_near(at)).collect();
    // How far the farthest heard packet is from its audio in the recording
    // (10 ms windows, searched up to 500 ms away), to show the margin.
    let farthest = moments
        .iter()
        .map(|&at| {
            let window = (at / 10) as usize;
            (0..50)
                .find(|&off| {
                    [window.saturating_sub(off), window + off]
                        .iter()
                        .any(|&w| windows.get(w).is_some_and(|&l| l > PRESENT))
                })
                .map_or(500, |off| off * 10)
        })
        .max()
        .unwrap_or(0);
    println!(
        "{what}: heard in {} packets from {} ms to {} ms, the farthest {farthest} ms from its recorded place; missed {missed:?}",
        moments.len(),
        moments[0],
        moments[moments.len() - 1]
    );
    assert!(missed.is_empty(), "{what}: heard by the caller but not recorded at {missed:?} ms");
    // Digital silence on this track itself (`silences` in the metadata
    // counts only stretches where every track is silent, and the caller
    // talks all along): over 100 ms, it must not stand where the caller
    // heard a packet, placed within the same 60 ms.
    let silences: Vec<(i64, i64)> = digital_silence(recorded)
        .into_iter()
        .filter(|&(_, length)| length > 100)
        .map(|(from, length)| (from as i64, (from + length) as i64))
        .collect();
    for &at in &moments {
        let silence = silences.iter().find(|&&(from, to)| from + 60 <= at && at + 20 + 60 <= to);
        assert!(silence.is_none(), "{what}: digital silence {silence:?} ms where the caller heard it at {at} ms");
    }
}

/// (from_ms, to_ms, number, name) of each party in a recording's metadata.
fn parties(meta: &Value) -> Vec<(i64, i64, String, String)> {
    let text = |value: &Value| value.as_str().unwrap().to_string();
    meta["parties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["from_ms"].as_i64().unwrap(), p["to_ms"].as_i64().unwrap(), text(&p["number"]), text(&p["name"])))
        .collect()
}

/// The channel `parties` names for the party with `number`, asserting it is
/// one of `endpoint`'s (`PJSIP/agent-…`), not the Local channel before it.
fn assert_party_channel(meta: &Value, number: &str, endpoint: &str) {
    let party = meta["parties"].as_array().unwrap().iter().find(|p| p["number"] == number);
    let channel = party.and_then(|p| p["channel"].as_str()).unwrap_or_default();
    assert!(channel.starts_with(&format!("PJSIP/{endpoint}-")), "party {number} on {channel:?}: {}", meta["parties"]);
}

#[tokio::test]
async fn a_blind_transfer_by_refer_is_recorded_whole_with_both_agents() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("transfer");

    let first = Agent::transferring_after(700, Duration::from_millis(3000));
    let second = Agent::answer_as_agent2(1300);
    let caller = Caller::new("transfer", &tag);
    let capture = Capture::start(caller.media_port()).await;
    caller.place().finish().await;
    let heard_by_caller = capture.stop().await;
    first.finish().await;
    second.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1, "one recording for the whole call");
    let (meta, tracks) = assert_delivered(&deliveries[0], "transfer", "hangup", "wav", 2);
    let (caller, heard) = (&tracks[0], &tracks[1]);
    let duration = caller.len() / 8;

    let parties = parties(&meta);
    println!("parties {parties:?}");
    let agent = parties.iter().find(|p| p.2 == AGENT_NUMBER).expect("the first agent in the timeline");
    let agent2 = parties.iter().find(|p| p.2 == AGENT2_NUMBER).expect("the second agent in the timeline");
    assert!(agent.1 <= agent2.0, "one after the other: {parties:?}");
    assert_eq!(parties[0].3, "ivr");
    assert_eq!(agent2.1 as usize, duration, "the second agent to the end");
    assert_eq!((agent.3.as_str(), agent2.3.as_str()), (AGENT_NAME, AGENT2_NAME), "{parties:?}");
    assert_party_channel(&meta, AGENT_NUMBER, "agent");
    assert_party_channel(&meta, AGENT2_NUMBER, "agent2");

    // What the caller heard: the first agent, then the second from the moment
    // its audio began. A party's audio begins after its answer by the ACK,
    // the bridge and a 20 ms packet (seen here: -6 to 140 ms, the answer
    // being placed when its event reached callrec; -60..500 ms is a loose
    // bound, the oracle below is the exact one); without the fresh snoop the
    // second agent's first seconds would be silence.
    let (agent_from, agent_to) = (agent.0 as usize, agent.1 as usize);
    let (agent2_from, agent2_to) = (agent2.0 as usize, agent2.1 as usize);
    let (first_heard, _) = first_run_ms(heard, 700.0).expect("the first agent on the right");
    let (second_heard, _) = first_run_ms(heard, 1300.0).expect("the second agent on the right");
    println!("first agent answered at {agent_from} ms, heard from {first_heard}; second at {agent2_from}, heard from {second_heard}");
    for (heard_at, answered) in [(first_heard, agent_from), (second_heard, agent2_from)] {
        let bound = answered.saturating_sub(60)..answered + 500;
        assert!(bound.contains(&heard_at), "answered at {answered} ms, heard from {heard_at} ms");
    }
    assert_present(heard, 700.0, first_heard, agent_to - 60, 0.97, "the first agent");
    assert_present(heard, 1300.0, second_heard, agent2_to - 20, 0.99, "the second agent, from its first word");
    assert_heard_is_recorded(&meta, heard, &heard_by_caller, 1300.0, "the second agent");
    assert_heard_is_recorded(&meta, heard, &heard_by_caller, 700.0, "the first agent");
    assert_absent_in(
        heard,
        1300.0,
        100,
        agent2_from - 60,
        "the second agent before it answered (past the first one's onset)",
    );
    assert_present(caller, 1000.0, 0, duration - 20, 0.97, "the caller, all along");
    let silences = meta["silences"].as_array().unwrap();
    assert!(
        silences.iter().all(|s| s["end_ms"].as_u64().unwrap() as usize <= agent2_from + 60),
        "no digital silence while the second agent talks: {silences:?}"
    );
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("snoops_reattached=1"), "{log}");
}

#[tokio::test]
async fn a_call_through_a_local_channel_that_is_optimized_away_is_recorded_whole() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("local");

    let agent = Agent::answer(700);
    let caller = Caller::new("local", &tag);
    let capture = Capture::start(caller.media_port()).await;
    caller.place().finish().await;
    let heard_by_caller = capture.stop().await;
    agent.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1, "one recording for the whole call");
    let (meta, tracks) = assert_delivered(&deliveries[0], "local", "hangup", "wav", 2);
    assert_heard_is_recorded(&meta, &tracks[1], &heard_by_caller, 700.0, "the agent");
    assert_present(&tracks[0], 1000.0, 0, tracks[0].len() / 8 - 20, 0.97, "the caller, all along");
    println!("parties {:?}", parties(&meta));
    assert!(parties(&meta).iter().any(|p| p.2 == AGENT_NUMBER), "the agent in the timeline: {meta}");
    // Optimized away: the party is the channel that was behind the Local one.
    assert_party_channel(&meta, AGENT_NUMBER, "agent");
    assert_nothing_left().await;
    callrec.stop().await;
}

/// A call to `scenario` put through to the first agent (`first`), which a
/// switchboard transfers over AMI 3.3 s in with `action` (`BlindTransfer` or
/// `Atxfer`) to `exten`; the second agent answers. Checks that one recording
/// holds the call, both agents in `parties` one after the other, and all
/// the caller heard of each.
async fn transfer_by_the_switchboard(scenario: &str, first: Agent, action: &str, exten: &str) {
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag(scenario);

    let second = Agent::answer_as_agent2(1300);
    let caller = Caller::new(scenario, &tag);
    let capture = Capture::start(caller.media_port()).await;
    let call = caller.place();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let agent_channel = lab::channel_names().await.into_iter().find(|name| name.starts_with("PJSIP/agent-"));
    let agent_channel = agent_channel.expect("the first agent's channel");
    let response =
        ami::action(&[("Action", action), ("Channel", &agent_channel), ("Context", "callrec-tests"), ("Exten", exten)])
            .await;
    assert!(response.contains("Success"), "AMI {action}: {response}");
    call.finish().await;
    let heard_by_caller = capture.stop().await;
    first.finish().await;
    second.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1, "one recording for the whole call");
    let (meta, tracks) = assert_delivered(&deliveries[0], scenario, "hangup", "wav", 2);
    let parties = parties(&meta);
    println!("parties {parties:?}");
    let agent = parties.iter().position(|p| p.2 == AGENT_NUMBER).expect("the first agent in the timeline");
    let agent2 = parties.iter().position(|p| p.2 == AGENT2_NUMBER).expect("the second agent in the timeline");
    assert!(agent < agent2, "one after the other: {parties:?}");
    assert_heard_is_recorded(&meta, &tracks[1], &heard_by_caller, 700.0, "the first agent");
    assert_heard_is_recorded(&meta, &tracks[1], &heard_by_caller, 1300.0, "the second agent");
    assert_present(&tracks[0], 1000.0, 0, tracks[0].len() / 8 - 20, 0.97, "the caller, all along");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("snoops_reattached=1"), "{log}");
}

/// A blind transfer by a switchboard (AMI BlindTransfer on the agent's
/// channel), not by the agent's phone.
#[tokio::test]
async fn a_blind_transfer_by_the_switchboard_is_recorded_whole_with_both_agents() {
    let _lab = lab::take().await;
    transfer_by_the_switchboard("switchboard", Agent::answer(700), "BlindTransfer", "agent2").await;
}

/// An attended transfer: a switchboard starts it for the agent (AMI Atxfer,
/// the agent's attended-transfer feature, to extension 8002); the caller is
/// held while the agent consults the second agent, and the agent hanging up
/// (about 2 s after the second agent answers) completes it.
#[tokio::test]
async fn an_attended_transfer_is_recorded_whole_with_both_agents() {
    let _lab = lab::take().await;
    let first = Agent::hanging_up_after(700, Duration::from_millis(6000));
    transfer_by_the_switchboard("attended", first, "Atxfer", "8002").await;
}

/// Checks the one recording of a call to `scenario` in which the caller was
/// put through to the first agent (700 Hz) from the IVR: the agent follows the
/// IVR in `parties`, all the caller heard of it is recorded, the caller all
/// along, and nothing is left on Asterisk.
async fn assert_recorded_whole_with_the_agent(webhook: &Webhook, scenario: &str, heard_by_caller: &[HeardPacket]) {
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1, "one recording for the whole call");
    let (meta, tracks) = assert_delivered(&deliveries[0], scenario, "hangup", "wav", 2);
    let parties = parties(&meta);
    println!("parties {parties:?}");
    assert_eq!(parties[0].3, "ivr", "the caller waits in the IVR first: {parties:?}");
    let agent = parties.iter().find(|p| p.2 == AGENT_NUMBER).expect("the agent in the timeline");
    assert_eq!(agent.3, AGENT_NAME, "{parties:?}");
    assert_heard_is_recorded(&meta, &tracks[1], heard_by_caller, 700.0, "the agent");
    assert_present(&tracks[0], 1000.0, 0, tracks[0].len() / 8 - 20, 0.97, "the caller, all along");
    assert_nothing_left().await;
}

/// A caller put through to the agent by a queue: `Queue()` rings its members
/// itself, not with `Dial()`. The agent is in the timeline after the IVR, and
/// all the caller heard of it is recorded.
#[tokio::test]
async fn a_call_put_through_by_a_queue_is_recorded_with_its_agent() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("queued");

    let agent = Agent::hanging_up_after(700, Duration::from_millis(4000));
    let caller = Caller::new("queued", &tag);
    let capture = Capture::start(caller.media_port()).await;
    caller.place().finish().await;
    let heard_by_caller = capture.stop().await;
    agent.finish().await;
    assert_recorded_whole_with_the_agent(&webhook, "queued", &heard_by_caller).await;
    callrec.stop().await;
}

/// A switchboard bridges a recorded caller waiting in the dialplan to an
/// agent it called (AMI Originate, then AMI Bridge). Asterisk takes the
/// caller out of the dialplan by a masquerade: the channel under the
/// recording is swapped for a new one that takes over its id. The recording
/// follows it: one recording, the agent heard from the bridge to the end.
#[tokio::test]
async fn a_caller_swapped_by_a_masquerade_is_recorded_to_the_end() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("yanked");

    let agent = Agent::hanging_up_after(700, Duration::from_millis(4000));
    let caller = Caller::new("yanked", &tag);
    let capture = Capture::start(caller.media_port()).await;
    let call = caller.place();
    let caller_channel = lab::global_when_set(&format!("{tag}_channel")).await;
    let response = ami::action(&[
        ("Action", "Originate"),
        ("Channel", "PJSIP/agent"),
        ("Application", "Wait"),
        ("Data", "20"),
        ("Async", "true"),
    ])
    .await;
    assert!(response.contains("Success"), "AMI Originate: {response}");
    let (_, agent_channel) = lab::channel_when_up("PJSIP/agent-").await;
    let response =
        ami::action(&[("Action", "Bridge"), ("Channel1", &caller_channel), ("Channel2", &agent_channel)]).await;
    assert!(response.contains("Success"), "AMI Bridge: {response}");
    call.finish().await;
    let heard_by_caller = capture.stop().await;
    agent.finish().await;
    assert_recorded_whole_with_the_agent(&webhook, "yanked", &heard_by_caller).await;
    callrec.stop().await;
}

/// An attended transfer by the agent's phone: it calls the second agent on a
/// second line (the consultation) while the caller stays with it, then sends
/// a SIP REFER on that line whose Refer-To replaces its first call (RFC 3891),
/// as phones do. One recording, both agents in `parties`, all the caller
/// heard of each but the second agent's first moment, while callrec snoops
/// the call anew.
#[tokio::test]
async fn an_attended_transfer_by_refer_with_replaces_is_recorded_whole_with_both_agents() {
    let _lab = lab::take().await;
    let webhook = Webhook::start().await;
    let mut callrec = Callrec::start(Options { webhook_url: Some(&webhook.url), ..Default::default() }).await;
    let tag = lab::tag("attended-refer");

    let first = Agent::answer(700);
    let second = Agent::answer_as_agent2(1300);
    let caller = Caller::new("attended-refer", &tag).hang_up_after(Duration::from_secs(9));
    let capture = Capture::start(caller.media_port()).await;
    let call = caller.place();
    let (first_leg, _) = lab::channel_when_up("PJSIP/agent-").await;
    let replaces = lab::sip_dialog_to_replace(&first_leg).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let consult = Consult::transfer_after(&replaces, Duration::from_millis(1500));
    call.finish().await;
    let heard_by_caller = capture.stop().await;
    first.finish().await;
    second.finish().await;
    consult.finish().await;
    let deliveries = webhook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(deliveries.len(), 1, "one recording for the whole call");
    let (meta, tracks) = assert_delivered(&deliveries[0], "attended-refer", "hangup", "wav", 2);
    let parties = parties(&meta);
    println!("parties {parties:?}");
    let agent = parties.iter().position(|p| p.2 == AGENT_NUMBER).expect("the first agent in the timeline");
    let agent2 = parties.iter().position(|p| p.2 == AGENT2_NUMBER).expect("the second agent in the timeline");
    assert!(agent < agent2, "one after the other: {parties:?}");
    assert_heard_is_recorded(&meta, &tracks[1], &heard_by_caller, 700.0, "the first agent");
    assert_heard_is_recorded(&meta, &tracks[1], &heard_by_caller, 1300.0, "the second agent");
    assert_present(&tracks[0], 1000.0, 0, tracks[0].len() / 8 - 20, 0.97, "the caller, all along");
    assert_nothing_left().await;
    let log = callrec.stop().await;
    assert!(log.contains("snoops_reattached=1"), "{log}");
}
