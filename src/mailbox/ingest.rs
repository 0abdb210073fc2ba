//! One mailbox through the pipeline: the messages read from its folder in,
//! each new one parsed by its depositary's reader, mapped to the catalogue
//! and turned into an authoritative detection, then its health, the
//! messages and their detections committed together.
//!
//! The counterpart of `crate::ingest` for feeds, with the same health and
//! backoff (`health`, `fetch::schedule`). A message is processed once: it is
//! recorded with what it was, whatever it was, so an unrecognised message
//! is counted and logged once, not at every read.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::{MailboxError, Message, Messages, oversized_hash};
use crate::config::{Config, Mailbox};
use crate::depositary::{self, ITEM_PREFIX, Notice, NoticeKind, RULE_PREFIX};
use crate::domain::{Detection, EventBody, Evidence, NewEvent, Policy, SourceHealth, StoredEvent};
use crate::fetch::schedule::{self, LastPoll};
use crate::health::{self, Poll, Thresholds};
use crate::ingest::is_old;
use crate::store::{FeedState, MessageOutcome, SeenMessage, Store, StoreError};

/// What reading one mailbox came to; `poll` prints a line of it.
#[derive(Debug, Clone)]
pub struct MailboxReport {
    pub mailbox_id: String,
    pub outcome: MailboxOutcome,
    pub alerts: Vec<SourceHealth>,
}

#[derive(Debug, Clone)]
pub enum MailboxOutcome {
    Read {
        /// Messages in the folder, and how many of them were new.
        messages: usize,
        new: usize,
        counts: Counts,
        detections: usize,
        changes: Vec<StoredEvent>,
    },
    Failed {
        error: String,
        failures: u32,
        next_poll: Option<DateTime<Utc>>,
    },
    Skipped(String),
}

impl MailboxOutcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, MailboxOutcome::Failed { .. })
    }
}

/// The new messages of one read, by what they were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: usize,
    pub no_status: usize,
    pub unmapped: usize,
    pub unrecognised: usize,
}

/// The state to start a read from: the stored one, unless the mailbox's
/// folder changed in the config (then afresh, keeping open alerts).
pub fn starting_state(stored: Option<FeedState>, mailbox: &Mailbox) -> FeedState {
    let locator = mailbox.source.locator();
    match stored {
        Some(s) if s.url == locator => s,
        stored => {
            let mut fresh = FeedState::new(&mailbox.id, &locator);
            if let Some(s) = stored {
                health::carry_alerts(&s, &mut fresh);
            }
            fresh
        }
    }
}

/// Everything a mailbox ingest needs besides the store and the messages.
pub struct MailboxContext<'a> {
    pub config: &'a Config,
    pub policy: &'a Policy,
    pub now: DateTime<Utc>,
    /// In [0, 1): spreads the next read (see `schedule`).
    pub jitter: f64,
}

