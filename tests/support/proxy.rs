//! A TCP proxy in front of ARI, so a test can make Asterisk unreachable or
//! cut callrec's connections while Asterisk itself keeps running.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    listener: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// A port that nothing listens on yet (the proxy is not started).
    pub async fn reserve() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        Proxy { addr, listener: None, connections: Arc::default() }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts forwarding to `upstream`.
    pub async fn start(&mut self, upstream: SocketAddr) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let connections = self.connections.clone();
        self.listener = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(task);
            }
        }));
    }

    /// Stops accepting connections (existing ones stay until `cut`).
    pub fn stop_listening(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }

    /// Drops every connection through the proxy; new ones are still accepted.
    pub fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
        self.cut();
    }
}
