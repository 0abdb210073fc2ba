//! `classify`: run the classifier over one text offline and print what it
//! finds. The first line of the text is the title, the rest the body.

use std::io::{Read, Write};

use chrono::{NaiveDate, Utc};
use serde_json::json;

use super::status::shorten;
use super::{CommandError, Context, Outcome, Result};
use crate::classify::{Classifier, Explanation, Outcome as ReadAs, Text};
use crate::cli::ClassifyArgs;
use crate::text::{json_safe, terminal_safe};

pub(super) fn classify(ctx: &Context, args: &ClassifyArgs, out: &mut dyn Write) -> Result<Outcome> {
    if let Some(path) = &args.feed {
        return classify_feed(ctx, path, args.json, out);
    }
    let date = match args.date.as_deref() {
        Some("none") => None,
        Some(d) => Some(NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            CommandError::Usage(format!(
                "--date {d:?} is not a date; write YYYY-MM-DD (e.g. 2025-06-29), or none to judge no dates"
            ))
        })?),
        None => Some(Utc::now().date_naive()),
    };
    let config = ctx.config()?;
    let raw = read_input(args)?;
    // Binary or mis-encoded input is read lossily rather than refused: the
    // classifier copes with any text.
    let text = String::from_utf8_lossy(&raw);
    let (title, body) = text.split_once('\n').unwrap_or((&text, ""));
    let input = Text {
        title: title.trim_end_matches('\r').to_string(),
        body: body.to_string(),
        date,
    };
    let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
    let (found, explained) = if args.explain {
        classifier.explain(&input)
    } else {
        (classifier.classify(&input), Vec::new())
    };
    let item = input.item_text();
    for d in &found {
        if args.json {
            writeln!(out, "{}", json_safe(detection_json(d).to_string()))?;
        } else {
            writeln!(
                out,
                "{}  {}  {}  (rule {})  \"{}\"",
                d.state,
                d.treaty,
                d.action,
                d.rule,
                terminal_safe(&shorten(&d.evidence, 160))
            )?;
        }
    }
    for e in &explained {
        write_explanation(out, &item, e, args.json)?;
    }
    Ok(Outcome::Success)
}

/// Classifies every item of a feed file, each dated by its own publication
/// date: the file is read as `poll` would read it from the network.
fn classify_feed(
    ctx: &Context,
    path: &std::path::Path,
    json: bool,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let config = ctx.config()?;
    let bytes = std::fs::read(path).map_err(|e| {
        CommandError::Usage(format!("cannot read feed file {}: {e}", path.display()))
    })?;
    let parsed = crate::feed::parse(&bytes, None, None)
        .map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))?;
    let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
    let mut total = 0;
    for item in &parsed.items {
        let found = classifier.classify(&crate::ingest::text_of(item, Utc::now()));
        total += found.len();
        if json {
            for d in &found {
                let mut line = detection_json(d);
                line["item"] = json!(item.key);
                line["title"] = json!(item.title);
                line["link"] = json!(item.link);
                writeln!(out, "{}", json_safe(line.to_string()))?;
            }
            continue;
        }
        let date = item.published.map_or_else(
            || "undated".to_string(),
            |d| d.format("%Y-%m-%d").to_string(),
        );
        writeln!(out, "{date}  {}", terminal_safe(&shorten(&item.title, 100)))?;
        for d in &found {
            writeln!(
                out,
                "    {}  {}  {}  (rule {})  \"{}\"",
                d.state,
                d.treaty,
                d.action,
                d.rule,
                terminal_safe(&shorten(&d.evidence, 140))
            )?;
        }
    }
    if !json {
        writeln!(out, "{} items, {} detections", parsed.items.len(), total)?;
    }
    Ok(Outcome::Success)
}

/// One cue's frame (or why it was dropped), for `--explain`.
fn write_explanation(
    out: &mut dyn Write,
    item: &str,
    e: &Explanation,
    json: bool,
) -> std::io::Result<()> {
    let sentence = item.get(e.evidence_span.clone()).unwrap_or("");
    match &e.outcome {
        ReadAs::Read {
            states,
            agent,
            stage,
            cell,
            treaties,
            kept,
        } => {
            if json {
                let line = json!({
                    "frame": e.rule,
                    "matched": e.matched,
                    "states": states,
                    "agent_class": agent,
                    "stage": stage,
                    "stage_cell": cell,
                    "treaties": treaties,
                    "kept": kept,
                    "evidence": sentence,
                });
                writeln!(out, "{}", json_safe(line.to_string()))
            } else {
                writeln!(
                    out,
                    "frame    {} (rule {}): agent {} [{}], stage {} ({}), object {}{}\n         \"{}\"",
                    terminal_safe(&format!("{:?}", e.matched)),
                    e.rule,
                    states.join("+"),
                    agent.as_deref().unwrap_or("no class named"),
                    stage,
                    cell,
                    treaties.join("+"),
                    if *kept {
                        ""
                    } else {
                        "; outweighed by another reading of the same state and treaty"
                    },
                    terminal_safe(&shorten(sentence, 120))
                )
            }
        }
        ReadAs::Dropped(reason) => {
            if json {
                let line = json!({
                    "dropped": e.rule,
                    "matched": e.matched,
                    "reason": reason,
                    "evidence": sentence,
                });
                writeln!(out, "{}", json_safe(line.to_string()))
            } else {
                writeln!(
                    out,
                    "dropped  {} (rule {}): {}  \"{}\"",
                    terminal_safe(&format!("{:?}", e.matched)),
                    e.rule,
                    reason,
                    terminal_safe(&shorten(sentence, 120))
                )
            }
        }
    }
}

/// One `--json` detection line; `start`/`end` are byte offsets of the
/// evidence in the item text (title, blank line, body).
fn detection_json(d: &crate::classify::Detection) -> serde_json::Value {
    json!({
        "state": d.state,
        "treaty": d.treaty,
        "action": d.action,
        "rule": d.rule,
        "evidence": d.evidence,
        "start": d.span.start,
        "end": d.span.end,
    })
}

fn read_input(args: &ClassifyArgs) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    match args.file.as_deref() {
        None => std::io::stdin().read_to_end(&mut raw)?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut raw)?,
        Some(p) => {
            return std::fs::read(p)
                .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", p.display())));
        }
    };
    Ok(raw)
}
