//! Classification throughput with the shipped rules, single thread, over
//! two corpora, each next to a ceiling measured over the same bytes.
//!
//! - synthetic: 10,000 news-like items of about 3 KB each from a fixed seed
//!   (sentences about treaty actions mixed with ordinary news, negations,
//!   history and traps; about one sentence in four is about a treaty).
//! - news: ordinary world news with 5 % treaty items, from the labelled
//!   fixtures (tests/fixtures/classify/): every block of 20 items is one
//!   treaty item and 19 non-treaty ones (stress.toml and the negatives of
//!   labelled.toml and train-*.toml), dealt from decks reshuffled from a
//!   fixed seed, until the corpus holds 30 MB. test.toml, the frozen test
//!   split, is never read.
//! - ceiling (automaton scan alone): one aho-corasick DFA over the state
//!   names, treaty aliases and cue phrase parts ("..." splits a phrase) of
//!   the loaded config, lower-cased and matched ASCII-case-insensitively,
//!   scanning each item's title and body with `find_overlapping_iter`. No
//!   normalisation, sentence splitting, frames or resolution: what the
//!   classifier could reach if its scan were all it did. The classifier's
//!   own automaton is larger (inflections, variants, modifiers, agents) and
//!   scans normalised text, so the ceiling is optimistic: a bound on what
//!   the classifier could reach, not a measure of its own scan.
//!
//! Compiles the rules from config/, prints compile time and automaton size,
//! then per corpus MB/s and items/s for the classifier and the ceiling, and
//! their ratio. Each figure is the median of three passes after a warm-up,
//! with the slowest and fastest, per CPU-second of the measuring thread (the
//! machine is shared: wall-clock time counts other processes' turns too);
//! the wall-clock rate is printed beside it.
//! Run: `cargo bench --bench classify`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use chrono::NaiveDate;
use serde::Deserialize;
use treatywatch::classify::{Classifier, Text};
use treatywatch::config::rules::GAP;
use treatywatch::config::{self, Config};

const ITEMS: usize = 10_000;
const ITEM_BYTES: usize = 3_000;
/// The news corpus grows by blocks until it holds this many bytes.
const NEWS_BYTES: usize = 30_000_000;
/// One treaty item in every block of this many: 5 %.
const NEWS_BLOCK: usize = 20;
/// Measured passes per corpus and scanner; the median is reported.
const PASSES: usize = 3;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[(self.next() % list.len() as u64) as usize]
    }
}

const STATES: &[&str] = &[
    "Ukraine",
    "Poland",
    "Finland",
    "Estonia",
    "Latvia",
    "Lithuania",
    "Russia",
    "the United States",
    "Hungary",
    "Turkey",
    "Nigeria",
    "Niger",
    "Papua New Guinea",
    "the Baltic states",
    "Japan",
    "Brazil",
    "South Sudan",
    "Kazakhstan",
    "Iran",
    "Canada",
];
const TREATIES: &[&str] = &[
    "the Ottawa Convention",
    "the Convention on Cluster Munitions",
    "the Rome Statute",
    "the Istanbul Convention",
    "the Paris Agreement",
    "the CTBT",
    "the Non-Proliferation Treaty",
    "the Arms Trade Treaty",
    "the 1997 treaty",
    "the treaty",
    "the mine ban treaty",
];
const DAYS: &[&str] = &[
    "on Monday",
    "on Tuesday",
    "on Friday",
    "last week",
    "in 2005",
    "in March 2019",
    "on Jan. 10, 2026",
];

