//! A real S3-compatible server for the tests: moto's (scripts/test.sh
//! installs it), run on a free loopback port with one bucket, and read back
//! with object_store as any reader of the bucket would.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use tokio::process::{Child, Command};

/// Credentials callrec is given; moto takes any, and the tests grep
/// callrec's log for them.
pub const ACCESS_KEY_ID: &str = "AKIACALLRECE2ETEST";
pub const SECRET_ACCESS_KEY: &str = "callrec-e2e-secret-7f3a9c1d5e";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`, for `--s3-endpoint`.
    pub endpoint: String,
    pub bucket: String,
    store: AmazonS3,
    _child: Child,
}

/// One stored object as a reader gets it.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub content_type: Option<String>,
    /// A multipart upload's ends in `-<parts>`.
    pub e_tag: Option<String>,
    pub bytes: Vec<u8>,
}

impl S3Server {
    /// Starts moto's server with an empty bucket `bucket`.
    pub async fn start(bucket: &str) -> S3Server {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the S3 tests need moto's server: python3 -m moto.server (scripts/test.sh installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // moto takes unsigned requests: a plain PUT makes the bucket.
        loop {
            match http.put(format!("{endpoint}/{bucket}")).send().await {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => panic!("moto refused to make the bucket {bucket}: HTTP {}", response.status()),
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(error) => panic!("moto's server never answered at {endpoint}: {error}"),
            }
        }
        let store = reader(&endpoint, bucket);
        S3Server { endpoint, bucket: bucket.to_string(), store, _child: child }
    }

    /// The environment callrec reads its credentials and region from.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY), ("AWS_REGION", REGION)]
    }

    /// An object_store builder for the bucket, with the test credentials.
    pub fn builder(&self) -> AmazonS3Builder {
        builder(&self.endpoint, &self.bucket)
    }

    /// Every key under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let prefix = Path::from(prefix);
        let mut listing = self.store.list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            keys.push(meta.expect("list the bucket").location.to_string());
        }
        keys.sort();
        keys
    }

    /// Waits until `count` objects are under `prefix`; returns their keys.
    pub async fn wait_for_keys(&self, prefix: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let keys = self.keys(prefix).await;
            if keys.len() >= count {
                return keys;
            }
            assert!(Instant::now() < deadline, "only {keys:?} under {prefix} after {timeout:?}, wanted {count}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn get(&self, key: &str) -> Object {
        let result = self.store.get(&Path::from(key)).await.unwrap_or_else(|error| panic!("get {key}: {error}"));
        let content_type = result.attributes.get(&Attribute::ContentType).map(|value| value.to_string());
        let e_tag = result.meta.e_tag.clone();
        let bytes = result.bytes().await.expect("read the object").to_vec();
        Object { key: key.to_string(), content_type, e_tag, bytes }
    }
}

fn builder(endpoint: &str, bucket: &str) -> AmazonS3Builder {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_access_key_id(ACCESS_KEY_ID)
        .with_secret_access_key(SECRET_ACCESS_KEY)
        .with_region(REGION)
}

fn reader(endpoint: &str, bucket: &str) -> AmazonS3 {
    builder(endpoint, bucket).build().expect("an S3 client for the test bucket")
}
