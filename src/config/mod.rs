//! Configuration: `feeds.toml` and the data files it references, loaded and
//! checked into one `Config`.
//!
//! Two layers, as in ripgrep's low/high args: `raw` mirrors the TOML with
//! spans; `load` validates it into the types below (parsed URLs, durations,
//! resolved paths, known codes) and reports every problem as a
//! `path:line:col: message` diagnostic. Nothing else reads config files.

pub mod diagnostic;
pub mod dirs;
pub mod gazetteer;
pub mod mailbox;
pub mod membership;
pub mod preflight;
mod raw;
pub mod rule_tests;
pub mod rules;
pub mod treaties;
pub mod webhook;

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use url::Url;

use crate::domain::Status;
use crate::fetch::schedule::DEFAULT_BACKOFF_CAP;
use crate::fetch::{DEFAULT_CONCURRENCY, DEFAULT_PER_HOST, Limits};
use crate::health::Thresholds;

pub use diagnostic::Diagnostic;
use diagnostic::SourceText;
pub use dirs::{ServiceDirs, locate};
pub use gazetteer::Gazetteer;
pub use mailbox::{Mailbox, MailboxSource};
pub use membership::{MembershipEntry, MembershipFile};
pub use rule_tests::RuleTest;
pub use rules::CueRules;
pub use treaties::{Treaties, Treaty};
pub use webhook::{Webhook, WebhookFormat};

/// Database location, relative to the config file's folder (in a
/// `$STATE_DIRECTORY` it is `dirs::STATE_DB_FILE`).
pub const DEFAULT_DB_PATH: &str = "data/treatywatch.db";
pub const DEFAULT_STATES_FILE: &str = "states.toml";
pub const DEFAULT_TREATIES_FILE: &str = "treaties.toml";
pub const DEFAULT_RULES_FILE: &str = "rules.toml";
pub const DEFAULT_FEED_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// Polling more often than this is impolite to any news site.
pub const MIN_FEED_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(10 * 60);
/// Folder for .eml digests, relative to the config file's folder (in a
/// `$STATE_DIRECTORY` it is `dirs::STATE_DIGEST_FOLDER`).
pub const DEFAULT_DIGEST_FOLDER: &str = "data/digests";
pub const DEFAULT_FROM: &str = "treatywatch <treatywatch@localhost>";
/// The largest digest built by default: far below the limits mail servers
/// set (Postfix: 10,240,000 bytes), far above what a burst of news needs.
pub const DEFAULT_MAX_DIGEST_SIZE: u64 = 1 << 20;
/// A digest must at least hold its headers, a few changes and the standings.
pub const MIN_MAX_DIGEST_SIZE: u64 = 16 << 10;
/// How long an SMTP connection and each reply may take by default.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `[notify.smtp] timeout` accepted.
pub const MAX_SMTP_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Items published longer ago than this are old news: recorded and
/// classified, but the status changes they cause are never emailed.
pub const DEFAULT_BACKFILL_AGE: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// More parallel fetches than this gains nothing and looks like abuse.
pub const MAX_CONCURRENCY: usize = 64;
/// The daemon's rotating backups kept when `[storage] backup_keep` is unset.
pub const DEFAULT_BACKUP_KEEP: usize = 7;
/// Backing up more often than this only wears the disk.
pub const MIN_BACKUP_EVERY: Duration = Duration::from_secs(60);
/// The most items `[fetch] max_items` may allow per feed document.
pub const MAX_ITEMS_LIMIT: usize = 100_000;

/// The validated configuration every command works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The feeds.toml this was loaded from.
    pub path: PathBuf,
    pub db_path: PathBuf,
    /// The daemon's rotating backups (`[storage] backup_every`, `backup_keep`).
    pub backups: Backups,
    pub feeds: Vec<Feed>,
    /// `[[mailbox]]`: depositary notifications read from a Maildir.
    pub mailboxes: Vec<Mailbox>,
    pub tracking: Tracking,
    pub notify: Notify,
    pub fetch: FetchSettings,
    /// Where `run` serves Prometheus metrics, if anywhere (loopback only).
    pub metrics: Option<std::net::SocketAddr>,
    /// The web outputs (`[web]`), if they are served.
    pub web: Option<Web>,
    pub gazetteer: Gazetteer,
    pub treaties: Treaties,
    /// The classifier's cue phrases (rules.toml).
    pub rules: CueRules,
    /// Short hex hash of the rule files as loaded (states, treaties, rules):
    /// stamped on every detection so a stored one says which rules made it.
    pub rules_version: String,
    /// Example texts with the detections the rules must make (`[data]
    /// rule_tests`); `check` runs them.
    pub rule_tests: Vec<RuleTest>,
    /// The membership data files (`[data] membership`), in the order
    /// listed, each folder's files by name: the baseline's input.
    pub membership: Vec<MembershipFile>,
}

#[derive(Debug, Clone)]
pub struct Feed {
    /// Stable identifier, used in the log and in logs; `[a-z0-9_-]+`.
    pub id: String,
    pub name: String,
    pub url: Url,
    pub interval: Duration,
    pub enabled: bool,
    /// An authoritative source (a depositary's notifications) moves a status
    /// on its own, whatever the treaty's `min_sources`.
    pub authoritative: bool,
    /// This feed's own `stale_after`, for sources that publish rarely;
    /// `None` means `[notify] stale_after`.
    pub stale_after: Option<Duration>,
}

