//! Confirmation: which statuses a depositary's notice carries, which stages
//! news reported that no notice has confirmed in time, and which notices
//! no news reported. Pure: the log's detections, the projection, the
//! treaties a configured depositary covers and `now` in; plain lists out,
//! for `status` and `status --unconfirmed`. `standing` is the one wording
//! of a stage's confirmation ("confirmed by C.N.… on …", "news only, not
//! yet confirmed") that `status`, digests and the web board all show.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Action, EventBody, Key, Projection, Status, StoredEvent};

/// The notice behind a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// "C.N.412.2025.TREATIES-XXVI.5".
    pub reference: String,
    pub action: Action,
    /// The day the action was effected (the detection's date).
    pub effected: NaiveDate,
    /// A withdrawal's stated effect.
    pub takes_effect: Option<NaiveDate>,
    pub seq: i64,
}

/// A stage news reported that no notice has confirmed within the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewsOnly {
    pub key: Key,
    pub status: Status,
    pub since: DateTime<Utc>,
    pub sources: Vec<String>,
    pub seq: i64,
}

/// A notice that no news item reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeOnly {
    pub key: Key,
    pub confirmation: Confirmation,
    pub source: String,
}

/// The status a notice of `action` confirms.
fn confirms(action: Action) -> &'static [Status] {
    match action {
        Action::Signed => &[Status::Signatory],
        Action::Ratified => &[Status::Party],
        // The notice of withdrawal also stands behind its effect.
        Action::WithdrawalNotified => &[Status::WithdrawalNotified, Status::Withdrawn],
        _ => &[],
    }
}

/// Whether a detection is a depositary notice's (see `mailbox::ingest`).
fn is_notice(rule: &str, authoritative: bool) -> bool {
    authoritative && rule.starts_with(super::RULE_PREFIX)
}

/// Every live (unretracted) depositary notice in `events`, by key, in log order.
pub fn notices(events: &[StoredEvent]) -> BTreeMap<Key, Vec<(Confirmation, String)>> {
    let retracted = crate::domain::retracted_seqs(events);
    let mut out: BTreeMap<Key, Vec<(Confirmation, String)>> = BTreeMap::new();
    for e in events {
        let EventBody::Detection(d) = &e.body else {
            continue;
        };
        if !is_notice(&d.rule, d.authoritative) || retracted.contains(&e.seq) {
            continue;
        }
        let reference = d
            .item_key
            .strip_prefix(super::ITEM_PREFIX)
            .unwrap_or(&d.item_key)
            .to_string();
        out.entry((d.state.clone(), d.treaty.clone()))
            .or_default()
            .push((
                Confirmation {
                    reference,
                    action: d.action,
                    effected: e.occurred_at.date_naive(),
                    takes_effect: d.takes_effect,
                    seq: e.seq,
                },
                d.source.clone(),
            ));
    }
    out
}

/// The latest of a key's notices that carries `status`, if one does.
pub fn confirmation_of(
    notices: &[(Confirmation, String)],
    status: Status,
) -> Option<&Confirmation> {
    notices
        .iter()
        .rev()
        .find(|(c, _)| confirms(c.action).contains(&status))
        .map(|(c, _)| c)
}

/// The notice that carries each row's current status, if one does.
pub fn confirmations(
    projection: &Projection,
    notices: &BTreeMap<Key, Vec<(Confirmation, String)>>,
) -> BTreeMap<Key, Confirmation> {
    projection
        .iter()
        .filter_map(|(key, row)| {
            let found = confirmation_of(notices.get(key)?, row.status)?;
            Some((key.clone(), found.clone()))
        })
        .collect()
}

/// What the depositary says of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing<'a> {
    /// A notice carries it.
    Confirmed(&'a Confirmation),
    /// News moved it and no notice carries it (yet).
    NewsOnly,
}

impl std::fmt::Display for Standing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Standing::Confirmed(c) => write!(f, "confirmed by {} on {}", c.reference, c.effected),
            Standing::NewsOnly => f.write_str("news only, not yet confirmed"),
        }
    }
}

/// A stage's standing: confirmed when a notice carries it; news only when
/// a configured depositary covers the treaty (`covered`) and the stage came
/// from the news (`from_news`: not a baseline entry, not an analyst's);
/// otherwise nothing can be said.
pub fn standing(
    confirmation: Option<&Confirmation>,
    covered: bool,
    from_news: bool,
) -> Option<Standing<'_>> {
    match confirmation {
        Some(c) => Some(Standing::Confirmed(c)),
        None if covered && from_news => Some(Standing::NewsOnly),
        None => None,
    }
}

/// Stages news moved a status to, on a treaty a depositary covers, longer
/// than `within` ago, that no notice carries.
pub fn news_only(
    projection: &Projection,
    confirmed: &BTreeMap<Key, Confirmation>,
    covered: &dyn Fn(&str) -> bool,
    within: chrono::Duration,
    now: DateTime<Utc>,
) -> Vec<NewsOnly> {
    let confirmable = [Status::Signatory, Status::Party, Status::WithdrawalNotified];
    projection
        .iter()
        .filter(|(key, row)| {
            confirmable.contains(&row.status)
                && row.baseline.is_none()
                && !row.manual
                && covered(&key.1)
                && !confirmed.contains_key(*key)
                && now.signed_duration_since(row.since) > within
        })
        .map(|(key, row)| NewsOnly {
            key: key.clone(),
            status: row.status,
            since: row.since,
            sources: row.sources.clone(),
            seq: row.since_seq,
        })
        .collect()
}

/// Notices of an action no other source reported for the same key (old
/// notices read in a first sync, backfill, are left out: they are history,
/// not news the desk missed).
pub fn notices_only(events: &[StoredEvent]) -> Vec<NoticeOnly> {
    let retracted = crate::domain::retracted_seqs(events);
    let mut reported: HashSet<(&str, &str, Action)> = HashSet::new();
    for e in events {
        if let EventBody::Detection(d) = &e.body
            && !is_notice(&d.rule, d.authoritative)
            && !retracted.contains(&e.seq)
        {
            reported.insert((&d.state, &d.treaty, d.action));
        }
    }
    let mut out = Vec::new();
    for e in events {
        let EventBody::Detection(d) = &e.body else {
            continue;
        };
        if !is_notice(&d.rule, d.authoritative)
            || d.backfill
            || retracted.contains(&e.seq)
            || reported.contains(&(d.state.as_str(), d.treaty.as_str(), d.action))
        {
            continue;
        }
        out.push(NoticeOnly {
            key: (d.state.clone(), d.treaty.clone()),
            confirmation: Confirmation {
                reference: d
                    .item_key
                    .strip_prefix(super::ITEM_PREFIX)
                    .unwrap_or(&d.item_key)
                    .to_string(),
                action: d.action,
                effected: e.occurred_at.date_naive(),
                takes_effect: d.takes_effect,
                seq: e.seq,
            },
            source: d.source.clone(),
        });
    }
    out
}
