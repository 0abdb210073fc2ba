//! The HTML part of a digest, written for mail clients: one centred table,
//! inline styles only (clients drop `<style>` and classes), no scripts, no
//! remote images. What changed comes first, old → new with the new status
//! coloured by stage, the evidence as a quote, then corrections, waiting
//! reports, where things stand and alerts.
//!
//! Everything from a feed is escaped here (`escape`), and only http(s)
//! links become links (`web_link`).

use std::fmt::Write as _;

use super::{
    Item, MAX_EVIDENCE_CHARS, MAX_LINK_CHARS, MAX_TITLE_CHARS, Parts, brief_line, brief_note,
    capped, clean, confidence, correction_lines, escape, waiting_line, was, web_link,
};
use crate::domain::{Status, StatusChange};

const FONT: &str = "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif";
const MUTED: &str = "color:#6b7280;font-size:13px";

/// (background, text) colours of a status badge: green for membership,
/// amber to red as a withdrawal advances, grey for outside or unknown.
fn colours(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Party => ("#dcfce7", "#166534"),
        Status::Signatory => ("#dbeafe", "#1e40af"),
        Status::WithdrawalAnnounced => ("#fef3c7", "#92400e"),
        Status::WithdrawalApproved => ("#ffedd5", "#9a3412"),
        Status::WithdrawalNotified => ("#fee2e2", "#991b1b"),
        Status::Withdrawn => ("#fecaca", "#7f1d1d"),
        Status::NonParty | Status::Unknown => ("#f3f4f6", "#374151"),
    }
}

fn badge(status: Status, text: &str) -> String {
    let (bg, fg) = colours(status);
    format!(
        "<span style=\"display:inline-block;padding:2px 8px;border-radius:10px;background:{bg};color:{fg};font-weight:600\">{}</span>",
        escape(text)
    )
}

/// A section heading row.
fn section(h: &mut String, title: &str) {
    let _ = writeln!(
        h,
        "<tr><td style=\"padding:18px 24px 4px;font-size:12px;letter-spacing:.06em;text-transform:uppercase;color:#6b7280;font-weight:700\">{}</td></tr>",
        escape(title)
    );
}

/// One block of a section.
fn block(h: &mut String, accent: &str, body: &str) {
    let _ = writeln!(
        h,
        "<tr><td style=\"padding:10px 24px\"><div style=\"border-left:4px solid {accent};padding:4px 0 4px 12px\">{body}</div></td></tr>"
    );
}

pub(super) fn render(p: &Parts<'_>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title></head>\n<body style=\"margin:0;padding:0;background:#f3f4f6\">\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f3f4f6\"><tr><td align=\"center\" style=\"padding:20px 8px\">\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:680px;background:#ffffff;border-radius:8px;{FONT};color:#111827;line-height:1.45\">\n<tr><td style=\"padding:20px 24px 12px;border-bottom:1px solid #e5e7eb\"><div style=\"{MUTED};text-transform:uppercase;letter-spacing:.06em\">treatywatch</div><h1 style=\"margin:4px 0 0;font-size:21px\">{}</h1></td></tr>\n",
        escape(&p.subject),
        escape(&p.headline),
    );
    if !p.resent.items.is_empty() {
        section(&mut h, "Not delivered earlier");
        let mut body = String::new();
        for note in &p.resent.notes {
            let _ = write!(body, "<p style=\"margin:0 0 6px\">{}</p>", escape(note));
        }
        body.push_str("<ul style=\"margin:0;padding-left:18px\">");
        for i in &p.resent.items {
            let _ = write!(body, "<li>{}</li>", escape(&brief_line(&p.names, i)));
        }
        body.push_str("</ul>");
        block(&mut h, "#9ca3af", &body);
    }
    let brief = brief_note(p.form, p.items.len());
    if let Some((note, _)) = &brief {
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:12px 24px 0\"><p style=\"margin:0;{MUTED}\"><em>{}</em></p></td></tr>",
            escape(note)
        );
    }
    let listed = brief.as_ref().map_or(p.items.len(), |(_, n)| *n);
    if !p.items.is_empty() {
        section(&mut h, "What changed");
    }
    for i in p.items.iter().take(listed) {
        change(&mut h, p, i, brief.is_none());
    }
    if !p.corrections.is_empty() {
        section(&mut h, "Corrections");
        for i in &p.corrections {
            let c = i.change;
            let mut body = format!(
                "<div style=\"font-size:16px;font-weight:600\">{} · {} <span style=\"{MUTED};font-weight:400\">correction of the record, not news</span></div>",
                escape(p.names.state(&c.state)),
                escape(p.names.treaty(&c.treaty)),
            );
            for line in correction_lines(c) {
                let _ = write!(body, "<p style=\"margin:4px 0\">{}</p>", escape(&line));
            }
            block(&mut h, "#6366f1", &body);
        }
    }
    if !p.waiting.is_empty() {
        section(&mut h, "Reported, not yet confirmed");
        for w in &p.waiting {
            let mut body = format!(
                "<p style=\"margin:0\">{}</p>",
                escape(&waiting_line(&p.names, w))
            );
            if brief.is_none() {
                let _ = write!(
                    body,
                    "<p style=\"margin:4px 0 0;color:#374151\"><em>“{}”</em></p>",
                    escape(&capped(&w.report.evidence.sentence, MAX_EVIDENCE_CHARS))
                );
            }
            block(&mut h, "#d1d5db", &body);
        }
    }
    for (treaty, rows) in &p.standings {
        section(&mut h, &format!("Where things stand — {treaty}"));
        let _ = writeln!(
            h,
            "<tr><td style=\"padding:6px 24px 10px\"><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"border-collapse:collapse;font-size:14px\">"
        );
        for r in rows {
            let (bg, _) = colours(r.status);
            let _ = writeln!(
                h,
                "<tr><td style=\"padding:5px 10px 5px 0;border-bottom:1px solid #f3f4f6;white-space:nowrap;vertical-align:top\"><span style=\"display:inline-block;width:10px;height:10px;border-radius:5px;background:{bg};border:1px solid #9ca3af\"></span> {}</td><td style=\"padding:5px 0;border-bottom:1px solid #f3f4f6\">{}</td></tr>",
                escape(&r.state),
                escape(&r.text)
            );
        }
        h.push_str("</table></td></tr>\n");
    }
    for (title, delivery) in [("Source health", false), ("Delivery", true)] {
        let mut alerts = p
            .alerts
            .iter()
            .filter(|a| a.delivery == delivery)
            .peekable();
        if alerts.peek().is_none() {
            continue;
        }
        section(&mut h, title);
        for a in alerts {
            let mut body = format!(
                "<div style=\"font-weight:600\">{}</div>",
                escape(&a.heading)
            );
            for line in &a.lines {
                let _ = write!(body, "<p style=\"margin:4px 0\">{}</p>", escape(line));
            }
            if let Some(url) = &a.url {
                let shown = escape(&clean(url));
                let _ = match web_link(url) {
                    Some(u) => write!(
                        body,
                        "<p style=\"margin:4px 0;{MUTED}\">Feed url: <a href=\"{}\" style=\"color:#1d4ed8\">{shown}</a></p>",
                        escape(u.as_str())
                    ),
                    None => write!(
                        body,
                        "<p style=\"margin:4px 0;{MUTED}\">Feed url: {shown}</p>"
                    ),
                };
            }
            block(&mut h, "#f59e0b", &body);
        }
    }
    let _ = write!(
        h,
        "<tr><td style=\"padding:16px 24px 20px;border-top:1px solid #e5e7eb;{MUTED}\">"
    );
    for line in &p.footer {
        let _ = write!(h, "<p style=\"margin:0 0 6px\">{}</p>", escape(line));
    }
    let _ = write!(
        h,
        "<p style=\"margin:0\">treatywatch, {}</p></td></tr>\n</table>\n</td></tr></table>\n</body></html>\n",
        p.now.format("%Y-%m-%d %H:%M UTC")
    );
    h
}