fn relevant(r: &mut Rng) -> String {
    let s = r.pick(STATES);
    let t = r.pick(TREATIES);
    let d = r.pick(DAYS);
    let templates: [&dyn Fn() -> String; 12] = [
        &|| format!("{s}'s parliament voted {d} to withdraw from {t}."),
        &|| format!("{s} deposited its instrument of ratification of {t} {d}."),
        &|| format!("{s} has no plans to leave {t}, officials said {d}."),
        &|| format!("Officials urged {s} to reconsider its decision to withdraw from {t}."),
        &|| format!("{s}, which is not a signatory to {t}, criticised the move."),
        &|| format!("The withdrawal of {s} from {t} took effect {d}."),
        &|| format!("{s} could consider leaving {t} if sanctions return."),
        &|| format!("{t} was ratified by {s} in 2005, long before the war."),
        &|| {
            format!(
                "{s} formally notified the UN Secretary-General of its withdrawal from {t} {d}."
            )
        },
        &|| format!("{s} signed {t} at a ceremony in Oslo {d}."),
        &|| format!("{s} threatened to quit {t} over the dispute."),
        &|| {
            format!(
                "Neighbouring countries such as {s}, which have withdrawn from {t}, are watching closely."
            )
        },
    ];
    templates[(r.next() % templates.len() as u64) as usize]()
}

const FILLER: &[&str] = &[
    "The central bank left interest rates unchanged for a third consecutive meeting, citing sticky services inflation.",
    "Heavy rain flooded several districts overnight, and emergency crews evacuated hundreds of residents.",
    "The football club confirmed the signing of a new striker on a four-year contract.",
    "Analysts said the election result would reshape the coalition talks expected later this month.",
    "Shares in the carmaker fell sharply after it cut its profit forecast for the year.",
    "The minister told reporters in the capital that talks with the unions would resume next week.",
    "A new museum exhibition traces the history of the port city from the medieval period to today.",
    "Farmers blocked roads with tractors to protest against falling prices and rising fuel costs.",
    "The government said it would publish the full report before the end of the parliamentary session.",
    "Researchers reported that the vaccine trial met its primary endpoint with no serious side effects.",
    "Officials in Geneva said the humanitarian appeal was only a third funded so far this year.",
    "The opposition leader accused the cabinet of ignoring warnings about the state of the power grid.",
];

fn item(r: &mut Rng) -> Text {
    let title = format!(
        "{} {} {}",
        r.pick(STATES),
        r.pick(&[
            "to quit",
            "ratifies",
            "rules out leaving",
            "signs decree on",
            "weighs"
        ]),
        r.pick(TREATIES)
    );
    let mut body = String::with_capacity(ITEM_BYTES + 200);
    while body.len() < ITEM_BYTES {
        // About one sentence in four is about a treaty.
        if r.next().is_multiple_of(4) {
            body.push_str(&relevant(r));
        } else {
            body.push_str(r.pick(FILLER));
        }
        body.push(if r.next().is_multiple_of(6) {
            '\n'
        } else {
            ' '
        });
    }
    Text {
        title,
        body,
        date: NaiveDate::from_ymd_opt(2025, 7, 1),
    }
}

/// One fixture file (tests/fixtures/classify/README.md); only what the
/// corpus needs is read.
#[derive(Deserialize)]
struct Fixture {
    item: Vec<FixtureItem>,
}

#[derive(Deserialize)]
struct FixtureItem {
    date: Option<String>,
    title: String,
    body: String,
    /// `[]` for a negative.
    label: Option<Vec<String>>,
    /// labelled.toml's older notation for the same.
    expect: Option<Vec<String>>,
}

impl FixtureItem {
    fn is_treaty_news(&self) -> bool {
        self.label.iter().chain(&self.expect).any(|l| !l.is_empty())
    }

    fn text(&self) -> Text {
        Text {
            title: self.title.clone(),
            body: self.body.clone(),
            date: self.date.as_deref().map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("fixture dates are valid")
            }),
        }
    }
}

/// The fixture files the news corpus may use, in a fixed order: stress.toml,
/// labelled.toml and every train-*.toml. Never test.toml.
fn fixture_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut train: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("train-") && n.ends_with(".toml"))
        })
        .collect();
    train.sort();
    let mut files = vec![dir.join("stress.toml"), dir.join("labelled.toml")];
    files.extend(train);
    files
}

