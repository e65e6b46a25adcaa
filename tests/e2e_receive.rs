//! End to end for `callrec receive`: real calls through the dockerized
//! Asterisk are recorded by callrec and delivered, signed, to the real
//! receiver (both as child processes); its page is then opened in a real
//! headless Chromium (Debian's, driven through chromedriver): it lists the
//! recordings, each player loads its audio (the browser's `audio.duration`
//! is the metadata's duration) and can seek in it (the WAV is served in byte
//! ranges), each waveform picture renders, and the search box finds a
//! caller. A screenshot of the page is saved as a test artifact
//! (`CALLREC_UPDATE_SCREENSHOT=1` also writes `docs/receive-page.png`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use support::callrec::{Callrec, Options};
use support::lab::{self, assert_nothing_left};
use support::sipp::Caller;

const SECRET: &str = "whsec-receive-e2e-4d1c";

#[tokio::test]
async fn a_real_call_is_received_listed_and_played_in_a_headless_browser() {
    let _lab = lab::take().await;
    let receiver = Receiver::start().await;
    let webhook = format!("{}recordings", receiver.url);
    let post_call = format!("{}post-call", receiver.url);
    let mut callrec = Callrec::start(Options {
        webhook_url: Some(&webhook),
        extra: vec!["--webhook-secret", SECRET, "--post-call-url", &post_call],
        ..Default::default()
    })
    .await;

    // A mono recording, and a stereo one with a paused stretch.
    let tag = lab::tag("receive");
    Caller::new("partial", &tag).from("5550177", "Browser Caller").place().finish().await;
    let mono = receiver.wait_for(1).await.remove(0);
    let tag = lab::tag("receivestereo");
    Caller::new("pause", &tag).options("channels=stereo").from("5550188", "Stereo Caller").place().finish().await;
    let recordings = receiver.wait_for(2).await;
    let stereo = recordings.into_iter().find(|meta| meta["caller_number"] == "5550188").expect("the stereo call");
    assert_eq!((mono["format"].as_str(), stereo["format"].as_str()), (Some("ulaw"), Some("wav")));
    assert!(!stereo["masked"].as_array().unwrap().is_empty(), "the pause is masked: {stereo}");
    assert_nothing_left().await;
    receiver.wait_for_file(&receiver.dir.path().join("received/post-call"), 2).await;
    let log = callrec.stop().await;
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "every delivery was taken:\n{log}");

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&receiver.url).await.unwrap();
    let listed: Vec<String> = client
        .execute("return [...document.querySelectorAll('li.recording')].map(li => li.dataset.recordingId)", vec![])
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    let (mono_id, stereo_id) = (mono["recording_id"].as_str().unwrap(), stereo["recording_id"].as_str().unwrap());
    assert_eq!(listed, [stereo_id, mono_id], "newest first");
    let text = client.find(Locator::Css("ol.recordings")).await.unwrap().text().await.unwrap();
    assert!(text.contains("Browser Caller <5550177>") && text.contains("Stereo Caller <5550188>"), "{text}");
    assert!(text.contains("partial") && text.contains("pause") && text.contains("stop"), "{text}");

    for meta in [&mono, &stereo] {
        let id = meta["recording_id"].as_str().unwrap();
        let player = browser.player(id).await;
        let expected = meta["duration_ms"].as_f64().unwrap() / 1000.0;
        let duration = player["duration"].as_f64().unwrap_or(f64::NAN);
        // The WAV's header states its exact length: the browser reads it
        // from there, so only the metadata's rounding to whole ms remains.
        assert!(
            (duration - expected).abs() < 0.1,
            "{id}: the browser says {duration} s, the metadata {expected} s: {player}"
        );
        assert!(player["seeked"].as_f64().is_some_and(|at| (at - expected / 2.0).abs() < 0.1), "{id}: {player}");
        assert!(player["seekable_end"].as_f64().is_some_and(|end| (end - duration).abs() < 0.01), "{id}: {player}");
        assert_eq!(player["waveform_width"], 600, "{id}: the waveform rendered: {player}");
        assert_eq!(player["error"], Value::Null, "{id}: {player}");
    }
    let lanes = reqwest::get(format!("{}recordings/{stereo_id}/waveform.svg", receiver.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(lanes.matches("class=\"lane\"").count(), 2, "stereo is two lanes");
    assert!(lanes.contains("class=\"masked\""), "the paused stretch is shaded");

    let screenshot = client.screenshot().await.unwrap();
    assert!(screenshot.starts_with(b"\x89PNG\r\n\x1a\n") && screenshot.len() > 20_000, "{} bytes", screenshot.len());
    let artifact = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("receive-page.png");
    std::fs::write(&artifact, &screenshot).unwrap();
    println!("screenshot of the receiver's page: {}", artifact.display());
    if std::env::var_os("CALLREC_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/receive-page.png"), &screenshot).unwrap();
    }

    // The search box, as a person would use it.
    let search = client.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("stereo").await.unwrap();
    client.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = client
            .execute("return [...document.querySelectorAll('li.recording')].map(li => li.dataset.recordingId)", vec![])
            .await
            .unwrap();
        if found == json!([stereo_id]) {
            break;
        }
        assert!(Instant::now() < deadline, "the search for 'stereo' lists {found}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    let log = receiver.log();
    assert!(log.contains("recording stored") && !log.contains("WARN") && !log.contains(SECRET), "{log}");
}

