//! The spine of treatywatch: actions, statuses, the closed `EventBody` enum
//! kept in the log, and the pure fold from events to a status per (state,
//! treaty).
//!
//! No I/O and no clock here: the store feeds stored events in, the fold says
//! what the status table is. `store` keeps the table up to date by running
//! the same fold per key, so `replay` and the incremental path cannot drift.
//!
//! What the fold decides: a status change records what caused it (the rule,
//! an authoritative source, an analyst's correction with its note). An
//! authoritative detection of the stage a key is already at (a depositary's
//! notice after the news) confirms it: the row takes its date and evidence,
//! with no status change. A key's baselines fold first, whenever they were
//! imported (the newest list wins): the status starts there and news moves
//! it on, and news dated before the list counts only for stages a list does
//! not show. `KeyFold::unconfirmed` lists reports still short of the
//! treaty's `min_sources`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the JSON payload layout written for every event kind; bump it
/// when a payload changes shape, and keep reading the old one.
///
/// 2: detections carry `rules_version` (and `revives` when reclassify made
/// one again); retractions by reclassify carry `rules_version`. Version 1
/// payloads read with these empty.
pub const PAYLOAD_VERSION: u32 = 2;

/// Source name recorded on analyst events.
pub const ANALYST_SOURCE: &str = "analyst";

/// Source name of a status that comes from the membership baseline.
pub const BASELINE_SOURCE: &str = "baseline";

/// What a piece of news says a state did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Signed,
    /// Ratification, accession, acceptance or approval: the state becomes a party.
    Ratified,
    WithdrawalAnnounced,
    /// The legislature voted or the withdrawal law was enacted.
    WithdrawalApproved,
    /// The instrument of withdrawal was deposited with the depositary.
    WithdrawalNotified,
    WithdrawalEffective,
    /// A withdrawing state revoked its withdrawal and stays a party.
    WithdrawalReversed,
}

/// Where a state stands with a treaty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unknown,
    NonParty,
    Signatory,
    Party,
    WithdrawalAnnounced,
    WithdrawalApproved,
    WithdrawalNotified,
    Withdrawn,
}

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    _ => Err(format!(
                        "unknown {} {s:?}; expected one of: {}",
                        stringify!($ty).to_lowercase(),
                        [$($name),*].join(", ")
                    )),
                }
            }
        }
    };
}

names!(Action {
    Signed => "signed",
    Ratified => "ratified",
    WithdrawalAnnounced => "withdrawal_announced",
    WithdrawalApproved => "withdrawal_approved",
    WithdrawalNotified => "withdrawal_notified",
    WithdrawalEffective => "withdrawal_effective",
    WithdrawalReversed => "withdrawal_reversed",
});

names!(HealthCondition {
    Failing => "failing",
    Recovered => "recovered",
    Stale => "stale",
    Fresh => "fresh",
});

names!(Status {
    Unknown => "unknown",
    NonParty => "non_party",
    Signatory => "signatory",
    Party => "party",
    WithdrawalAnnounced => "withdrawal_announced",
    WithdrawalApproved => "withdrawal_approved",
    WithdrawalNotified => "withdrawal_notified",
    Withdrawn => "withdrawn",
});

impl Status {
    /// Human wording for digests and tables ("withdrawal announced").
    pub fn label(self) -> String {
        self.as_str().replace('_', " ")
    }

    /// An announced, approved or notified withdrawal: stages on the way out.
    pub fn is_withdrawing(self) -> bool {
        matches!(
            self,
            Status::WithdrawalAnnounced | Status::WithdrawalApproved | Status::WithdrawalNotified
        )
    }

    /// The status `action` would move a state to from `self`, or `None` when
    /// the action is background: an earlier stage than where the state
    /// already is, or one that makes no sense from here.
    pub fn advanced_by(self, action: Action) -> Option<Status> {
        use Status::*;
        let target = match action {
            Action::Signed => Signatory,
            Action::Ratified => Party,
            Action::WithdrawalAnnounced => WithdrawalAnnounced,
            Action::WithdrawalApproved => WithdrawalApproved,
            Action::WithdrawalNotified => WithdrawalNotified,
            Action::WithdrawalEffective => Withdrawn,
            Action::WithdrawalReversed => {
                return self.is_withdrawing().then_some(Party);
            }
        };
        let forward = match action {
            // A withdrawn state can join again (accession after withdrawal).
            Action::Ratified => matches!(self, Unknown | NonParty | Signatory | Withdrawn),
            Action::Signed => matches!(self, Unknown | NonParty),
            // Withdrawal stages imply membership: from unknown they still count.
            _ => matches!(self, Unknown | Party) || (self.is_withdrawing() && target > self),
        };
        forward.then_some(target)
    }
}

