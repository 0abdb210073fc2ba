//! `export --format csv|json [--as-of DATE]`: the status table for a
//! spreadsheet. JSON is the status lines of `status --json`; CSV has the
//! same fields, one row per state × treaty (RFC 4180 quoting).

use std::io::Write;

use serde_json::Value;

use super::status::{rows_to_show, status_json};
use super::{Context, Outcome, Result};
use crate::cli::{ExportArgs, ExportFormat};
use crate::text::json_safe;

/// The CSV columns, in order: the fields of a `status --json` line, with
/// the baseline's source and date in columns of their own.
pub const CSV_COLUMNS: &[&str] = &[
    "state",
    "state_name",
    "treaty",
    "treaty_name",
    "status",
    "since",
    "expected_effective",
    "sources",
    "manual",
    "evidence",
    "evidence_link",
    "baseline_source",
    "baseline_as_of",
];

pub(super) fn export(ctx: &Context, args: &ExportArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let store = ctx.read_store(&config)?;
    let projection = super::status::projection_as_of(&store, &config, args.as_of.as_deref())?;
    let rows = rows_to_show(&config, &projection, args.all);
    match args.format {
        ExportFormat::Json => {
            for (key, row) in &rows {
                writeln!(
                    out,
                    "{}",
                    json_safe(status_json(&config, key, *row).to_string())
                )?;
            }
        }
        ExportFormat::Csv => {
            writeln!(out, "{}", CSV_COLUMNS.join(","))?;
            for (key, row) in &rows {
                let v = status_json(&config, key, *row);
                let s = |field: &str| match &v[field] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let sources = v["sources"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let baseline = |field: &str| match &v["baseline"][field] {
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                let cells = [
                    key.0.clone(),
                    config.gazetteer.name_of(&key.0).to_string(),
                    key.1.clone(),
                    config.treaties.name_of(&key.1).to_string(),
                    s("status"),
                    s("since"),
                    s("expected_effective"),
                    sources,
                    s("manual"),
                    s("evidence"),
                    s("evidence_link"),
                    baseline("source"),
                    baseline("as_of"),
                ];
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
    }
    Ok(Outcome::Success)
}

/// One CSV cell: quoted when it holds a comma, quote or line break (RFC
/// 4180), with an apostrophe before a leading `=`, `+`, `-`, `@`, tab or
/// carriage return so a spreadsheet does not run feed text as a formula
/// (OWASP, "CSV injection"). Other control characters become spaces.
pub fn csv_cell(s: &str) -> String {
    let mut cell: String = s
        .chars()
        .filter(|c| !crate::text::is_bidi_control(*c))
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        cell.insert(0, '\'');
    }
    if cell.contains([',', '"', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let check =
            |input: &str, expected: &str| assert_eq!(csv_cell(input), expected, "{input:?}");
        check("plain", "plain");
        check("a,b", "\"a,b\"");
        check("say \"no\"", "\"say \"\"no\"\"\"");
        check(
            "=HYPERLINK(\"http://x\")",
            "\"'=HYPERLINK(\"\"http://x\"\")\"",
        );
        check("+1", "'+1");
        check("-", "'-");
        check("@SUM(A1)", "'@SUM(A1)");
        check("two\nlines", "\"two\nlines\"");
        check("esc\u{1b}[2J", "esc [2J");
        check("2025-06-29T00:00:00+00:00", "2025-06-29T00:00:00+00:00");
    }
}