/// Records one read of `mailbox`. Only a store failure is an error.
pub fn ingest(
    store: &mut Store,
    mailbox: &Mailbox,
    mut state: FeedState,
    result: Result<Messages, MailboxError>,
    ctx: &MailboxContext<'_>,
) -> Result<MailboxReport, StoreError> {
    let before = state.clone();
    state.last_attempt = Some(ctx.now);
    let thresholds = Thresholds {
        stale_after: mailbox.stale_after,
        ..ctx.config.notify.thresholds
    };
    let raw = match result {
        Ok(fetched) => {
            // Committed with the messages it covers, so it never runs ahead.
            if fetched.cursor.is_some() {
                state.etag = fetched.cursor;
            }
            fetched.messages
        }
        Err(e) => {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            state.last_status = None;
            state.last_error = Some(e.to_string());
            state.next_poll = Some(next_poll(mailbox, &state, ctx));
            let poll = Poll::Failed {
                summary: e.summary(),
            };
            let alerts = health::assess(&before, &mut state, poll, &thresholds, ctx.now);
            store.commit_mailbox(
                &state,
                &[],
                &alert_events(&alerts, ctx),
                ctx.policy,
                ctx.now,
            )?;
            return Ok(MailboxReport {
                mailbox_id: mailbox.id.clone(),
                outcome: MailboxOutcome::Failed {
                    error: e.to_string(),
                    failures: state.consecutive_failures,
                    next_poll: state.next_poll,
                },
                alerts,
            });
        }
    };
    let mut seen = Vec::new();
    let mut events = Vec::new();
    let mut counts = Counts::default();
    let mut this_read = HashSet::new();
    let mut newest: Option<DateTime<Utc>> = None;
    for r in &raw {
        let message = match &r.bytes {
            Some(bytes) => Message::parse(bytes),
            None => Message {
                key: format!("file:{}", r.name),
                content_hash: oversized_hash(&r.name, r.size),
                subject: String::new(),
                date: None,
                text: String::new(),
            },
        };
        if !this_read.insert((message.key.clone(), message.content_hash.clone()))
            || store.message_seen(&mailbox.id, &message.key, &message.content_hash)?
        {
            continue;
        }
        let date = message.date.map_or(ctx.now, |d| d.min(ctx.now));
        newest = Some(newest.map_or(date, |n| n.max(date)));
        let read = if r.bytes.is_none() {
            Err(depositary::Unrecognised(format!(
                "{} bytes, more than the {} read of a message",
                r.size,
                super::MAX_MESSAGE_BYTES
            )))
        } else {
            mailbox.depositary.parse(&message.subject, &message.text)
        };
        let record = |outcome, reference: Option<&str>, note: Option<String>| SeenMessage {
            key: message.key.clone(),
            content_hash: message.content_hash.clone(),
            outcome,
            reference: reference.map(str::to_string),
            subject: Some(message.subject.chars().take(300).collect()),
            note,
        };
        let notice = match read {
            Ok(n) => n,
            Err(why) => {
                tracing::warn!(mailbox = %mailbox.id, notice = %message.key, file = %r.name, "not a depositary notification treatywatch reads: {why}");
                counts.unrecognised += 1;
                seen.push(record(MessageOutcome::Unrecognised, None, Some(why.0)));
                continue;
            }
        };
        let NoticeKind::Status(action) = notice.kind else {
            tracing::info!(mailbox = %mailbox.id, reference = %notice.reference, action = %notice.action_line, "depositary notice changes no status");
            counts.no_status += 1;
            seen.push(record(
                MessageOutcome::NoStatus,
                Some(&notice.reference),
                None,
            ));
            continue;
        };
        let resolved = match depositary::resolve(
            mailbox.depositary,
            &notice,
            &ctx.config.gazetteer,
            &ctx.config.treaties,
        ) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(mailbox = %mailbox.id, reference = %notice.reference, "depositary notice not mapped: {why}");
                counts.unmapped += 1;
                seen.push(record(
                    MessageOutcome::Unmapped,
                    Some(&notice.reference),
                    Some(why.0),
                ));
                continue;
            }
        };
        counts.notifications += 1;
        seen.push(record(
            MessageOutcome::Notification,
            Some(&notice.reference),
            None,
        ));
        events.push(detection_event(mailbox, &notice, action, resolved, ctx));
    }
    // Oldest action first, so the log reads as the depositary acted.
    events.sort_by_key(|e| e.occurred_at);
    state.last_success = Some(ctx.now);
    state.last_error = None;
    state.consecutive_failures = 0;
    state.next_poll = Some(next_poll(mailbox, &state, ctx));
    if let Some(newest) = newest {
        state.last_item_at = Some(state.last_item_at.map_or(newest, |t| t.max(newest)));
    }
    let detections = events.len();
    let alerts = health::assess(&before, &mut state, Poll::Succeeded, &thresholds, ctx.now);
    events.extend(alert_events(&alerts, ctx));
    let outcome = store.commit_mailbox(&state, &seen, &events, ctx.policy, ctx.now)?;
    Ok(MailboxReport {
        mailbox_id: mailbox.id.clone(),
        outcome: MailboxOutcome::Read {
            messages: raw.len(),
            new: seen.len(),
            counts,
            detections,
            changes: outcome.changes,
        },
        alerts,
    })
}

/// Not read at all: disabled in the config.
pub fn skipped(mailbox: &Mailbox) -> Option<MailboxReport> {
    (!mailbox.enabled).then(|| MailboxReport {
        mailbox_id: mailbox.id.clone(),
        outcome: MailboxOutcome::Skipped("disabled in the config (enabled = false)".into()),
        alerts: Vec::new(),
    })
}

