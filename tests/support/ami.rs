//! Asterisk's manager interface (AMI) as a switchboard or CRM uses it: log
//! in, send one action, read its response.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Sends `action` (its header lines) after logging in; returns the response.
pub async fn action(action: &[(&str, &str)]) -> String {
    let stream = TcpStream::connect("127.0.0.1:5038").await.expect("AMI on 127.0.0.1:5038 (the lab's manager.conf)");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let send = |headers: Vec<(String, String)>| {
        let mut text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        text.push_str("\r\n");
        text
    };
    let login = send(vec![
        ("Action".into(), "Login".into()),
        ("Username".into(), "callrec-test".into()),
        ("Secret".into(), "callrec-test".into()),
        ("Events".into(), "off".into()),
    ]);
    write.write_all(login.as_bytes()).await.unwrap();
    let request = send(action.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let mut response = String::new();
    let mut blocks = 0;
    let read_all = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.is_empty() {
                blocks += 1;
                if blocks == 1 {
                    write.write_all(request.as_bytes()).await.unwrap();
                    response.clear();
                    continue;
                }
                if response.contains("Response:") {
                    return;
                }
            }
            response.push_str(&line);
            response.push('\n');
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all).await.expect("an AMI response");
    response
}
