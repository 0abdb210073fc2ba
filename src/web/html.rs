//! The pieces every HTML page shares: the page shell with its inline CSS
//! (no JavaScript, no external files, readable on a phone), status colours
//! and safe links. Every piece of feed text passes through `esc`
//! (`text::html_text`) before it reaches a page; a feed's link becomes a
//! link only when it is http(s).

use std::fmt::Write as _;

use crate::domain::Status;
use crate::text::web_link;
pub(super) use crate::text::{html_text as esc, html_text_capped as esc_capped};

/// How many characters of an evidence sentence a page shows.
pub(super) const EVIDENCE_CHARS: usize = 600;
/// How many characters of a title.
pub(super) const TITLE_CHARS: usize = 200;

const CSS: &str = "
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:80rem;padding:0 .75rem 2rem;color:#1b1b1b;background:#fff}
header{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;align-items:baseline;border-bottom:1px solid #ddd;padding:.6rem 0;margin-bottom:.5rem}
header b{font-size:1.15rem}
nav a{margin-right:.9rem}
h1{font-size:1.3rem;margin:.6rem 0}
h2{font-size:1.1rem;margin:1.4rem 0 .4rem}
a{color:#0b4f9c}
.wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse}
.grid th,.grid td{border:2px solid #fff;padding:.3rem .45rem;text-align:left;vertical-align:top}
.grid thead th{background:#f1f1f1;font-size:.85rem;font-weight:600}
.grid tbody th{position:sticky;left:0;background:#f7f7f7;white-space:nowrap;font-weight:600}
.grid td{padding:0}
.grid td a{display:block;padding:.3rem .45rem;color:inherit;text-decoration:none;min-width:7rem}
.grid td a:hover,.grid td a:focus{outline:2px solid #1b1b1b;outline-offset:-2px}
.grid small{display:block;opacity:.85;font-size:.78rem;white-space:nowrap}
.list td,.list th{border-bottom:1px solid #e5e5e5;padding:.35rem .5rem;text-align:left;vertical-align:top}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.25rem}
.s-unknown{background:#ebebeb;color:#555}
.s-non_party{background:#f6f6f6;color:#444}
.s-signatory{background:#d6e6fb}
.s-party{background:#c4efcf}
.s-withdrawal_announced{background:#fbeea0}
.s-withdrawal_approved{background:#fdd09b}
.s-withdrawal_notified{background:#f7a1a1}
.s-withdrawn{background:#7a1f1f;color:#fff}
form{display:flex;flex-wrap:wrap;gap:.5rem .8rem;align-items:end;margin:.6rem 0}
label{display:flex;flex-direction:column;font-size:.85rem}
select,input,button{font:inherit;padding:.2rem .3rem}
select{max-width:15rem}
blockquote{margin:.3rem 0 .3rem .2rem;padding-left:.6rem;border-left:3px solid #c9c9c9}
ol.events,ul.changes{list-style:none;padding:0;margin:0}
ol.events>li,ul.changes>li{border-top:1px solid #e8e8e8;padding:.5rem 0}
.meta{color:#555;font-size:.82rem}
.retracted{text-decoration:line-through;opacity:.65}
.tag{font-size:.75rem;background:#eee;border-radius:.2rem;padding:0 .3rem;margin-left:.3rem}
.caveat{background:#fff6db;border-left:3px solid #e0b000;padding:.4rem .6rem}
.bad{color:#9b1c1c;font-weight:600}
.legend span{margin:0 .4rem .3rem 0}
@media (max-width:40rem){body{font-size:14px}.grid td a{min-width:5.5rem}header{display:block}}
";

/// A whole page: `title` is plain text, `body` HTML already escaped.
pub(super) fn page(title: &str, body: &str) -> String {
    let mut html = String::with_capacity(body.len() + CSS.len() + 600);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"alternate\" type=\"application/atom+xml\" title=\"Status changes\" href=\"/changes.atom\">\
         <style>{CSS}</style></head><body>\
         <header><b>treatywatch</b><nav><a href=\"/\">Board</a><a href=\"/feeds\">Feeds</a>\
         <a href=\"/changes.atom\">Atom</a><a href=\"/effective.ics\">Calendar</a>\
         <a href=\"/api/status\">JSON</a></nav></header>\n{body}\n</body></html>\n",
        esc(title)
    );
    html
}

/// The CSS class colouring a status.
pub(super) fn status_class(status: Status) -> String {
    format!("s-{}", status.as_str())
}

/// A status as a coloured badge.
pub(super) fn badge(status: Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(status),
        esc(&status.label())
    )
}

/// `text_html` (already escaped) linking to a feed's `url` when that is an
/// http(s) URL; otherwise the text alone, with the refused link shown as
/// text so a reader can judge it.
pub(super) fn feed_link(url: &str, text_html: &str) -> String {
    match web_link(url) {
        Some(u) => format!(
            "<a href=\"{}\" rel=\"nofollow noopener noreferrer\">{text_html}</a>",
            esc(u.as_str())
        ),
        None => format!(
            "{text_html} <span class=\"meta\">({})</span>",
            esc_capped(url, 200)
        ),
    }
}

/// "2025-06-29"
pub(super) fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// "2025-06-29 14:05 UTC"
pub(super) fn minute(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_links_become_links() {
        assert_eq!(
            feed_link("https://e.org/a?b=1&c=\"", "x"),
            "<a href=\"https://e.org/a?b=1&amp;c=%22\" rel=\"nofollow noopener noreferrer\">x</a>"
        );
        let refused = feed_link("javascript:alert(1)", "x");
        assert!(!refused.contains("<a "), "{refused}");
        assert!(refused.contains("javascript:alert(1)"), "{refused}");
        assert!(!feed_link("\"><script>", "x").contains("<script>"));
    }

    #[test]
    fn the_page_escapes_its_title() {
        let p = page("<b>x</b>", "<p>body</p>");
        assert!(p.contains("<title>&lt;b&gt;x&lt;/b&gt;</title>"));
        assert!(p.contains("<p>body</p>"));
        assert!(!p.contains("<script"));
    }
}
