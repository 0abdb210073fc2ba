//! What the daemon tells systemd and Prometheus: READY/STATUS/WATCHDOG
//! notifications, and counters. Shared by the scheduler and the writer.
//!
//! Notifications go through one thread of their own: a notify socket whose
//! reader has stalled blocks the sender, and that must never be the writer.
//!
//! Also here: keeping glibc from sitting on a cycle's peak memory (two
//! malloc arenas, `malloc_trim` after each cycle, called by the writer once
//! it has let go of SQLite's page cache), so an idle daemon's footprint is
//! its idle need, not its last burst.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;

use crate::store::FeedState;

/// A message for systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Ready,
    Reloading,
    Stopping,
    Watchdog,
    Status(String),
}

/// Starts the thread that sends notifications (a no-op without
/// NOTIFY_SOCKET, as sd_notify itself is).
pub fn systemd_notifier() -> SyncSender<Note> {
    let (tx, rx) = sync_channel::<Note>(32);
    let _ = std::thread::Builder::new()
        .name("sd-notify".into())
        .spawn(move || {
            for note in rx {
                let sent = match &note {
                    Note::Ready => sd_notify::notify(&[NotifyState::Ready]),
                    Note::Reloading => match NotifyState::monotonic_usec_now() {
                        Ok(now) => sd_notify::notify(&[NotifyState::Reloading, now]),
                        Err(_) => sd_notify::notify(&[NotifyState::Reloading]),
                    },
                    Note::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
                    Note::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
                    Note::Status(line) => sd_notify::notify(&[NotifyState::Status(line)]),
                };
                if let Err(e) = sent {
                    tracing::debug!("sd_notify failed: {e}");
                }
            }
        });
    tx
}

/// Counters and gauges, read by the metrics endpoint.
#[derive(Default)]
pub struct Metrics {
    /// Where notifications go; `None` in tests of the counters alone.
    pub systemd: Option<SyncSender<Note>>,
    /// The STATUS= line last sent, so an unchanged one is not repeated.
    last_status: Mutex<String>,
    pub polls: AtomicU64,
    pub items: AtomicU64,
    pub detections: AtomicU64,
    pub status_changes: AtomicU64,
    pub digests_sent: AtomicU64,
    pub digests_pending: AtomicU64,
    /// Milliseconds the last completed cycle took (the STATUS= line).
    pub cycle_ms: AtomicU64,
    /// Per feed, by id: what its gauges and failure counter show.
    failures: Mutex<BTreeMap<String, FeedGauges>>,
    /// How long fetches took, feed by feed.
    poll_durations: Mutex<Histogram>,
    /// When the writer began the message it is handling (milliseconds on
    /// `clock()`), 0 while it waits for one: the watchdog's view of a
    /// writer too busy to answer a ping.
    writer_busy_since: AtomicU64,
    /// Failed delivery attempts by `DeliveryError::reason`.
    delivery_failures: Mutex<BTreeMap<&'static str, u64>>,
    feeds: AtomicU64,
}

impl Metrics {
    pub fn with_systemd(systemd: SyncSender<Note>) -> Metrics {
        Metrics {
            systemd: Some(systemd),
            ..Metrics::default()
        }
    }

    pub fn set_feeds(&self, n: usize) {
        self.feeds.store(n as u64, Ordering::Relaxed);
    }

    pub fn record_poll(&self, feed: &str, failed: bool) {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(feed.to_string()).or_default();
        entry.failing = failed;
        if failed {
            entry.failures += 1;
        }
    }

