//! The HTML pages: the status board (`/`: states × treaties coloured by
//! status, filters, `?as_of=`, recent changes), a key's history
//! (`/state/UKR/ottawa`: every event with its dates, evidence and source,
//! the digests that reported it, the expected effective date and its
//! caveat) and feed health (`/feeds`). Server-rendered, no JavaScript.
//! With a `[[mailbox]]`, each stage says what the depositary said of it, in
//! the words `status` uses (`depositary::confirm::standing`).
//!
//! Digest recipients are never shown: a board may be read by more people
//! than the mail goes to.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use hyper::StatusCode;

use super::html::{
    EVIDENCE_CHARS, TITLE_CHARS, badge, day, esc, esc_capped, feed_link, minute, page, status_class,
};
use super::{Cx, Reply, effective_note, effective_sentence};
use crate::config::Config;
use crate::depositary::confirm::{self, Confirmation};
use crate::domain::{EventBody, Key, Projection, Status, StatusChange, StatusRow, StoredEvent};
use crate::store::{ChangeFilter, StoreError};

/// Status changes listed under "Recent changes".
const RECENT: usize = 20;
/// Changes read at a time, and at most, to find `RECENT` that pass a
/// filter of several states or treaties.
const RECENT_PAGE: usize = 50;
const RECENT_SCAN: usize = 2_000;

/// The states and treaties a page shows: `?state=` and `?treaty=` (repeated
/// or comma-separated; any known code), else the tracked ones.
fn selection(cx: &Cx<'_>) -> Result<(Vec<String>, Vec<String>), Reply> {
    let states: Vec<String> = cx
        .query
        .list("state")
        .into_iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    let treaties = cx.query.list("treaty");
    for s in &states {
        cx.state(s).map_err(|r| Reply {
            status: StatusCode::BAD_REQUEST,
            ..r
        })?;
    }
    for t in &treaties {
        cx.treaty(t).map_err(|r| Reply {
            status: StatusCode::BAD_REQUEST,
            ..r
        })?;
    }
    let or = |chosen: Vec<String>, tracked: &[String]| {
        if chosen.is_empty() {
            tracked.to_vec()
        } else {
            chosen
        }
    };
    Ok((
        or(states, &cx.config.tracking.states),
        or(treaties, &cx.config.tracking.treaties),
    ))
}

/// News status changes among `states` × `treaties`, newest first. Read a
/// page at a time: most selections match most changes, so the first page
/// usually suffices, and a narrow one stops after `RECENT_SCAN`.
fn recent(
    cx: &Cx<'_>,
    states: &[String],
    treaties: &[String],
    until: Option<DateTime<Utc>>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut filter = ChangeFilter {
        state: (states.len() == 1).then(|| states[0].as_str()),
        treaty: (treaties.len() == 1).then(|| treaties[0].as_str()),
        until,
        news_only: true,
        before_seq: None,
    };
    let mut found = Vec::with_capacity(RECENT);
    let mut scanned = 0;
    while found.len() < RECENT && scanned < RECENT_SCAN {
        let page = cx.store.status_changes(&filter, RECENT_PAGE)?;
        let Some(last) = page.last() else { break };
        filter.before_seq = Some(last.seq);
        scanned += page.len();
        let full = page.len() == RECENT_PAGE;
        found.extend(page.into_iter().filter(|e| {
            e.body.key().is_some_and(|(s, t)| {
                states.iter().any(|x| x == s) && treaties.iter().any(|x| x == t)
            })
        }));
        if !full {
            break;
        }
    }
    found.truncate(RECENT);
    Ok(found)
}

