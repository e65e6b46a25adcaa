//! The lab: the dockerized Asterisk 22 that scripts/test.sh starts. Tests take
//! it one at a time (they share its Stasis application and dialplan).

use std::fs::File;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub const ARI_URL: &str = "http://127.0.0.1:8088";
pub const ARI_USER: &str = "callrec";
pub const ARI_PASSWORD: &str = "callrec";

/// Exclusive use of the lab for one test; released on drop.
pub struct LabGuard {
    _lock: File,
}

/// Waits for the lab to be free, then checks that Asterisk answers. A lab
/// that is not there fails the test loudly: these tests are never skipped.
pub async fn take() -> LabGuard {
    let path = std::env::temp_dir().join("callrec-e2e.lock");
    let lock = File::create(&path).expect("create the lab lock file");
    let lock = tokio::task::spawn_blocking(move || {
        lock.lock().expect("lock the lab");
        lock
    })
    .await
    .unwrap();
    let info = ari_get("asterisk/info").send().await.and_then(|response| response.error_for_status());
    if let Err(error) = info {
        panic!(
            "the end-to-end tests need the dockerized Asterisk with ARI at {ARI_URL} \
             (scripts/test.sh starts it): {error}"
        );
    }
    assert!(
        std::process::Command::new("sipp").arg("-v").output().is_ok(),
        "the end-to-end tests need sipp (scripts/test.sh installs it)"
    );
    clear_leftovers().await;
    LabGuard { _lock: lock }
}

/// Hangs up what an earlier test that failed half-way left on Asterisk (its
/// call, say), so that one failure does not fail every test after it. No
/// callrec of this test runs yet: whatever is there is not its doing.
async fn clear_leftovers() {
    let (channels, bridges) = (channel_ids().await, bridge_ids().await);
    if channels.is_empty() && bridges.is_empty() {
        return;
    }
    println!("clearing what an earlier test left on Asterisk: channels {channels:?}, bridges {bridges:?}");
    for channel in &channels {
        let _ = ari_delete(&format!("channels/{channel}")).send().await;
    }
    for bridge in &bridges {
        let _ = ari_delete(&format!("bridges/{bridge}")).send().await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(channel_ids().await.is_empty() && bridge_ids().await.is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A GET on ARI for the tests' own checks (not through callrec).
pub fn ari_get(path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().get(format!("{ARI_URL}/ari/{path}")).basic_auth(ARI_USER, Some(ARI_PASSWORD))
}

/// A DELETE on ARI, as someone other than callrec would send it.
pub fn ari_delete(path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().delete(format!("{ARI_URL}/ari/{path}")).basic_auth(ARI_USER, Some(ARI_PASSWORD))
}

async fn get_json(path: &str) -> Value {
    ari_get(path)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .unwrap()
}

/// A dialplan global variable (the scenarios note marker times in them).
pub async fn global(name: &str) -> Option<String> {
    let response = ari_get(&format!("asterisk/variable?variable={name}")).send().await.ok()?;
    let value: Value = response.json().await.ok()?;
    value["value"].as_str().filter(|v| !v.is_empty()).map(str::to_string)
}

/// A marker time noted by a scenario, in milliseconds since the epoch; waits
/// for it to appear.
pub async fn mark(tag: &str, name: &str) -> i64 {
    let var = format!("{tag}_{name}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = global(&var).await {
            let seconds: f64 = value.parse().unwrap_or_else(|_| panic!("{var} = {value:?}"));
            return (seconds * 1000.0).round() as i64;
        }
        assert!(Instant::now() < deadline, "the scenario never set {var}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A dialplan global variable a scenario sets; waits for it to appear.
pub async fn global_when_set(name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = global(name).await {
            return value;
        }
        assert!(Instant::now() < deadline, "the scenario never set {name}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The id and name of the first channel whose name starts with `prefix`
/// once it is up (answered); waits for it.
pub async fn channel_when_up(prefix: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = get_json("channels").await;
        let up =
            list.as_array().unwrap().iter().find(|item| {
                item["name"].as_str().is_some_and(|name| name.starts_with(prefix)) && item["state"] == "Up"
            });
        if let Some(channel) = up {
            let text = |key: &str| channel[key].as_str().unwrap().to_string();
            return (text("id"), text("name"));
        }
        assert!(Instant::now() < deadline, "no channel {prefix}… came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A channel's variable or dialplan function, read over ARI.
pub async fn channel_variable(channel_id: &str, variable: &str) -> String {
    let response = ari_get(&format!("channels/{channel_id}/variable")).query(&[("variable", variable)]).send().await;
    let value: Value = response.unwrap().json().await.unwrap();
    value["value"].as_str().unwrap_or_else(|| panic!("{variable} of {channel_id}: {value}")).to_string()
}

/// The SIP dialog of a PJSIP channel as a Replaces header names it (RFC
/// 3891: call-id;to-tag;from-tag, the tags as Asterisk's end of it sees them).
pub async fn sip_dialog_to_replace(channel_id: &str) -> String {
    let call_id = channel_variable(channel_id, "CHANNEL(pjsip,call-id)").await;
    let local = channel_variable(channel_id, "CHANNEL(pjsip,local_tag)").await;
    let remote = channel_variable(channel_id, "CHANNEL(pjsip,remote_tag)").await;
    format!("{call_id};to-tag={local};from-tag={remote}")
}

pub async fn channel_ids() -> Vec<String> {
    ids(&get_json("channels").await)
}

/// The names of the channels on Asterisk.
pub async fn channel_names() -> Vec<String> {
    let list = get_json("channels").await;
    list.as_array().unwrap().iter().filter_map(|item| item["name"].as_str().map(str::to_string)).collect()
}

pub async fn bridge_ids() -> Vec<String> {
    ids(&get_json("bridges").await)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_string()).collect()
}

/// Asserts that no channel or bridge is left on Asterisk (waiting briefly
/// for teardown to finish).
pub async fn assert_nothing_left() {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (channels, bridges) = (channel_ids().await, bridge_ids().await);
        if channels.is_empty() && bridges.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind on Asterisk: channels {channels:?}, bridges {bridges:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A tag unique to this test run, for SIP headers and marker variables.
pub fn tag(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{}{:x}", test.replace(|c: char| !c.is_ascii_alphanumeric(), ""), nanos)
}

/// Milliseconds since the epoch of an RFC 3339 time from metadata.
pub fn epoch_ms(rfc3339: &str) -> i64 {
    let time = callrec::delivery::metadata::parse_rfc3339(rfc3339).unwrap_or_else(|| panic!("not RFC 3339: {rfc3339}"));
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}
