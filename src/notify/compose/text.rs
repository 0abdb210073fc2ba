//! The plain-text part of a digest: what a terminal, `grep` and a text-only
//! mail client see. Wrapped at `WIDTH` for reading; links and long words
//! are never broken, so a link can always be copied whole.

use std::fmt::Write as _;

use super::{
    MAX_EVIDENCE_CHARS, MAX_LINK_CHARS, MAX_TITLE_CHARS, Parts, brief_line, brief_note, capped,
    clean, confidence, correction_lines, waiting_line, was,
};
use crate::domain::StatusChange;

/// Columns a line is wrapped at.
const WIDTH: usize = 76;

/// Wraps `text` at `WIDTH`, every line indented by `indent`.
fn wrapped(out: &mut String, text: &str, indent: &str) {
    let options = textwrap::Options::new(WIDTH)
        .initial_indent(indent)
        .subsequent_indent(indent)
        .break_words(false);
    for line in textwrap::wrap(text, options) {
        let _ = writeln!(out, "{line}");
    }
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(out, "{title}\n{}\n", "=".repeat(title.chars().count()));
}

pub(super) fn render(p: &Parts<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "treatywatch: {}\n", p.headline);
    if !p.resent.items.is_empty() {
        heading(&mut t, "Not delivered earlier");
        for note in &p.resent.notes {
            wrapped(&mut t, note, "   ");
        }
        for i in &p.resent.items {
            wrapped(&mut t, &format!("- {}", brief_line(&p.names, i)), "   ");
        }
        t.push('\n');
    }
    let brief = brief_note(p.form, p.items.len());
    if let Some((note, _)) = &brief {
        wrapped(&mut t, note, "");
        t.push('\n');
    }
    let listed = brief.as_ref().map_or(p.items.len(), |(_, n)| *n);
    if !p.items.is_empty() {
        heading(&mut t, "What changed");
    }
    for (k, i) in p.items.iter().take(listed).enumerate() {
        let c = i.change;
        let _ = writeln!(
            t,
            "{}. {} · {}",
            k + 1,
            p.names.state(&c.state),
            p.names.treaty(&c.treaty)
        );
        wrapped(
            &mut t,
            &format!(
                "{} → {}, {}",
                was(c),
                c.to.label(),
                i.occurred_at.format("%Y-%m-%d")
            ),
            "   ",
        );
        if brief.is_none() {
            evidence(&mut t, c);
        }
        wrapped(
            &mut t,
            &confidence(&p.names, c, p.depositary.get(&i.seq).map(String::as_str)),
            "   ",
        );
        wrapped(
            &mut t,
            &format!("Wrong? treatywatch retract {} --note \"why\"", c.cause_seq),
            "   ",
        );
        t.push('\n');
    }
    if !p.corrections.is_empty() {
        heading(&mut t, "Corrections");
        for (k, i) in p.corrections.iter().enumerate() {
            let c = i.change;
            let _ = writeln!(
                t,
                "{}. {} · {}: a correction of the record, not news",
                k + 1,
                p.names.state(&c.state),
                p.names.treaty(&c.treaty)
            );
            for line in correction_lines(c) {
                wrapped(&mut t, &line, "   ");
            }
            t.push('\n');
        }
    }
    if !p.waiting.is_empty() {
        heading(&mut t, "Reported, not yet confirmed");
        for w in &p.waiting {
            wrapped(&mut t, &waiting_line(&p.names, w), "   ");
            if brief.is_none() {
                wrapped(
                    &mut t,
                    &format!(
                        "\"{}\"",
                        capped(&w.report.evidence.sentence, MAX_EVIDENCE_CHARS)
                    ),
                    "   ",
                );
            }
            t.push('\n');
        }
    }
    for (treaty, rows) in &p.standings {
        heading(&mut t, &format!("Where things stand — {treaty}"));
        let width = rows
            .iter()
            .map(|r| r.state.chars().count())
            .max()
            .unwrap_or(0);
        for r in rows {
            let pad = width - r.state.chars().count();
            let first = format!("   {}{}  ", r.state, " ".repeat(pad));
            let rest = " ".repeat(first.chars().count());
            let options = textwrap::Options::new(WIDTH)
                .initial_indent(&first)
                .subsequent_indent(&rest)
                .break_words(false);
            for line in textwrap::wrap(&r.text, options) {
                let _ = writeln!(t, "{line}");
            }
        }
        t.push('\n');
    }
    for (section, delivery) in [("Source health", false), ("Delivery", true)] {
        let mut alerts = p
            .alerts
            .iter()
            .filter(|a| a.delivery == delivery)
            .peekable();
        if alerts.peek().is_none() {
            continue;
        }
        heading(&mut t, section);
        for a in alerts {
            wrapped(&mut t, &a.heading, "   ");
            for line in &a.lines {
                wrapped(&mut t, line, "   ");
            }
            if let Some(url) = &a.url {
                let _ = writeln!(t, "   Feed url: <{}>", clean(url));
            }
            t.push('\n');
        }
    }
    let _ = writeln!(t, "-- ");
    for line in &p.footer {
        wrapped(&mut t, line, "");
    }
    let _ = writeln!(t, "treatywatch, {}", p.now.format("%Y-%m-%d %H:%M UTC"));
    t
}

/// The evidence quote and its source, for a change in full.
fn evidence(t: &mut String, c: &StatusChange) {
    let Some(ev) = &c.evidence else {
        return;
    };
    wrapped(
        t,
        &format!("\"{}\"", capped(&ev.sentence, MAX_EVIDENCE_CHARS)),
        "   ",
    );
    let title = ev.title.as_deref().map(|t| capped(t, MAX_TITLE_CHARS));
    let link = ev.link.as_deref().map(|l| capped(l, MAX_LINK_CHARS));
    let source = match (title, link) {
        (Some(title), Some(link)) => Some(format!("Source: {title} <{link}>")),
        (Some(title), None) => Some(format!("Source: {title}")),
        (None, Some(link)) => Some(format!("Source: <{link}>")),
        (None, None) => None,
    };
    if let Some(source) = source {
        wrapped(t, &source, "   ");
    }
}