/// One change: who and what, old → new, the evidence, how sure.
fn change(h: &mut String, p: &Parts<'_>, i: &Item<'_>, full: bool) {
    let c = i.change;
    let (_, accent) = colours(c.to);
    let mut body = format!(
        "<div style=\"font-size:16px;font-weight:600\">{} · {}</div>\n<div style=\"margin:6px 0\"><span style=\"color:#4b5563\">{}</span> → {} <span style=\"{MUTED}\">{}</span></div>\n",
        escape(p.names.state(&c.state)),
        escape(p.names.treaty(&c.treaty)),
        escape(&was(c)),
        badge(c.to, &c.to.label()),
        i.occurred_at.format("%Y-%m-%d"),
    );
    if full {
        evidence(&mut body, c);
    }
    let _ = write!(
        body,
        "<p style=\"margin:6px 0 0;{MUTED}\">{}<br>Wrong? <code>treatywatch retract {} --note \"why\"</code></p>",
        escape(&confidence(
            &p.names,
            c,
            p.depositary.get(&i.seq).map(String::as_str)
        )),
        c.cause_seq
    );
    block(h, accent, &body);
}

fn evidence(body: &mut String, c: &StatusChange) {
    let Some(ev) = &c.evidence else {
        return;
    };
    let _ = writeln!(
        body,
        "<blockquote style=\"margin:8px 0;padding:8px 12px;background:#f9fafb;border-radius:4px;color:#1f2937\">{}</blockquote>",
        escape(&capped(&ev.sentence, MAX_EVIDENCE_CHARS))
    );
    let title = ev
        .title
        .as_deref()
        .map(|t| escape(&capped(t, MAX_TITLE_CHARS)));
    // A link too long to show whole is shown cut, never linked.
    let linkable = ev
        .link
        .as_deref()
        .filter(|l| l.chars().count() <= MAX_LINK_CHARS)
        .and_then(web_link);
    let source = match (linkable, title) {
        (Some(url), title) => Some(format!(
            "<a href=\"{}\" style=\"color:#1d4ed8\">{}</a>",
            escape(url.as_str()),
            title.unwrap_or_else(|| escape(url.as_str()))
        )),
        (None, Some(title)) => Some(match ev.link.as_deref() {
            Some(link) => format!("{title} ({})", escape(&capped(link, MAX_LINK_CHARS))),
            None => title,
        }),
        (None, None) => ev
            .link
            .as_deref()
            .map(|l| escape(&capped(l, MAX_LINK_CHARS))),
    };
    if let Some(source) = source {
        let _ = writeln!(
            body,
            "<p style=\"margin:4px 0;font-size:14px\">Source: {source}</p>"
        );
    }
}
