//! `treatywatch run`: the long-running service.
//!
//! Tasks on a tokio runtime — the scheduler (`scheduler.rs`) with its
//! fetches, a notifier tick, the signal handler, the watchdog and the
//! optional metrics endpoint — talk over bounded channels to one writer
//! thread (`writer.rs`) that owns the database and commits feeds parsed
//! and classified on blocking threads (`poll::Preparer`); the courier (`courier.rs`)
//! delivers the digests the writer plans and reports back, and the mailman
//! (`mailman.rs`) reads the IMAP mailboxes the writer finds due. SIGHUP reloads
//! the config (an invalid one is logged and ignored; feeds, rules, notify
//! settings, backups and every `[fetch]` limit apply from the next fetch;
//! `[daemon] metrics` and `[storage] path` need a restart, and a reload
//! that changes them says so), polls the feeds that
//! are due and retries undelivered digests; SIGUSR1 polls every feed now;
//! SIGTERM/SIGINT stop new work, abandon a delivery in flight, let
//! in-flight fetches finish briefly, drain the writer and return. The
//! optional backup task copies the database through a read-only connection
//! of its own, and so does the web server (`crate::web`, when `[web]
//! listen` is set). The daemon holds the database's writer lock for its
//! life.

mod courier;
mod mailman;
mod metrics;
mod scheduler;
mod status;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::classify::Classifier;
use crate::config::{self, Config, ConfigError};
use crate::fetch::{FetchError, Fetcher};
use crate::poll::Preparer;
use crate::store::{Check, LOCK_WAIT, Role, Store, StoreError};
pub use status::Metrics;
use status::Note;

/// How often the writer looks for digests to send and notice periods that ended.
pub const TICK: Duration = Duration::from_secs(30);
/// In-flight fetches get this long to finish after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Messages queued for the writer before fetches wait.
const WRITER_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up HTTP: {0}")]
    Http(#[from] FetchError),
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
    /// The metrics address could not be bound: usually another process
    /// (or another treatywatch) already listens there.
    #[error(
        "cannot serve metrics on {addr}: {source}; `[daemon] metrics = \"{addr}\"` in {config} names it: stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) or choose another port",
        port = .addr.port(),
        config = .config.display()
    )]
    MetricsAddress {
        addr: std::net::SocketAddr,
        config: PathBuf,
        source: std::io::Error,
    },
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config_path: &Path, db_override: Option<&Path>) -> Result<(), DaemonError> {
    status::limit_malloc_arenas();
    let config = Arc::new(config::load(config_path)?);
    let db_path: PathBuf = db_override.map_or_else(|| config.db_path.clone(), Path::to_path_buf);
    // The writer lock for the daemon's whole life: `poll` and the other
    // writing commands refuse to run beside it and say so.
    let store = Store::open_as(&db_path, Role::Daemon, LOCK_WAIT)?;
    let problems = store.integrity(Check::Quick)?;
    if !problems.is_empty() {
        return Err(StoreError::Damaged {
            path: db_path,
            problems,
        }
        .into());
    }
    let mut store = store;
    writer::import_baseline(&mut store, &config);
    let states = store
        .feed_states()?
        .into_iter()
        .map(|s| (s.feed_id.clone(), s))
        .collect();
    let fetcher = Fetcher::new(config.fetch.limits)?;
    let metrics = Arc::new(Metrics::with_systemd(status::systemd_notifier()));
    metrics.set_feeds(config.feeds.len());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (to_writer, inbox) = mpsc::channel(WRITER_QUEUE);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let (courier_tx, courier_rx) = mpsc::unbounded_channel();
    let (mailman_tx, mailman_rx) = mpsc::unbounded_channel();
    let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
    let preparer = Preparer::new(config.clone(), Arc::new(classifier), store.path());
    let writer = writer::Writer {
        store,
        config: config.clone(),
        metrics: metrics.clone(),
        done: done_tx,
        courier: courier_tx,
        in_flight: Default::default(),
        mailman: mailman_tx,
        reading: Default::default(),
    };
    let writer_thread = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || writer.run(inbox))?;

    let (reload_tx, reload_rx) = watch::channel(config.clone());
    let (rules_tx, rules_rx) = watch::channel(preparer);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (poll_now_tx, poll_now_rx) = mpsc::unbounded_channel();
    let result = runtime.block_on(async {
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut poll_signal = signal(SignalKind::user_defined1())?;
        if let Some(addr) = config.metrics {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::MetricsAddress {
                    addr,
                    config: config.path.clone(),
                    source,
                })?;
            info!(%addr, "serving metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone(), stop_rx.clone()));
        }
        if let Some(web) = &config.web {
            // Its own read-only connections, on blocking threads: the
            // writer thread stays the only one that writes.
            let server = crate::web::Server::bind(
                web.listen,
                web.token.as_ref(),
                db_path.clone(),
                reload_rx.clone(),
                Some(metrics.clone()),
            )
            .await?;
            info!(addr = %server.local_addr(), "serving the web outputs");
            tokio::spawn(server.run(stop_rx.clone()));
        }
        let scheduler = scheduler::Scheduler {
            config: config.clone(),
            fetcher,
            states,
            writer: to_writer.clone(),
            done: done_rx,
            rules: rules_rx,
            poll_now: poll_now_rx,
            shutdown: stop_rx.clone(),
            metrics: metrics.clone(),
            grace: STOP_GRACE,
        };
        let scheduler = tokio::spawn(scheduler.run());
        let ticker = tokio::spawn(tick(to_writer.clone(), stop_rx.clone()));
        let courier = tokio::spawn(courier::run(courier_rx, to_writer.clone(), stop_rx.clone()));
        let mailman = tokio::spawn(mailman::run(mailman_rx, to_writer.clone(), stop_rx.clone()));
        let backups = tokio::spawn(backups(db_path.clone(), reload_rx, stop_rx.clone()));
        let watchdog = tokio::spawn(watchdog(
            to_writer.clone(),
            stop_rx.clone(),
            metrics.clone(),
        ));

        metrics.note(Note::Ready);
        metrics.publish_status();
        info!(feeds = config.feeds.len(), db = %db_path.display(), "treatywatch running");

        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    metrics.note(Note::Reloading);
                    reload(config_path, &reload_tx, &rules_tx, &to_writer).await;
                    metrics.note(Note::Ready);
                    metrics.publish_status();
                }
                _ = poll_signal.recv() => {
                    info!("SIGUSR1: polling every feed now");
                    let _ = poll_now_tx.send(());
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        info!("stopping: no new fetches; finishing what is in flight");
        metrics.note(Note::Stopping);
        let _ = stop_tx.send(true);
        drop(to_writer);
        let _ = tokio::join!(scheduler, ticker, watchdog, courier, mailman, backups);
        Ok::<(), DaemonError>(())
    });
    // Every sender is gone now, so the writer drains its queue and returns.
    if writer_thread.join().is_err() {
        error!("the writer thread panicked");
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    info!("stopped");
    result
}