    /// A feed's state as stored after a poll (or loaded at start): what its
    /// up / last-success / last-item gauges show. `interval` is the one the
    /// config sets; a publisher's caching headers may stretch it, which the
    /// state's next poll shows after a success.
    pub fn record_feed(&self, state: &FeedState, interval: Duration) {
        let mut feeds = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = feeds.entry(state.feed_id.clone()).or_default();
        let secs = |t: DateTime<Utc>| t.timestamp_millis() as f64 / 1000.0;
        if state.last_attempt.is_some() {
            entry.up = Some(state.consecutive_failures == 0 && !state.gone);
        }
        entry.last_success = state.last_success.map(secs);
        entry.last_item = state.last_item_at.map(secs);
        let mut effective = interval;
        if state.consecutive_failures == 0
            && let (Some(at), Some(next)) = (state.last_attempt, state.next_poll)
            && let Ok(hinted) = (next - at).to_std()
        {
            effective = effective.max(hinted);
        }
        if state.consecutive_failures == 0 || entry.interval.is_none() {
            entry.interval = Some(effective.as_secs_f64());
        }
    }

    /// One fetch took `took` (the poll duration histogram).
    pub fn observe_poll(&self, took: Duration) {
        self.poll_durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(took.as_secs_f64());
    }

    /// The writer starts (`true`) or finishes (`false`) handling a message.
    pub fn writer_busy(&self, busy: bool) {
        let now = if busy { clock().max(1) } else { 0 };
        self.writer_busy_since.store(now, Ordering::Relaxed);
    }

    /// How long the writer has been busy with its current message; `None`
    /// while it is idle.
    pub fn writer_busy_for(&self) -> Option<Duration> {
        match self.writer_busy_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(clock().saturating_sub(since))),
        }
    }

    /// Counts one failed delivery attempt (`DeliveryError::reason`).
    pub fn record_delivery_failure(&self, reason: &'static str) {
        *self
            .delivery_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn failing(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|f| f.failing)
            .count()
    }

    /// Forgets feeds no longer configured.
    pub fn retain_feeds(&self, ids: &[&str]) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| ids.contains(&k.as_str()));
    }

    /// The line `systemctl status` shows.
    pub fn status_line(&self) -> String {
        let cycle = self.cycle_ms.load(Ordering::Relaxed);
        let cycle = if cycle == 0 {
            "no cycle yet".to_string()
        } else {
            format!("last cycle {:.1} s", cycle as f64 / 1000.0)
        };
        format!(
            "{} feeds, {cycle}, {} failing, {} digests pending",
            self.feeds.load(Ordering::Relaxed),
            self.failing(),
            self.digests_pending.load(Ordering::Relaxed)
        )
    }

    /// Sends the STATUS= line if it changed. Never blocks: when the
    /// notifier is backed up the update is dropped (a newer one follows).
    pub fn publish_status(&self) {
        let line = self.status_line();
        let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        if *last == line {
            return;
        }
        if self.note(Note::Status(line.clone())) {
            *last = line;
        }
    }

    /// Queues a notification without blocking; false when it was dropped.
    pub fn note(&self, note: Note) -> bool {
        match &self.systemd {
            Some(tx) => !matches!(
                tx.try_send(note),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            ),
            None => false,
        }
    }

    pub fn record_cycle(&self, took: Duration) {
        self.cycle_ms
            .store(took.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP treatywatch_build_info The running treatywatch's version (always 1).\n# TYPE treatywatch_build_info gauge\ntreatywatch_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        counter(
            "treatywatch_feeds",
            "Feeds configured.",
            "gauge",
            get(&self.feeds),
        );
        counter(
            "treatywatch_polls_total",
            "Feed polls completed.",
            "counter",
            get(&self.polls),
        );
        counter(
            "treatywatch_items_total",
            "New or changed items ingested.",
            "counter",
            get(&self.items),
        );
        counter(
            "treatywatch_detections_total",
            "Detections appended.",
            "counter",
            get(&self.detections),
        );
        counter(
            "treatywatch_status_changes_total",
            "Status changes recorded.",
            "counter",
            get(&self.status_changes),
        );
        counter(
            "treatywatch_digests_sent_total",
            "Digests delivered.",
            "counter",
            get(&self.digests_sent),
        );
        counter(
            "treatywatch_digests_pending",
            "Digests not delivered yet: frozen ones waiting for an attempt, and one per recipient with changes still to be put in a digest.",
            "gauge",
            get(&self.digests_pending),
        );
        self.poll_durations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render(
                &mut out,
                "treatywatch_poll_duration_seconds",
                "How long fetching one feed took (request to body read).",
            );
        out.push_str("# HELP treatywatch_delivery_failures_total Failed digest delivery attempts, by reason.\n# TYPE treatywatch_delivery_failures_total counter\n");
        {
            let failures = self
                .delivery_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for reason in crate::notify::REASONS.iter().chain(["build"].iter()) {
                let _ = writeln!(
                    out,
                    "treatywatch_delivery_failures_total{{reason=\"{reason}\"}} {}",
                    failures.get(reason).copied().unwrap_or(0)
                );
            }
        }
        let feeds = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let label = |feed: &str| feed.replace(['"', '\\', '\n'], "_");
        out.push_str("# HELP treatywatch_feed_failures_total Failed polls per feed.\n# TYPE treatywatch_feed_failures_total counter\n");
        for (feed, f) in feeds.iter() {
            let _ = writeln!(
                out,
                "treatywatch_feed_failures_total{{feed=\"{}\"}} {}",
                label(feed),
                f.failures
            );
        }
        let gauges: [(&str, &str, FeedValue); 4] = [
            (
                "treatywatch_feed_up",
                "1 if the feed's last poll succeeded, 0 if it failed (absent before its first poll).",
                |f| f.up.map(|up| if up { 1.0 } else { 0.0 }),
            ),
            (
                "treatywatch_feed_last_success_timestamp_seconds",
                "When the feed was last fetched successfully (Unix time).",
                |f| f.last_success,
            ),
            (
                "treatywatch_feed_last_item_timestamp_seconds",
                "Publication time of the newest item the feed has had (Unix time).",
                |f| f.last_item,
            ),
            (
                "treatywatch_feed_interval_seconds",
                "How often the feed is polled: its interval, or longer when the publisher's caching headers ask.",
                |f| f.interval,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
            for (feed, f) in feeds.iter() {
                if let Some(v) = value(f) {
                    let _ = writeln!(out, "{name}{{feed=\"{}\"}} {v}", label(feed));
                }
            }
        }
        out
    }
}

