//! Event-log benchmark: append rate one event per transaction and batched,
//! then `replay` (a rebuild of the status table from the log) over
//! 1,000,000 events, and the database's size on disk.
//!
//! Run: `cargo bench --bench store` (EVENTS=200000 for a shorter run).

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use treatywatch::domain::{Action, Detection, EventBody, Evidence, NewEvent, Policy};
use treatywatch::store::Store;

const STATES: usize = 190;
const TREATIES: [&str; 15] = [
    "ottawa",
    "ccm",
    "ctbt",
    "npt",
    "tpnw",
    "bwc",
    "cwc",
    "att",
    "cfe",
    "inf",
    "new_start",
    "rome_statute",
    "istanbul",
    "paris",
    "unfccc",
];

/// The n-th synthetic detection: spread over states × treaties, actions
/// cycling so statuses move and fall back to background, 20 sources.
fn event(n: usize) -> NewEvent {
    let state = format!("S{:02}", n % STATES);
    let treaty = TREATIES[(n / STATES) % TREATIES.len()];
    let action = Action::ALL[(n / (STATES * TREATIES.len())) % Action::ALL.len()];
    let at = Utc
        .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .expect("date")
        + Duration::minutes(n as i64);
    NewEvent {
        occurred_at: at,
        body: EventBody::Detection(Detection {
            state,
            treaty: treaty.to_string(),
            action,
            rule: format!("{action}.cue"),
            rules_version: "bench".into(),
            source: format!("feed-{}", n % 20),
            item_key: format!("link:https://news.example.org/{n}"),
            evidence: Evidence {
                sentence: format!(
                    "Item {n}: the parliament voted on Thursday to take the next step on the {treaty} treaty, officials said."
                ),
                link: Some(format!("https://news.example.org/{n}")),
                title: Some(format!("Headline number {n}")),
            },
            authoritative: false,
            backfill: false,
            revives: None,
            takes_effect: None,
        }),
    }
}

fn size_mb(path: &std::path::Path) -> f64 {
    let len = |p: std::path::PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_extension("db-wal");
    (len(path.to_path_buf()) + len(wal)) as f64 / 1e6
}

fn main() {
    let total: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("dir");
    let policy = Policy::default();
    let now = Utc::now();

    let single_path = dir.path().join("single.db");
    let mut single = Store::open(&single_path).expect("open");
    let n = 2_000;
    let start = Instant::now();
    for i in 0..n {
        single.append(&[event(i)], &policy, now).expect("append");
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "append, one event per transaction (synchronous=FULL): {n} events in {took:.2} s = {:.0} events/s",
        n as f64 / took
    );

    let path = dir.path().join("log.db");
    let mut store = Store::open(&path).expect("open");
    let batch = 10_000;
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let events: Vec<NewEvent> = (done..(done + batch).min(total)).map(event).collect();
        store.append(&events, &policy, now).expect("append");
        done += events.len();
        if done % 200_000 == 0 {
            eprintln!(
                "  … {done} appended ({:.1} s)",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let took = start.elapsed().as_secs_f64();
    let last = store.last_seq().expect("seq");
    println!(
        "append, batches of {batch}: {total} detections (+ their status changes, {last} events) in {took:.2} s = {:.0} events/s",
        total as f64 / took
    );

    let start = Instant::now();
    let rebuilt = store.rebuild(&policy, None).expect("rebuild");
    let took = start.elapsed().as_secs_f64();
    let stored = store.projection().expect("projection");
    assert_eq!(
        rebuilt, stored,
        "replay must agree with the incremental table"
    );
    println!(
        "replay of {last} events: {took:.2} s ({} status rows, identical to the stored table)",
        rebuilt.len()
    );
    println!(
        "database size: {:.0} MB ({:.0} bytes/event)",
        size_mb(&path),
        size_mb(&path) * 1e6 / last as f64
    );
    drop(store);
    where_the_bytes_go(&path, last);
}

/// Bytes per event of each table and index (SQLite's `dbstat`), so a change
/// to the log's layout shows what it saved, and where.
fn where_the_bytes_go(path: &std::path::Path, events: i64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("read-only connection");
    let mut stmt = conn
        .prepare("SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .expect("dbstat");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .expect("query");
    for row in rows {
        let (name, pages, payload) = row.expect("row");
        if pages < events {
            continue;
        }
        println!(
            "  {name}: {:.0} bytes/event on pages ({:.0} of them content)",
            pages as f64 / events as f64,
            payload as f64 / events as f64
        );
    }
}