/// `/`: the board.
pub(super) fn board(cx: &Cx<'_>) -> Result<Reply, StoreError> {
    let as_of = match cx.as_of() {
        Ok(a) => a,
        Err(reply) => return Ok(reply),
    };
    let (states, treaties) = match selection(cx) {
        Ok(s) => s,
        Err(reply) => return Ok(reply),
    };
    let projection = match as_of {
        Some(t) => cx.store.rebuild(&cx.policy(), Some(t))?,
        None => cx.store.projection()?,
    };
    let changes = recent(cx, &states, &treaties, as_of)?;
    // What the depositary confirmed is shown for the board as it is now.
    let notices = if as_of.is_none() && !cx.config.mailboxes.is_empty() {
        confirm::notices(&cx.store.depositary_notices()?)
    } else {
        BTreeMap::new()
    };
    let body = render_board(
        cx.config,
        &projection,
        &notices,
        &states,
        &treaties,
        &changes,
        as_of,
        cx,
    );
    Ok(Reply::html(page("treatywatch: treaty status board", &body)))
}

#[allow(clippy::too_many_arguments)]
fn render_board(
    config: &Config,
    projection: &Projection,
    notices: &BTreeMap<Key, Vec<(Confirmation, String)>>,
    states: &[String],
    treaties: &[String],
    changes: &[StoredEvent],
    as_of: Option<DateTime<Utc>>,
    cx: &Cx<'_>,
) -> String {
    let mut h = String::with_capacity(256 * states.len() * treaties.len().max(1) + 4096);
    match as_of {
        Some(t) => {
            let _ = write!(
                h,
                "<h1>Treaty status as it stood on {}</h1><p class=\"meta\">Folded from what the log held by the end of that day (UTC); retractions apply whatever their date. <a href=\"/\">Now</a></p>",
                esc(&day(t))
            );
        }
        None => h.push_str("<h1>Treaty status</h1>"),
    }
    filter_form(config, &mut h, cx, as_of);
    h.push_str("<div class=\"wrap\"><table class=\"grid\"><thead><tr><th scope=\"col\">State</th>");
    for t in treaties {
        let name = config.treaties.name_of(t);
        let _ = write!(
            h,
            "<th scope=\"col\"><a href=\"/treaty/{id}.atom\" title=\"Atom feed of {full}\">{name}</a></th>",
            id = esc(t),
            full = esc(config
                .treaties
                .get(t)
                .map_or(t.as_str(), |x| x.name.as_str())),
            name = esc(name)
        );
    }
    h.push_str("</tr></thead><tbody>\n");
    for s in states {
        let _ = write!(
            h,
            "<tr><th scope=\"row\"><a href=\"/state/{code}.atom\" title=\"Atom feed of {name}\">{name}</a> <small>{code}</small></th>",
            code = esc(s),
            name = esc(config.gazetteer.name_of(s))
        );
        for t in treaties {
            let key = (s.clone(), t.clone());
            let row = projection.get(&key);
            let standing = row
                .and_then(|r| stage_standing(config, notices.get(&key), t, r.status, from_news(r)));
            let stated = crate::notice::stated_in(notices.get(&key));
            let said = Said {
                standing: standing.as_deref(),
                stated,
            };
            cell(config, &mut h, s, t, row, said, cx.now);
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>");
    legend(&mut h);
    h.push_str("<h2>Recent changes</h2>");
    if changes.is_empty() {
        h.push_str("<p class=\"meta\">No status change in the news yet for this selection.</p>");
    } else {
        h.push_str("<ul class=\"changes\">");
        for e in changes {
            if let EventBody::StatusChanged(c) = &e.body {
                change_item(config, &mut h, e, c);
            }
        }
        h.push_str("</ul>");
    }
    h.push_str("<p class=\"meta\">History (the membership baseline, old items, reclassify) is left out of recent changes and feeds; each cell's page has it all. <a href=\"/feeds\">Feed health</a>.</p>");
    h
}

fn filter_form(config: &Config, h: &mut String, cx: &Cx<'_>, as_of: Option<DateTime<Utc>>) {
    let chosen_state = cx
        .query
        .list("state")
        .first()
        .map(|s| s.to_ascii_uppercase());
    let chosen_treaty = cx.query.list("treaty").first().cloned();
    h.push_str("<form method=\"get\" action=\"/\"><label>State<select name=\"state\"><option value=\"\">tracked states</option>");
    for s in &config.gazetteer.states {
        let _ = write!(
            h,
            "<option value=\"{code}\"{sel}>{name}</option>",
            code = esc(&s.code),
            sel = if chosen_state.as_deref() == Some(s.code.as_str()) {
                " selected"
            } else {
                ""
            },
            name = esc(&s.name)
        );
    }
    h.push_str("</select></label><label>Treaty<select name=\"treaty\"><option value=\"\">tracked treaties</option>");
    for t in &config.treaties.list {
        let _ = write!(
            h,
            "<option value=\"{id}\"{sel}>{name}</option>",
            id = esc(&t.id),
            sel = if chosen_treaty.as_deref() == Some(t.id.as_str()) {
                " selected"
            } else {
                ""
            },
            name = esc(&t.short_name)
        );
    }
    let _ = write!(
        h,
        "</select></label><label>As of<input type=\"date\" name=\"as_of\" value=\"{}\"></label><button type=\"submit\">Show</button> <a href=\"/\">reset</a></form>",
        as_of.map(day).unwrap_or_default()
    );
}

/// What a cell says: the status, since when, and the expected effective
/// date of a notified withdrawal.
/// What the depositary says of `status` on `treaty`, given the key's
/// notices; `None` where no configured depositary can say.
fn stage_standing(
    config: &Config,
    notices: Option<&Vec<(Confirmation, String)>>,
    treaty: &str,
    status: Status,
    from_news: bool,
) -> Option<String> {
    let confirmation = notices.and_then(|n| confirm::confirmation_of(n, status));
    confirm::standing(
        confirmation,
        crate::depositary::covered(config, treaty),
        from_news,
    )
    .map(|s| s.to_string())
}

/// What the depositary said of a cell: its standing's words and the
/// effective date its notice states.
#[derive(Clone, Copy)]
struct Said<'a> {
    standing: Option<&'a str>,
    stated: Option<chrono::NaiveDate>,
}

/// Whether a row's status came from the news (not the baseline, not an analyst).
fn from_news(r: &StatusRow) -> bool {
    r.baseline.is_none() && !r.manual
}

fn cell(
    config: &Config,
    h: &mut String,
    state: &str,
    treaty: &str,
    row: Option<&StatusRow>,
    depositary: Said<'_>,
    now: DateTime<Utc>,
) {
    let Said { standing, stated } = depositary;
    let status = row.map_or(Status::Unknown, |r| r.status);
    let mut detail = String::new();
    let mut title = format!(
        "{} · {}: {}",
        config.gazetteer.name_of(state),
        config.treaties.name_of(treaty),
        status.label()
    );
    if let Some(r) = row {
        let since = match &r.baseline {
            Some(b) => b.since.map(|d| d.to_string()),
            None => Some(day(r.since)),
        };
        if let Some(since) = since {
            let _ = write!(detail, "<small>since {}</small>", esc(&since));
        }
        if let Some(t) = config.treaties.get(treaty)
            && let Some(effective) = crate::notice::effective_on(Some(t), r, stated)
        {
            let war = if t.armed_conflict_clause {
                " unless at war"
            } else {
                ""
            };
            let _ = write!(detail, "<small>effective {effective}{war}</small>");
            title.push_str(&format!("; {}", effective_note(t, effective, now)));
        }
        if r.manual {
            detail.push_str("<small>set by an analyst</small>");
        } else if r.baseline.is_some() {
            detail.push_str("<small>baseline</small>");
        }
        if let Some(standing) = standing {
            // The cell has room for the gist; its title has the notice.
            let gist = if standing.starts_with("confirmed") {
                "confirmed"
            } else {
                "news only"
            };
            let _ = write!(detail, "<small>{gist}</small>");
            title.push_str(&format!("; {standing}"));
        }
    }
    let _ = write!(
        h,
        "<td class=\"{class}\"><a href=\"/state/{s}/{t}\" title=\"{title}\">{label}{detail}</a></td>",
        class = status_class(status),
        s = esc(state),
        t = esc(treaty),
        title = esc(&title),
        label = esc(&status.label()),
    );
}

fn legend(h: &mut String) {
    h.push_str("<p class=\"legend meta\">");
    for s in Status::ALL {
        h.push_str(&badge(*s));
    }
    h.push_str("</p>");
}

/// One line of "Recent changes".
fn change_item(config: &Config, h: &mut String, e: &StoredEvent, c: &StatusChange) {
    let _ = write!(
        h,
        "<li><time datetime=\"{dt}\">{day}</time> <a href=\"/state/{s}/{t}#e{seq}\">{state} · {treaty}</a>: {from} → {to}",
        dt = e.occurred_at.to_rfc3339(),
        day = day(e.occurred_at),
        s = esc(&c.state),
        t = esc(&c.treaty),
        seq = e.seq,
        state = esc(config.gazetteer.name_of(&c.state)),
        treaty = esc(config.treaties.name_of(&c.treaty)),
        from = badge(c.from),
        to = badge(c.to),
    );
    if let Some(ev) = &c.evidence {
        let _ = write!(
            h,
            "<blockquote>{}</blockquote>",
            esc_capped(&ev.sentence, EVIDENCE_CHARS)
        );
        if let Some(link) = &ev.link {
            let text = esc_capped(ev.title.as_deref().unwrap_or("source"), TITLE_CHARS);
            let _ = write!(h, "<div class=\"meta\">{}</div>", feed_link(link, &text));
        }
    }
    h.push_str("</li>");
}

/// `/state/{CODE}/{treaty}`: everything the log knows about one key.
pub(super) fn history(cx: &Cx<'_>, state: &str, treaty: &str) -> Result<Reply, StoreError> {
    if let Err(reply) = cx.state(state) {
        return Ok(reply);
    }
    let t = match cx.treaty(treaty) {
        Ok(t) => t,
        Err(reply) => return Ok(reply),
    };
    let projection = cx.store.projection()?;
    let row = projection.get(&(state.to_string(), treaty.to_string()));
    let events = cx.store.key_events(state, treaty)?;
    let digests = cx.store.key_digests(state, treaty)?;
    let config = cx.config;
    let state_name = config.gazetteer.name_of(state);
    let mut h = String::with_capacity(4096 + events.len() * 600);
    let _ = write!(
        h,
        "<h1>{} · {}</h1><p class=\"meta\">{} ({}); depositary: {}; withdrawal: {} ({} notice).</p>",
        esc(state_name),
        esc(&t.name),
        esc(state),
        esc(&t.id),
        esc(&t.depositary),
        esc(if t.withdrawal_article.is_empty() {
            "no clause"
        } else {
            &t.withdrawal_article
        }),
        t.withdrawal_notice
    );
    let notices = confirm::notices(&events);
    let notices = notices.get(&(state.to_string(), treaty.to_string()));
    let standing =
        row.and_then(|r| stage_standing(config, notices, treaty, r.status, from_news(r)));
    let stated = crate::notice::stated_in(notices);
    current(&mut h, t, row, standing.as_deref(), stated, cx.now);
    let _ = write!(
        h,
        "<p class=\"meta\">Feeds: <a href=\"/state/{s}.atom\">{sn}</a> · <a href=\"/treaty/{t}.atom\">{tn}</a> · JSON: <a href=\"/api/state/{s}/{t}\">/api/state/{s}/{t}</a></p>",
        s = esc(state),
        t = esc(&t.id),
        sn = esc(state_name),
        tn = esc(&t.short_name),
    );
    h.push_str("<h2>History</h2>");
    if events.is_empty() {
        h.push_str("<p class=\"meta\">The log holds nothing about this state and treaty: its status is unknown.</p>");
    }
    let retracted: HashMap<i64, i64> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Retracted(r) => Some((r.target_seq, e.seq)),
            _ => None,
        })
        .collect();
    let mut all: Vec<&StoredEvent> = events.iter().chain(digests.iter()).collect();
    all.sort_by_key(|e| e.seq);
    h.push_str("<ol class=\"events\">");
    let by_seq: HashMap<i64, &StoredEvent> = events.iter().map(|e| (e.seq, e)).collect();
    for e in all {
        // A stage from the news, unless the baseline or an analyst caused it.
        let standing = match &e.body {
            EventBody::StatusChanged(c) => {
                let news = c.correction.is_none()
                    && by_seq
                        .get(&c.cause_seq)
                        .is_some_and(|cause| matches!(cause.body, EventBody::Detection(_)));
                stage_standing(config, notices, treaty, c.to, news)
            }
            _ => None,
        };
        event_item(
            &mut h,
            e,
            retracted.get(&e.seq).copied(),
            t,
            standing.as_deref(),
            cx.now,
        );
    }
    h.push_str("</ol>");
    Ok(Reply::html(page(
        &format!("{state_name} · {}: treatywatch", t.short_name),
        &h,
    )))
}

