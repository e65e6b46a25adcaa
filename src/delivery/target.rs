//! Delivery targets, the last step of the path: the named places a finished
//! recording can go (`--target NAME=URL`; `--webhook-url` is the target
//! `default`), and which one a recording's `to=NAME` picks. A target is a
//! webhook (`http(s)://`) or an S3-compatible bucket (`s3://BUCKET/PREFIX`);
//! each takes a recording whole or fails with what it tried.

use std::fmt;

use tokio::sync::watch;

use super::attempts::DeliveryFailure;
use super::s3::S3Target;
use super::{FinishedRecording, Webhook};
use crate::markers::options::TargetName;
use crate::metrics::Metrics;

/// The target `--webhook-url` defines, and the one a recording without
/// `to=` (or with an unknown one) goes to.
pub const DEFAULT: &str = "default";

/// One place recordings can go.
#[derive(Clone)]
pub enum Target {
    Webhook(Webhook),
    S3(S3Target),
}

impl Target {
    /// Sends until the target takes the recording or its budget is spent
    /// (or callrec stops); returns the attempts it took.
    pub async fn send(
        &self,
        recording: &FinishedRecording,
        metrics: &Metrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<u32, DeliveryFailure> {
        match self {
            Target::Webhook(webhook) => webhook.send(recording, metrics, shutdown).await,
            Target::S3(bucket) => bucket.send(recording, metrics, shutdown).await,
        }
    }

    /// What kind of place it is, as the post-call summary names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook(_) => "webhook",
            Target::S3(_) => "s3",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Webhook(webhook) => webhook.fmt(f),
            Target::S3(bucket) => bucket.fmt(f),
        }
    }
}

/// Every configured target by name.
#[derive(Clone, Default)]
pub struct Targets {
    named: Vec<(String, Target)>,
}

/// Which target a recording goes to.
pub enum Picked<'a> {
    /// The one it asked for (or the default, asking for none).
    Asked(&'a str, &'a Target),
    /// It asked for a target that does not exist: the default instead.
    Unknown(&'a str, &'a Target),
    /// No target fits: the output directory.
    None,
}

impl Targets {
    pub fn new(named: Vec<(String, Target)>) -> Self {
        Targets { named }
    }

    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Target> {
        self.named.iter().find(|(named, _)| named == name).map(|(_, target)| target)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Target)> {
        self.named.iter().map(|(name, target)| (name.as_str(), target))
    }

    /// The target for a recording's `to` (by name, as also kept in the spool).
    pub fn pick(&self, to: Option<&str>) -> Picked<'_> {
        let default = self.named.iter().find(|(name, _)| name == DEFAULT);
        match (to.filter(|to| *to != DEFAULT), default) {
            (None, Some((name, target))) => Picked::Asked(name, target),
            (None, None) => Picked::None,
            (Some(to), _) => match (self.named.iter().find(|(name, _)| name == to), default) {
                (Some((name, target)), _) => Picked::Asked(name, target),
                (None, Some((name, target))) => Picked::Unknown(name, target),
                (None, None) => Picked::None,
            },
        }
    }
}

/// A recording's `to`, as the name `pick` takes.
pub fn name_of(to: Option<TargetName>) -> Option<String> {
    to.map(|name| name.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn webhook(url: &str) -> Target {
        Target::Webhook(Webhook::new(url.parse().unwrap(), Duration::from_secs(1), None))
    }

    fn picked(targets: &Targets, to: Option<&str>) -> (&'static str, String) {
        match targets.pick(to) {
            Picked::Asked(name, _) => ("asked", name.to_string()),
            Picked::Unknown(name, _) => ("unknown", name.to_string()),
            Picked::None => ("none", String::new()),
        }
    }

    #[test]
    fn a_recording_goes_where_it_asks_or_to_the_default() {
        let targets = Targets::new(vec![
            (DEFAULT.into(), webhook("http://store.example/a")),
            ("archive".into(), webhook("http://archive.example/b")),
        ]);
        assert_eq!(picked(&targets, None), ("asked", "default".into()));
        assert_eq!(picked(&targets, Some("archive")), ("asked", "archive".into()));
        assert_eq!(picked(&targets, Some("default")), ("asked", "default".into()));
        assert_eq!(picked(&targets, Some("nowhere")), ("unknown", "default".into()));
        assert_eq!(targets.get("archive").unwrap().to_string(), "http://archive.example");
    }

    #[test]
    fn without_a_default_only_named_targets_are_used() {
        let targets = Targets::new(vec![("archive".into(), webhook("http://archive.example/b"))]);
        assert_eq!(picked(&targets, None), ("none", String::new()));
        assert_eq!(picked(&targets, Some("nowhere")), ("none", String::new()));
        assert_eq!(picked(&targets, Some("archive")), ("asked", "archive".into()));
        assert!(Targets::default().is_empty());
    }
}