/// `[web]`: where the read-only web outputs are served and who may read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    pub listen: std::net::SocketAddr,
    /// Where the bearer token is kept; required for a non-loopback `listen`.
    pub token: Option<TokenFile>,
    /// The server's public address, for absolute links in Atom feeds and
    /// the calendar (behind a proxy); without it they are built from the
    /// request's Host header. Always ends in '/'.
    pub base_url: Option<Url>,
}

/// Where `[web] token_file` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFile {
    Path(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/NAME`: a systemd credential, found when the
    /// server starts (the directory exists only inside the service).
    Credential(String),
}

/// The prefix of a `token_file` that names a systemd credential.
pub const CREDENTIALS_PREFIX: &str = "$CREDENTIALS_DIRECTORY/";

/// Rotating backups kept by the daemon beside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backups {
    /// How often; `None`: the daemon takes none (`treatywatch backup` still works).
    pub every: Option<Duration>,
    /// How many to keep; older ones are removed.
    pub keep: usize,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            every: None,
            keep: DEFAULT_BACKUP_KEEP,
        }
    }
}

/// How feeds are fetched and scheduled (`[fetch]`).
#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub limits: Limits,
    /// Fetches in flight at once.
    pub concurrency: usize,
    /// Fetches in flight to one host at once (`per_host`, default 2).
    pub per_host: usize,
    /// Longest wait between retries of a failing feed.
    pub backoff_cap: Duration,
    pub backfill_age: Duration,
    /// Items read from one feed document; the rest are counted, not read.
    pub max_items: usize,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            limits: Limits::default(),
            concurrency: DEFAULT_CONCURRENCY,
            per_host: DEFAULT_PER_HOST,
            backoff_cap: DEFAULT_BACKOFF_CAP,
            backfill_age: DEFAULT_BACKFILL_AGE,
            max_items: crate::feed::MAX_ITEMS_PER_FEED,
        }
    }
}

/// The states × treaties whose status is shown and notified.
#[derive(Debug, Clone, Default)]
pub struct Tracking {
    pub states: Vec<String>,
    pub treaties: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Notify {
    pub from: String,
    /// Default recipients: they hear about every tracked state × tracked treaty.
    pub to: Vec<String>,
    pub debounce: Duration,
    pub transport: Transport,
    /// Stages (new statuses) the default recipients get at once, without
    /// waiting for the debounce window.
    pub urgent: Vec<Status>,
    pub subscriptions: Vec<Subscription>,
    /// `[[notify.webhook]]`: HTTP receivers, recipients like any other.
    pub webhooks: Vec<Webhook>,
    /// When a feed's health is worth an alert (`alert_after_failures`,
    /// `stale_after`).
    pub thresholds: Thresholds,
    /// The default recipients get source-health alerts (`health_alerts`,
    /// default true).
    pub health_alerts: bool,
    /// The largest message a digest may become, in bytes
    /// (`max_digest_size`); a larger one is sent in a brief form.
    pub max_digest_size: u64,
    /// Starts every subject, for mail filters (`subject_prefix`, default
    /// "[treatywatch]"; "" for none).
    pub subject_prefix: String,
    /// The default recipients' digests list reports still waiting for a
    /// second source (`unconfirmed`, default false).
    pub unconfirmed: bool,
    /// The List-Unsubscribe address (`unsubscribe`, default the From
    /// address): where a recipient writes to be taken off.
    pub unsubscribe: Option<String>,
}

/// `[[notify.subscription]]`: recipients with their own choice of states,
/// treaties and urgent stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub to: Vec<String>,
    /// State codes to hear about; `None` means the tracked states.
    pub states: Option<Vec<String>>,
    /// Treaty ids to hear about; `None` means the tracked treaties.
    pub treaties: Option<Vec<String>>,
    pub urgent: Vec<Status>,
    /// These recipients get source-health alerts too (default false: a
    /// subscription is about states and treaties).
    pub health_alerts: bool,
    /// Their digests list reports still waiting for a second source.
    pub unconfirmed: bool,
}

#[derive(Debug, Clone)]
pub enum Transport {
    /// Write each digest as an .eml file into a folder.
    File {
        folder: PathBuf,
    },
    Smtp(Smtp),
    /// Hand each digest to the local MTA's sendmail program.
    Sendmail(Sendmail),
}

/// `transport = "sendmail"`: the program and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sendmail {
    /// `[notify] sendmail`, absolute (default `/usr/sbin/sendmail`).
    pub path: PathBuf,
    /// Where `sendmail` is written, for `check`'s report (`preflight`).
    pub path_at: Option<diagnostic::Location>,
    /// A sendmail that has not exited after this long is killed and the
    /// delivery retried.
    pub timeout: Duration,
}

/// Where Debian's MTAs (Postfix, Exim, OpenSMTPD, msmtp-mta, nullmailer)
/// install their sendmail program.
pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";
/// sendmail only queues the message locally; a minute is generous.
pub const SENDMAIL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<PasswordSource>,
    /// Where `password_env` or `password_file` is written, for `check`'s
    /// report when the secret is not there (`preflight`).
    pub password_at: Option<diagnostic::Location>,
    /// The wait for the connection and for each reply of the server; the
    /// whole delivery of one message may take a few of these at most
    /// (see `notify::smtp`).
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Tls,
}

/// Where an SMTP password comes from; never the config file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    /// A file such as a systemd credential (`$CREDENTIALS_DIRECTORY/smtp`).
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; pass --config PATH or set TREATYWATCH_CONFIG", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    /// No config was named and none was found where one is looked for.
    #[error(
        "no config file found; looked for {}; pass --config PATH or set TREATYWATCH_CONFIG",
        .looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", then ")
    )]
    NotFound { looked: Vec<PathBuf> },
}

impl ConfigError {
    /// The individual problems, for callers that print or count them.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Unreadable { .. } | ConfigError::NotFound { .. } => &[],
            ConfigError::Invalid(d) => d,
        }
    }
}

fn render(diags: &[Diagnostic]) -> String {
    let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Tls => "tls",
        })
    }
}

/// Loads and validates `path` and every file it references, with data
/// and secret paths resolved in the directories systemd gave (if any).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &ServiceDirs::from_env())
}

/// `load`, with the service directories passed in.
pub fn load_with(path: &Path, dirs: &ServiceDirs) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let src = SourceText::new(path, text);
    let raw: raw::FeedsFile =
        toml::from_str(&src.text).map_err(|e| ConfigError::Invalid(vec![src.from_toml(&e)]))?;
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut v = Validator {
        src: &src,
        base: &base,
        dirs,
        problems: Vec::new(),
    };

    let data = raw.data.as_ref();
    let (gazetteer, states_text) = v
        .data_file(
            data.and_then(|d| d.states.as_ref()),
            DEFAULT_STATES_FILE,
            "states",
            gazetteer::parse,
        )
        .unwrap_or_default();
    let (treaties, treaties_text) = v
        .data_file(
            data.and_then(|d| d.treaties.as_ref()),
            DEFAULT_TREATIES_FILE,
            "treaties",
            treaties::parse,
        )
        .unwrap_or_default();
    let (rules, rules_text) = v
        .data_file(
            data.and_then(|d| d.rules.as_ref()),
            DEFAULT_RULES_FILE,
            "rules",
            rules::parse,
        )
        .unwrap_or_default();
    let data_ok = v.problems.is_empty();
    // Optional, unlike the data files: no key means no rule tests.
    let rule_tests = match data.and_then(|d| d.rule_tests.as_ref()) {
        Some(reference) => {
            let known = data_ok.then_some((&gazetteer, &treaties));
            v.data_file(Some(reference), "", "rule_tests", |src| {
                rule_tests::parse(src, known)
            })
            .map(|(tests, _)| tests)
            .unwrap_or_default()
        }
        None => Vec::new(),
    };
    let membership = match data {
        Some(d) => {
            let known = data_ok.then_some((&gazetteer, &treaties));
            d.membership
                .iter()
                .flat_map(|reference| v.membership(reference, known))
                .collect()
        }
        None => Vec::new(),
    };
    let rules_version = rules_version(&[
        ("states", &states_text),
        ("treaties", &treaties_text),
        ("rules", &rules_text),
    ]);

    let db_path = match raw.storage.as_ref().and_then(|s| s.path.as_ref()) {
        Some(p) => dirs.data_path(&base, Path::new(p.get_ref())),
        None => dirs.default_data_path(&base, DEFAULT_DB_PATH, dirs::STATE_DB_FILE),
    };
    let backups = v.backups(raw.storage.as_ref());
    let feeds = v.feeds(raw.feed);
    let mailboxes = v.mailboxes(raw.mailbox, &feeds);
    let tracking = v.tracking(raw.tracking.as_ref(), &gazetteer, &treaties, data_ok);
    let notify = v.notify(raw.notify, &gazetteer, &treaties, data_ok);
    let fetch = v.fetch(raw.fetch);
    let metrics = v.metrics(raw.daemon.as_ref().and_then(|d| d.metrics.as_ref()));
    let web = raw.web.as_ref().and_then(|w| v.web(w, metrics));

    if v.problems.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            db_path,
            backups,
            feeds,
            mailboxes,
            tracking,
            notify,
            fetch,
            metrics,
            web,
            gazetteer,
            treaties,
            rules,
            rules_version,
            rule_tests,
            membership,
        })
    } else {
        Err(ConfigError::Invalid(v.problems))
    }
}

/// What a subject starts with unless `[notify] subject_prefix` says.
pub const DEFAULT_SUBJECT_PREFIX: &str = "[treatywatch]";

/// A configured header text on one line, trimmed.
fn header_text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hex digits kept of the rules hash: 48 bits tell apart any rule edits a
/// deployment will ever see, and stay short enough to read in a log line.
pub const RULES_VERSION_DIGITS: usize = 12;

/// The rules version: SHA-256 over each rule file's role, length and bytes
/// (so moving text from one file to another changes it too), shortened.
/// Any edit changes it, even a comment: the version names the files, and
/// `reclassify` finding nothing to do is how a harmless edit shows.
pub fn rules_version(files: &[(&str, &str)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (role, text) in files {
        hash.update(role.as_bytes());
        hash.update([0]);
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    let digest = hash.finalize();
    let mut hex = String::with_capacity(RULES_VERSION_DIGITS);
    for byte in digest.iter().take(RULES_VERSION_DIGITS / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Bytes in "5 MiB", "512 KiB", "2 MB" or a bare number of bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Accumulates diagnostics while turning raw values into checked ones.
struct Validator<'a> {
    src: &'a SourceText,
    base: &'a Path,
    dirs: &'a ServiceDirs,
    problems: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(self.src.at(span, message));
    }

    /// Where digests go when `[notify] folder` is unset.
    fn default_digest_folder(&self) -> PathBuf {
        self.dirs
            .default_data_path(self.base, DEFAULT_DIGEST_FOLDER, dirs::STATE_DIGEST_FOLDER)
    }

    fn path(&self, p: &Spanned<String>) -> PathBuf {
        let p = Path::new(p.get_ref());
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    value.span(),
                    format!(
                        "{what} {:?} is not a duration ({e}); write something like \"15m\", \"1h 30m\" or \"2h\"",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A duration that must be longer than zero.
    fn positive_duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match self.duration(value, what)? {
            d if d.is_zero() => {
                self.err(value.span(), format!("{what} must be longer than zero"));
                None
            }
            d => Some(d),
        }
    }

    /// Reads and parses a data file referenced from `[data]`, returning it
    /// with the text it was read from; a missing file is reported at the
    /// reference (or at the top when the default is used).
    fn data_file<T>(
        &mut self,
        reference: Option<&Spanned<String>>,
        default: &str,
        key: &str,
        parse: impl FnOnce(&SourceText) -> Result<T, Vec<Diagnostic>>,
    ) -> Option<(T, String)> {
        let (path, span) = match reference {
            Some(r) => (self.path(r), r.span()),
            None => (self.base.join(default), 0..0),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let src = SourceText::new(&path, text);
                match parse(&src) {
                    Ok(v) => Some((v, src.text)),
                    Err(d) => {
                        self.problems.extend(d);
                        None
                    }
                }
            }
            Err(e) => {
                self.err(
                    span,
                    format!(
                        "cannot read {key} file {}: {e}; fix `{key} = \"…\"` under [data] (paths are relative to this file's folder)",
                        path.display()
                    ),
                );
                None
            }
        }
    }

    /// The membership files one `[data] membership` entry names: a file, or
    /// every `*.toml` in a folder, by name.
    fn membership(
        &mut self,
        reference: &Spanned<String>,
        known: Option<(&Gazetteer, &Treaties)>,
    ) -> Vec<MembershipFile> {
        let path = self.path(reference);
        let paths = if path.is_dir() {
            let listed = std::fs::read_dir(&path).and_then(|dir| {
                dir.map(|e| e.map(|e| e.path()))
                    .collect::<std::io::Result<Vec<_>>>()
            });
            match listed {
                Ok(mut files) => {
                    files.retain(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file());
                    files.sort();
                    files
                }
                Err(e) => {
                    self.err(
                        reference.span(),
                        format!("cannot list membership folder {}: {e}", path.display()),
                    );
                    return Vec::new();
                }
            }
        } else {
            vec![path]
        };
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => match membership::parse(&SourceText::new(&path, text), known) {
                    Ok(file) => files.push(file),
                    Err(d) => self.problems.extend(d),
                },
                Err(e) => self.err(
                    reference.span(),
                    format!(
                        "cannot read membership file {}: {e}; fix `membership = [\"…\"]` under [data] (files or folders, relative to this file's folder)",
                        path.display()
                    ),
                ),
            }
        }
        files
    }

    fn metrics(&mut self, raw: Option<&Spanned<String>>) -> Option<std::net::SocketAddr> {
        let raw = raw?;
        match raw.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => Some(addr),
            Ok(addr) => {
                self.err(
                    raw.span(),
                    format!("metrics address {addr} is not a loopback address; metrics are only served on 127.0.0.1 or [::1] (put a proxy in front to expose them)"),
                );
                None
            }
            Err(e) => {
                self.err(raw.span(), format!("metrics address {:?} is not an address ({e}); write e.g. \"127.0.0.1:9184\"", raw.get_ref()));
                None
            }
        }
    }

    fn web(
        &mut self,
        raw: &Spanned<raw::Web>,
        metrics: Option<std::net::SocketAddr>,
    ) -> Option<Web> {
        let table = raw.get_ref();
        let token = table.token_file.as_ref().and_then(|t| {
            let written = t.get_ref().trim();
            if written.is_empty() {
                self.err(t.span(), "token_file is empty; write the path of a file holding the token, e.g. \"$CREDENTIALS_DIRECTORY/web-token\"");
                None
            } else if let Some(name) = written.strip_prefix(CREDENTIALS_PREFIX) {
                Some(TokenFile::Credential(name.to_string()))
            } else if written.starts_with('$') {
                self.err(t.span(), format!("token_file {written:?}: only $CREDENTIALS_DIRECTORY/NAME is expanded; write a path, or \"$CREDENTIALS_DIRECTORY/web-token\" with LoadCredential=web-token:/etc/treatywatch/web-token"));
                None
            } else {
                Some(TokenFile::Path(self.path(t)))
            }
        });
        let base_url = table.base_url.as_ref().and_then(|b| match Url::parse(b.get_ref()) {
            Ok(mut u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if !u.path().ends_with('/') {
                    let path = format!("{}/", u.path());
                    u.set_path(&path);
                }
                Some(u)
            }
            _ => {
                self.err(b.span(), format!("base_url {:?} is not an http(s) URL; write the address readers use, e.g. \"https://treaties.example.org/\"", b.get_ref()));
                None
            }
        });
        let Some(listen) = &table.listen else {
            self.err(raw.span(), "[web] has no `listen`; add e.g. listen = \"127.0.0.1:8080\" (or remove [web] to serve nothing)");
            return None;
        };
        let addr = match listen.get_ref().parse::<std::net::SocketAddr>() {
            Ok(a) => a,
            Err(e) => {
                self.err(listen.span(), format!("web listen address {:?} is not an address ({e}); write e.g. \"127.0.0.1:8080\"", listen.get_ref()));
                return None;
            }
        };
        if !addr.ip().is_loopback() && table.token_file.is_none() {
            self.err(listen.span(), format!("web listen address {addr} is not a loopback address, and without a token anyone who can reach it could read the board; add token_file = \"$CREDENTIALS_DIRECTORY/web-token\" (a file holding a bearer token) under [web], or listen on 127.0.0.1"));
            return None;
        }
        if metrics.is_some_and(|m| m == addr && addr.port() != 0) {
            self.err(listen.span(), format!("web listen address {addr} is also [daemon] metrics; the web server serves /metrics itself, so remove one of them or give them different ports"));
            return None;
        }
        Some(Web {
            listen: addr,
            token,
            base_url,
        })
    }

    fn backups(&mut self, raw: Option<&raw::Storage>) -> Backups {
        let mut backups = Backups::default();
        let Some(raw) = raw else { return backups };
        if let Some(every) = &raw.backup_every {
            match self.duration(every, "backup_every") {
                Some(d) if d < MIN_BACKUP_EVERY => self.err(
                    every.span(),
                    format!(
                        "backup_every must be at least {}; write e.g. \"1d\" or \"6h\"",
                        humantime::format_duration(MIN_BACKUP_EVERY)
                    ),
                ),
                Some(d) => backups.every = Some(d),
                None => {}
            }
        }
        if let Some(keep) = &raw.backup_keep {
            match usize::try_from(*keep.get_ref()) {
                Ok(n) if (1..=1000).contains(&n) => backups.keep = n,
                _ => self.err(
                    keep.span(),
                    format!(
                        "backup_keep must be between 1 and 1000, not {}",
                        keep.get_ref()
                    ),
                ),
            }
            if raw.backup_every.is_none() {
                self.err(
                    keep.span(),
                    "backup_keep has no effect without backup_every: add e.g. backup_every = \"1d\" to [storage]",
                );
            }
        }
        backups
    }

    fn fetch(&mut self, raw: Option<raw::Fetch>) -> FetchSettings {
        let mut settings = FetchSettings::default();
        let Some(raw) = raw else { return settings };
        let duration =
            |v: &mut Self, value: &Option<Spanned<String>>, key: &str, slot: &mut Duration| {
                if let Some(value) = value {
                    match v.duration(value, key) {
                        Some(d) if d.is_zero() => {
                            v.err(value.span(), format!("{key} must be longer than zero"))
                        }
                        Some(d) => *slot = d,
                        None => {}
                    }
                }
            };
        duration(
            self,
            &raw.connect_timeout,
            "connect_timeout",
            &mut settings.limits.connect_timeout,
        );
        duration(self, &raw.timeout, "timeout", &mut settings.limits.timeout);
        duration(
            self,
            &raw.backoff_cap,
            "backoff_cap",
            &mut settings.backoff_cap,
        );
        duration(
            self,
            &raw.backfill_age,
            "backfill_age",
            &mut settings.backfill_age,
        );
        if let Some(size) = &raw.max_body {
            match parse_size(size.get_ref()) {
                Some(n) if n > 0 => settings.limits.max_body = n,
                _ => self.err(size.span(), format!("max_body {:?} is not a size; write e.g. \"5 MiB\", \"512 KiB\" or \"1000000\" (bytes)", size.get_ref())),
            }
        }
        if let Some(n) = &raw.max_items {
            match usize::try_from(*n.get_ref()) {
                Ok(m) if (1..=MAX_ITEMS_LIMIT).contains(&m) => settings.max_items = m,
                _ => self.err(
                    n.span(),
                    format!(
                        "max_items must be between 1 and {MAX_ITEMS_LIMIT}, not {}",
                        n.get_ref()
                    ),
                ),
            }
        }
        if let Some(n) = &raw.concurrency {
            match usize::try_from(*n.get_ref()) {
                Ok(c) if (1..=MAX_CONCURRENCY).contains(&c) => settings.concurrency = c,
                _ => self.err(
                    n.span(),
                    format!(
                        "concurrency must be between 1 and {MAX_CONCURRENCY}, not {}",
                        n.get_ref()
                    ),
                ),
            }
        }
        if let Some(n) = &raw.per_host {
            match usize::try_from(*n.get_ref()) {
                Ok(c) if (1..=MAX_CONCURRENCY).contains(&c) => settings.per_host = c,
                _ => self.err(
                    n.span(),
                    format!(
                        "per_host must be between 1 and {MAX_CONCURRENCY} (fetches in flight to one host; default {DEFAULT_PER_HOST}), not {}",
                        n.get_ref()
                    ),
                ),
            }
        }
        settings
    }

    fn feeds(&mut self, raw: Vec<raw::Feed>) -> Vec<Feed> {
        let mut seen = HashSet::new();
        let mut feeds = Vec::with_capacity(raw.len());
        for f in raw {
            let id = f.id.get_ref().clone();
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                self.err(
                    f.id.span(),
                    format!("feed id {id:?} may only use a-z, 0-9, '-' and '_' (it is stored in the event log); rename it"),
                );
            } else if !seen.insert(id.clone()) {
                self.err(
                    f.id.span(),
                    format!("feed id {id:?} is used twice; give each [[feed]] its own id"),
                );
            }
            let url = match Url::parse(f.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
                Ok(u) => {
                    self.err(
                        f.url.span(),
                        format!("feed {id}: url {:?} uses scheme {:?}; only http:// and https:// feeds can be polled", f.url.get_ref(), u.scheme()),
                    );
                    None
                }
                Err(e) => {
                    self.err(f.url.span(), format!("feed {id}: url {:?} is not a valid URL ({e}); write a full http(s):// address", f.url.get_ref()));
                    None
                }
            };
            let interval = match &f.interval {
                None => Some(DEFAULT_FEED_INTERVAL),
                Some(s) => match self.duration(s, "interval") {
                    Some(d) if d < MIN_FEED_INTERVAL => {
                        self.err(s.span(), format!("feed {id}: interval {:?} is shorter than the minimum of 1m; poll less often", s.get_ref()));
                        None
                    }
                    other => other,
                },
            };
            let stale_after = f
                .stale_after
                .as_ref()
                .and_then(|s| self.positive_duration(s, "stale_after"));
            if let (Some(url), Some(interval)) = (url, interval) {
                feeds.push(Feed {
                    name: f.name.unwrap_or_else(|| id.clone()),
                    id,
                    url,
                    interval,
                    enabled: f.enabled.unwrap_or(true),
                    authoritative: f.authoritative.unwrap_or(false),
                    stale_after,
                });
            }
        }
        feeds
    }

    fn tracking(
        &mut self,
        raw: Option<&Spanned<raw::Tracking>>,
        gazetteer: &Gazetteer,
        treaties: &Treaties,
        data_ok: bool,
    ) -> Tracking {
        let Some(raw) = raw else {
            self.err(0..0, "missing [tracking] table; add `[tracking]` with `states = [\"UKR\"]` and `treaties = [\"ottawa\"]`");
            return Tracking::default();
        };
        let mut tracking = Tracking::default();
        for s in &raw.get_ref().states {
            let code = s.get_ref();
            if data_ok && gazetteer.state(code).is_none() {
                let hint = if gazetteer.state(&code.to_uppercase()).is_some() {
                    format!("; codes are upper case: write {:?}", code.to_uppercase())
                } else {
                    "; use an ISO 3166-1 alpha-3 code defined in the states file".to_string()
                };
                self.err(
                    s.span(),
                    format!("unknown state code {code:?} in [tracking] states{hint}"),
                );
            } else if tracking.states.contains(code) {
                self.err(
                    s.span(),
                    format!("state {code} is tracked twice; remove one"),
                );
            } else {
                tracking.states.push(code.clone());
            }
        }
        for t in &raw.get_ref().treaties {
            let id = t.get_ref();
            if data_ok && treaties.get(id).is_none() {
                let known: Vec<&str> = treaties.list.iter().map(|t| t.id.as_str()).collect();
                self.err(
                    t.span(),
                    format!(
                        "unknown treaty id {id:?} in [tracking] treaties; known ids: {}",
                        known.join(", ")
                    ),
                );
            } else if tracking.treaties.contains(id) {
                self.err(
                    t.span(),
                    format!("treaty {id} is tracked twice; remove one"),
                );
            } else {
                tracking.treaties.push(id.clone());
            }
        }
        if raw.get_ref().states.is_empty() || raw.get_ref().treaties.is_empty() {
            self.err(
                raw.span(),
                "[tracking] needs at least one state and one treaty",
            );
        }
        tracking
    }

    fn notify(
        &mut self,
        raw: Option<raw::Notify>,
        gazetteer: &Gazetteer,
        treaties: &Treaties,
        data_ok: bool,
    ) -> Notify {
        let Some(raw) = raw else {
            return Notify {
                from: DEFAULT_FROM.to_string(),
                to: Vec::new(),
                debounce: DEFAULT_DEBOUNCE,
                transport: Transport::File {
                    folder: self.default_digest_folder(),
                },
                urgent: Vec::new(),
                subscriptions: Vec::new(),
                webhooks: Vec::new(),
                thresholds: Thresholds::default(),
                health_alerts: true,
                max_digest_size: DEFAULT_MAX_DIGEST_SIZE,
                subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
                unconfirmed: false,
                unsubscribe: None,
            };
        };
        let urgent = self.stages(&raw.urgent, "[notify] urgent");
        let subscriptions = raw
            .subscription
            .iter()
            .map(|s| self.subscription(s, gazetteer, treaties, data_ok))
            .collect();
        let webhooks = self.webhooks(&raw.webhook, gazetteer, treaties, data_ok);
        let from = match &raw.from {
            Some(f) => {
                self.address(f, "from");
                f.get_ref().clone()
            }
            None => DEFAULT_FROM.to_string(),
        };
        for t in &raw.to {
            self.address(t, "to");
        }
        let debounce = match &raw.debounce {
            Some(d) => self.duration(d, "debounce").unwrap_or(DEFAULT_DEBOUNCE),
            None => DEFAULT_DEBOUNCE,
        };
        let transport_name = raw.transport.as_ref().map(|t| t.get_ref().as_str());
        if let Some(sendmail) = &raw.sendmail
            && transport_name != Some("sendmail")
        {
            self.err(
                sendmail.span(),
                "`sendmail` is set but transport is not \"sendmail\"; set `transport = \"sendmail\"` under [notify] or remove `sendmail`",
            );
        }
        let transport = match transport_name {
            None | Some("file") => {
                if let Some(smtp) = &raw.smtp {
                    self.err(smtp.span(), "[notify.smtp] is set but transport is \"file\"; set `transport = \"smtp\"` under [notify] or remove [notify.smtp]");
                }
                Transport::File {
                    folder: raw.folder.as_ref().map_or_else(
                        || self.default_digest_folder(),
                        |f| self.dirs.data_path(self.base, Path::new(f.get_ref())),
                    ),
                }
            }
            Some("smtp") => match raw.smtp {
                Some(smtp) => Transport::Smtp(self.smtp(smtp.into_inner())),
                None => {
                    let span = raw.transport.as_ref().map_or(0..0, Spanned::span);
                    self.err(span, "transport is \"smtp\" but there is no [notify.smtp] table; add one with at least `host`");
                    Transport::File {
                        folder: self.default_digest_folder(),
                    }
                }
            },
            Some("sendmail") => {
                if let Some(smtp) = &raw.smtp {
                    self.err(smtp.span(), "[notify.smtp] is set but transport is \"sendmail\"; remove [notify.smtp] or set `transport = \"smtp\"`");
                }
                let path = match &raw.sendmail {
                    Some(p) if !Path::new(p.get_ref()).is_absolute() => {
                        self.err(
                            p.span(),
                            format!("sendmail {:?} is not an absolute path; write the program's full path, such as \"{DEFAULT_SENDMAIL}\"", p.get_ref()),
                        );
                        PathBuf::from(DEFAULT_SENDMAIL)
                    }
                    Some(p) => PathBuf::from(p.get_ref()),
                    None => PathBuf::from(DEFAULT_SENDMAIL),
                };
                Transport::Sendmail(Sendmail {
                    path,
                    path_at: raw
                        .sendmail
                        .as_ref()
                        .or(raw.transport.as_ref())
                        .map(|s| self.src.location(s.span())),
                    timeout: SENDMAIL_TIMEOUT,
                })
            }
            Some(other) => {
                let span = raw.transport.as_ref().map_or(0..0, Spanned::span);
                self.err(span, format!("unknown transport {other:?}; write \"file\" (digests as .eml files), \"smtp\" or \"sendmail\" (the local MTA)"));
                Transport::File {
                    folder: self.default_digest_folder(),
                }
            }
        };
        let mut thresholds = Thresholds::default();
        if let Some(n) = &raw.alert_after_failures {
            match u32::try_from(*n.get_ref()) {
                Ok(n) if n >= 1 => thresholds.failures = n,
                _ => self.err(
                    n.span(),
                    format!(
                        "alert_after_failures must be a whole number of failed polls, 1 or more (default {}), not {}",
                        crate::health::DEFAULT_ALERT_AFTER_FAILURES,
                        n.get_ref()
                    ),
                ),
            }
        }
        if let Some(d) = raw
            .stale_after
            .as_ref()
            .and_then(|d| self.positive_duration(d, "stale_after"))
        {
            thresholds.stale_after = d;
        }
        let mut max_digest_size = DEFAULT_MAX_DIGEST_SIZE;
        if let Some(size) = &raw.max_digest_size {
            match parse_size(size.get_ref()) {
                Some(n) if n >= MIN_MAX_DIGEST_SIZE => max_digest_size = n,
                Some(_) => self.err(
                    size.span(),
                    format!(
                        "max_digest_size {:?} is too small for a digest; write at least \"16 KiB\" (default \"1 MiB\")",
                        size.get_ref()
                    ),
                ),
                None => self.err(
                    size.span(),
                    format!(
                        "max_digest_size {:?} is not a size; write e.g. \"1 MiB\", \"512 KiB\" or \"1000000\" (bytes)",
                        size.get_ref()
                    ),
                ),
            }
        }
        let unsubscribe = raw.unsubscribe.as_ref().map(|u| {
            self.address(u, "unsubscribe");
            u.get_ref().trim().to_string()
        });
        Notify {
            max_digest_size,
            from,
            to: raw.to.into_iter().map(Spanned::into_inner).collect(),
            debounce,
            transport,
            urgent,
            subscriptions,
            webhooks,
            thresholds,
            health_alerts: raw.health_alerts.unwrap_or(true),
            subject_prefix: match raw.subject_prefix {
                Some(p) => header_text(&p),
                None => DEFAULT_SUBJECT_PREFIX.to_string(),
            },
            unconfirmed: raw.unconfirmed.unwrap_or(false),
            unsubscribe,
        }
    }

    fn subscription(
        &mut self,
        raw: &Spanned<raw::Subscription>,
        gazetteer: &Gazetteer,
        treaties: &Treaties,
        data_ok: bool,
    ) -> Subscription {
        let sub = raw.get_ref();
        if sub.to.get_ref().is_empty() {
            self.err(
                sub.to.span(),
                "[[notify.subscription]] has no recipients; add `to = [\"desk@example.org\"]` or remove the entry",
            );
        }
        for t in sub.to.get_ref() {
            self.address(t, "subscription to");
        }
        let states = sub.states.as_ref().map(|list| {
            self.filter(list, "states", |code| {
                if !data_ok || gazetteer.state(code).is_some() {
                    return None;
                }
                Some(if gazetteer.state(&code.to_uppercase()).is_some() {
                    format!("unknown state code {code:?} in a subscription; codes are upper case: write {:?}", code.to_uppercase())
                } else {
                    format!("unknown state code {code:?} in a subscription; use an ISO 3166-1 alpha-3 code defined in the states file")
                })
            })
        });
        let treaty_ids = sub.treaties.as_ref().map(|list| {
            self.filter(list, "treaties", |id| {
                if !data_ok || treaties.get(id).is_some() {
                    return None;
                }
                let known: Vec<&str> = treaties.list.iter().map(|t| t.id.as_str()).collect();
                Some(format!(
                    "unknown treaty id {id:?} in a subscription; known ids: {}",
                    known.join(", ")
                ))
            })
        });
        Subscription {
            to: sub
                .to
                .get_ref()
                .iter()
                .map(|t| t.get_ref().clone())
                .collect(),
            states,
            treaties: treaty_ids,
            urgent: self.stages(&sub.urgent, "subscription urgent"),
            health_alerts: sub.health_alerts.unwrap_or(false),
            unconfirmed: sub.unconfirmed.unwrap_or(false),
        }
    }

    /// A subscription's `states` or `treaties` list: every entry known
    /// (`unknown` returns the complaint), none twice, and not empty.
    fn filter(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        key: &str,
        unknown: impl Fn(&str) -> Option<String>,
    ) -> Vec<String> {
        if list.get_ref().is_empty() {
            self.err(
                list.span(),
                format!("a subscription's `{key}` is empty, so it would match nothing; list some or remove the key to use the tracked {key}"),
            );
        }
        let mut out: Vec<String> = Vec::with_capacity(list.get_ref().len());
        for item in list.get_ref() {
            if let Some(message) = unknown(item.get_ref()) {
                self.err(item.span(), message);
            } else if out.contains(item.get_ref()) {
                self.err(
                    item.span(),
                    format!(
                        "{:?} is listed twice in this subscription's `{key}`; remove one",
                        item.get_ref()
                    ),
                );
            } else {
                out.push(item.get_ref().clone());
            }
        }
        out
    }

    /// Urgent stages: status names such as "withdrawal_notified".
    fn stages(&mut self, list: &[Spanned<String>], key: &str) -> Vec<Status> {
        let mut out = Vec::with_capacity(list.len());
        for item in list {
            match item.get_ref().parse::<Status>() {
                Ok(status) if !out.contains(&status) => out.push(status),
                Ok(_) => {}
                Err(e) => self.err(item.span(), format!("{key}: {e}")),
            }
        }
        out
    }

    fn smtp(&mut self, raw: raw::Smtp) -> Smtp {
        if let Some(p) = &raw.password {
            self.err(
                p.span(),
                "inline SMTP passwords are refused: a config file is not a secret store; use `password_env = \"VAR\"` or `password_file = \"/run/credentials/treatywatch.service/smtp\"`",
            );
        }
        let tls = match raw.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("starttls") => TlsMode::StartTls,
            Some("tls") => TlsMode::Tls,
            Some("none") => TlsMode::None,
            Some(other) => {
                let span = raw.tls.as_ref().map_or(0..0, Spanned::span);
                self.err(
                    span,
                    format!("unknown tls mode {other:?}; write \"starttls\", \"tls\" or \"none\""),
                );
                TlsMode::StartTls
            }
        };
        let port = match &raw.port {
            None => match tls {
                TlsMode::Tls => 465,
                TlsMode::StartTls => 587,
                TlsMode::None => 25,
            },
            Some(p) => u16::try_from(*p.get_ref())
                .ok()
                .filter(|&p| p != 0)
                .unwrap_or_else(|| {
                    self.err(
                        p.span(),
                        format!("SMTP port {} is out of range; use 1–65535", p.get_ref()),
                    );
                    587
                }),
        };
        let password_at = raw
            .password_env
            .as_ref()
            .or(raw.password_file.as_ref())
            .map(|s| self.src.location(s.span()));
        let password = match (&raw.password_env, &raw.password_file) {
            (Some(e), Some(_)) => {
                self.err(
                    e.span(),
                    "set either password_env or password_file, not both",
                );
                None
            }
            (Some(e), None) => Some(PasswordSource::Env(e.get_ref().clone())),
            (None, Some(f)) => Some(PasswordSource::File(
                self.dirs.credential_path(self.base, Path::new(f.get_ref())),
            )),
            (None, None) => None,
        };
        if password.is_some() && raw.username.is_none() {
            let span = raw
                .password_env
                .as_ref()
                .or(raw.password_file.as_ref())
                .map_or(0..0, Spanned::span);
            self.err(span, "a password is configured but no `username`; add `username = \"…\"` under [notify.smtp]");
        }
        if raw.host.get_ref().trim().is_empty() {
            self.err(
                raw.host.span(),
                "SMTP host is empty; write the mail server's name, such as \"smtp.example.org\"",
            );
        }
        let timeout = match &raw.timeout {
            Some(t) => match self.positive_duration(t, "[notify.smtp] timeout") {
                Some(d) if d <= MAX_SMTP_TIMEOUT => d,
                Some(_) => {
                    self.err(
                        t.span(),
                        "[notify.smtp] timeout is longer than 10 minutes; RFC 5321 §4.5.3.2 asks at most that of a client, and delivery holds nothing else up; write e.g. \"30s\"",
                    );
                    DEFAULT_SMTP_TIMEOUT
                }
                None => DEFAULT_SMTP_TIMEOUT,
            },
            None => DEFAULT_SMTP_TIMEOUT,
        };
        Smtp {
            host: raw.host.into_inner(),
            port,
            tls,
            username: raw.username,
            password,
            password_at,
            timeout,
        }
    }

    /// Checks an address with the mail library's own parser, the one every
    /// send uses, so `check` refuses what a send would ("Arms, Control
    /// <ac@example.org>" needs quotes; "desk@example..org" has an empty
    /// domain label).
    fn address(&mut self, value: &Spanned<String>, key: &str) {
        let s = value.get_ref().trim();
        if s.parse::<lettre::message::Mailbox>().is_err() {
            let hint = if s.contains(',') && s.contains('<') && !s.starts_with('"') {
                "; a display name with a comma must be quoted: write \"\\\"Arms, Control\\\" <ac@example.org>\""
            } else {
                "; write \"user@example.org\" or \"Name <user@example.org>\""
            };
            self.err(
                value.span(),
                format!("{key} address {s:?} is not an e-mail address a mail server accepts{hint}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rules_version;

    #[test]
    fn rules_version_is_short_stable_and_sees_every_edit() {
        let base = rules_version(&[("states", "a"), ("rules", "b")]);
        assert_eq!(base.len(), super::RULES_VERSION_DIGITS);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(base, rules_version(&[("states", "a"), ("rules", "b")]));
        for other in [
            rules_version(&[("states", "a"), ("rules", "b ")]),
            // The same bytes split differently between the files.
            rules_version(&[("states", "ab"), ("rules", "")]),
            rules_version(&[("states", "b"), ("rules", "a")]),
        ] {
            assert_ne!(base, other);
        }
    }
}