/// The current status of a key, with its evidence and, for a notified
/// withdrawal, the expected effective date and its caveat.
fn current(
    h: &mut String,
    t: &crate::config::Treaty,
    row: Option<&StatusRow>,
    standing: Option<&str>,
    stated: Option<chrono::NaiveDate>,
    now: DateTime<Utc>,
) {
    let Some(r) = row else {
        let _ = write!(h, "<p>Status: {}</p>", badge(Status::Unknown));
        return;
    };
    let since = match &r.baseline {
        Some(b) => esc(&b.describe()),
        None => format!("since {}", esc(&day(r.since))),
    };
    let _ = write!(h, "<p>Status: {} {since}", badge(r.status));
    if r.manual {
        h.push_str(" <span class=\"tag\">set by an analyst</span>");
    }
    let _ = write!(
        h,
        " <span class=\"meta\">(sources: {}; event <a href=\"#e{seq}\">#{seq}</a>)</span></p>",
        esc(&r.sources.join(", ")),
        seq = r.since_seq
    );
    if let Some(standing) = standing {
        let _ = write!(
            h,
            "<p class=\"depositary\">Depositary: {}</p>",
            esc(standing)
        );
    }
    if let Some(effective) = crate::notice::effective_on(Some(t), r, stated) {
        let _ = write!(
            h,
            "<p class=\"caveat\">{}",
            esc(&effective_sentence(t, effective, now))
        );
        if t.armed_conflict_clause {
            h.push_str(" treatywatch cannot know who is at war: it does not mark such a withdrawal effective by itself; an analyst confirms it.");
        }
        h.push_str("</p>");
    }
    if let Some(ev) = &r.evidence {
        let _ = write!(
            h,
            "<blockquote>{}</blockquote>",
            esc_capped(&ev.sentence, EVIDENCE_CHARS)
        );
        if let Some(link) = &ev.link {
            let text = esc_capped(ev.title.as_deref().unwrap_or(link), TITLE_CHARS);
            let _ = write!(h, "<p>Source: {}</p>", feed_link(link, &text));
        }
    }
}

