//! `reclassify`: the current rules over every stored item, and the
//! differences appended to the log.
//!
//! Walks the items table a page of item keys at a time
//! (`Store::correct_items`, one transaction per page): every feed's copy of
//! an item is classified again and compared with the detections the log
//! holds for that item. A detection the rules now make and the log lacks is
//! appended; one the log holds and the rules no longer make is retracted by
//! an appended `Retracted` event that names the rules version. The status
//! table follows through the normal append path, and every status change
//! this causes is recorded as backfill: it corrects the record of news
//! already seen, so it is listed in the summary and never mailed.
//!
//! A retraction `reclassify` made is undone (a detection that `revives` it)
//! when the rules make that detection again; an analyst's retraction is
//! final.
//!
//! Running it again with the same rules and items appends nothing. `plan`
//! is pure (a page and the compiled rules in, events out); only `run`
//! touches the store.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::classify::{self, Classifier, Text};
use crate::config::Feed;
use crate::domain::{
    Action, Detection, EventBody, Evidence, NewEvent, Policy, Retraction, StoredEvent,
};
use crate::ingest::is_old;
use crate::store::{ItemPage, LoggedDetection, Store, StoreError, StoredItem};

/// Item keys per page: small enough that the write lock a page holds (its
/// classification included) is short for a daemon waiting on it.
pub const PAGE: usize = 256;

/// Everything a run needs besides the store.
pub struct Context<'a> {
    pub classifier: &'a Classifier,
    /// The version of the rules `classifier` was compiled from.
    pub rules_version: &'a str,
    /// The configured feeds, for whether a source is authoritative.
    pub feeds: &'a [Feed],
    pub backfill_age: Duration,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Stored items read again (an article carried by two feeds is two).
    pub items: usize,
    /// Detections appended: new, or made again after a reclassify had
    /// retracted them.
    pub added: Vec<Detection>,
    /// Detections retracted, each with its sequence number.
    pub retracted: Vec<(i64, Detection)>,
    /// The status changes this caused, as stored (all backfill).
    pub changes: Vec<StoredEvent>,
}

/// Re-reads every stored item with the current rules and appends the
/// differences, page by page.
pub fn run(store: &mut Store, ctx: &Context<'_>) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut after = String::new();
    loop {
        let mut events = Vec::new();
        let done = store.correct_items(&after, PAGE, ctx.policy, ctx.now, |page| {
            events = plan(page, ctx);
            events.clone()
        })?;
        let Some((page, outcome)) = done else {
            return Ok(report);
        };
        report.items += page.items.len();
        for event in events {
            match event.body {
                EventBody::Detection(d) => report.added.push(d),
                EventBody::Retracted(r) => {
                    let target = page.detections.iter().find_map(|l| match &l.event.body {
                        EventBody::Detection(d) if l.event.seq == r.target_seq => Some(d),
                        _ => None,
                    });
                    if let Some(d) = target {
                        report.retracted.push((r.target_seq, d.clone()));
                    }
                }
                _ => {}
            }
        }
        report.changes.extend(outcome.changes);
        match page.last_key() {
            Some(key) => after = key.to_string(),
            None => return Ok(report),
        }
    }
}

/// (state, treaty, action): what the log deduplicates a detection of one
/// item by.
type Triple = (String, String, Action);

/// The events that bring the log in line with the rules for one page.
pub fn plan(page: &ItemPage, ctx: &Context<'_>) -> Vec<NewEvent> {
    let mut logged: BTreeMap<&str, Vec<&LoggedDetection>> = BTreeMap::new();
    for l in &page.detections {
        if let EventBody::Detection(d) = &l.event.body {
            logged.entry(d.item_key.as_str()).or_default().push(l);
        }
    }
    let mut events = Vec::new();
    for copies in page.items.chunk_by(|a, b| a.key == b.key) {
        let in_log = logged
            .get(copies[0].key.as_str())
            .map_or(&[][..], Vec::as_slice);
        plan_item(copies, in_log, ctx, &mut events);
    }
    events
}

