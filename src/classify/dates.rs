//! Dates written in a sentence, and whether one puts a cue in the past
//! ("ratified by Ukraine in 2005") or the future ("becomes effective on Jan.
//! 10, 2026") relative to the item's own date.
//!
//! Reads the normalised tokens of the cue's phrase (the stretch between
//! commas or clause breaks around it) plus a sentence-opening "In 2019,".
//! Understands "2005", "December 1997", "Jan. 10, 2026", "10 January 2026"
//! and a bare month ("in October", taken as the latest such month not after
//! the item, or in a future-tense phrase the next one). A date in an object
//! relative clause after the cue ("which the Government submitted on 6 July
//! 2020") is that clause's; "a year later" moves on from the date named
//! before it in the sentence, and "six years after" before a cue puts it
//! that long before the item. Relative phrases such as "last year" are history modifiers in
//! rules.toml, not code. A date in the last two weeks, or a weekday, "today"
//! or "yesterday", makes the stage recent: news however it is framed.

use std::ops::Range;

use chrono::{Datelike, NaiveDate};

use crate::normalize::{BREAK, COMMA, Tokens};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Dated at least `history_days` before the item.
    History,
    /// Dated after the item.
    Future,
    /// Dated to the last two weeks, or to a day of the week ("on
    /// Wednesday", "yesterday"), by the date at token `at`: news by
    /// LABELS.md's two-week rule, however the sentence frames it ("after the
    /// Sejm voted on Wednesday").
    Recent { at: usize },
}

/// How many days before the item a dated stage still counts as recent.
const RECENT_DAYS: i64 = 14;

/// Words that date a phrase to the last few days.
const RECENT_WORDS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "yesterday",
    "today",
    "tonight",
    "overnight",
];

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
];

/// Words before a bare month that make it a date ("in May", not "may").
const MONTH_LEADS: &[&str] = &[
    "in", "since", "until", "early", "late", "mid", "last", "from", "by", "next",
];

fn month(token: &str) -> Option<u32> {
    MONTHS.iter().find(|(n, _)| *n == token).map(|(_, m)| *m)
}

fn year(token: &str) -> Option<i32> {
    if token.len() == 4 && token.bytes().all(|b| b.is_ascii_digit()) {
        token.parse().ok().filter(|y| (1900..=2100).contains(y))
    } else {
        None
    }
}

fn day(token: &str) -> Option<u32> {
    let digits = token.trim_end_matches(['s', 't', 'n', 'd', 'r', 'h']);
    if (1..=2).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok().filter(|d| (1..=31).contains(d))
    } else {
        None
    }
}

/// A small count written in words or digits.
fn count(token: &str) -> Option<u64> {
    const WORDS: &[&str] = &[
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve",
    ];
    if matches!(token, "a" | "an") {
        return Some(1);
    }
    if let Some(n) = WORDS.iter().position(|w| *w == token) {
        return Some(n as u64);
    }
    if token.len() <= 4 && token.bytes().all(|b| b.is_ascii_digit()) {
        return token.parse().ok();
    }
    None
}

/// A date found at token `at`, with how precise it is.
#[derive(Debug, Clone, Copy)]
enum Found {
    Year(i32),
    Date(NaiveDate),
}

/// Reads a date starting at token `i`, if one starts there; returns it and
/// the token after it.
fn date_at(norm: &Tokens, i: usize, item: NaiveDate, future_tense: bool) -> Option<(Found, usize)> {
    let t = norm.token(i);
    // "in six months", "in 90 days", "in a year": a date after the item.
    if t == "in" {
        let n = count(norm.token(i + 1))?;
        let days = match norm.token(i + 2) {
            "day" | "days" => n,
            "week" | "weeks" => n * 7,
            "month" | "months" => n * 30,
            "year" | "years" => n * 365,
            _ => return None,
        };
        let date = item.checked_add_days(chrono::Days::new(days))?;
        return Some((Found::Date(date), i + 3));
    }
    if let Some(m) = month(t) {
        // Month [day] [,] [year]
        let mut j = i + 1;
        let mut d = None;
        if let Some(x) = day(norm.token(j)) {
            d = Some(x);
            j += 1;
        }
        let k = if norm.token(j) == COMMA { j + 1 } else { j };
        let lead = i > 0 && MONTH_LEADS.contains(&norm.token(i - 1));
        let day_before = i > 0 && day(norm.token(i - 1)).is_some();
        if let Some(y) = year(norm.token(k)) {
            let date = NaiveDate::from_ymd_opt(y, m, d.unwrap_or(1))?;
            return Some((Found::Date(date), k + 1));
        }
        // A bare month needs a lead word or a day, or "may" is a verb.
        if d.is_none() && !lead && !day_before {
            return None;
        }
        // The latest such month not after the item; in a phrase in the
        // future tense ("will exit in December"), the next one not before it.
        let mut y = item.year();
        if future_tense && m < item.month() {
            y += 1;
        } else if !future_tense && m > item.month() {
            y -= 1;
        }
        let date = NaiveDate::from_ymd_opt(y, m, d.unwrap_or(1))?;
        return Some((Found::Date(date), j));
    }
    if let Some(d) = day(t) {
        // Day Month [year]
        if let Some(m) = month(norm.token(i + 1)) {
            let y = year(norm.token(i + 2));
            let date = NaiveDate::from_ymd_opt(y.unwrap_or(item.year()), m, d)?;
            return Some((Found::Date(date), i + 2 + usize::from(y.is_some())));
        }
        return None;
    }
    year(t).map(|y| (Found::Year(y), i + 1))
}