/// The evidence behind a detection, kept so a digest and `status` can show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The sentence the rule fired on.
    pub sentence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A classifier rule found that `state` took `action` on `treaty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    pub state: String,
    pub treaty: String,
    pub action: Action,
    /// Id of the rule that fired.
    pub rule: String,
    /// `Config::rules_version` of the rules that fired: which rule files
    /// made it. Empty when no rule did (a notice period ran out) and in
    /// detections recorded before versions were kept.
    #[serde(default)]
    pub rules_version: String,
    /// Feed id (or "analyst", "cli") the item came from.
    pub source: String,
    /// Stable identity of the item (`feed::Item::key`), shared by feeds
    /// that carry the same article.
    pub item_key: String,
    pub evidence: Evidence,
    /// The source is authoritative (a depositary): no corroboration needed.
    #[serde(default)]
    pub authoritative: bool,
    /// Seen during a first sync of old items: recorded, but never emailed.
    #[serde(default)]
    pub backfill: bool,
    /// Set by `reclassify` when the rules make again a detection that an
    /// earlier reclassify retracted: the seq of that retraction. It is part
    /// of the identity, so the detection can return after a rule edit is
    /// undone (the retracted one keeps its dedupe key forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revives: Option<i64>,
    /// The date a withdrawal takes effect, as an authoritative source (a
    /// depositary's notice) states it; `None` for news, which leaves it to
    /// the treaty's notice period. Not part of the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takes_effect: Option<NaiveDate>,
}

/// An analyst's correction: the status is this, whatever the news said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assertion {
    pub state: String,
    pub treaty: String,
    pub status: Status,
    pub note: String,
    /// Recorded with `--no-mail` (setting history, not news): the change
    /// it causes is never mailed. Not part of its identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

/// Where a state stood with a treaty according to a membership data file
/// (`config/membership/`): what the depositary's list, or a monitor's
/// table, said as of its date. The fold starts each key from its newest
/// baseline, whenever it was imported; news moves the status on from it.
/// Never mailed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub state: String,
    pub treaty: String,
    pub status: Status,
    #[serde(flatten)]
    pub source: BaselineRef,
    /// The withdrawal's dates, where the file gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal_notified: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawal_effective: Option<NaiveDate>,
}

/// Which data file a baseline status comes from and what it says about it:
/// kept on the status row and on the change that leaves it, so `status`
/// and digests can say "party since 2012-01-09 (baseline: … as of …)".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineRef {
    /// The date the list is known to hold for.
    pub as_of: NaiveDate,
    /// When the status began (deposit, signature, notification or effect
    /// of a withdrawal); `None` when the source gives no date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<NaiveDate>,
    /// How the state became a party: ratification, accession, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The list it was compiled from, as the data file names it.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// The data file, relative to the config's folder.
    pub file: String,
}

impl BaselineRef {
    /// "since 2012-01-09 by accession (baseline: UN Treaty Collection, as
    /// of 2026-02-20)"; without a known date, just the parenthesis.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        if let Some(since) = self.since {
            text.push_str(&format!("since {since} "));
        }
        if let Some(by) = &self.by {
            text.push_str(&format!("by {by} "));
        }
        text.push_str(&format!(
            "(baseline: {}, as of {})",
            self.source, self.as_of
        ));
        text
    }
}

/// A detection or assertion was withdrawn; the fold ignores the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retraction {
    pub target_seq: i64,
    pub state: String,
    pub treaty: String,
    pub note: String,
    /// Set when `reclassify` retracted a detection because the rules of
    /// this version no longer make it; such a retraction is undone when the
    /// rules make it again. `None` for an analyst's, which is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_version: Option<String>,
}

/// The projected status of (state, treaty) moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub state: String,
    pub treaty: String,
    pub from: Status,
    pub to: Status,
    /// The event whose append caused the change.
    pub cause_seq: i64,
    /// Distinct sources that carried the new status.
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// Caused by backfilled items: recorded, never emailed.
    #[serde(default)]
    pub backfill: bool,
    /// The baseline the old status came from, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_baseline: Option<Box<BaselineRef>>,
    /// The rule that fired, when a detection caused the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The detection that caused it came from an authoritative source (a
    /// depositary's feed, or a notice period that ran out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authoritative: bool,
    /// An analyst's correction caused it, not news: digests show it as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<Box<Correction>>,
}

/// An analyst's `assert` or `retract` behind a status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// The analyst set the status (`assert`) rather than withdrawing an
    /// event (`retract`).
    pub asserted: bool,
    pub note: String,
    /// When the correction was made.
    pub at: DateTime<Utc>,
    /// For a retraction: the evidence of the event it withdrew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrew: Option<Evidence>,
}

/// A digest reporting some status changes or source-health alerts was
/// handed to the mail server (or written to the digest folder) for one
/// recipient. It is about no (state, treaty): the fold ignores it, the
/// notifier's outbox is built on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSent {
    /// The bare, lower-cased address the digest went to.
    pub recipient: String,
    /// Lowest and highest sequence number of the events it reported.
    pub first_seq: i64,
    pub last_seq: i64,
    /// Every status change and source-health alert it reported; other
    /// events lie between them. (The name predates health alerts.)
    pub changes: Vec<i64>,
    /// The Message-ID header, derived from the range and the recipient, so a
    /// resend after a crash carries the same one.
    pub message_id: String,
}

/// A mail server refused a digest itself (a 5xx reply at or after DATA:
/// too large, or its content). It is not retried; what it reported is
/// carried to the recipient in brief, and the admins are told (see
/// `notify`). With `retried`, the server refused the recipient instead:
/// the digest is retried, and the event only tells the admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRefused {
    /// The bare, lower-cased address the digest was for.
    pub recipient: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub message_id: String,
    /// What the refusing server answered: an SMTP reply code (500–599) for
    /// mail, an HTTP status (4xx) for a webhook.
    pub code: u16,
    /// What happened, in treatywatch's words with the server's quoted:
    /// never put in a header.
    pub error: String,
    /// The status changes it reported, its own and those it carried from
    /// an earlier refusal: what the recipient is owed.
    pub changes: Vec<i64>,
    /// Its changes are carried into the recipient's next digest (it held
    /// changes of its own; a refused carry is not carried again).
    pub carry: bool,
    /// The admins are told (it reported status changes; a refused alert
    /// is not announced again).
    pub alert: bool,
    /// The server refused the recipient (5xx at RCPT TO, or an unusable
    /// address), not the message: the digest stays pending and is retried
    /// with backoff; this event only tells the admins, once per digest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retried: bool,
}

/// What happened to a feed's health (see `health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCondition {
    /// It failed `alert_after_failures` polls in a row (or answered 410 Gone).
    Failing,
    /// A poll succeeded after a failing alert.
    Recovered,
    /// Its newest item is older than `stale_after`.
    Stale,
    /// It published a new item after a stale alert.
    Fresh,
}

