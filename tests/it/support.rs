//! Shared test scaffolding: a throwaway config folder and a command runner.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use chrono::{DateTime, TimeZone, Utc};
use treatywatch::domain::{Action, Detection, EventBody, Evidence, NewEvent};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

/// A minimal valid feeds.toml using the small fixture data files.
pub const MINIMAL: &str = r#"[data]
states = "states.toml"
treaties = "treaties.toml"

[tracking]
states = ["UKR", "POL"]
treaties = ["ottawa"]

[[feed]]
id = "wire"
url = "https://news.example.org/rss"
interval = "15m"
"#;

/// A folder holding a feeds.toml and copies of the fixture data files.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
}

impl ConfigDir {
    pub fn new(feeds_toml: &str) -> ConfigDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in ["states.toml", "treaties.toml"] {
            std::fs::copy(Path::new(FIXTURES).join(f), dir.path().join(f)).expect("copy fixture");
        }
        // The cue rules are the shipped ones: they are what is under test.
        let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml");
        std::fs::copy(rules, dir.path().join("rules.toml")).expect("copy rules");
        std::fs::write(dir.path().join("feeds.toml"), feeds_toml).expect("write feeds.toml");
        ConfigDir { dir }
    }

    pub fn feeds(&self) -> PathBuf {
        self.dir.path().join("feeds.toml")
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write file");
    }

    /// `treatywatch --config <this> ARGS…`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("treatywatch").expect("binary built");
        cmd.env_remove("TREATYWATCH_CONFIG")
            .arg("--config")
            .arg(self.feeds())
            .args(args);
        cmd
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/treatywatch.db")
    }
}

/// A digest's text part with its wrapping undone: one space between words,
/// so a test can look for a sentence wherever the lines were broken.
pub fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// A detection event as the poller would append it.
pub fn detection(
    state: &str,
    treaty: &str,
    action: Action,
    source: &str,
    item: &str,
    when: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        occurred_at: when,
        body: EventBody::Detection(Detection {
            state: state.into(),
            treaty: treaty.into(),
            action,
            rule: "test".into(),
            rules_version: "test".into(),
            source: source.into(),
            item_key: item.into(),
            evidence: Evidence {
                sentence: format!("{state} {action} {treaty} ({item})"),
                link: Some(format!("https://news.example.org/{item}")),
                title: None,
            },
            authoritative: false,
            backfill: false,
            revives: None,
            takes_effect: None,
        }),
    }
}
