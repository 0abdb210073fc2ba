//! The membership baseline: where every state stood with every treaty
//! before the news, from the cited membership data files, imported into the
//! log as `baseline` events.
//!
//! `events` turns the files into events (a file's `others` covers every
//! gazetteer state it does not list); `import` appends the new ones without
//! mailing anything (the log's dedupe key makes a second import a no-op and
//! an edited file import only the entries that changed); `plan` says what an
//! import would do, reading only. How a baseline folds (the starting point
//! of its key, never over newer news or an analyst) is `domain`'s.
//!
//! `poll` and `run` import at start, and `run` again on every reload
//! (SIGHUP), so an edited data file takes effect without a restart.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveTime, Utc};

use crate::config::{Config, MembershipFile};
use crate::domain::{
    Baseline, BaselineRef, EventBody, Key, KeyFold, NewEvent, Policy, Status, StoredEvent,
    fold_key, retracted_seqs,
};
use crate::store::{Result, Store};

/// Every baseline the data files give, in file order.
pub fn events(config: &Config) -> Vec<(usize, NewEvent)> {
    let folder = config.path.parent().unwrap_or(Path::new(""));
    let mut events = Vec::new();
    for (index, file) in config.membership.iter().enumerate() {
        let name = file
            .path
            .strip_prefix(folder)
            .unwrap_or(&file.path)
            .display()
            .to_string();
        let source = |since, by: Option<&String>| BaselineRef {
            as_of: file.as_of,
            since,
            by: by.cloned(),
            source: file.source.clone(),
            source_url: file.source_url.clone(),
            file: name.clone(),
        };
        let occurred_at = file.as_of.and_time(NaiveTime::MIN).and_utc();
        let mut event = |body: Baseline| {
            events.push((
                index,
                NewEvent {
                    occurred_at,
                    body: EventBody::Baseline(Box::new(body)),
                },
            ))
        };
        for e in &file.entries {
            event(Baseline {
                state: e.state.clone(),
                treaty: file.treaty.clone(),
                status: e.status,
                source: source(e.since(), e.by.as_ref()),
                withdrawal_notified: e.withdrawal_notified,
                withdrawal_effective: e.withdrawal_effective,
            });
        }
        if let Some(others) = file.others {
            for state in &config.gazetteer.states {
                if !file.entries.iter().any(|e| e.state == state.code) {
                    event(Baseline {
                        state: state.code.clone(),
                        treaty: file.treaty.clone(),
                        status: others,
                        source: source(None, None),
                        withdrawal_notified: None,
                        withdrawal_effective: None,
                    });
                }
            }
        }
    }
    events
}

/// What an import did, or (from `plan`) would do.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Per data file: the entries it gives and how many are new to the log.
    pub files: Vec<FileReport>,
    /// The statuses that moved (or would), in key order.
    pub changes: Vec<Change>,
}

#[derive(Debug)]
pub struct FileReport {
    pub file: String,
    pub treaty: String,
    pub as_of: chrono::NaiveDate,
    pub entries: usize,
    pub new: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub state: String,
    pub treaty: String,
    pub from: Status,
    pub to: Status,
}

impl ImportReport {
    pub fn new_events(&self) -> usize {
        self.files.iter().map(|f| f.new).sum()
    }

    fn counted(config: &Config, events: &[(usize, NewEvent)], new: &[bool]) -> ImportReport {
        let folder = config.path.parent().unwrap_or(Path::new(""));
        let files = config
            .membership
            .iter()
            .enumerate()
            .map(|(index, file): (usize, &MembershipFile)| {
                let mine = events.iter().zip(new).filter(|((i, _), _)| *i == index);
                let (entries, fresh) = mine.fold((0, 0), |(n, f), (_, is_new)| {
                    (n + 1, f + usize::from(*is_new))
                });
                FileReport {
                    file: file
                        .path
                        .strip_prefix(folder)
                        .unwrap_or(&file.path)
                        .display()
                        .to_string(),
                    treaty: file.treaty.clone(),
                    as_of: file.as_of,
                    entries,
                    new: fresh,
                }
            })
            .collect();
        ImportReport {
            files,
            changes: Vec::new(),
        }
    }
}

fn policy(config: &Config) -> Policy {
    Policy {
        min_sources: config.treaties.min_sources(),
    }
}

/// Appends the baselines not yet in the log, in one transaction; the status
/// changes they cause are recorded, never mailed.
pub fn import(store: &mut Store, config: &Config, now: DateTime<Utc>) -> Result<ImportReport> {
    let events = events(config);
    let keys: Vec<String> = events
        .iter()
        .map(|(_, e)| e.body.dedupe_key(e.occurred_at))
        .collect();
    let known = store.known_dedupe_keys(&keys)?;
    let new: Vec<bool> = keys.iter().map(|k| !known.contains(k)).collect();
    let mut report = ImportReport::counted(config, &events, &new);
    let fresh: Vec<NewEvent> = events
        .into_iter()
        .zip(&new)
        .filter(|(_, is_new)| **is_new)
        .map(|((_, e), _)| e)
        .collect();
    if fresh.is_empty() {
        return Ok(report);
    }
    let outcome = store.append_unmailed(&fresh, &policy(config), now)?;
    report.changes = outcome
        .changes
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::StatusChanged(c) => Some(Change {
                state: c.state.clone(),
                treaty: c.treaty.clone(),
                from: c.from,
                to: c.to,
            }),
            _ => None,
        })
        .collect();
    Ok(report)
}

/// What `import` would do, from a read-only store (`None`: there is no
/// database yet): the new entries per file, and each key's status folded
/// with them.
pub fn plan(store: Option<&Store>, config: &Config) -> Result<ImportReport> {
    let events = events(config);
    let keys: Vec<String> = events
        .iter()
        .map(|(_, e)| e.body.dedupe_key(e.occurred_at))
        .collect();
    let known = match store {
        Some(store) => store.known_dedupe_keys(&keys)?,
        None => Default::default(),
    };
    let new: Vec<bool> = keys.iter().map(|k| !known.contains(k)).collect();
    let mut report = ImportReport::counted(config, &events, &new);
    let mut by_key: BTreeMap<Key, Vec<&NewEvent>> = BTreeMap::new();
    for ((_, e), _) in events.iter().zip(&new).filter(|(_, n)| **n) {
        if let Some((state, treaty)) = e.body.key() {
            by_key
                .entry((state.to_string(), treaty.to_string()))
                .or_default()
                .push(e);
        }
    }
    let policy = policy(config);
    let mut next_seq = match store {
        Some(store) => store.last_seq()? + 1,
        None => 1,
    };
    for ((state, treaty), fresh) in by_key {
        let mut log = match store {
            Some(store) => store.key_observations(&state, &treaty)?,
            None => Vec::new(),
        };
        let before = fold_key(&log, &retracted_seqs(&log), &policy).status();
        for e in fresh {
            log.push(StoredEvent {
                seq: next_seq,
                occurred_at: e.occurred_at,
                recorded_at: e.occurred_at,
                body: e.body.clone(),
            });
            next_seq += 1;
        }
        let after: KeyFold = fold_key(&log, &retracted_seqs(&log), &policy);
        if after.status() != before {
            report.changes.push(Change {
                state,
                treaty,
                from: before,
                to: after.status(),
            });
        }
    }
    Ok(report)
}
