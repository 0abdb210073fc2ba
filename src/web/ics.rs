//! `/effective.ics`: the expected effective dates of notified withdrawals
//! as an iCalendar (RFC 5545) of all-day events, every state and treaty the
//! status table holds (baselines included), with the armed-conflict caveat
//! in the description where the treaty has one. The date is the one the
//! depositary's notice states when a mailbox delivered it, else the notice
//! period's (`notice::effective_on`, as `status` shows it).
//!
//! Each event's UID names the key and the event that set the status, so a
//! calendar updates an event in place when nothing moved and sees a new one
//! when the notice was given again. DTSTAMP is the notification date: the
//! calendar's bytes change only when the status table does.

use std::fmt::Write as _;

use super::{Cx, Reply, effective_note};
use crate::domain::Status;
use crate::store::StoreError;

pub(super) fn calendar(cx: &Cx<'_>) -> Result<Reply, StoreError> {
    let config = cx.config;
    let projection = cx.store.projection()?;
    let notices = if config.mailboxes.is_empty() {
        Default::default()
    } else {
        crate::depositary::confirm::notices(&cx.store.depositary_notices()?)
    };
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        format!(
            "PRODID:-//treatywatch//treatywatch {}//EN",
            env!("CARGO_PKG_VERSION")
        ),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        "X-WR-CALNAME:treatywatch: withdrawals taking effect".to_string(),
    ];
    for (key, row) in &projection {
        let (state, treaty) = key;
        if row.status != Status::WithdrawalNotified {
            continue;
        }
        let Some(t) = config.treaties.get(treaty) else {
            continue;
        };
        let stated = crate::notice::stated_in(notices.get(key));
        let Some(effective) = crate::notice::effective_on(Some(t), row, stated) else {
            continue;
        };
        let Some(end) = effective.succ_opt() else {
            continue;
        };
        let state_name = config.gazetteer.name_of(state);
        let mut description = format!(
            "{state_name} notified its withdrawal from the {} on {} ({} notice, {}); {}.",
            t.name,
            row.since.format("%Y-%m-%d"),
            t.withdrawal_notice,
            if t.withdrawal_article.is_empty() {
                "the treaty"
            } else {
                &t.withdrawal_article
            },
            effective_note(t, effective, cx.now)
        );
        if t.armed_conflict_clause {
            description.push_str(" treatywatch cannot know who is at war: the date holds only if the state is then not engaged in an armed conflict.");
        }
        if let Some(b) = &row.baseline {
            let _ = write!(description, " Source: {}, as of {}.", b.source, b.as_of);
        } else if let Some(link) = row
            .evidence
            .as_ref()
            .and_then(|e| e.link.as_deref())
            .and_then(crate::text::web_link)
        {
            let _ = write!(description, " Source: {link}");
        }
        let page = cx.url(&format!("state/{state}/{treaty}"));
        lines.extend([
            "BEGIN:VEVENT".to_string(),
            format!(
                "UID:withdrawal-{state}-{treaty}-{}@treatywatch",
                row.since_seq
            ),
            format!("DTSTAMP:{}", row.since.format("%Y%m%dT%H%M%SZ")),
            format!("DTSTART;VALUE=DATE:{}", effective.format("%Y%m%d")),
            format!("DTEND;VALUE=DATE:{}", end.format("%Y%m%d")),
            format!(
                "SUMMARY:{}",
                text(&format!(
                    "{state_name} leaves the {} (expected)",
                    t.short_name
                ))
            ),
            format!("DESCRIPTION:{}", text(&description)),
            format!("URL:{}", text(&page)),
            "TRANSP:TRANSPARENT".to_string(),
            "END:VEVENT".to_string(),
        ]);
    }
    lines.push("END:VCALENDAR".to_string());
    let mut body = String::new();
    for line in &lines {
        fold(&mut body, line);
    }
    let modified = cx.store.last_recorded()?;
    Ok(Reply::ok("text/calendar; charset=utf-8", body).modified(modified))
}

/// A TEXT value (RFC 5545 §3.3.11): backslash, semicolon and comma escaped,
/// line breaks as `\n`, other controls dropped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || crate::text::is_bidi_control(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends `line` folded at 75 octets (RFC 5545 §3.1), never inside a
/// UTF-8 sequence, each physical line ended by CRLF.
fn fold(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(text("a,b;c\\d\ne\u{1b}"), "a\\,b\\;c\\\\d\\ne");
    }

    #[test]
    fn long_lines_fold_at_75_octets() {
        let mut out = String::new();
        let line = format!("DESCRIPTION:{}", "é".repeat(80));
        fold(&mut out, &line);
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(
                physical.len() <= 75,
                "{} octets: {physical}",
                physical.len()
            );
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded.trim_end_matches("\r\n"), line);
    }
}
