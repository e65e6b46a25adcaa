//! ARI's REST side: the calls that set up capture (snoop, externalMedia,
//! bridge), let a marker's channel go on, follow its hangup, and tear
//! everything down again. Credentials travel in the Authorization header,
//! never in a URL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use super::events::Channel;
use super::AriError;
use crate::config::Secret;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A REST client for one Asterisk and one Stasis application.
#[derive(Clone)]
pub struct AriClient {
    http: reqwest::Client,
    /// The `.../ari/` URL every resource path is joined to.
    base: Url,
    user: String,
    password: Secret,
    app: String,
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct Variable {
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct ChannelLocation {
    id: String,
    #[serde(default)]
    dialplan: Option<DialplanLocation>,
}

#[derive(Deserialize)]
struct DialplanLocation {
    #[serde(default)]
    app_name: String,
    #[serde(default)]
    app_data: String,
}

#[derive(Deserialize)]
struct ExternalMediaChannel {
    #[serde(default)]
    channelvars: std::collections::HashMap<String, String>,
}

impl AriClient {
    /// `http_base` is the HTTP root Asterisk serves ARI under (`http://host:8088`).
    pub fn new(http_base: &Url, user: &str, password: Secret, app: &str) -> Self {
        let mut base = http_base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let base = base.join("ari/").expect("a valid base URL stays valid with ari/");
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("the HTTP client builds with static settings");
        AriClient { http, base, user: user.to_string(), password, app: app.to_string() }
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("http URLs have path segments").pop_if_empty().extend(segments);
        url
    }

    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Response, AriError> {
        self.send_json(operation, method, segments, query, None).await
    }

    /// Like `send`, with a JSON body when one is given.
    async fn send_json(
        &self,
        operation: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, AriError> {
        let mut request = self
            .http
            .request(method, self.url(segments))
            .query(query)
            .basic_auth(&self.user, Some(self.password.expose()));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|source| AriError::Transport { operation, source: source.without_url() })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Err(AriError::Status { operation, status, message: error_message(&body) })
    }

    /// Like `send`, but a 404 (not there, or already gone) is `Ok(None)`.
    async fn send_if_found(
        &self,
        operation: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Option<Response>, AriError> {
        match self.send(operation, method, segments, query).await {
            Ok(response) => Ok(Some(response)),
            Err(error) if error.status() == Some(StatusCode::NOT_FOUND.as_u16()) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Like `send`, but a 404 (already gone) counts as done.
    async fn send_gone_ok(&self, operation: &'static str, method: Method, segments: &[&str]) -> Result<(), AriError> {
        self.send_if_found(operation, method, segments, &[]).await.map(drop)
    }

    /// Answers whether Asterisk accepts these credentials; used at connect time.
    pub async fn check(&self) -> Result<(), AriError> {
        self.send("read Asterisk info", Method::GET, &["asterisk", "info"], &[]).await.map(drop)
    }

    /// Snoops `channel` into a new channel in the application; `spy` is the
    /// direction: `in` (what it says), `out` (what it hears) or `both` mixed.
    pub async fn snoop(&self, channel: &str, snoop_id: &str, spy: &str) -> Result<(), AriError> {
        let query = [("spy", spy), ("whisper", "none"), ("app", self.app.as_str()), ("snoopId", snoop_id)];
        self.send("create snoop channel", Method::POST, &["channels", channel, "snoop"], &query).await.map(drop)
    }

    /// Sets a channel variable, for the dialplan to read.
    pub async fn set_variable(&self, channel: &str, variable: &str, value: &str) -> Result<(), AriError> {
        let query = [("variable", variable), ("value", value)];
        self.send("set channel variable", Method::POST, &["channels", channel, "variable"], &query).await.map(drop)
    }

    /// A channel variable's value; `None` if it is not set (or the channel is gone).
    pub async fn variable(&self, channel: &str, variable: &str) -> Result<Option<String>, AriError> {
        const OPERATION: &str = "read channel variable";
        let query = [("variable", variable)];
        let path = ["channels", channel, "variable"];
        let Some(response) = self.send_if_found(OPERATION, Method::GET, &path, &query).await? else {
            return Ok(None);
        };
        let variable: Variable = read_json(OPERATION, response).await?;
        Ok(Some(variable.value).filter(|value| !value.is_empty()))
    }

    /// Creates an externalMedia channel that sends μ-law RTP to `external_host`
    /// and returns the address its RTP comes from.
    pub async fn external_media(&self, channel_id: &str, external_host: &str) -> Result<SocketAddr, AriError> {
        const OPERATION: &str = "create externalMedia channel";
        let query = [
            ("app", self.app.as_str()),
            ("channelId", channel_id),
            ("external_host", external_host),
            ("format", "ulaw"),
            ("encapsulation", "rtp"),
            ("transport", "udp"),
            ("direction", "both"),
        ];
        let response = self.send(OPERATION, Method::POST, &["channels", "externalMedia"], &query).await?;
        let channel: ExternalMediaChannel = read_json(OPERATION, response).await?;
        rtp_source(&channel.channelvars).ok_or_else(|| AriError::Unexpected {
            operation: OPERATION,
            message: "no usable UNICASTRTP_LOCAL_ADDRESS/UNICASTRTP_LOCAL_PORT in the answer".into(),
        })
    }

    pub async fn create_bridge(&self, bridge_id: &str) -> Result<(), AriError> {
        let query = [("type", "mixing"), ("bridgeId", bridge_id), ("name", bridge_id)];
        self.send("create bridge", Method::POST, &["bridges"], &query).await.map(drop)
    }

    pub async fn add_to_bridge(&self, bridge_id: &str, channels: &[&str]) -> Result<(), AriError> {
        let channels = channels.join(",");
        self.send(
            "add channels to bridge",
            Method::POST,
            &["bridges", bridge_id, "addChannel"],
            &[("channel", channels.as_str())],
        )
        .await
        .map(drop)
    }

    /// Lets a channel held in Stasis go on in the dialplan.
    pub async fn continue_in_dialplan(&self, channel: &str) -> Result<(), AriError> {
        self.send("continue channel", Method::POST, &["channels", channel, "continue"], &[]).await.map(drop)
    }

    /// Hangs a channel up; one that is already gone is fine.
    pub async fn hangup(&self, channel: &str) -> Result<(), AriError> {
        self.send_gone_ok("hang up channel", Method::DELETE, &["channels", channel]).await
    }

    /// Destroys a bridge; one that is already gone is fine.
    pub async fn destroy_bridge(&self, bridge_id: &str) -> Result<(), AriError> {
        self.send_gone_ok("destroy bridge", Method::DELETE, &["bridges", bridge_id]).await
    }

    /// Asks Asterisk to send the application only events of these types.
    pub async fn allow_only_events(&self, types: &[&str]) -> Result<(), AriError> {
        let allowed: Vec<serde_json::Value> = types.iter().map(|kind| serde_json::json!({ "type": kind })).collect();
        let body = serde_json::json!({ "allowed": allowed, "disallowed": [] });
        let path = ["applications", self.app.as_str(), "eventFilter"];
        self.send_json("set the event filter", Method::PUT, &path, &[], Some(&body)).await.map(drop)
    }

    /// Follows a channel's events after it leaves Stasis.
    pub async fn subscribe(&self, channel: &str) -> Result<(), AriError> {
        let source = format!("channel:{channel}");
        self.send(
            "subscribe to channel",
            Method::POST,
            &["applications", &self.app, "subscription"],
            &[("eventSource", source.as_str())],
        )
        .await
        .map(drop)
    }

    /// Whether a channel still exists.
    /// The channel's snapshot, or `None` when Asterisk has no such channel.
    pub async fn channel(&self, channel: &str) -> Result<Option<Channel>, AriError> {
        const OPERATION: &str = "look up channel";
        let Some(response) = self.send_if_found(OPERATION, Method::GET, &["channels", channel], &[]).await? else {
            return Ok(None);
        };
        read_json(OPERATION, response).await.map(Some)
    }

    pub async fn channel_exists(&self, channel: &str) -> Result<bool, AriError> {
        self.send_if_found("look up channel", Method::GET, &["channels", channel], &[])
            .await
            .map(|found| found.is_some())
    }

    /// Whether Asterisk knows the application: some client holds it, or
    /// held it and left channels subscribed.
    pub async fn application_registered(&self) -> Result<bool, AriError> {
        let path = ["applications", self.app.as_str()];
        self.send_if_found("look up application", Method::GET, &path, &[]).await.map(|found| found.is_some())
    }

    /// Channels currently running `Stasis(<this app>,...)` in the dialplan.
    pub async fn channels_in_app(&self) -> Result<Vec<String>, AriError> {
        const OPERATION: &str = "list channels";
        let response = self.send(OPERATION, Method::GET, &["channels"], &[]).await?;
        let channels: Vec<ChannelLocation> = read_json(OPERATION, response).await?;
        Ok(channels
            .into_iter()
            .filter(|channel| {
                channel.dialplan.as_ref().is_some_and(|at| {
                    at.app_name.eq_ignore_ascii_case("Stasis")
                        && at.app_data.split(',').next().map(str::trim) == Some(self.app.as_str())
                })
            })
            .map(|channel| channel.id)
            .collect())
    }

    pub async fn channel_ids(&self) -> Result<Vec<String>, AriError> {
        self.ids("list channels", "channels").await
    }

    pub async fn bridge_ids(&self) -> Result<Vec<String>, AriError> {
        self.ids("list bridges", "bridges").await
    }

    async fn ids(&self, operation: &'static str, resource: &str) -> Result<Vec<String>, AriError> {
        let response = self.send(operation, Method::GET, &[resource], &[]).await?;
        let items: Vec<IdOnly> = read_json(operation, response).await?;
        Ok(items.into_iter().map(|item| item.id).collect())
    }
}

/// An answer's JSON body.
async fn read_json<T: DeserializeOwned>(operation: &'static str, response: Response) -> Result<T, AriError> {
    response.json().await.map_err(|source| AriError::Transport { operation, source: source.without_url() })
}

/// The source address of an externalMedia channel's RTP, from its channel variables.
fn rtp_source(vars: &std::collections::HashMap<String, String>) -> Option<SocketAddr> {
    let ip: IpAddr = vars.get("UNICASTRTP_LOCAL_ADDRESS")?.parse().ok()?;
    let port: u16 = vars.get("UNICASTRTP_LOCAL_PORT")?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// ARI's error bodies are `{"message": "..."}`; keep that, or a short plain body.
fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => parsed.message,
        Err(_) => body.trim().chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> AriClient {
        AriClient::new(&base.parse().unwrap(), "u", Secret::new("p".into()), "callrec")
    }

    #[test]
    fn resource_urls_are_joined_under_ari() {
        assert_eq!(
            client("http://127.0.0.1:8088").url(&["channels", "17.3", "snoop"]).as_str(),
            "http://127.0.0.1:8088/ari/channels/17.3/snoop"
        );
        assert_eq!(
            client("https://pbx.example:8089/asterisk/").url(&["bridges"]).as_str(),
            "https://pbx.example:8089/asterisk/ari/bridges"
        );
        // Ids are escaped as path segments.
        assert_eq!(client("http://h").url(&["channels", "a/b c"]).as_str(), "http://h/ari/channels/a%2Fb%20c");
    }

    #[test]
    fn the_rtp_source_comes_from_channel_variables() {
        let mut vars = std::collections::HashMap::new();
        assert_eq!(rtp_source(&vars), None);
        vars.insert("UNICASTRTP_LOCAL_ADDRESS".to_string(), "127.0.0.1".to_string());
        vars.insert("UNICASTRTP_LOCAL_PORT".to_string(), "15432".to_string());
        assert_eq!(rtp_source(&vars), Some("127.0.0.1:15432".parse().unwrap()));
    }

    #[test]
    fn error_bodies_are_shortened() {
        assert_eq!(error_message(r#"{"message":"Channel not found"}"#), "Channel not found");
        assert_eq!(error_message("oops\n"), "oops");
        assert_eq!(error_message(&"x".repeat(500)).len(), 200);
    }
}