/// A feed's health crossed a line worth telling people about. It is about
/// no (state, treaty): the fold ignores it and the notifier mails it.
/// Recorded in the same transaction as the feed state that caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// The feed's id in the config.
    pub feed: String,
    pub condition: HealthCondition,
    /// When the episode began: the first failure of the run (failing,
    /// recovered) or the newest item's date when the feed went quiet (stale,
    /// fresh). With feed and condition it identifies the alert, so one
    /// episode is reported once however often it is observed.
    pub since: DateTime<Utc>,
    /// Failures in a row: when the alert fired (failing) or before the poll
    /// that succeeded (recovered; 0 when the feed's url was changed).
    #[serde(default)]
    pub failures: u32,
    /// What went wrong, in treatywatch's own words ("HTTP 503", "timeout"):
    /// safe for a mail header, unlike `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The last error in full. It may quote the server: untrusted text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The server answered 410 Gone: the url is not polled again.
    #[serde(default)]
    pub gone: bool,
    /// The newest item's publication date when this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_item_at: Option<DateTime<Utc>>,
}

/// Everything the log can hold. Closed on purpose: every consumer matches
/// on it, and a new kind is a deliberate, reviewed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// A rule found evidence of a treaty action in a news item.
    Detection(Detection),
    /// An analyst set a status by hand (`treatywatch assert`).
    Asserted(Assertion),
    /// A wrong event was withdrawn (`treatywatch retract`, `reclassify`).
    Retracted(Retraction),
    /// A status moved; appended in the same transaction as its cause.
    StatusChanged(StatusChange),
    /// A digest was accepted for delivery to one recipient (see `notify`).
    DigestSent(DigestSent),
    /// A feed started failing, recovered, went stale or published again.
    SourceHealth(SourceHealth),
    /// A mail server refused a digest for good; it is not retried.
    DigestRefused(DigestRefused),
    /// A membership data file's entry (`treatywatch baseline`).
    Baseline(Box<Baseline>),
}

