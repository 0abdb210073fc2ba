//! Time-driven changes: a notified withdrawal takes effect when the treaty's
//! notice period has run, with no news needed, so the daemon records the
//! effect itself.
//!
//! `due_effects` is pure (projection, treaty data, the dates depositary
//! notices state and `now` in, decisions out); a withdrawal a depositary's
//! notice says "shall take effect on" a date takes effect on that date,
//! which wins over the arithmetic (a treaty may count its period to "the
//! first day of the month following", as the Istanbul Convention's Art. 80
//! does); `record_due_effects` appends the decisions to the log and is what
//! the daemon's timer and `poll` call. The effect is an ordinary detection
//! (source `notice-period`, rule `notice_period:<treaty>`, authoritative), so
//! it folds, replays and is notified like any other observation.
//!
//! Treaties with an armed-conflict clause are held, not recorded. Under
//! Ottawa Art. 20(3) (also CCM Art. 20(3), TPNW Art. 17(3), CCW Art. 9(2)),
//! a state that is in an armed conflict when the notice period ends stays
//! bound until the conflict ends; Ukraine's 2025 Ottawa notice is the case
//! in point. treatywatch has no data on who is at war, and a false
//! "withdrawn" would be mailed to every subscriber as news, while a late one
//! costs only a day: news reports the effect, or an analyst confirms it with
//! `treatywatch assert STATE TREATY withdrawn`. So for those treaties the
//! elapsed notice is reported (here, in `status` and in digests), never
//! turned into a status by arithmetic alone.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use crate::config::{Config, Treaties, Treaty};
use crate::domain::{
    Action, Detection, EventBody, Evidence, Key, NewEvent, Projection, Status, StatusRow,
};
use crate::store::{AppendOutcome, Store, StoreError};

/// Source name of derived effects, as recorded in the log.
pub const NOTICE_SOURCE: &str = "notice-period";

/// What to do about one notified withdrawal whose notice period has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Record this observation: the withdrawal took effect.
    Record(NewEvent),
    /// The notice period ran, but the treaty's armed-conflict clause may
    /// delay the effect: report it, record nothing.
    Held(HeldEffect),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEffect {
    pub state: String,
    pub treaty: String,
    pub notified: NaiveDate,
    /// When the notice period ran out.
    pub effective: NaiveDate,
}

/// When a notified withdrawal is expected to take effect, per the treaty's
/// notice period counted from the notification's date; `None` unless the
/// row is `withdrawal_notified` under a treaty with a withdrawal clause.
pub fn expected_effective(treaty: Option<&Treaty>, row: &StatusRow) -> Option<NaiveDate> {
    if row.status != Status::WithdrawalNotified {
        return None;
    }
    treaty?
        .withdrawal_notice
        .effective_date(row.since.date_naive())
}

/// The date a depositary's notice states a withdrawal takes effect, with
/// the notice's reference, for a key whose status is that notified
/// withdrawal.
pub type Stated = BTreeMap<Key, (NaiveDate, String)>;

/// When a notified withdrawal takes effect, as every output shows it: the
/// date the depositary's notice states (`stated`), else the treaty's notice
/// period counted from the notification (`expected_effective`).
pub fn effective_on(
    treaty: Option<&Treaty>,
    row: &StatusRow,
    stated: Option<NaiveDate>,
) -> Option<NaiveDate> {
    if row.status != Status::WithdrawalNotified {
        return None;
    }
    stated.or_else(|| expected_effective(treaty, row))
}

/// The date the notices of one key state for its notified withdrawal
/// (`confirm::notices`' list for the key), for `effective_on`.
pub fn stated_in(
    notices: Option<&Vec<(crate::depositary::confirm::Confirmation, String)>>,
) -> Option<NaiveDate> {
    crate::depositary::confirm::confirmation_of(notices?, Status::WithdrawalNotified)?.takes_effect
}