/// Indices dealt in a shuffled order, reshuffled when the deck runs out, so
/// every item is used about as often as every other.
struct Deck {
    order: Vec<usize>,
    next: usize,
}

impl Deck {
    fn new(len: usize) -> Deck {
        Deck {
            order: (0..len).collect(),
            next: len,
        }
    }

    fn deal(&mut self, r: &mut Rng) -> usize {
        if self.next == self.order.len() {
            shuffle(&mut self.order, r);
            self.next = 0;
        }
        self.next += 1;
        self.order[self.next - 1]
    }
}

fn shuffle<T>(list: &mut [T], r: &mut Rng) {
    for i in (1..list.len()).rev() {
        list.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
}

/// The news corpus and what it was made of.
struct News {
    items: Vec<Text>,
    treaty_items: usize,
    distinct_negatives: usize,
    distinct_treaty: usize,
}

fn news(dir: &Path) -> News {
    let mut negatives = Vec::new();
    let mut treaty = Vec::new();
    for path in fixture_files(dir) {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let fixture: Fixture =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for item in fixture.item {
            if item.is_treaty_news() {
                treaty.push(item.text());
            } else {
                negatives.push(item.text());
            }
        }
    }
    assert!(
        !negatives.is_empty() && !treaty.is_empty(),
        "the fixtures hold both negatives and treaty items"
    );

    let mut rng = Rng(0x05E_BE75_u64 | 1);
    let (mut neg_deck, mut treaty_deck) = (Deck::new(negatives.len()), Deck::new(treaty.len()));
    let mut items = Vec::new();
    let mut bytes = 0;
    while bytes < NEWS_BYTES {
        let mut block = Vec::with_capacity(NEWS_BLOCK);
        block.push(treaty[treaty_deck.deal(&mut rng)].clone());
        for _ in 1..NEWS_BLOCK {
            block.push(negatives[neg_deck.deal(&mut rng)].clone());
        }
        shuffle(&mut block, &mut rng);
        bytes += block.iter().map(item_bytes).sum::<usize>();
        items.extend(block);
    }
    News {
        treaty_items: items.len() / NEWS_BLOCK,
        items,
        distinct_negatives: negatives.len(),
        distinct_treaty: treaty.len(),
    }
}

/// The bytes of an item's text as the classifier sees it: title, a blank
/// line, body.
fn item_bytes(t: &Text) -> usize {
    t.title.len() + 2 + t.body.len()
}

/// The ceiling's patterns: every state name, treaty alias and part of a cue
/// phrase in the loaded config, lower-cased, deduplicated.
fn ceiling_patterns(config: &Config) -> Vec<String> {
    let states = config
        .gazetteer
        .states
        .iter()
        .flat_map(|s| std::iter::once(&s.name).chain(&s.names).map(String::as_str));
    let treaties = config
        .treaties
        .list
        .iter()
        .flat_map(|t| t.aliases.iter().chain(&t.cased_aliases).map(String::as_str));
    let cue_parts = config
        .rules
        .cues
        .iter()
        .flat_map(|c| &c.phrases)
        .flat_map(|p| p.split(GAP));
    let mut patterns: Vec<String> = states
        .chain(treaties)
        .chain(cue_parts)
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    patterns.sort();
    patterns.dedup();
    patterns
}

/// CPU time this thread has used, in seconds. The machine is shared, so
/// throughput is reported per CPU-second of the measuring thread (what
/// "per core" means) as well as per wall-clock second.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Timings of `PASSES` measured passes after one warm-up pass over a slice.
struct Measured {
    /// CPU seconds per pass, sorted.
    cpu: Vec<f64>,
    /// Wall-clock seconds per pass, sorted.
    wall: Vec<f64>,
    /// What a pass counted (detections or matches).
    count: usize,
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

fn measure(items: &[Text], per_item: impl Fn(&Text) -> usize) -> Measured {
    for t in items.iter().take(200) {
        black_box(per_item(t));
    }
    let (mut cpu, mut wall) = (Vec::with_capacity(PASSES), Vec::with_capacity(PASSES));
    let mut count = 0;
    for _ in 0..PASSES {
        let (cpu_start, wall_start) = (thread_cpu_secs(), Instant::now());
        count = 0;
        for t in items {
            count += black_box(per_item(t));
        }
        wall.push(wall_start.elapsed().as_secs_f64());
        cpu.push(thread_cpu_secs() - cpu_start);
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    Measured { cpu, wall, count }
}

fn report(name: &str, note: &str, items: &[Text], classifier: &Classifier, ceiling: &AhoCorasick) {
    let bytes: usize = items.iter().map(item_bytes).sum();
    let mb = bytes as f64 / 1e6;
    let n = items.len();
    let classified = measure(items, |t| classifier.classify(t).len());
    let scanned = measure(items, |t| {
        ceiling.find_overlapping_iter(&t.title).count()
            + ceiling.find_overlapping_iter(&t.body).count()
    });
    let line = |m: &Measured, counted: &str| {
        format!(
            "{:.1} MB/s ({:.1}–{:.1}), {:.0} items/s; wall clock {:.1} MB/s; {} {counted}",
            mb / median(&m.cpu),
            mb / m.cpu[m.cpu.len() - 1],
            mb / m.cpu[0],
            n as f64 / median(&m.cpu),
            mb / median(&m.wall),
            m.count
        )
    };
    println!(
        "{name}: {n} items ({mb:.1} MB, {:.0} bytes/item), {note}",
        bytes as f64 / n as f64
    );
    println!(
        "  classifier:                      {}",
        line(&classified, "detections")
    );
    println!(
        "  ceiling (automaton scan alone):  {}",
        line(&scanned, "matches")
    );
    println!(
        "  classifier / ceiling:            {:.3} (the scan alone is {:.1}x faster)",
        median(&scanned.cpu) / median(&classified.cpu),
        median(&classified.cpu) / median(&scanned.cpu)
    );
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = config::load(&root.join("config/feeds.toml")).unwrap_or_else(|e| {
        eprintln!("the shipped config is invalid:\n{e}");
        std::process::exit(2);
    });

    let started = Instant::now();
    let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
    let compile = started.elapsed();

    let patterns = ceiling_patterns(&config);
    let started = Instant::now();
    let ceiling = AhoCorasick::builder()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .ascii_case_insensitive(true)
        .build(&patterns)
        .expect("the ceiling's DFA builds");
    let ceiling_compile = started.elapsed();

    println!(
        "rules: {} patterns compiled in {:.1} ms into an automaton of {:.1} MB",
        classifier.pattern_count(),
        compile.as_secs_f64() * 1e3,
        classifier.memory_usage() as f64 / 1e6
    );
    println!(
        "ceiling: {} patterns (state names, treaty aliases, cue parts) built in {:.1} ms into a DFA of {:.1} MB",
        patterns.len(),
        ceiling_compile.as_secs_f64() * 1e3,
        ceiling.memory_usage() as f64 / 1e6
    );
    println!(
        "one thread; MB/s and items/s per CPU-second, median of {PASSES} passes (slowest–fastest)"
    );

    let mut rng = Rng(0x07EA_71E5_u64 | 1);
    let synthetic: Vec<Text> = (0..ITEMS).map(|_| item(&mut rng)).collect();
    report(
        "synthetic",
        "about one sentence in four about a treaty",
        &synthetic,
        &classifier,
        &ceiling,
    );
    drop(synthetic);

    let news = news(&root.join("tests/fixtures/classify"));
    let note = format!(
        "{} treaty items ({:.1} %), dealt from {} treaty items and {} non-treaty ones",
        news.treaty_items,
        100.0 * news.treaty_items as f64 / news.items.len() as f64,
        news.distinct_treaty,
        news.distinct_negatives
    );
    report("news", &note, &news.items, &classifier, &ceiling);
}