/// Loads the config again; a valid one replaces the running one, an invalid
/// one is logged and the daemon goes on with what it had.
async fn reload(
    path: &Path,
    reload: &watch::Sender<Arc<Config>>,
    rules: &watch::Sender<Preparer>,
    writer: &mpsc::Sender<writer::ToWriter>,
) {
    let path = path.to_path_buf();
    // The classifier is compiled here, on a blocking thread: that takes a
    // while, and nothing else should wait for it.
    let loaded = tokio::task::spawn_blocking(move || {
        config::load(&path).map(|config| {
            let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
            (config, classifier)
        })
    });
    match loaded.await {
        Ok(Ok((config, classifier))) => {
            let config = Arc::new(config);
            for change in needs_restart(&reload.borrow(), &config) {
                warn!("{change}");
            }
            // New rules apply to feeds fetched from now on.
            let preparer = rules
                .borrow()
                .with_rules(config.clone(), Arc::new(classifier));
            rules.send_replace(preparer);
            let _ = writer.send(writer::ToWriter::Reload(config.clone())).await;
            // The web server keeps the socket and token it started with;
            // names, tracking and base_url follow the reload.
            let (old, new) = (reload.borrow().web.clone(), config.web.clone());
            if old.as_ref().map(|w| (w.listen, &w.token))
                != new.as_ref().map(|w| (w.listen, &w.token))
            {
                warn!(
                    "[web] listen or token_file changed: restart the daemon to apply it; the web server goes on as it started"
                );
            }
            let _ = reload.send(config);
        }
        Ok(Err(e)) => {
            for line in e.to_string().lines() {
                error!("{line}");
            }
            warn!(
                "configuration NOT reloaded: fix the errors above and send SIGHUP again; still running on the previous configuration"
            );
        }
        Err(e) => error!("reload failed: {e}"),
    }
}

