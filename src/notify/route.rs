//! Who hears about which status change: the default recipients (`[notify]
//! to`, tracked states × tracked treaties) and every `[[notify.subscription]]`
//! with its own states, treaties and urgent stages. Source-health alerts go
//! to the default recipients (unless `health_alerts = false`) and to the
//! subscriptions that ask for them (`health_alerts = true`); they are never
//! urgent, so a burst of them (the network went down) waits for the
//! debounce window and becomes one message.
//!
//! Each `[[notify.webhook]]` is a recipient too, keyed `webhook:ID`, with
//! its own states, treaties and urgent stages; it hears about status
//! changes only (no health or delivery alerts: those are for people).
//!
//! Pure: config in, routes out. A recipient is identified by the bare,
//! lower-cased address, so one person listed in two places gets one digest
//! (urgent if any of their entries says so). Backfilled changes are routed to
//! no one: they are history found on a first sync, not news.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::domain::{EventBody, Status, StatusChange, StoredEvent};
use crate::store::QueuedChange;

/// One recipient as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Bare address, lower-cased: the key in the outbox and the log.
    pub key: String,
    /// The address as first written in the config ("Desk <desk@example.org>"),
    /// used for the To header.
    pub mailbox: String,
    /// The bare address as written, used for the SMTP envelope (a
    /// webhook's URL, for logs).
    pub address: String,
    /// The webhook this recipient is, when it is one.
    pub webhook: Option<usize>,
}

/// The prefix of a webhook's recipient key: no mail address has a ':'
/// before its '@', so the two can never collide.
pub const WEBHOOK_KEY_PREFIX: &str = "webhook:";

/// The outbox and log identity of webhook `id`.
pub fn webhook_key(id: &str) -> String {
    format!("{WEBHOOK_KEY_PREFIX}{id}")
}

/// One rule: these recipients hear about these keys.
#[derive(Debug, Clone)]
struct Rule {
    recipients: Vec<String>,
    states: Vec<String>,
    treaties: Vec<String>,
    urgent: Vec<Status>,
    /// They hear about source-health alerts.
    health: bool,
    /// Their digests list reports still waiting for a second source.
    unconfirmed: bool,
    /// Where the config says so: "[notify] to", "[[notify.subscription]] #2".
    origin: String,
}

/// Every recipient and what they follow.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    recipients: BTreeMap<String, Recipient>,
    rules: Vec<Rule>,
}

impl Routes {
    pub fn from_config(config: &Config) -> Routes {
        let notify = &config.notify;
        let tracking = &config.tracking;
        let mut routes = Routes::default();
        let default = Rule {
            recipients: routes.add(&notify.to),
            states: tracking.states.clone(),
            treaties: tracking.treaties.clone(),
            urgent: notify.urgent.clone(),
            health: notify.health_alerts,
            unconfirmed: notify.unconfirmed,
            origin: "[notify] to".to_string(),
        };
        routes.rules.push(default);
        for (n, sub) in notify.subscriptions.iter().enumerate() {
            let rule = Rule {
                recipients: routes.add(&sub.to),
                states: sub
                    .states
                    .clone()
                    .unwrap_or_else(|| tracking.states.clone()),
                treaties: sub
                    .treaties
                    .clone()
                    .unwrap_or_else(|| tracking.treaties.clone()),
                urgent: sub.urgent.clone(),
                health: sub.health_alerts,
                unconfirmed: sub.unconfirmed,
                origin: format!("[[notify.subscription]] #{}", n + 1),
            };
            routes.rules.push(rule);
        }
        for (n, hook) in notify.webhooks.iter().enumerate() {
            let key = webhook_key(&hook.id);
            routes.recipients.insert(
                key.clone(),
                Recipient {
                    key: key.clone(),
                    mailbox: format!("webhook {}", hook.id),
                    address: hook.url.to_string(),
                    webhook: Some(n),
                },
            );
            routes.rules.push(Rule {
                recipients: vec![key],
                states: hook
                    .states
                    .clone()
                    .unwrap_or_else(|| tracking.states.clone()),
                treaties: hook
                    .treaties
                    .clone()
                    .unwrap_or_else(|| tracking.treaties.clone()),
                urgent: hook.urgent.clone(),
                health: false,
                unconfirmed: false,
                origin: format!("[[notify.webhook]] {}", hook.id),
            });
        }
        routes
    }