/// One item: `copies` are every feed's stored copy of it (in feed order),
/// `in_log` the detections the log holds for it.
fn plan_item(
    copies: &[StoredItem],
    in_log: &[&LoggedDetection],
    ctx: &Context<'_>,
    out: &mut Vec<NewEvent>,
) {
    // What the rules make of the item now. Feeds may carry different text
    // for one article; a detection any copy makes stands, with the first
    // such copy as its evidence.
    let mut made: BTreeMap<Triple, (&StoredItem, classify::Detection)> = BTreeMap::new();
    for copy in copies {
        for d in ctx.classifier.classify(&text_of(copy)) {
            made.entry((d.state.clone(), d.treaty.clone(), d.action))
                .or_insert((copy, d));
        }
    }
    let mut logged: BTreeMap<Triple, Vec<&LoggedDetection>> = BTreeMap::new();
    for l in in_log {
        if let EventBody::Detection(d) = &l.event.body {
            logged
                .entry((d.state.clone(), d.treaty.clone(), d.action))
                .or_default()
                .push(l);
        }
    }
    for (triple, group) in &logged {
        if let Some((copy, found)) = made.get(triple) {
            // Made again after a reclassify retracted it: the rule edit was
            // undone, so bring it back. An analyst's retraction is final.
            let live = group.iter().any(|l| l.retraction.is_none());
            let by_rules = group.iter().all(|l| {
                l.retraction
                    .as_ref()
                    .is_some_and(|(_, r)| r.rules_version.is_some())
            });
            if !live && by_rules {
                let last = group
                    .iter()
                    .filter_map(|l| l.retraction.as_ref().map(|(seq, _)| *seq))
                    .max();
                out.push(detection(copy, found, ctx, last));
            }
        } else {
            for l in group.iter().filter(|l| l.retraction.is_none()) {
                out.push(retraction(l, &copies[0].key, ctx));
            }
        }
    }
    for (triple, (copy, found)) in &made {
        if !logged.contains_key(triple) {
            out.push(detection(copy, found, ctx, None));
        }
    }
}

/// What the classifier reads of a stored item; the same as at ingest (an
/// undated item anchored to when it was first seen).
fn text_of(item: &StoredItem) -> Text {
    Text {
        title: item.title.clone(),
        body: item.text.clone(),
        date: Some(item.published.unwrap_or(item.first_seen).date_naive()),
    }
}

fn detection(
    copy: &StoredItem,
    found: &classify::Detection,
    ctx: &Context<'_>,
    revives: Option<i64>,
) -> NewEvent {
    NewEvent {
        // As ingest dated it: by publication, never after the text was seen.
        occurred_at: copy
            .published
            .map_or(copy.last_changed, |p| p.min(copy.last_changed)),
        body: EventBody::Detection(Detection {
            state: found.state.clone(),
            treaty: found.treaty.clone(),
            action: found.action,
            rule: found.rule.clone(),
            rules_version: ctx.rules_version.to_string(),
            source: copy.feed_id.clone(),
            item_key: copy.key.clone(),
            evidence: Evidence {
                sentence: found.evidence.clone(),
                link: copy.link.clone(),
                title: Some(copy.title.clone()).filter(|t| !t.is_empty()),
            },
            authoritative: ctx
                .feeds
                .iter()
                .any(|f| f.id == copy.feed_id && f.authoritative),
            // Old news by the rule ingest applies, judged when the text was
            // taken; undated items cannot be shown to be fresh. This marks
            // the detection itself (what its row and a later notice-period
            // effect inherit); the changes this run causes are quiet anyway.
            backfill: copy
                .published
                .is_none_or(|p| is_old(p, copy.last_changed, ctx.backfill_age)),
            revives,
            takes_effect: None,
        }),
    }
}