fn detection_event(
    mailbox: &Mailbox,
    notice: &Notice,
    action: crate::domain::Action,
    resolved: depositary::Resolved,
    ctx: &MailboxContext<'_>,
) -> NewEvent {
    let effected = notice.effected_on.unwrap_or_else(|| ctx.now.date_naive());
    let occurred_at = midnight(effected).min(ctx.now);
    let mut sentence = format!(
        "{}: {}. The above action was effected on {effected}.",
        notice.reference, notice.action_line
    );
    if let Some(t) = notice.takes_effect {
        sentence.push_str(&format!(" It shall take effect on {t}."));
    }
    NewEvent {
        occurred_at,
        body: EventBody::Detection(Detection {
            state: resolved.state,
            treaty: resolved.treaty,
            action,
            rule: format!("{RULE_PREFIX}{}", notice.treaty_ref),
            // A notice is read by its format, not by the cue rules.
            rules_version: String::new(),
            source: mailbox.id.clone(),
            item_key: format!("{ITEM_PREFIX}{}", notice.reference),
            evidence: Evidence {
                sentence,
                link: mailbox.depositary.link(notice),
                title: Some(notice.title.chars().take(300).collect::<String>())
                    .filter(|t| !t.is_empty()),
            },
            authoritative: true,
            backfill: is_old(occurred_at, ctx.now, ctx.config.fetch.backfill_age),
            revives: None,
            takes_effect: notice.takes_effect,
        }),
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

fn next_poll(mailbox: &Mailbox, state: &FeedState, ctx: &MailboxContext<'_>) -> DateTime<Utc> {
    let last = LastPoll {
        hints: Default::default(),
        ttl: None,
        failures: state.consecutive_failures,
    };
    schedule::next_poll(
        ctx.now,
        mailbox.interval,
        &last,
        ctx.config.fetch.backoff_cap.max(Duration::from_secs(60)),
        ctx.jitter,
    )
}

fn alert_events(alerts: &[SourceHealth], ctx: &MailboxContext<'_>) -> Vec<NewEvent> {
    alerts
        .iter()
        .map(|a| NewEvent {
            occurred_at: ctx.now,
            body: EventBody::SourceHealth(a.clone()),
        })
        .collect()
}

/// How a mailbox that is not a local folder gets read: `Some` with the
/// read's outcome (`poll` waits for it), or `None` when it was handed on
/// (the daemon's writer gives it to a task, whose result comes back later).
pub type Remote<'a> =
    dyn FnMut(&Mailbox, &FeedState) -> Option<Result<Messages, MailboxError>> + 'a;

/// The mailbox's stored state, and whether it is to be read now.
pub fn due(
    store: &Store,
    mailbox: &Mailbox,
    now: DateTime<Utc>,
    due_only: bool,
) -> Result<Option<FeedState>, StoreError> {
    let state = starting_state(store.feed_state(&mailbox.id)?, mailbox);
    Ok((!due_only || state.next_poll.is_none_or(|t| t <= now)).then_some(state))
}

/// The context a mailbox of `config` is ingested in at `now`.
pub fn context<'a>(
    config: &'a Config,
    policy: &'a Policy,
    now: DateTime<Utc>,
    id: &str,
) -> MailboxContext<'a> {
    use std::hash::BuildHasher as _;
    let random = std::collections::hash_map::RandomState::new();
    MailboxContext {
        config,
        policy,
        now,
        jitter: (random.hash_one(id) % 10_000) as f64 / 10_000.0,
    }
}

/// Reads and ingests every mailbox of `config` (with `due_only`, only
/// those whose next read has come), one after another: Maildir folders
/// here (they are local, so reading them is quick), the others through
/// `remote`. The daemon's writer calls this from its tick, `poll` once for
/// all.
pub fn poll_mailboxes(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    due_only: bool,
    remote: &mut Remote<'_>,
) -> Result<Vec<MailboxReport>, StoreError> {
    let policy = Policy {
        min_sources: config.treaties.min_sources(),
    };
    let mut reports = Vec::new();
    for mailbox in &config.mailboxes {
        if let Some(report) = skipped(mailbox) {
            if !due_only {
                reports.push(report);
            }
            continue;
        }
        let Some(state) = due(store, mailbox, now, due_only)? else {
            continue;
        };
        let result = match &mailbox.source {
            crate::config::MailboxSource::Maildir(path) => {
                super::read(path).map(|messages| Messages {
                    messages,
                    cursor: None,
                })
            }
            crate::config::MailboxSource::Imap(_) => match remote(mailbox, &state) {
                Some(result) => result,
                None => continue,
            },
        };
        let ctx = context(config, &policy, now, &mailbox.id);
        reports.push(ingest(store, mailbox, state, result, &ctx)?);
    }
    Ok(reports)
}

/// Reads an IMAP mailbox to the end on `runtime`, after the cursor its
/// state keeps; for `poll`, which waits for every source.
pub fn read_remote_blocking(
    runtime: &tokio::runtime::Handle,
    mailbox: &Mailbox,
    state: &FeedState,
) -> Option<Result<Messages, MailboxError>> {
    let crate::config::MailboxSource::Imap(imap) = &mailbox.source else {
        return None;
    };
    let cursor = state.etag.as_deref().and_then(super::imap::Cursor::parse);
    Some(runtime.block_on(super::imap::fetch(imap, cursor)))
}