    fn add(&mut self, mailboxes: &[String]) -> Vec<String> {
        let mut keys = Vec::with_capacity(mailboxes.len());
        for m in mailboxes {
            let address = bare_address(m).to_string();
            let key = address.to_lowercase();
            self.recipients
                .entry(key.clone())
                .or_insert_with(|| Recipient {
                    key: key.clone(),
                    mailbox: m.trim().to_string(),
                    address,
                    webhook: None,
                });
            keys.push(key);
        }
        keys
    }

    /// The config entries that name `key`, with what each follows:
    /// "[notify] to (UKR, POL × ottawa)".
    pub fn describe(&self, key: &str) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.recipients.iter().any(|k| k == key))
            .map(|r| {
                format!(
                    "{} ({} × {})",
                    r.origin,
                    r.states.join(", "),
                    r.treaties.join(", ")
                )
            })
            .collect()
    }

    /// Whether `key` follows (state, treaty) through an entry that asks
    /// for reports still waiting for a second source.
    pub fn wants_unconfirmed(&self, key: &str, state: &str, treaty: &str) -> bool {
        self.rules.iter().any(|r| {
            r.unconfirmed
                && r.recipients.iter().any(|k| k == key)
                && r.states.iter().any(|s| s == state)
                && r.treaties.iter().any(|t| t == treaty)
        })
    }

    pub fn recipient(&self, key: &str) -> Option<&Recipient> {
        self.recipients.get(key)
    }

    /// Recipient keys that hear about `change`, each with whether it is
    /// urgent for them; empty for a backfilled change.
    pub fn for_change(&self, change: &StatusChange) -> BTreeMap<String, bool> {
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        if change.backfill {
            return out;
        }
        for rule in &self.rules {
            if !rule.states.contains(&change.state) || !rule.treaties.contains(&change.treaty) {
                continue;
            }
            let urgent = rule.urgent.contains(&change.to);
            for r in &rule.recipients {
                *out.entry(r.clone()).or_default() |= urgent;
            }
        }
        out
    }

    /// Recipient keys that hear about source-health alerts.
    pub fn for_health(&self) -> BTreeMap<String, bool> {
        self.rules
            .iter()
            .filter(|r| r.health)
            .flat_map(|r| r.recipients.iter().map(|k| (k.clone(), false)))
            .collect()
    }

    /// Outbox entries for a run of stored events (status changes,
    /// source-health alerts and refused digests; others are skipped); each
    /// is queued at the time its event was recorded. A refused digest goes
    /// to the health-alert recipients other than its own (as a delivery
    /// alert, unless it was itself only alerts) and, urgent, to its own
    /// recipient (its changes carried in brief, unless it was itself only a
    /// carry).
    pub fn queue(&self, events: &[StoredEvent]) -> Vec<QueuedChange> {
        let mut out = Vec::new();
        for e in events {
            let recipients = match &e.body {
                EventBody::StatusChanged(change) => self.for_change(change),
                EventBody::SourceHealth(_) => self.for_health(),
                EventBody::DigestRefused(r) => {
                    let mut to = BTreeMap::new();
                    if r.alert {
                        to = self.for_health();
                        to.remove(&r.recipient);
                    }
                    // What the refused digest reported follows at once.
                    if r.carry && !r.retried && self.recipient(&r.recipient).is_some() {
                        to.insert(r.recipient.clone(), true);
                    }
                    to
                }
                _ => continue,
            };
            for (recipient, urgent) in recipients {
                out.push(QueuedChange {
                    change_seq: e.seq,
                    recipient,
                    urgent,
                    queued_at: e.recorded_at,
                });
            }
        }
        out
    }
}

/// `user@host` out of `Name <user@host>` (or the trimmed input).
pub fn bare_address(mailbox: &str) -> &str {
    let s = mailbox.trim();
    match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(inner)) => inner[i + 1..].trim(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_addresses() {
        for (input, expected) in [
            ("desk@example.org", "desk@example.org"),
            ("  Desk <Desk@Example.org> ", "Desk@Example.org"),
            ("\"Arms, Control\" <ac@example.org>", "ac@example.org"),
        ] {
            assert_eq!(bare_address(input), expected, "{input}");
        }
    }
}