impl EventBody {
    /// Reads a payload as the log stores it; the same as
    /// `serde_json::from_str`, only faster. Serde reads an internally tagged
    /// enum by buffering the whole object into a tree of values to find the
    /// tag, copying every string on the way; serde_json writes the tag
    /// first, so it is read off the front here and the variant's struct is
    /// read straight from the text (the struct ignores the tag's field). A
    /// payload of any other shape takes serde's way.
    pub fn from_json(json: &str) -> serde_json::Result<EventBody> {
        let tag = json
            .strip_prefix(r#"{"kind":""#)
            .and_then(|rest| rest.split_once('"'))
            .map(|(kind, _)| kind);
        Ok(match tag {
            Some("detection") => EventBody::Detection(serde_json::from_str(json)?),
            Some("asserted") => EventBody::Asserted(serde_json::from_str(json)?),
            Some("retracted") => EventBody::Retracted(serde_json::from_str(json)?),
            Some("status_changed") => EventBody::StatusChanged(serde_json::from_str(json)?),
            Some("digest_sent") => EventBody::DigestSent(serde_json::from_str(json)?),
            Some("source_health") => EventBody::SourceHealth(serde_json::from_str(json)?),
            Some("digest_refused") => EventBody::DigestRefused(serde_json::from_str(json)?),
            Some("baseline") => EventBody::Baseline(serde_json::from_str(json)?),
            _ => serde_json::from_str(json)?,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Detection(_) => "detection",
            EventBody::Asserted(_) => "asserted",
            EventBody::Retracted(_) => "retracted",
            EventBody::StatusChanged(_) => "status_changed",
            EventBody::DigestSent(_) => "digest_sent",
            EventBody::SourceHealth(_) => "source_health",
            EventBody::DigestRefused(_) => "digest_refused",
            EventBody::Baseline(_) => "baseline",
        }
    }

    /// The (state, treaty) the event is about; `None` for events about no
    /// one key (a sent digest, a feed's health), which are stored with NULL
    /// state and treaty.
    pub fn key(&self) -> Option<(&str, &str)> {
        match self {
            EventBody::Detection(d) => Some((&d.state, &d.treaty)),
            EventBody::Asserted(a) => Some((&a.state, &a.treaty)),
            EventBody::Retracted(r) => Some((&r.state, &r.treaty)),
            EventBody::StatusChanged(c) => Some((&c.state, &c.treaty)),
            EventBody::Baseline(b) => Some((&b.state, &b.treaty)),
            EventBody::DigestSent(_) | EventBody::SourceHealth(_) | EventBody::DigestRefused(_) => {
                None
            }
        }
    }

    /// Whether the fold reads this event: status changes are its output,
    /// sent digests are about mail and source health about feeds, not about
    /// any status.
    pub fn is_observation(&self) -> bool {
        !matches!(
            self,
            EventBody::StatusChanged(_)
                | EventBody::DigestSent(_)
                | EventBody::SourceHealth(_)
                | EventBody::DigestRefused(_)
        )
    }

    pub fn is_baseline(&self) -> bool {
        matches!(self, EventBody::Baseline(_))
    }

    /// Identity of the observation: appending an event whose key is already
    /// in the log is a no-op, so re-polls and restarts never duplicate.
    pub fn dedupe_key(&self, occurred_at: DateTime<Utc>) -> String {
        match self {
            // Not the source: the same article carried by two feeds is one
            // observation, not two.
            EventBody::Detection(d) => {
                let key = format!(
                    "detection|{}|{}|{}|{}",
                    d.item_key, d.state, d.treaty, d.action
                );
                match d.revives {
                    Some(seq) => format!("{key}|revives:{seq}"),
                    None => key,
                }
            }
            EventBody::Asserted(a) => format!(
                "asserted|{}|{}|{}|{}|{}",
                a.state,
                a.treaty,
                a.status,
                occurred_at.to_rfc3339(),
                a.note
            ),
            EventBody::Retracted(r) => format!("retracted|{}", r.target_seq),
            // The facts and the list's date, not its wording or file: a
            // re-import of an unchanged entry is a no-op, a corrected date or
            // a newer list is a new observation.
            EventBody::Baseline(b) => format!(
                "baseline|{}|{}|{}|{}|{}|{}|{}|{}",
                b.state,
                b.treaty,
                b.status,
                b.source.as_of,
                opt(b.source.since),
                b.source.by.as_deref().unwrap_or(""),
                opt(b.withdrawal_notified),
                opt(b.withdrawal_effective),
            ),
            EventBody::StatusChanged(c) => {
                format!("status_changed|{}|{}|{}", c.cause_seq, c.state, c.treaty)
            }
            // One Message-ID is one digest: recording it twice is a no-op.
            EventBody::DigestSent(s) => format!("digest_sent|{}", s.message_id),
            EventBody::DigestRefused(r) if r.retried => {
                format!("digest_refused|retried|{}", r.message_id)
            }
            EventBody::DigestRefused(r) => format!("digest_refused|{}", r.message_id),
            // One alert per episode: observing it again (the next failure, a
            // restart, a re-poll) is a no-op. The time is the episode's
            // start, not this observation's.
            EventBody::SourceHealth(h) => format!(
                "source_health|{}|{}|{}",
                h.feed,
                h.condition,
                h.since.to_rfc3339()
            ),
        }
    }
}

fn opt(date: Option<NaiveDate>) -> String {
    date.map(|d| d.to_string()).unwrap_or_default()
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// When it happened in the world (item published, analyst's date).
    pub occurred_at: DateTime<Utc>,
    pub body: EventBody,
}

/// An event as stored, with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

/// The projected status of one (state, treaty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRow {
    pub status: Status,
    /// Earliest evidence date for the current status.
    pub since: DateTime<Utc>,
    /// The event whose arrival moved the status here.
    pub since_seq: i64,
    /// Distinct sources that carried the current status.
    pub sources: Vec<String>,
    pub evidence: Option<Evidence>,
    /// Set by an analyst's assertion rather than by news.
    pub manual: bool,
    /// Every supporting detection was backfill.
    pub backfill: bool,
    /// The status is the membership baseline's, not the news'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRef>,
}

pub type Key = (String, String);

/// The status table: (state, treaty) → row. Keys never observed are absent
/// and read as `unknown`.
pub type Projection = BTreeMap<Key, StatusRow>;

/// What the fold needs from configuration.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Per-treaty corroboration threshold; treaties not listed need one source.
    pub min_sources: HashMap<String, u32>,
}

