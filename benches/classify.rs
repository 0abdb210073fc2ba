//! Classification throughput with the shipped rules, single thread.
//!
//! Generates 10,000 news-like items of about 3 KB each from a fixed seed
//! (sentences about treaty actions mixed with ordinary news, negations,
//! history and traps), compiles the rules from config/, classifies every
//! item once, and prints compile time, MB/s and items/s.
//! Run: `cargo bench --bench classify`.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use chrono::NaiveDate;
use treatywatch::classify::{Classifier, Text};
use treatywatch::config;

const ITEMS: usize = 10_000;
const ITEM_BYTES: usize = 3_000;

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

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = config::load(&root.join("config/feeds.toml")).unwrap_or_else(|e| {
        eprintln!("the shipped config is invalid:\n{e}");
        std::process::exit(2);
    });

    let started = Instant::now();
    let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
    let compile = started.elapsed();

    let mut rng = Rng(0x07EA_71E5_u64 | 1);
    let items: Vec<Text> = (0..ITEMS).map(|_| item(&mut rng)).collect();
    let bytes: usize = items.iter().map(|t| t.title.len() + 2 + t.body.len()).sum();

    // One warm-up pass over a slice, then the measured pass over all items.
    for t in items.iter().take(200) {
        black_box(classifier.classify(t));
    }
    let started = Instant::now();
    let mut detections = 0usize;
    for t in &items {
        detections += black_box(classifier.classify(t)).len();
    }
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "rules: {} patterns compiled in {:.1} ms into an automaton of {:.1} MB",
        classifier.pattern_count(),
        compile.as_secs_f64() * 1e3,
        classifier.memory_usage() as f64 / 1e6
    );
    println!(
        "classified {ITEMS} items ({:.1} MB, {:.0} bytes/item) in {:.3} s: {:.1} MB/s, {:.0} items/s, {detections} detections",
        bytes as f64 / 1e6,
        bytes as f64 / ITEMS as f64,
        elapsed,
        bytes as f64 / 1e6 / elapsed,
        ITEMS as f64 / elapsed
    );
}
