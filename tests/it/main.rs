//! Integration tests, one binary. Each module is one area of behaviour:
//!
//! - `baseline`: the membership baseline: imports are idempotent and never
//!   mailed, news moves a status on from it, it never overrides newer news
//!   or an analyst, an edited file imports only what changed, `check`
//!   points at bad data, and the shipped config leaves no tracked cell
//!   unknown.
//! - `config_check`: `treatywatch check` on good and broken configurations,
//!   and the rule tests it runs.
//! - `event_log`: the SQLite log: append-only, deduplicated, migrations.
//! - `projection`: corroboration, corrections and the incremental table.
//! - `fold_props`: property tests: the fold is deterministic and the
//!   incrementally kept table equals a rebuild from the log.
//! - `mailbox`: depositary notifications in a real Maildir through `poll`:
//!   one authoritative event per notice however often it is read (or
//!   delivered twice), the rest counted and logged, `status` confirmed by
//!   the notice with its dates, `status --unconfirmed` both ways,
//!   mutated notices never panicking, and the Council of Europe's
//!   notifications in a `depositary = "coe"` mailbox.
//! - `imap`: the same notifications in a real IMAP server's folder
//!   (Dovecot on loopback, `imap_server`): the same events once however
//!   often it is read, a lost cursor changing nothing, a wrong password,
//!   an unreachable or silent server as health errors saying what to fix,
//!   TLS with a private CA refused until `ca_file` trusts it, the daemon.
//! - `polling`: `poll` against a real loopback HTTP server (`feed_server`)
//!   serving fixture feeds well and badly.
//! - `daemon`: `run` under a fake systemd: READY, reload, stop.
//! - `metrics`: a running daemon's Prometheus endpoint: HELP and TYPE for
//!   every family, units and `_total` in names, build info, the poll
//!   duration histogram, per-feed gauges through a failure and a recovery,
//!   404/405, and the shipped alert rules naming only served metrics.
//! - `crash`: SIGKILL at random moments; nothing lost, nothing twice.
//! - `delivery`: the daemon against mail servers that never answer or
//!   refuse: ingest, the watchdog and a stop are never held up, and every
//!   digest arrives once the server behaves.
//! - `hostile`: random, mutated and monstrous documents through parse →
//!   classify: no panic, no hang.
//! - `cli`: the analyst's workflow through the binary (assert, retract,
//!   status --as-of, replay, events).
//! - `digest`: status changes reach the right people exactly once, through
//!   a real SMTP server on loopback (`smtp_server`) or as .eml files:
//!   debounce, urgency, retries, a crash mid-send, escaping, backfill,
//!   notice-period effects and `digest --preview`.
//! - `digest_trust`: corrections labelled with the analyst's note, reports
//!   waiting for a second source in `status` and digests, one thread per
//!   (state, treaty), a change the depositary's notice confirmed said so
//!   (and news it has not), an 8-bit text part `grep` reads, and the HTML part
//!   rendered in headless Chromium to a PNG with every section in the DOM.
//! - `health`: source-health alerts — a feed failing, recovering, going
//!   stale or publishing again is mailed once per episode, through `poll`
//!   against the loopback feed server and through the library with `now`
//!   passed in.
//! - `sendmail`: `transport = "sendmail"` through a fake sendmail script (a
//!   real process): the envelope as arguments, each digest once, exit 75
//!   retried with the same bytes, `check` finding a missing program.
//! - `reclassify`: `reclassify` after a rule edit: retractions, additions,
//!   undoing the edit, no mail, idempotence.
//! - `once`: one writer per database: two `poll` at once and `poll` beside
//!   `run` deliver every change once and the loser names the holder;
//!   reading commands need no lock and create nothing.
//! - `storage`: `doctor` finds a damaged database, `run` refuses it,
//!   `backup` and a restore give a database `replay` accepts, the daemon's
//!   rotating backups, the atomic claim on a digest, and first opens
//!   racing their migrations.
//! - `service`: as a system service: the config search order, systemd's
//!   configuration, state and credentials directories, root refused on the
//!   service user's database, a reload applying `[fetch]` limits, a busy
//!   metrics port named with its key.
//! - `web`: the web outputs through `serve` and `run` on loopback: the
//!   board, history pages, feeds, JSON API and calendar over HTTP, Atom
//!   parsed with feed-rs (ids, dates, links, 304, corrections), 404/405 and
//!   hostile queries, the token, what the depositary confirmed on the board
//!   and history pages, and the board in headless Chromium.
//! - `webhook`: `[[notify.webhook]]` against a real loopback receiver: one
//!   request per change and webhook in each format (json, slack, matrix,
//!   ntfy) with its idempotency key, a 500 retried with the same key, a 404
//!   refused for good, a 429's Retry-After honoured, feed text escaped in
//!   Slack and Matrix markup, SIGKILL mid-post resending at most once, a
//!   silent receiver holding up no mail, and `check` on bad entries.
//! - `terminal`: ESC sequences, NUL and bidi controls in feed text print as
//!   visible escapes from every command that shows feed text.

mod baseline;
mod cli;
mod config_check;
mod crash;
mod daemon;
mod delivery;
mod digest;
mod digest_trust;
mod event_log;
mod feed_server;
mod fold_props;
mod health;
mod hostile;
mod imap;
mod imap_server;
mod mailbox;
mod metrics;
mod once;
mod polling;
mod projection;
mod reclassify;
mod sendmail;
mod service;
mod smtp_server;
mod storage;
mod support;
mod terminal;
mod web;
mod webhook;