impl Policy {
    fn min_sources(&self, treaty: &str) -> usize {
        self.min_sources.get(treaty).copied().unwrap_or(1).max(1) as usize
    }
}

/// A stage one or more sources reported that the treaty's `min_sources`
/// does not let move the status yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unconfirmed {
    /// Where the status would move.
    pub status: Status,
    /// The distinct sources that reported it so far.
    pub sources: Vec<String>,
    /// How many it takes.
    pub needed: usize,
    pub first_reported: DateTime<Utc>,
    /// The first report's event and evidence.
    pub seq: i64,
    pub evidence: Evidence,
}

/// One detection waiting for corroboration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Support {
    action: Action,
    target: Status,
    source: String,
    authoritative: bool,
    backfill: bool,
    occurred_at: DateTime<Utc>,
    seq: i64,
    evidence: Evidence,
}

/// A report of a later withdrawal stage also supports the earlier ones
/// (notified implies announced); otherwise only the same target counts.
fn supports(reported: Status, candidate: Status) -> bool {
    reported == candidate
        || (candidate.is_withdrawing() || candidate == Status::Withdrawn)
            && (reported.is_withdrawing() || reported == Status::Withdrawn)
            && reported >= candidate
}

/// The fold for one (state, treaty): its row plus detections still short of
/// corroboration. Serializable so the store can keep it and fold only new
/// events on each append.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFold {
    row: Option<StatusRow>,
    pending: Vec<Support>,
    /// The date of the newest baseline folded: news from before it is
    /// already in the list, except the stages a depositary's list does not
    /// show (an announced or approved withdrawal, a notice not yet listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline_as_of: Option<NaiveDate>,
}

impl KeyFold {
    pub fn status(&self) -> Status {
        self.row.as_ref().map_or(Status::Unknown, |r| r.status)
    }

    pub fn row(&self) -> Option<&StatusRow> {
        self.row.as_ref()
    }

    /// The stages reported for this key that still wait for another
    /// source, furthest first: "withdrawal announced, 1 of 2 sources".
    pub fn unconfirmed(&self, treaty: &str, policy: &Policy) -> Vec<Unconfirmed> {
        let needed = policy.min_sources(treaty);
        let mut targets: Vec<Status> = self.pending.iter().map(|s| s.target).collect();
        targets.sort_unstable_by(|a, b| b.cmp(a));
        targets.dedup();
        targets
            .into_iter()
            .filter_map(|target| {
                let backing: Vec<&Support> = self
                    .pending
                    .iter()
                    .filter(|s| supports(s.target, target))
                    .collect();
                let first = backing.iter().min_by_key(|s| (s.occurred_at, s.seq))?;
                let sources: BTreeSet<&str> = backing.iter().map(|s| s.source.as_str()).collect();
                Some(Unconfirmed {
                    status: target,
                    sources: sources.iter().map(|s| s.to_string()).collect(),
                    needed,
                    first_reported: first.occurred_at,
                    seq: first.seq,
                    evidence: first.evidence.clone(),
                })
            })
            .collect()
    }

