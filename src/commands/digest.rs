//! `digest`: show what would be mailed (`--preview`, the default) or send it
//! now (`--send`). Preview changes nothing; send records due notice-period
//! effects first, then flushes the outbox as `poll` does at its end.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{CommandError, Context, Outcome, Result};
use crate::cli::DigestArgs;
use crate::config::Config;
use crate::notice::{self, Effect, HeldEffect};
use crate::notify::{self, Flush, PreviewState};
use crate::text::{terminal_safe, terminal_safe_block};

pub(super) fn digest(ctx: &Context, args: &DigestArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let now = Utc::now();
    if args.send {
        send(ctx, &config, now, out)
    } else {
        preview(ctx, &config, now, args.html.as_deref(), out)
    }
}

/// FILE for the first digest, FILE-2.EXT for the second, …
fn numbered(path: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{}.{}", index + 1, ext.to_string_lossy()),
        None => format!("{stem}-{}", index + 1),
    };
    path.with_file_name(name)
}

fn preview(
    ctx: &Context,
    config: &Config,
    now: DateTime<Utc>,
    html: Option<&Path>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let store = ctx.read_store(config)?;
    let previews = notify::preview(&store, config, now)?;
    if previews.is_empty() {
        writeln!(
            out,
            "nothing pending: no status change or source alert is waiting to be mailed"
        )?;
    }
    for (i, p) in previews.iter().enumerate() {
        if i > 0 {
            writeln!(out, "{}", "=".repeat(72))?;
        }
        writeln!(out, "To: {}", terminal_safe(&p.recipients.join(", ")))?;
        writeln!(out, "Subject: {}", terminal_safe(&p.digest.subject))?;
        let state = match &p.state {
            PreviewState::Waiting { due_at } if *due_at <= now => "due now".to_string(),
            PreviewState::Waiting { due_at } => {
                format!(
                    "waiting for the debounce window until {}",
                    fmt_time(*due_at)
                )
            }
            PreviewState::Retry {
                attempts,
                next_attempt_at,
                last_error,
            } => format!(
                "not delivered after {attempts} attempt{}; next attempt {}{}",
                if *attempts == 1 { "" } else { "s" },
                fmt_time(*next_attempt_at),
                last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
        };
        writeln!(out, "Status: {}\n", terminal_safe(&state))?;
        write!(out, "{}", terminal_safe_block(&p.digest.text))?;
        if let Some(path) = &html {
            let path = numbered(path, i);
            std::fs::write(&path, &p.digest.html).map_err(|e| {
                CommandError::Usage(format!(
                    "cannot write the HTML part to {}: {e}; pass --html a path in a folder you can write",
                    path.display()
                ))
            })?;
            writeln!(out, "(HTML part written to {})", path.display())?;
        }
    }
    let projection = store.projection()?;
    let stated = notice::stated_effects(&store, config, &projection)?;
    let due: Vec<Effect> = notice::due_effects(&projection, &config.treaties, &stated, now);
    for effect in &due {
        match effect {
            Effect::Record(e) => {
                if let Some((state, treaty)) = e.body.key() {
                    writeln!(
                        out,
                        "\nnot yet recorded: {state} {treaty} notice period ran out on {}; `digest --send` or the next poll records the withdrawal as effective",
                        e.occurred_at.format("%Y-%m-%d")
                    )?;
                }
            }
            Effect::Held(h) => writeln!(out, "\n{}", held_line(h))?,
        }
    }
    Ok(Outcome::Success)
}

fn send(
    ctx: &Context,
    config: &Config,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let mut store = ctx.store(config)?;
    let effects = notice::record_due_effects(&mut store, config, now)?;
    for change in &effects.appended.changes {
        if let Some((state, treaty)) = change.body.key() {
            writeln!(
                out,
                "recorded: {state} {treaty} withdrawal effective (notice period), event #{}",
                change.seq
            )?;
        }
    }
    for h in &effects.held {
        writeln!(out, "{}", held_line(h))?;
    }
    let report = notify::run_pending(&mut store, config, now, Flush::Now)?;
    for s in &report.sent {
        writeln!(
            out,
            "sent {} to {}: {} ({} change{})",
            s.message_id,
            s.recipient,
            terminal_safe(&s.subject),
            s.changes,
            if s.changes == 1 { "" } else { "s" }
        )?;
    }
    for f in &report.failed {
        writeln!(
            out,
            "NOT sent to {}{}: {}{}",
            f.recipient,
            f.message_id
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            terminal_safe(&f.error),
            f.next_attempt_at
                .map(|t| format!("; kept, next attempt {}", fmt_time(t)))
                .unwrap_or_default()
        )?;
    }
    if report.sent.is_empty() && report.failed.is_empty() {
        writeln!(out, "nothing to send")?;
    }
    Ok(if report.failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Findings
    })
}

fn held_line(h: &HeldEffect) -> String {
    format!(
        "held: {} {} notified {}, notice period ran out on {}, but the treaty's armed-conflict clause may delay the effect; not marked withdrawn (confirm with `treatywatch assert {} {} withdrawn --note …`)",
        h.state, h.treaty, h.notified, h.effective, h.state, h.treaty
    )
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