/// One event of a key's history.
fn event_item(
    h: &mut String,
    e: &StoredEvent,
    retracted_by: Option<i64>,
    treaty: &crate::config::Treaty,
    standing: Option<&str>,
    now: DateTime<Utc>,
) {
    let _ = write!(
        h,
        "<li id=\"e{seq}\"{class}><time datetime=\"{dt}\">{day}</time> <span class=\"meta\">#{seq} · recorded {rec}</span><br>",
        seq = e.seq,
        class = if retracted_by.is_some() {
            " class=\"retracted\""
        } else {
            ""
        },
        dt = e.occurred_at.to_rfc3339(),
        day = day(e.occurred_at),
        rec = minute(e.recorded_at),
    );
    match &e.body {
        EventBody::Detection(d) => {
            let _ = write!(
                h,
                "<b>Detected: {}</b> <span class=\"meta\">rule {} · feed {}{}{}</span>",
                esc(&d.action.as_str().replace('_', " ")),
                esc(&d.rule),
                esc(&d.source),
                if d.authoritative {
                    " (authoritative)"
                } else {
                    ""
                },
                if d.backfill {
                    " · old item, not mailed"
                } else {
                    ""
                },
            );
            let _ = write!(
                h,
                "<blockquote>{}</blockquote>",
                esc_capped(&d.evidence.sentence, EVIDENCE_CHARS)
            );
            if let Some(link) = &d.evidence.link {
                let text = esc_capped(d.evidence.title.as_deref().unwrap_or(link), TITLE_CHARS);
                let _ = write!(h, "<div>Source: {}</div>", feed_link(link, &text));
            } else if let Some(title) = &d.evidence.title {
                let _ = write!(h, "<div>Source: {}</div>", esc_capped(title, TITLE_CHARS));
            }
        }
        EventBody::Asserted(a) => {
            let _ = write!(
                h,
                "<b>Analyst set the status: {}</b>{}<blockquote>{}</blockquote>",
                badge(a.status),
                if a.quiet {
                    " <span class=\"tag\">history, not mailed</span>"
                } else {
                    ""
                },
                esc_capped(&a.note, EVIDENCE_CHARS)
            );
        }
        EventBody::Baseline(b) => {
            let _ = write!(
                h,
                "<b>Baseline: {}</b> {} <span class=\"meta\">({})</span>",
                badge(b.status),
                esc(&b.source.describe()),
                esc(&b.source.file)
            );
            if let Some(d) = b.withdrawal_notified {
                let _ = write!(h, "<div>Withdrawal notified {d}</div>");
            }
            if let Some(d) = b.withdrawal_effective {
                let _ = write!(h, "<div>Withdrawal effective {d}</div>");
            }
            if let Some(link) = &b.source.source_url {
                let _ = write!(
                    h,
                    "<div>Source: {}</div>",
                    feed_link(link, &esc_capped(&b.source.source, TITLE_CHARS))
                );
            }
        }
        EventBody::Retracted(r) => {
            let by = match &r.rules_version {
                Some(v) => format!("by reclassify (rules {})", esc(v)),
                None => "by an analyst".to_string(),
            };
            let _ = write!(
                h,
                "<b>Retraction</b> of <a href=\"#e{t}\">#{t}</a> {by}<blockquote>{}</blockquote>",
                esc_capped(&r.note, EVIDENCE_CHARS),
                t = r.target_seq,
            );
        }
        EventBody::StatusChanged(c) => {
            let _ = write!(
                h,
                "<b>Status: {} → {}</b> <span class=\"meta\">caused by <a href=\"#e{cause}\">#{cause}</a>; sources: {}</span>",
                badge(c.from),
                badge(c.to),
                esc(&c.sources.join(", ")),
                cause = c.cause_seq,
            );
            if c.backfill {
                h.push_str(" <span class=\"tag\">history, not mailed</span>");
            }
            if let Some(standing) = standing {
                let _ = write!(
                    h,
                    "<div class=\"depositary\">Depositary: {}</div>",
                    esc(standing)
                );
            }
            if c.to == Status::WithdrawalNotified
                && let Some(effective) = treaty
                    .withdrawal_notice
                    .effective_date(e.occurred_at.date_naive())
            {
                let _ = write!(
                    h,
                    "<div class=\"caveat\">{}</div>",
                    esc(&effective_sentence(treaty, effective, now))
                );
            }
        }
        EventBody::DigestSent(d) => {
            let _ = write!(
                h,
                "<b>Digest sent</b> to one recipient, reporting {} <span class=\"meta\">(events #{}…#{})</span>",
                if d.changes.len() == 1 {
                    "1 change".to_string()
                } else {
                    format!("{} changes", d.changes.len())
                },
                d.first_seq,
                d.last_seq
            );
        }
        EventBody::DigestRefused(_) | EventBody::SourceHealth(_) => {
            h.push_str(&esc(e.body.kind()));
        }
    }
    if let Some(by) = retracted_by {
        let _ = write!(
            h,
            " <span class=\"tag\">retracted by <a href=\"#e{by}\">#{by}</a></span>"
        );
    }
    h.push_str("</li>\n");
}