    /// Applies one observation (retracted ones must be filtered out before).
    pub fn apply(&mut self, event: &StoredEvent, policy: &Policy) {
        match &event.body {
            EventBody::Detection(d) => self.detect(event, d, policy),
            EventBody::Asserted(a) => {
                self.pending.clear();
                self.row = Some(StatusRow {
                    status: a.status,
                    since: event.occurred_at,
                    since_seq: event.seq,
                    sources: vec![ANALYST_SOURCE.to_string()],
                    evidence: Some(Evidence {
                        sentence: a.note.clone(),
                        link: None,
                        title: None,
                    }),
                    manual: true,
                    backfill: false,
                    baseline: None,
                });
            }
            EventBody::Baseline(b) => self.baseline(event, b),
            EventBody::Retracted(_)
            | EventBody::StatusChanged(_)
            | EventBody::DigestSent(_)
            | EventBody::SourceHealth(_)
            | EventBody::DigestRefused(_) => {}
        }
    }

    /// Starts the key from a baseline. `fold_key` folds a key's baselines
    /// before its other events, so this only ever replaces nothing or an
    /// older baseline; an older list never replaces a newer one.
    fn baseline(&mut self, event: &StoredEvent, b: &Baseline) {
        if let Some(row) = &self.row {
            match &row.baseline {
                Some(kept) if kept.as_of > b.source.as_of => return,
                Some(_) => {}
                // News or an analyst got here first: `fold_key` was bypassed.
                None => return,
            }
        }
        self.pending.clear();
        self.baseline_as_of = Some(b.source.as_of);
        let since = b.source.since.unwrap_or(b.source.as_of);
        self.row = Some(StatusRow {
            status: b.status,
            since: since.and_time(NaiveTime::MIN).and_utc(),
            since_seq: event.seq,
            sources: vec![BASELINE_SOURCE.to_string()],
            evidence: Some(Evidence {
                sentence: format!("{}, as of {}", b.source.source, b.source.as_of),
                link: b.source.source_url.clone(),
                title: None,
            }),
            manual: false,
            backfill: true,
            baseline: Some(b.source.clone()),
        });
    }

    /// An authoritative source (a depositary's notice) reports the stage
    /// news already moved the status to: the row keeps its status and
    /// cause, but takes the authority's date (the day the action was
    /// effected, not the day the news wrote about it) and evidence, and
    /// lists it among the sources. An analyst's or a baseline's row is left
    /// as it is: they are corrected by `assert`, not by this.
    fn confirm(&mut self, event: &StoredEvent, d: &Detection) {
        let Some(row) = self.row.as_mut() else {
            return;
        };
        let stage = match d.action {
            Action::Signed => Status::Signatory,
            Action::Ratified => Status::Party,
            Action::WithdrawalNotified => Status::WithdrawalNotified,
            _ => return,
        };
        if row.manual || row.baseline.is_some() || row.status != stage {
            return;
        }
        row.since = event.occurred_at;
        row.evidence = Some(d.evidence.clone());
        if !row.sources.contains(&d.source) {
            row.sources.push(d.source.clone());
            row.sources.sort();
        }
        row.backfill &= d.backfill;
    }

    fn detect(&mut self, event: &StoredEvent, d: &Detection, policy: &Policy) {
        let current = self.status();
        let Some(target) = current.advanced_by(d.action) else {
            if d.authoritative {
                self.confirm(event, d);
            }
            return;
        };
        if self
            .baseline_as_of
            .is_some_and(|as_of| event.occurred_at.date_naive() <= as_of)
            && !target.is_withdrawing()
        {
            // The list already says whether this happened.
            return;
        }
        self.pending.push(Support {
            action: d.action,
            target,
            source: d.source.clone(),
            authoritative: d.authoritative,
            backfill: d.backfill,
            occurred_at: event.occurred_at,
            seq: event.seq,
            evidence: d.evidence.clone(),
        });
        let needed = policy.min_sources(&d.treaty);
        // The furthest candidate that enough sources (or one authority) carry.
        let mut candidates: Vec<Status> = self.pending.iter().map(|s| s.target).collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        for candidate in candidates {
            let backing: Vec<&Support> = self
                .pending
                .iter()
                .filter(|s| supports(s.target, candidate))
                .collect();
            let sources: BTreeSet<&str> = backing.iter().map(|s| s.source.as_str()).collect();
            if sources.len() < needed && !backing.iter().any(|s| s.authoritative) {
                continue;
            }
            let first = backing
                .iter()
                .min_by_key(|s| (s.occurred_at, s.seq))
                .expect("a candidate has at least one supporter");
            self.row = Some(StatusRow {
                status: candidate,
                since: first.occurred_at,
                since_seq: event.seq,
                sources: sources.iter().map(|s| s.to_string()).collect(),
                evidence: Some(first.evidence.clone()),
                manual: false,
                backfill: backing.iter().all(|s| s.backfill),
                baseline: None,
            });
            if d.action == Action::WithdrawalReversed {
                // Older withdrawal reports are superseded by the reversal.
                self.pending.clear();
            } else {
                // Keep reports of stages still ahead of the new status.
                self.pending
                    .retain(|s| candidate.advanced_by(s.action) == Some(s.target));
            }
            return;
        }
    }
}

