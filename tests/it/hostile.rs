//! Hostile input through parse → classify: random and mutated bytes,
//! random text, and a corpus of nasty shapes (tests/fixtures/hostile/ plus
//! generated giants). Nothing may panic, and no document may take more
//! than a generous bound of this thread's CPU time: a hang detector, not a
//! speed test (the benches measure speed). CPU time, not wall time, so a
//! loaded machine cannot fail it: a wall-clock bound failed at load 12.

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use treatywatch::classify::Classifier;
use treatywatch::config;
use treatywatch::feed;
use treatywatch::ingest::text_of;

/// Far above what any document here needs (the largest takes about 2 s of
/// CPU in a debug build); only a pathological (super-linear) path reaches it.
const HANG: Duration = Duration::from_secs(20);

fn classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(|| {
        let config = config::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/feeds.toml"
        )))
        .expect("shipped config");
        Classifier::new(&config.gazetteer, &config.treaties, &config.rules)
    })
}

/// Parses and classifies `bytes` as poll would; returns the item count (or
/// None for a document refused as not a feed).
fn ingest(bytes: &[u8], content_type: Option<&str>) -> Option<usize> {
    let parsed = feed::parse(bytes, content_type, None).ok()?;
    for item in &parsed.items {
        for d in classifier().classify(&text_of(item, chrono::Utc::now())) {
            assert!(!d.evidence.is_empty());
        }
    }
    Some(parsed.items.len())
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = thread_cpu_time();
    let out = f();
    let spent = thread_cpu_time() - start;
    assert!(spent < HANG, "{what} took {spent:?} of CPU");
    out
}

/// The CPU time this thread has used (parse and classify run on it alone).
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn fixture(dir: &str, name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

#[test]
fn billion_laughs_are_not_expanded() {
    let n = timed("billion laughs", || {
        ingest(&fixture("hostile", "billion-laughs.xml"), None)
    });
    // Refused or parsed with the entities left alone; either way small.
    if let Some(items) = n {
        assert!(items <= 1);
    }
}

#[test]
fn external_entities_are_not_resolved() {
    if let Ok(parsed) = feed::parse(&fixture("hostile", "external-entity.xml"), None, None) {
        for item in parsed.items {
            assert!(
                !item.title.contains("root:") && !item.text.contains("root:"),
                "file content leaked: {item:?}"
            );
        }
    }
}

#[test]
fn mixed_and_wide_encodings_neither_panic_nor_lose_the_readable_items() {
    for (name, expect_items) in [
        ("mixed-encodings.xml", true),
        ("utf16.xml", true),
        ("utf16-no-bom.xml", false),
    ] {
        let n = timed(name, || ingest(&fixture("hostile", name), None));
        if expect_items {
            assert_eq!(n, Some(1), "{name}");
        }
    }
}

#[test]
fn deep_nesting_is_survived() {
    let depth = 100_000;
    let doc = format!(
        "<rss version=\"2.0\"><channel><title>deep</title><item><title>t</title><description>{}x{}</description></item></channel></rss>",
        "<b>".repeat(depth),
        "</b>".repeat(depth)
    );
    timed("deep nesting", || ingest(doc.as_bytes(), None));
    let doc = format!(
        "<rss version=\"2.0\"><channel>{}</channel></rss>",
        "<x>".repeat(depth)
    );
    timed("unclosed deep nesting", || ingest(doc.as_bytes(), None));
}

#[test]
fn enormous_attributes_and_a_one_megabyte_line_are_survived() {
    let attr = "a".repeat(2 << 20);
    let doc = format!(
        "<rss version=\"2.0\"><channel><title x=\"{attr}\">t</title><item><title>Poland leaves the Ottawa Convention</title><guid>g</guid><link href=\"{attr}\"/></item></channel></rss>"
    );
    timed("enormous attributes", || ingest(doc.as_bytes(), None));
    let line = "Ukraine ratified the Ottawa Convention and ".repeat(25_000);
    let doc = format!(
        "<rss version=\"2.0\"><channel><title>t</title><item><title>long</title><guid>g</guid><description>{line}</description></item></channel></rss>"
    );
    assert!(doc.len() > 1 << 20);
    timed("one-megabyte line", || ingest(doc.as_bytes(), None));
}

#[test]
fn many_items_are_capped() {
    let items: String = (0..5_000)
        .map(|i| format!("<item><title>Item {i}</title><guid>g{i}</guid></item>"))
        .collect();
    let doc = format!("<rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>");
    let n = timed("5,000 items", || ingest(doc.as_bytes(), None));
    assert_eq!(n, Some(feed::MAX_ITEMS_PER_FEED));
}

/// Seed documents for mutation: every fixture feed and hostile shape.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["feeds", "hostile"] {
        let path = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(path).expect("fixtures").flatten() {
            out.push(std::fs::read(entry.path()).expect("read"));
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![any::<u8>(), Just(b'<'), Just(b'>'), Just(b'&'), Just(b'"')],
                1..16
            )
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), 1usize..256).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
    ]
}

fn apply(doc: &mut Vec<u8>, m: &Mutation) {
    if doc.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(at, b) => {
            let i = at % doc.len();
            doc[i] = *b;
        }
        Mutation::Insert(at, bytes) => {
            let i = at % (doc.len() + 1);
            doc.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete(at, n) => {
            let i = at % doc.len();
            let end = (i + n).min(doc.len());
            doc.drain(i..end);
        }
        Mutation::Duplicate(at, n) => {
            let i = at % doc.len();
            let end = (i + n).min(doc.len());
            let copy = doc[i..end].to_vec();
            doc.splice(end..end, copy);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), ct in prop::option::of("[ -~]{0,40}")) {
        timed("random bytes", || ingest(&bytes, ct.as_deref()));
    }

    #[test]
    fn mutated_feeds_never_panic(seed in any::<prop::sample::Index>(), mutations in prop::collection::vec(mutation(), 1..12)) {
        let seeds = seeds();
        let mut doc = seed.get(&seeds).clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        timed("mutated feed", || ingest(&doc, Some("application/rss+xml; charset=windows-1251")));
        timed("mutated feed", || ingest(&doc, None));
    }

    #[test]
    fn random_text_never_panics(title in "\\PC{0,200}", body in "\\PC{0,2000}") {
        let text = treatywatch::classify::Text { title, body, date: None };
        timed("random text", || classifier().classify(&text));
    }
}