/// "a year later", "six months later" in `within`: the days it moves on
/// and where it stands.
fn later(norm: &Tokens, within: Range<usize>) -> Option<(u64, usize)> {
    within.clone().skip(2).find_map(|i| {
        if norm.token(i) != "later" {
            return None;
        }
        let n = count(norm.token(i - 2))?;
        let days = match norm.token(i - 1) {
            "day" | "days" => n,
            "week" | "weeks" => n * 7,
            "month" | "months" => n * 30,
            "year" | "years" => n * 365,
            _ => return None,
        };
        Some((days, i - 2))
    })
}

/// "six years (to the day) after", "a week after", "three months since" a
/// few words before the cue (from `start`, the phrase's first token): how
/// many days the cue's stage lies before the time reported.
fn span_before(norm: &Tokens, start: usize, cue: usize) -> Option<u64> {
    let after = (start..cue)
        .rev()
        .take(5)
        .find(|&i| matches!(norm.token(i), "after" | "since"))?;
    // "to the day" between the unit and "after".
    let mut unit = after.checked_sub(1)?;
    if unit >= 3
        && norm.token(unit) == "day"
        && norm.token(unit - 1) == "the"
        && norm.token(unit - 2) == "to"
    {
        unit -= 3;
    }
    if unit < start + 1 {
        return None;
    }
    let n = count(norm.token(unit - 1))?;
    let days = match norm.token(unit) {
        "day" | "days" => n,
        "week" | "weeks" => n * 7,
        "month" | "months" => n * 30,
        "year" | "years" => n * 365,
        _ => return None,
    };
    Some(days)
}

/// The date nearest before token `before` in the sentence, names skipped.
fn date_before(
    norm: &Tokens,
    before: usize,
    skip: &[Range<usize>],
    item: NaiveDate,
) -> Option<Found> {
    let mut last = None;
    let mut i = 0;
    while i < before {
        if skip.iter().any(|s| s.contains(&i)) {
            i += 1;
            continue;
        }
        match date_at(norm, i, item, false) {
            // "in six months" is counted from the item, not a date named.
            Some((found, next)) if norm.token(i) != "in" => {
                last = Some(found);
                i = next.max(i + 1);
            }
            _ => i += 1,
        }
    }
    last
}

/// Words that put a phrase in the future tense, for bare months.
const FUTURE_WORDS: &[&str] = &[
    "will",
    "shall",
    "due",
    "scheduled",
    "set",
    "expected",
    "next",
];

/// Most tokens either side of a cue its phrase (and so its date) reaches.
const DATE_REACH: usize = 30;