/// `callrec receive` in a child process, on a free port, signed deliveries only.
struct Receiver {
    _child: Child,
    log: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
    /// The page, `http://127.0.0.1:PORT/`.
    url: String,
}

impl Receiver {
    async fn start() -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_callrec"))
            .args(["receive", "--listen", "127.0.0.1:0", "--log", "callrec=debug,info"])
            .arg("--dir")
            .arg(dir.path().join("received"))
            .arg("--webhook-secret-file")
            .arg(&secret)
            .env_remove("CALLREC_WEBHOOK_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start callrec receive");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        let (found, url) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut found = Some(found);
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("CALLREC_TEST_ECHO").is_some() {
                    eprintln!("receive| {line}");
                }
                if let Some(at) = line.find("page=http://") {
                    let url = line[at + 5..].split_whitespace().next().unwrap_or_default().to_string();
                    if let Some(found) = found.take() {
                        let _ = found.send(url);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = tokio::time::timeout(Duration::from_secs(10), url)
            .await
            .unwrap_or_else(|_| panic!("callrec receive never said where it listens:\n{}", log.lock().unwrap()))
            .unwrap();
        Receiver { _child: child, log, dir, url }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for `count` recordings stored; returns their metadata.
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        let stored = self.wait_for_file(&self.dir.path().join("received"), count).await;
        stored.iter().map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()).collect()
    }

    /// Waits for `count` JSON files in `dir`.
    async fn wait_for_file(&self, dir: &Path, count: usize) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|entries| entries.map(|entry| entry.unwrap().path()).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|path: &PathBuf| path.extension().is_some_and(|extension| extension == "json"))
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(Instant::now() < deadline, "{} of {count} in {}:\n{}", found.len(), dir.display(), self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Headless Chromium driven through chromedriver (both Debian's).
struct Browser {
    _driver: Child,
    client: Client,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the test needs chromedriver (scripts/test.sh installs chromium-driver)");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1000,1300", "--mute-audio", "--hide-scrollbars",
                ],
            }
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("no headless Chromium session: {error}"),
            }
        };
        Browser { _driver: driver, client }
    }

    /// What the page's player and waveform of recording `id` show once
    /// loaded: `duration`, where a seek to the middle landed (`seeked`),
    /// `seekable_end`, `waveform_width` (the picture's natural width) and
    /// `error` (a media error's code, or null).
    async fn player(&self, id: &str) -> Value {
        let script = r#"
            const [id, done] = arguments;
            const item = document.querySelector(`li.recording[data-recording-id="${id}"]`);
            const audio = item.querySelector('audio');
            const picture = item.querySelector('img.waveform');
            item.scrollIntoView();
            const fail = () => done({ error: audio.error ? audio.error.code : 'no audio' });
            const loaded = () => new Promise(resolve => {
                if (audio.readyState >= 1) return resolve();
                audio.addEventListener('loadedmetadata', resolve, { once: true });
                audio.addEventListener('error', fail, { once: true });
                audio.load();
            });
            const drawn = () => new Promise(resolve => {
                if (picture.complete && picture.naturalWidth > 0) return resolve();
                picture.addEventListener('load', resolve, { once: true });
                picture.addEventListener('error', resolve, { once: true });
            });
            loaded().then(drawn).then(() => {
                const duration = audio.duration;
                audio.addEventListener('seeked', () => done({
                    duration,
                    seeked: audio.currentTime,
                    seekable_end: audio.seekable.length ? audio.seekable.end(0) : null,
                    waveform_width: picture.naturalWidth,
                    error: audio.error ? audio.error.code : null,
                }), { once: true });
                audio.currentTime = duration / 2;
            });
        "#;
        let client = &self.client;
        client
            .execute_async(script, vec![json!(id)])
            .await
            .unwrap_or_else(|error| panic!("the player of {id}: {error}"))
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}