/// `/feeds`: every configured feed's health.
pub(super) fn feeds(cx: &Cx<'_>) -> Result<Reply, StoreError> {
    let known = cx.store.feed_states()?;
    let config = cx.config;
    let mut h = String::from(
        "<h1>Feed health</h1><div class=\"wrap\"><table class=\"list\"><thead><tr><th>Feed</th><th>Health</th><th>Last success</th><th>HTTP</th><th>Failures</th><th>Next poll</th><th>Newest item</th><th>Problem</th></tr></thead><tbody>",
    );
    let when = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".to_string(), minute);
    let (mut failing, mut stale) = (0, 0);
    for feed in &config.feeds {
        let state = known
            .iter()
            .find(|s| s.feed_id == feed.id && s.url == feed.url.as_str());
        let stale_after = feed
            .stale_after
            .unwrap_or(config.notify.thresholds.stale_after);
        let (health, class) = match state {
            _ if !feed.enabled => ("disabled".to_string(), ""),
            None => ("never polled".to_string(), ""),
            Some(s) if s.gone => {
                failing += 1;
                ("gone (410)".to_string(), "bad")
            }
            Some(s) if s.consecutive_failures > 0 => {
                failing += 1;
                let mut t = format!("failing, {} in a row", s.consecutive_failures);
                if s.failing_alerted {
                    t.push_str(" (alerted)");
                }
                (t, "bad")
            }
            Some(s)
                if s.stale_since.is_some()
                    || s.last_item_at.is_some_and(|at| {
                        chrono::Duration::from_std(stale_after).is_ok_and(|d| cx.now - at > d)
                    }) =>
            {
                stale += 1;
                ("stale".to_string(), "bad")
            }
            Some(_) => ("ok".to_string(), ""),
        };
        let problem = match state {
            Some(s) if s.gone => "410 Gone: remove the feed or change its url".to_string(),
            Some(s) => match (&s.last_error, &s.moved_to) {
                (Some(e), _) => esc_capped(e, 300),
                (None, Some(m)) => format!("moved permanently to {}", esc_capped(m, 300)),
                _ => "-".into(),
            },
            None => "-".into(),
        };
        let _ = write!(
            h,
            "<tr><td>{name}<br><span class=\"meta\">{id} · {link}</span></td><td class=\"{class}\">{health}</td><td>{ok}</td><td>{status}</td><td>{fails}</td><td>{next}</td><td>{newest}</td><td>{problem}</td></tr>",
            name = esc(&feed.name),
            id = esc(&feed.id),
            link = feed_link(feed.url.as_str(), "url"),
            health = esc(&health),
            ok = when(state.and_then(|s| s.last_success)),
            status = state
                .and_then(|s| s.last_status)
                .map_or_else(|| "-".to_string(), |c| c.to_string()),
            fails = state.map_or(0, |s| s.consecutive_failures),
            next = when(state.and_then(|s| s.next_poll)),
            newest = when(state.and_then(|s| s.last_item_at)),
        );
    }
    h.push_str("</tbody></table></div>");
    let _ = write!(
        h,
        "<p>{} feeds: {failing} failing, {stale} stale. A feed that fails is retried with backoff, forever; the daemon alerts its recipients once per episode.</p>",
        config.feeds.len()
    );
    Ok(Reply::html(page("treatywatch: feed health", &h)))
}