/// Reads one gauge's value off a feed's entry (`None`: not known yet).
type FeedValue = fn(&FeedGauges) -> Option<f64>;

/// What the metrics say about one feed.
#[derive(Debug, Default, Clone)]
struct FeedGauges {
    /// Failed polls since the daemon started.
    failures: u64,
    /// The last poll failed (the STATUS= line's "failing").
    failing: bool,
    /// The last poll succeeded; `None` before any.
    up: Option<bool>,
    last_success: Option<f64>,
    last_item: Option<f64>,
    interval: Option<f64>,
}

/// Upper bounds of the poll duration buckets, in seconds: a feed usually
/// answers in well under a second; `[fetch] timeout` is 30 s by default.
const POLL_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A Prometheus histogram: cumulative buckets, the sum and the count.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations at most each `POLL_BUCKETS` bound (not yet cumulative).
    buckets: [u64; POLL_BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        if let Some(i) = POLL_BUCKETS.iter().position(|b| value <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (bound, n) in POLL_BUCKETS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Milliseconds since this process first asked: a monotonic clock that
/// fits an atomic.
fn clock() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Caps glibc's malloc arenas at two. By default every thread that
/// allocates may get its own (up to eight per core), and each keeps its own
/// freed memory: more arenas, more of the last cycle's peak left resident.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called at start-up.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hands memory freed during a cycle back to the kernel. glibc keeps it in
/// its per-thread arenas otherwise, and an idle daemon would sit at the
/// peak of its last cycle. Trims every arena, whichever thread calls it.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