/// What a reload cannot apply, each as a sentence naming the key: the
/// metrics listener and the database are set up once, at start.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let show = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    let mut changes = Vec::new();
    if old.metrics != new.metrics {
        changes.push(format!(
            "[daemon] metrics changed ({} -> {}) but needs a restart to apply (systemctl restart treatywatch); still serving on {}",
            show(old.metrics),
            show(new.metrics),
            show(old.metrics),
        ));
    }
    if old.db_path != new.db_path {
        changes.push(format!(
            "[storage] path changed ({} -> {}) but needs a restart to apply (systemctl restart treatywatch); still writing {}",
            old.db_path.display(),
            new.db_path.display(),
            old.db_path.display(),
        ));
    }
    changes
}

/// Keeps rotating backups when `[storage] backup_every` is set: one is due
/// that long after the newest in the backup folder (so a restart does not
/// reset the clock) and after the last attempt (so a failing one is not
/// retried in a loop). Each is taken on a blocking thread through its own
/// read-only connection: the writer never waits for it.
async fn backups(
    db: PathBuf,
    mut config: watch::Receiver<Arc<Config>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_attempt: Option<chrono::DateTime<chrono::Utc>> = None;
    loop {
        let settings = config.borrow_and_update().backups.clone();
        let wait = settings.every.map(|every| {
            let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
            let newest = crate::store::backups(&db).last().map(|(_, at)| *at);
            let now = chrono::Utc::now();
            let due = [newest, last_attempt]
                .into_iter()
                .flatten()
                .map(|t| t.checked_add_signed(every).unwrap_or(t))
                .max()
                .unwrap_or(now);
            (due - now).to_std().unwrap_or(Duration::ZERO)
        });
        let sleep = async {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                last_attempt = Some(chrono::Utc::now());
                let (db, keep) = (db.clone(), settings.keep);
                match tokio::task::spawn_blocking(move || take_backup(&db, keep)).await {
                    Ok(Ok((report, removed))) => info!(
                        path = %report.path.display(),
                        bytes = report.bytes,
                        removed,
                        "backup written"
                    ),
                    Ok(Err(e)) => error!("backup failed: {e}"),
                    Err(e) => error!("backup task failed: {e}"),
                }
            }
            Ok(()) = config.changed() => {}
            _ = stop.changed() => return,
        }
    }
}

/// One rotating backup of `db`, then the oldest beyond `keep` removed.
fn take_backup(db: &Path, keep: usize) -> Result<(crate::store::BackupReport, usize), String> {
    let to = crate::store::backup_name(db, chrono::Utc::now());
    let report = crate::store::backup_to(db, &to).map_err(|e| e.to_string())?;
    let removed = crate::store::rotate_backups(db, keep).map_err(|e| {
        format!(
            "backup written to {}, but old ones not removed: {e}",
            to.display()
        )
    })?;
    Ok((report, removed.len()))
}

async fn tick(writer: mpsc::Sender<writer::ToWriter>, mut stop: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                if writer.send(writer::ToWriter::Tick).await.is_err() {
                    return;
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Pings systemd's watchdog, but only while the writer is alive: it
/// answers a ping (so it can reach the database), or it is busy with one
/// message (an ingest) begun less than a watchdog period ago. A writer
/// stuck longer than that is wedged and should be restarted, not kept
/// alive. Delivery never runs on the writer, so it cannot starve this.
async fn watchdog(
    writer: mpsc::Sender<writer::ToWriter>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    // systemd asks for a ping every half period at the latest; a quarter
    // leaves room for a busy moment of the writer.
    let mut interval = tokio::time::interval(period / 4);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let (reply, answer) = oneshot::channel();
                if writer.send(writer::ToWriter::Ping(reply)).await.is_err() {
                    return;
                }
                // An eighth: even a ping answered at the last moment leaves
                // the next one due well within the half period.
                match tokio::time::timeout(period / 8, answer).await {
                    Ok(Ok(true)) => {
                        metrics.note(Note::Watchdog);
                    }
                    Err(_) if metrics.writer_busy_for().is_some_and(|d| d < period) => {
                        // Busy, not wedged: the answer comes when it is done.
                        metrics.note(Note::Watchdog);
                    }
                    _ => warn!("the writer did not answer the watchdog ping"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}