/// The withdrawals whose notice period has run by `now`, in key order.
pub fn due_effects(
    projection: &Projection,
    treaties: &Treaties,
    stated: &Stated,
    now: DateTime<Utc>,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (key, row) in projection {
        let (state, treaty_id) = key;
        let Some(treaty) = treaties.get(treaty_id) else {
            continue;
        };
        let by_notice = stated
            .get(key)
            .filter(|_| row.status == Status::WithdrawalNotified);
        let Some(effective) = by_notice
            .map(|(d, _)| *d)
            .or_else(|| expected_effective(Some(treaty), row))
        else {
            continue;
        };
        let takes_effect = effective.and_time(NaiveTime::MIN).and_utc();
        if takes_effect > now {
            continue;
        }
        let notified = row.since.date_naive();
        if treaty.armed_conflict_clause {
            effects.push(Effect::Held(HeldEffect {
                state: state.clone(),
                treaty: treaty_id.clone(),
                notified,
                effective,
            }));
            continue;
        }
        let article = if treaty.withdrawal_article.is_empty() {
            "the treaty".to_string()
        } else {
            treaty.withdrawal_article.clone()
        };
        effects.push(Effect::Record(NewEvent {
            occurred_at: takes_effect,
            body: EventBody::Detection(Detection {
                state: state.clone(),
                treaty: treaty_id.clone(),
                action: Action::WithdrawalEffective,
                rule: format!("notice_period:{treaty_id}"),
                // Arithmetic on the treaty's notice period, not a cue rule.
                rules_version: String::new(),
                source: NOTICE_SOURCE.to_string(),
                // One notification, one effect: a later re-notification
                // after a reversal has another date, so another key.
                item_key: format!("{state}|{treaty_id}|notified:{notified}"),
                evidence: Evidence {
                    sentence: match by_notice {
                        Some((_, reference)) => format!(
                            "Withdrawal notified on {notified}; the depositary's notice {reference} says it takes effect on {effective}, so it took effect then (derived by treatywatch from the notice, not reported by a source)."
                        ),
                        None => format!(
                            "Withdrawal notified on {notified}; {article} sets a notice period of {}, which ran out on {effective}, so the withdrawal took effect then (derived by treatywatch from the notice period, not reported by a source).",
                            treaty.withdrawal_notice
                        ),
                    },
                    link: None,
                    title: Some(format!("{} notice period elapsed", treaty.short_name)),
                },
                authoritative: true,
                // Derived from backfilled news, it is history too.
                backfill: row.backfill,
                revives: None,
                takes_effect: None,
            }),
        }));
    }
    effects
}

/// The effective dates the depositary notices in the store state for the
/// notified withdrawals of `projection` (nothing without a `[[mailbox]]`).
pub fn stated_effects(
    store: &Store,
    config: &Config,
    projection: &Projection,
) -> Result<Stated, StoreError> {
    if config.mailboxes.is_empty() {
        return Ok(Stated::new());
    }
    let notices = crate::depositary::confirm::notices(&store.depositary_notices()?);
    Ok(
        crate::depositary::confirm::confirmations(projection, &notices)
            .into_iter()
            .filter_map(|(key, c)| {
                let date = c
                    .takes_effect
                    .filter(|_| c.action == Action::WithdrawalNotified)?;
                Some((key, (date, c.reference)))
            })
            .collect(),
    )
}

/// What `record_due_effects` did.
#[derive(Debug, Default)]
pub struct EffectsReport {
    /// The append of the derived effects (new events and status changes).
    pub appended: AppendOutcome,
    /// Notice periods that ran under an armed-conflict clause.
    pub held: Vec<HeldEffect>,
}

/// Appends the effects due by `now` to the log (already-recorded ones are
/// deduplicated by the log) and returns those held back.
pub fn record_due_effects(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<EffectsReport, StoreError> {
    let mut report = EffectsReport::default();
    let mut events = Vec::new();
    let projection = store.projection()?;
    let stated = stated_effects(store, config, &projection)?;
    for effect in due_effects(&projection, &config.treaties, &stated, now) {
        match effect {
            Effect::Record(e) => events.push(e),
            Effect::Held(h) => report.held.push(h),
        }
    }
    if !events.is_empty() {
        let policy = crate::domain::Policy {
            min_sources: config.treaties.min_sources(),
        };
        report.appended = store.append(&events, &policy, now)?;
    }
    Ok(report)
}
