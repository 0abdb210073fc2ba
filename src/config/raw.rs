//! The serde mirror of `feeds.toml`: exactly what the file says, with spans.
//!
//! Nothing here is validated beyond TOML types and unknown keys; `config::load`
//! turns these into the checked `Config` the rest of the program uses.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsFile {
    pub storage: Option<Storage>,
    pub data: Option<DataFiles>,
    pub tracking: Option<Spanned<Tracking>>,
    pub notify: Option<Notify>,
    pub fetch: Option<Fetch>,
    pub daemon: Option<Daemon>,
    pub web: Option<Spanned<Web>>,
    #[serde(default)]
    pub feed: Vec<Feed>,
    #[serde(default)]
    pub mailbox: Vec<Mailbox>,
}

/// `[[mailbox]]`: a folder of depositary notifications (see `config::mailbox`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub maildir: Option<Spanned<String>>,
    pub imap: Option<Spanned<Imap>>,
    pub depositary: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub stale_after: Option<Spanned<String>>,
    pub confirm_within: Option<Spanned<String>>,
}

/// `[mailbox.imap]`: an IMAP server's folder to read notifications from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imap {
    pub host: Spanned<String>,
    pub port: Option<Spanned<i64>>,
    pub user: Spanned<String>,
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    /// Accepted by the parser only so it can be refused with a useful message.
    pub password: Option<Spanned<toml::Value>>,
    pub folder: Option<Spanned<String>>,
    pub tls: Option<Spanned<bool>>,
    pub ca_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    pub connect_timeout: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub max_body: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<i64>>,
    pub per_host: Option<Spanned<i64>>,
    pub backoff_cap: Option<Spanned<String>>,
    pub backfill_age: Option<Spanned<String>>,
    pub max_items: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub path: Option<Spanned<String>>,
    pub backup_every: Option<Spanned<String>>,
    pub backup_keep: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFiles {
    pub states: Option<Spanned<String>>,
    pub treaties: Option<Spanned<String>>,
    pub rules: Option<Spanned<String>>,
    /// Optional: without it there are no rule tests.
    pub rule_tests: Option<Spanned<String>>,
    /// Membership data files or folders of them; optional: without it
    /// there is no baseline.
    #[serde(default)]
    pub membership: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracking {
    pub states: Vec<Spanned<String>>,
    pub treaties: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feed {
    pub id: Spanned<String>,
    pub url: Spanned<String>,
    pub name: Option<String>,
    pub interval: Option<Spanned<String>>,
    pub enabled: Option<bool>,
    pub authoritative: Option<bool>,
    pub stale_after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    pub debounce: Option<Spanned<String>>,
    pub transport: Option<Spanned<String>>,
    pub folder: Option<Spanned<String>>,
    /// The sendmail program, for `transport = "sendmail"`.
    pub sendmail: Option<Spanned<String>>,
    pub smtp: Option<Spanned<Smtp>>,
    /// Stages the default recipients want at once, without debounce.
    #[serde(default)]
    pub urgent: Vec<Spanned<String>>,
    #[serde(default)]
    pub subscription: Vec<Spanned<Subscription>>,
    /// `[[notify.webhook]]`: receivers that are posted each change.
    #[serde(default)]
    pub webhook: Vec<Spanned<Webhook>>,
    pub alert_after_failures: Option<Spanned<i64>>,
    pub stale_after: Option<Spanned<String>>,
    /// Whether the default recipients get source-health alerts.
    pub health_alerts: Option<bool>,
    /// The largest digest message treatywatch will build.
    pub max_digest_size: Option<Spanned<String>>,
    pub subject_prefix: Option<String>,
    pub unconfirmed: Option<bool>,
    pub unsubscribe: Option<Spanned<String>>,
}

/// `[[notify.subscription]]`: more recipients, with their own filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub to: Spanned<Vec<Spanned<String>>>,
    pub states: Option<Spanned<Vec<Spanned<String>>>>,
    pub treaties: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub urgent: Vec<Spanned<String>>,
    /// Whether these recipients get source-health alerts too.
    pub health_alerts: Option<bool>,
    pub unconfirmed: Option<bool>,
}

/// `[[notify.webhook]]`: an HTTP receiver (a chat room, ntfy, a script).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub id: Spanned<String>,
    pub url: Spanned<String>,
    pub format: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub states: Option<Spanned<Vec<Spanned<String>>>>,
    pub treaties: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub urgent: Vec<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: Spanned<String>,
    pub port: Option<Spanned<i64>>,
    pub tls: Option<Spanned<String>>,
    pub username: Option<String>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    /// Accepted by the parser only so it can be refused with a useful message.
    pub password: Option<Spanned<toml::Value>>,
    /// How long to wait for the connection and for each reply.
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    pub metrics: Option<Spanned<String>>,
}

/// `[web]`: the read-only HTTP server of the web outputs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub base_url: Option<Spanned<String>>,
}