/// Judges the dates in the cue's phrase. `skip` holds token ranges that are
/// names, not dates ("the 1997 treaty"), sorted and non-overlapping.
pub fn judge(
    norm: &Tokens,
    cue: &Range<usize>,
    skip: &[Range<usize>],
    item: NaiveDate,
    history_days: i64,
) -> Option<When> {
    let is_stop = |t: &str| t == COMMA || t == BREAK;
    // The phrase reaches to the nearest comma or clause break, but no
    // further than DATE_REACH tokens: a date that far away in one
    // unpunctuated run does not date this cue (and long runs stay linear).
    let mut start = cue.start;
    while start > 0 && cue.start - start < DATE_REACH && !is_stop(norm.token(start - 1)) {
        start -= 1;
    }
    let mut end = cue.end;
    while end < norm.len() && end - cue.end < DATE_REACH && !is_stop(norm.token(end)) {
        end += 1;
    }
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(3);
    ranges.push(start..end);
    // "... was the first to sign the accord, in 2011." dates the phrase
    // before it.
    if norm.token(end) == COMMA && matches!(norm.token(end + 1), "in" | "on" | "since" | "during") {
        let mut tail = end + 1;
        while tail < norm.len() && !is_stop(norm.token(tail)) {
            tail += 1;
        }
        if tail - end <= 5 {
            ranges.push(end + 1..tail);
        }
    }
    // "In 2019, the United States withdrew ..." dates the whole sentence.
    if start > 0 && matches!(norm.token(0), "in" | "on" | "since") {
        let comma = (0..start).find(|&i| norm.token(i) == COMMA).unwrap_or(0);
        ranges.push(1..comma);
    }
    let future_tense = (start..end).any(|i| FUTURE_WORDS.contains(&norm.token(i)));
    let recent_word = (start..end).find(|&i| RECENT_WORDS.contains(&norm.token(i)));
    let mut best: Option<(usize, Found, usize)> = None;
    for r in ranges {
        let mut i = r.start;
        while i < r.end {
            // `skip` is sorted by start and non-overlapping: the one range
            // that could hold `i` is the last starting at or before it.
            let k = skip.partition_point(|s| s.start <= i);
            // "the Convention ... of 1987" names the treaty by its year.
            // "the 1997 convention banning anti-personnel mines" likewise.
            let year_of_name = year(norm.token(i)).is_some()
                && ((i >= 2 && norm.token(i - 1) == "of" && skip.iter().any(|s| s.end == i - 1))
                    || skip.get(k).is_some_and(|s| s.start == i + 1));
            if year_of_name || (k > 0 && skip[k - 1].contains(&i)) {
                i += 1;
                continue;
            }
            // "the European Convention for the Prevention of Torture ... of
            // 26 November 1987": a whole date after a name and "of" is the
            // treaty's own, not the event's.
            let after_name =
                i >= 2 && norm.token(i - 1) == "of" && skip.iter().any(|s| s.end == i - 1);
            if after_name && let Some((_, next)) = date_at(norm, i, item, future_tense) {
                i = next.max(i + 1);
                continue;
            }
            // "retracts the notification which the Government submitted on
            // 6 July 2020": a date in an object relative clause after the
            // cue (the pronoun, then a subject) dates what the clause
            // describes, not the cue. Not "the convention which prohibits
            // mines on February 20", where the date may be the main verb's.
            let in_relative = i >= cue.end
                && (cue.end..i).any(|k| {
                    let named = |at: usize| skip.iter().any(|s| s.contains(&at));
                    matches!(norm.token(k), "which" | "who" | "whom")
                        && !named(k)
                        && (named(k + 1)
                            || matches!(
                                norm.token(k + 1),
                                "the" | "a" | "an" | "it" | "they" | "he" | "she" | "its" | "their"
                            ))
                });
            match date_at(norm, i, item, future_tense) {
                Some((_, next)) if in_relative => i = next.max(i + 1),
                Some((found, next)) => {
                    let distance = if i >= cue.end {
                        i - cue.end
                    } else {
                        cue.start.saturating_sub(i)
                    };
                    if best.is_none_or(|(d, _, _)| distance < d) {
                        best = Some((distance, found, i));
                    }
                    i = next.max(i + 1);
                }
                None => i += 1,
            }
        }
    }
    // "Canada announced in December 2011 that it was leaving, and its
    // withdrawal took effect a year later": a time after a date named
    // earlier in the sentence is that date moved on.
    if best.is_none()
        && let Some((offset, at)) = later(norm, start..end)
        && let Some(anchor) = date_before(norm, start, skip, item)
    {
        let moved = match anchor {
            Found::Year(y) => NaiveDate::from_ymd_opt(y, 1, 1)
                .and_then(|d| d.checked_add_days(chrono::Days::new(offset)))
                .map(|d| Found::Year(d.year())),
            Found::Date(d) => d
                .checked_add_days(chrono::Days::new(offset))
                .map(Found::Date),
        };
        best = moved.map(|found| (0, found, at));
    }
    // "six years to the day after the Philippines' withdrawal took effect":
    // a stage that long before the one reported (dated by the item) is
    // history. A short span ("three days after") is left to the rules'
    // background modifiers and their exceptions (supp.recent).
    if best.is_none()
        && let Some(days) = span_before(norm, start, cue.start)
        && days as i64 >= history_days
    {
        return Some(When::History);
    }
    let Some((_, found, at)) = best else {
        return recent_word
            .filter(|_| !future_tense)
            .map(|at| When::Recent { at });
    };
    match found {
        Found::Year(y) if y < item.year() => Some(When::History),
        Found::Year(y) if y > item.year() => Some(When::Future),
        Found::Year(_) => None,
        Found::Date(d) if (item - d).num_days() >= history_days => Some(When::History),
        Found::Date(d) if (d - item).num_days() > 1 => Some(When::Future),
        Found::Date(d) if (item - d).num_days() <= RECENT_DAYS => Some(When::Recent { at }),
        Found::Date(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn check(sentence: &str, cue_word: &str, item: &str, expected: Option<When>) {
        let norm = normalize(sentence, 0);
        let at = (0..norm.len())
            .find(|&i| norm.token(i) == cue_word)
            .unwrap();
        let item = NaiveDate::parse_from_str(item, "%Y-%m-%d").unwrap();
        let skip: Vec<Range<usize>> = (0..norm.len())
            .filter(|&i| {
                (norm.token(i) == "1997" && norm.token(i + 1) == "treaty")
                    || norm.token(i) == "convention"
            })
            .map(|i| i..i + 1)
            .collect();
        assert_eq!(
            judge(&norm.all(), &(at..at + 1), &skip, item, 60),
            expected,
            "{sentence:?}"
        );
    }

    #[test]
    fn dates_around_a_cue_make_it_history_or_future() {
        use When::*;
        check(
            "It was ratified by Ukraine in 2005.",
            "ratified",
            "2025-06-29",
            Some(History),
        );
        check(
            "Ukraine ratified it on Friday.",
            "ratified",
            "2025-06-29",
            Some(Recent { at: 4 }),
        );
        // The date of the treaty's own name is not the event's.
        check(
            "The Duma adopted on Wednesday the law on the Convention of 26 November 1987.",
            "adopted",
            "2025-09-17",
            Some(Recent { at: 4 }),
        );
        check(
            "It signed in December 1997 but",
            "signed",
            "2025-03-12",
            Some(History),
        );
        check(
            "It takes effect on Jan. 10, 2026.",
            "takes",
            "2025-07-10",
            Some(Future),
        );
        check(
            "It took effect on 10 January 2026.",
            "took",
            "2026-01-10",
            Some(Recent { at: 4 }),
        );
        check(
            "In 2019, the US withdrew from it.",
            "withdrew",
            "2025-01-01",
            Some(History),
        );
        check(
            "Honduras ratified it in October.",
            "ratified",
            "2021-01-22",
            Some(History),
        );
        check(
            "It left the 1997 treaty today.",
            "left",
            "2025-01-01",
            Some(Recent { at: 5 }),
        );
        check("He said it may withdraw.", "withdraw", "2025-01-01", None);
        check(
            "It joined in 2025, officials said in 2019.",
            "joined",
            "2025-05-01",
            None,
        );
        check(
            "It was the first to sign the accord, in 2011.",
            "sign",
            "2021-03-20",
            Some(History),
        );
        check(
            "after the Sejm voted on Wednesday to leave.",
            "voted",
            "2025-06-27",
            Some(Recent { at: 5 }),
        );
        // A date in a relative clause after the cue is that clause's.
        check(
            "It retracts the notification which it submitted on 6 July 2020.",
            "retracts",
            "2021-01-20",
            None,
        );
        check(
            "It retracts the notification submitted on 6 July 2020.",
            "retracts",
            "2021-01-20",
            Some(History),
        );
        // A span before the stage reported dates the cue after it.
        check(
            "He was flown to The Hague, six years to the day after its withdrawal took effect.",
            "took",
            "2025-03-17",
            Some(History),
        );
        check(
            "It deposited the notice, a week after parliament voted for it.",
            "voted",
            "2025-06-27",
            None,
        );
        // A subject relative may describe the treaty in a main clause
        // whose date comes last (machine-translated word order).
        check(
            "It will leave the convention which prohibits mines on 20 February 2026.",
            "leave",
            "2025-12-01",
            Some(Future),
        );
        // "a year later" moves on from a date named earlier in the sentence.
        check(
            "It announced in December 2011 that it was leaving, and its withdrawal took effect a year later.",
            "took",
            "2025-03-01",
            Some(History),
        );
        check(
            "It gave notice on 1 June 2024, and the withdrawal took effect a year later.",
            "took",
            "2025-06-05",
            Some(Recent { at: 13 }),
        );
        check(
            "The withdrawal takes effect in six months.",
            "takes",
            "2019-02-01",
            Some(Future),
        );
    }
}