fn retraction(l: &LoggedDetection, item_key: &str, ctx: &Context<'_>) -> NewEvent {
    let (state, treaty) = l.event.body.key().unwrap_or_default();
    NewEvent {
        occurred_at: ctx.now,
        body: EventBody::Retracted(Retraction {
            target_seq: l.event.seq,
            state: state.to_string(),
            treaty: treaty.to_string(),
            note: format!(
                "reclassify: rules version {} no longer read this in item {item_key}",
                ctx.rules_version
            ),
            rules_version: Some(ctx.rules_version.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;
    use crate::config::{self, Config};

    fn shipped() -> Config {
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/feeds.toml"))
            .expect("shipped config")
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 7, d, 12, 0, 0).unwrap()
    }

    const NOTIFIED: &str = "Latvia deposits instrument of withdrawal from the Ottawa Convention";

    fn item(feed: &str, title: &str, published: u32) -> StoredItem {
        StoredItem {
            feed_id: feed.into(),
            key: "id:https://wire.example.org/lva".into(),
            title: title.into(),
            link: None,
            published: Some(day(published)),
            text: String::new(),
            first_seen: day(20),
            last_changed: day(20),
        }
    }

    /// A detection of LVA/ottawa `action` at `seq`, retracted by
    /// `retraction` (seq, by reclassify?) if given.
    fn logged(seq: i64, action: Action, retraction: Option<(i64, bool)>) -> LoggedDetection {
        LoggedDetection {
            event: StoredEvent {
                seq,
                occurred_at: day(19),
                recorded_at: day(20),
                body: EventBody::Detection(Detection {
                    state: "LVA".into(),
                    treaty: "ottawa".into(),
                    action,
                    rule: "old".into(),
                    rules_version: "0ld".into(),
                    source: "b".into(),
                    item_key: "id:https://wire.example.org/lva".into(),
                    evidence: Evidence {
                        sentence: NOTIFIED.into(),
                        link: None,
                        title: None,
                    },
                    authoritative: false,
                    backfill: false,
                    revives: None,
                    takes_effect: None,
                }),
            },
            retraction: retraction.map(|(retraction_seq, by_rules)| {
                (
                    retraction_seq,
                    Retraction {
                        target_seq: seq,
                        state: "LVA".into(),
                        treaty: "ottawa".into(),
                        note: "x".into(),
                        rules_version: by_rules.then(|| "0ld".to_string()),
                    },
                )
            }),
        }
    }

    /// The events planned for one item, summarised as "+ACTION (revives N,
    /// backfill B)" and "-SEQ".
    fn check(items: Vec<StoredItem>, detections: Vec<LoggedDetection>, expected: &[&str]) {
        let config = shipped();
        let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
        let policy = Policy::default();
        let ctx = Context {
            classifier: &classifier,
            rules_version: "n3w",
            feeds: &[],
            backfill_age: Duration::from_secs(14 * 24 * 3600),
            policy: &policy,
            now: day(21),
        };
        let page = ItemPage { items, detections };
        let got: Vec<String> = plan(&page, &ctx)
            .iter()
            .map(|e| match &e.body {
                EventBody::Detection(d) => format!(
                    "+{} {} from {} (revives {:?}, backfill {}, rules {})",
                    d.state, d.action, d.source, d.revives, d.backfill, d.rules_version
                ),
                EventBody::Retracted(r) => {
                    format!("-{} (rules {:?})", r.target_seq, r.rules_version)
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn what_the_log_has_and_the_rules_make_stays() {
        check(
            vec![item("a", "Weather", 19), item("b", NOTIFIED, 19)],
            vec![logged(7, Action::WithdrawalNotified, None)],
            &[],
        );
    }

    #[test]
    fn what_the_rules_no_longer_make_is_retracted_once() {
        check(
            vec![item("b", "Weather", 19)],
            vec![
                logged(7, Action::WithdrawalNotified, None),
                logged(8, Action::WithdrawalApproved, Some((9, true))),
            ],
            &["-7 (rules Some(\"n3w\"))"],
        );
    }

    #[test]
    fn what_the_rules_newly_make_is_added_as_old_or_fresh_news() {
        check(
            vec![item("b", NOTIFIED, 19)],
            vec![],
            &["+LVA withdrawal_notified from b (revives None, backfill false, rules n3w)"],
        );
        check(
            vec![item("b", NOTIFIED, 1)],
            vec![],
            &["+LVA withdrawal_notified from b (revives None, backfill true, rules n3w)"],
        );
    }

    #[test]
    fn a_reclassify_retraction_is_undone_and_an_analysts_is_not() {
        check(
            vec![item("b", NOTIFIED, 19)],
            vec![logged(7, Action::WithdrawalNotified, Some((9, true)))],
            &["+LVA withdrawal_notified from b (revives Some(9), backfill false, rules n3w)"],
        );
        check(
            vec![item("b", NOTIFIED, 19)],
            vec![logged(7, Action::WithdrawalNotified, Some((9, false)))],
            &[],
        );
    }
}
