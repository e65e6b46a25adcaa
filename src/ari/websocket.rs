//! ARI's event WebSocket: connects with the application name, hands every
//! event to the recorder, and reconnects with backoff whenever the connection
//! fails or drops, telling the recorder each time it is back.

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{interval, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::{debug, error, info, trace, warn};
use url::Url;

use super::events::{self, Event};
use super::rest::AriClient;
use crate::backoff::Backoff;
use crate::config::Secret;
use crate::metrics::Metrics;

/// How often to ping Asterisk, and how long a silent connection may last
/// before it is taken for dead.
const PING_EVERY: Duration = Duration::from_secs(15);
const SILENCE_LIMIT: Duration = Duration::from_secs(40);
/// How often to look whether an application another client took over is
/// free again.
const TAKEN_OVER_POLL: Duration = Duration::from_secs(10);
/// Longest callrec first stands aside for another client before it takes
/// the application back anyway (Asterisk keeps an application it still has
/// subscribed channels for, e.g. of a client that crashed); doubled each time
/// it is taken over again, up to `STAND_ASIDE_MAX`.
const STAND_ASIDE_FIRST: Duration = Duration::from_secs(120);
const STAND_ASIDE_MAX: Duration = Duration::from_secs(32 * 60);

/// What the connection tells the recorder.
#[derive(Debug)]
pub enum AriMessage {
    /// The WebSocket is (again) open: the application is registered.
    Connected,
    Event(Box<Event>),
    /// The WebSocket closed; events are missed until `Connected`.
    Disconnected,
}

pub struct EventStream {
    /// The `ws://.../ari/events?app=...` URL (holds no credentials).
    pub url: Url,
    pub user: String,
    pub password: Secret,
}

impl EventStream {
    /// Derives the event URL from ARI's HTTP base URL.
    pub fn new(http_base: &Url, app: &str, user: &str, password: Secret) -> Self {
        let mut url = http_base.clone();
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).expect("http(s) URLs convert to ws(s)");
        let path = format!("{}/ari/events", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.query_pairs_mut().clear().append_pair("app", app).append_pair("subscribeAll", "false");
        EventStream { url, user: user.to_string(), password }
    }

    /// Keeps the connection up until `shutdown` turns true. `rest` looks up
    /// the application while another client holds it.
    pub async fn run(
        self,
        rest: AriClient,
        to_recorder: mpsc::Sender<AriMessage>,
        metrics: &Metrics,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        let mut stand_aside = Backoff::new(STAND_ASIDE_FIRST, STAND_ASIDE_MAX);
        let mut ever_connected = false;
        loop {
            let attempt = tokio::select! {
                attempt = self.connect() => attempt,
                _ = shutdown.changed() => return,
            };
            match attempt {
                Ok(socket) => {
                    backoff.reset();
                    if ever_connected {
                        metrics.ari_reconnects.inc();
                        info!(url = %self.url, "ARI event WebSocket connected again");
                    } else {
                        info!(url = %self.url, "ARI event WebSocket connected");
                    }
                    ever_connected = true;
                    spawn_event_filter(rest.clone());
                    if to_recorder.send(AriMessage::Connected).await.is_err() {
                        return;
                    }
                    metrics.live.ari_connected.set(1);
                    let reason = pump(socket, &to_recorder, metrics, &mut shutdown).await;
                    metrics.live.ari_connected.set(0);
                    if !matches!(reason, Closed::Shutdown) {
                        let _ = to_recorder.send(AriMessage::Disconnected).await;
                    }
                    match reason {
                        Closed::Shutdown | Closed::RecorderGone => return,
                        Closed::Lost(reason) => warn!(%reason, "ARI event WebSocket lost; reconnecting"),
                        Closed::Replaced => {
                            metrics.ari_stand_asides.inc();
                            // Taking it back while the other client is there
                            // would make the two fight over every call.
                            error!(
                                url = %self.url,
                                "another ARI client took over the Stasis application: markers go there now, not here; \
                                 is a second callrec running with the same --app? This one stands aside until the \
                                 application is free again"
                            );
                            let limit = stand_aside.next_delay();
                            match wait_until_free(&rest, limit, &mut shutdown).await {
                                None => return,
                                Some(true) => {
                                    info!(app = rest.app(), "the Stasis application is free again: taking it back")
                                }
                                Some(false) => warn!(
                                    app = rest.app(), after = ?limit,
                                    "the Stasis application is still taken: taking it back anyway"
                                ),
                            }
                        }
                    }
                }
                Err(reason) => {
                    metrics.ari_connect_failures.inc();
                    let delay = backoff.next_delay();
                    warn!(url = %self.url, %reason, retry_in = ?delay, "cannot connect to ARI");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            }
            // A drop: try again soon, but not in a tight loop.
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn connect(&self) -> Result<Socket, String> {
        let mut request = self.url.as_str().into_client_request().map_err(|e| e.to_string())?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password.expose()));
        let mut header = HeaderValue::from_str(&format!("Basic {credentials}")).map_err(|e| e.to_string())?;
        header.set_sensitive(true);
        request.headers_mut().insert("Authorization", header);
        let connecting = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(Duration::from_secs(10), connecting).await {
            Err(_) => Err("no answer within 10 s".to_string()),
            Ok(Ok((socket, _response))) => Ok(socket),
            Ok(Err(error)) => Err(describe(error)),
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum Closed {
    Shutdown,
    RecorderGone,
    Lost(String),
    /// Another client registered the same application name.
    Replaced,
}

/// Asks Asterisk for only the event types callrec reads (`events::HANDLED`):
/// fewer events to encode, send and parse for every call. Asterisk keeps the
/// filter with the application, so it is set again on every connection.
fn spawn_event_filter(rest: AriClient) {
    tokio::spawn(async move {
        match rest.allow_only_events(&super::events::HANDLED).await {
            Ok(()) => debug!("ARI event filter set"),
            Err(error) => {
                warn!(%error, "cannot set the application's event filter: every event is read, and most ignored")
            }
        }
    });
}

async fn pump(
    mut socket: Socket,
    to_recorder: &mpsc::Sender<AriMessage>,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Closed {
    let mut ping = interval(PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return Closed::Lost(format!("nothing heard for {} s", SILENCE_LIMIT.as_secs()));
                }
                if let Err(error) = socket.send(Message::Ping(Vec::new().into())).await {
                    return Closed::Lost(error.to_string());
                }
                continue;
            }
            _ = shutdown.changed() => {
                let _ = socket.close(None).await;
                return Closed::Shutdown;
            }
        };
        last_heard = Instant::now();
        match message {
            None => return Closed::Lost("connection closed".into()),
            Some(Err(error)) => return Closed::Lost(error.to_string()),
            Some(Ok(Message::Text(text))) => match events::parse(&text) {
                Ok(event) => {
                    trace!(event = %text, "ARI event");
                    let replaced = matches!(event, Event::ApplicationReplaced { .. });
                    if to_recorder.send(AriMessage::Event(Box::new(event))).await.is_err() {
                        return Closed::RecorderGone;
                    }
                    if replaced {
                        return Closed::Replaced;
                    }
                }
                Err(error) => {
                    metrics.ari_bad_events.inc();
                    warn!(%error, "ignoring an ARI event");
                    debug!(event = %text, "the unreadable event");
                }
            },
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map(|f| format!("closed by Asterisk: {} {}", f.code, f.reason));
                return Closed::Lost(reason.unwrap_or_else(|| "closed by Asterisk".into()));
            }
            Some(Ok(_)) => {} // pings are answered by the library; pongs just prove life
        }
    }
}

/// Waits until no client holds the application (Asterisk forgets it once its
/// client has left and none of its channels is subscribed any more), at most
/// `limit`: `Some(true)` when it is free, `Some(false)` when the time is up,
/// `None` if callrec is shutting down first.
async fn wait_until_free(rest: &AriClient, limit: Duration, shutdown: &mut watch::Receiver<bool>) -> Option<bool> {
    let give_up = Instant::now() + limit;
    while Instant::now() < give_up {
        tokio::select! {
            _ = tokio::time::sleep(TAKEN_OVER_POLL.min(give_up.saturating_duration_since(Instant::now()))) => {}
            _ = shutdown.changed() => return None,
        }
        match rest.application_registered().await {
            Ok(false) => return Some(true),
            Ok(true) => {}
            Err(error) => debug!(%error, "cannot tell whether the Stasis application is free"),
        }
    }
    Some(false)
}

/// A connection failure in words an operator can act on.
fn describe(error: tungstenite::Error) -> String {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            match status.as_u16() {
                401 | 403 => format!("Asterisk refused the credentials (HTTP {status}): check --ari-user and --ari-password against ari.conf"),
                404 => format!("no ARI at this URL (HTTP {status}): check --ari-url and that res_ari is loaded (while Asterisk starts, this is normal for a few seconds)"),
                _ => format!("Asterisk answered HTTP {status}"),
            }
        }
        tungstenite::Error::Io(io) => format!("{io}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_url_comes_from_the_http_base() {
        let stream =
            EventStream::new(&"http://127.0.0.1:8088".parse().unwrap(), "callrec", "u", Secret::new("p".into()));
        assert_eq!(stream.url.as_str(), "ws://127.0.0.1:8088/ari/events?app=callrec&subscribeAll=false");
        let stream =
            EventStream::new(&"https://pbx:8089/asterisk/".parse().unwrap(), "a b", "u", Secret::new("p".into()));
        assert_eq!(stream.url.as_str(), "wss://pbx:8089/asterisk/ari/events?app=a+b&subscribeAll=false");
    }
}