/// The sequence numbers retracted anywhere in `events`.
pub fn retracted_seqs<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> HashSet<i64> {
    events
        .into_iter()
        .filter_map(|e| match &e.body {
            EventBody::Retracted(r) => Some(r.target_seq),
            _ => None,
        })
        .collect()
}

/// Folds one key's events, skipping retracted ones: its baselines first
/// (the starting point, whenever they were imported), then everything else
/// in log order.
pub fn fold_key<'a>(
    events: impl IntoIterator<Item = &'a StoredEvent>,
    retracted: &HashSet<i64>,
    policy: &Policy,
) -> KeyFold {
    let events: Vec<&StoredEvent> = events
        .into_iter()
        .filter(|e| e.body.is_observation() && !retracted.contains(&e.seq))
        .collect();
    let mut fold = KeyFold::default();
    for baselines_pass in [true, false] {
        for e in events
            .iter()
            .filter(|e| e.body.is_baseline() == baselines_pass)
        {
            fold.apply(e, policy);
        }
    }
    fold
}

/// The status table from the whole log. With `as_of`, only events that
/// occurred by then count; retractions count wherever they stand, because a
/// retraction corrects the record rather than reporting something new.
pub fn project(
    events: &[StoredEvent],
    policy: &Policy,
    as_of: Option<DateTime<Utc>>,
) -> Projection {
    let retracted = retracted_seqs(events);
    let mut by_key: BTreeMap<Key, Vec<&StoredEvent>> = BTreeMap::new();
    for e in events {
        if as_of.is_some_and(|t| e.occurred_at > t) {
            continue;
        }
        let Some((state, treaty)) = e.body.key() else {
            continue;
        };
        by_key
            .entry((state.to_string(), treaty.to_string()))
            .or_default()
            .push(e);
    }
    by_key
        .into_iter()
        .filter_map(|(key, evs)| {
            let mut evs = evs;
            evs.sort_by_key(|e| e.seq);
            fold_key(evs, &retracted, policy).row.map(|row| (key, row))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Action as A, Status as S, *};

    #[test]
    fn a_payload_reads_the_same_by_its_tag_as_through_serde() {
        // One payload of each kind as the log holds them, and the same
        // fields with the tag elsewhere (the generic path).
        let payloads = [
            r#"{"kind":"detection","state":"UKR","treaty":"ottawa","action":"withdrawal_announced","rule":"r","rules_version":"v","source":"wire","item_key":"k","evidence":{"sentence":"s","link":"https://x.example/1","title":"t"},"authoritative":true,"backfill":false,"revives":4,"takes_effect":"2026-01-02"}"#,
            r#"{"kind":"detection","state":"UKR","treaty":"ottawa","action":"ratified","rule":"r","source":"wire","item_key":"k","evidence":{"sentence":"s"}}"#,
            r#"{"kind":"asserted","state":"UKR","treaty":"ottawa","status":"party","note":"n","quiet":true}"#,
            r#"{"kind":"retracted","target_seq":3,"state":"UKR","treaty":"ottawa","note":"n","rules_version":"v"}"#,
            r#"{"kind":"status_changed","state":"UKR","treaty":"ottawa","from":"party","to":"withdrawal_announced","cause_seq":2,"sources":["a","b"],"evidence":{"sentence":"s"},"backfill":true,"rule":"r","authoritative":true,"correction":{"asserted":false,"note":"n","at":"2026-01-02T03:04:05Z","withdrew":{"sentence":"w"}}}"#,
            r#"{"kind":"digest_sent","recipient":"a@b.example","first_seq":1,"last_seq":9,"changes":[2,9],"message_id":"<m@x>"}"#,
            r#"{"kind":"source_health","feed":"f","condition":"failing","since":"2026-01-02T03:04:05.000006Z","failures":3,"summary":"s","error":"e","gone":true,"last_item_at":"2026-01-01T00:00:00Z"}"#,
            r#"{"kind":"digest_refused","recipient":"a@b.example","first_seq":1,"last_seq":9,"message_id":"<m@x>","code":550,"error":"no","changes":[2],"carry":true,"alert":false,"retried":true}"#,
            r#"{"kind":"baseline","state":"UKR","treaty":"ottawa","status":"party","as_of":"2025-01-01","since":"2005-12-27","by":"ratification","source":"UN","source_url":"https://un.example","file":"m.toml","withdrawal_notified":"2025-06-29"}"#,
            r#"{"state":"UKR","treaty":"ottawa","status":"party","note":"n","kind":"asserted"}"#,
        ];
        for json in payloads {
            let through_serde: EventBody = serde_json::from_str(json).expect(json);
            let by_tag = EventBody::from_json(json).expect(json);
            assert_eq!(by_tag, through_serde, "{json}");
            let written = serde_json::to_string(&by_tag).expect("serializes");
            assert_eq!(
                EventBody::from_json(&written).expect("reads"),
                by_tag,
                "{written}"
            );
        }
        for bad in [
            r#"{"kind":"detection","state":"UKR"}"#,
            r#"{"kind":"nothing"}"#,
            "[]",
        ] {
            assert!(EventBody::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn which_actions_move_which_statuses() {
        // (from, action, to or None for background)
        let cases = [
            (S::Unknown, A::Signed, Some(S::Signatory)),
            (S::Unknown, A::Ratified, Some(S::Party)),
            (
                S::Unknown,
                A::WithdrawalAnnounced,
                Some(S::WithdrawalAnnounced),
            ),
            (S::Unknown, A::WithdrawalReversed, None),
            (S::NonParty, A::Signed, Some(S::Signatory)),
            (S::NonParty, A::WithdrawalNotified, None),
            (S::Signatory, A::Signed, None),
            (S::Signatory, A::Ratified, Some(S::Party)),
            (S::Party, A::Ratified, None),
            (S::Party, A::Signed, None),
            (S::Party, A::WithdrawalApproved, Some(S::WithdrawalApproved)),
            (S::Party, A::WithdrawalReversed, None),
            (S::WithdrawalAnnounced, A::WithdrawalAnnounced, None),
            (
                S::WithdrawalAnnounced,
                A::WithdrawalNotified,
                Some(S::WithdrawalNotified),
            ),
            (
                S::WithdrawalAnnounced,
                A::WithdrawalReversed,
                Some(S::Party),
            ),
            (S::WithdrawalNotified, A::WithdrawalApproved, None),
            (
                S::WithdrawalNotified,
                A::WithdrawalEffective,
                Some(S::Withdrawn),
            ),
            (S::WithdrawalNotified, A::WithdrawalReversed, Some(S::Party)),
            (S::Withdrawn, A::WithdrawalReversed, None),
            (S::Withdrawn, A::WithdrawalEffective, None),
            (S::Withdrawn, A::Ratified, Some(S::Party)),
            (S::Withdrawn, A::Signed, None),
        ];
        for (from, action, to) in cases {
            assert_eq!(from.advanced_by(action), to, "{from} + {action}");
        }
    }

    #[test]
    fn an_authority_confirming_a_stage_gives_it_its_date_and_evidence() {
        let ev = |seq: i64, day: u32, source: &str, authoritative: bool| StoredEvent {
            seq,
            occurred_at: chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 6, day, 0, 0, 0).unwrap(),
            recorded_at: chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 7, 1, 0, 0, 0).unwrap(),
            body: EventBody::Detection(Detection {
                state: "EST".into(),
                treaty: "ottawa".into(),
                action: A::WithdrawalNotified,
                rule: "r".into(),
                rules_version: String::new(),
                source: source.into(),
                item_key: format!("i{seq}"),
                evidence: Evidence {
                    sentence: format!("from {source}"),
                    link: None,
                    title: None,
                },
                authoritative,
                backfill: false,
                revives: None,
                takes_effect: None,
            }),
        };
        let policy = Policy::default();
        let news_then_notice = [ev(1, 29, "wire", false), ev(2, 27, "un", true)];
        let fold = fold_key(&news_then_notice, &HashSet::new(), &policy);
        let row = fold.row().unwrap();
        assert_eq!(row.status, S::WithdrawalNotified);
        assert_eq!(row.since.date_naive().to_string(), "2025-06-27");
        assert_eq!(
            row.since_seq, 1,
            "the news moved it; the notice confirmed it"
        );
        assert_eq!(row.sources, ["un", "wire"]);
        assert_eq!(row.evidence.as_ref().unwrap().sentence, "from un");
        // More news after the notice changes nothing.
        let later = [ev(1, 27, "un", true), ev(2, 29, "wire", false)];
        let row = fold_key(&later, &HashSet::new(), &policy)
            .row()
            .cloned()
            .unwrap();
        assert_eq!(row.since.date_naive().to_string(), "2025-06-27");
        assert_eq!(row.evidence.unwrap().sentence, "from un");
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(*s));
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
        }
        assert!(
            "member"
                .parse::<Status>()
                .unwrap_err()
                .contains("withdrawal_notified")
        );
    }
}
