//! classify — pure and synchronous (no I/O, no clock): `(Text, rules) -> Vec<Detection>`.
//! `Classifier::new` compiles states, treaties and rules.toml once into one automaton
//! (`compile`); `classify` splits sentences (`sentences`), normalises them into one text
//! and scans it once (`normalize`, `scan`; each sentence keeps its own tokens), then reads
//! every cue with the headline's state and treaty as context: blocked or not, which
//! treaty, which states acted (`resolve`, `dates`).
//! A cue is read as a clause event frame: its agent (states and the agent's class), the
//! stage from the cue's row of the stage table for that class, shifted or capped by
//! modifiers, and whether a dated stage is history, future or recent news. `document`
//! folds an item's frames to one detection per (state, treaty). Every detection names its
//! rule and the byte span of its evidence sentence; `explain` also returns each frame, or
//! why a cue was dropped.

mod compile;
mod dates;
mod document;
mod prefilter;
mod resolve;
pub mod rule_tests;
mod scan;
pub mod sentences;

use std::ops::Range;

use chrono::NaiveDate;
use serde::Serialize;

use crate::config::rules::DiscardScope;
use crate::config::{CueRules, Gazetteer, Treaties};
use crate::domain::Action;
use crate::normalize::{Normalized, normalize_into};
use compile::Compiled;
use document::Candidate;
use resolve::{Actor, ItemContext};
use scan::{Entity, Scan};

/// Separates title and body in the item text that spans point into.
pub const TITLE_SEPARATOR: &str = "\n\n";

/// One news item to classify.
#[derive(Debug, Clone, Default)]
pub struct Text {
    pub title: String,
    pub body: String,
    /// The item's own publication date; stages dated well before it are
    /// history. Without it no date is judged.
    pub date: Option<NaiveDate>,
}

impl Text {
    /// The item text detection spans point into: the title, a blank line
    /// (`TITLE_SEPARATOR`), then the body.
    pub fn item_text(&self) -> String {
        let mut s = String::with_capacity(self.title.len() + 2 + self.body.len());
        s.push_str(&self.title);
        s.push_str(TITLE_SEPARATOR);
        s.push_str(&self.body);
        s
    }
}

/// A rule found that `state` took `action` on `treaty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// ISO 3166-1 alpha-3.
    pub state: String,
    /// Treaty id.
    pub treaty: String,
    pub action: Action,
    /// Id of the cue rule that fired.
    pub rule: String,
    /// The sentence the cue is in.
    pub evidence: String,
    /// Byte range of `evidence` in `Text::item_text()` (title + "\n\n" + body).
    pub span: Range<usize>,
}

/// How one cue was read, for `classify --explain`: its frame when it
/// produced a detection, the reason when it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub rule: String,
    /// The words of the cue as written.
    pub matched: String,
    pub evidence_span: Range<usize>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The frame: who (states and agent class), which stage (and the stage
    /// table cell that decided it), which treaties.
    Read {
        states: Vec<String>,
        agent: Option<String>,
        stage: Action,
        cell: String,
        treaties: Vec<String>,
        /// Whether this reading is the item's detection for its pairs, or
        /// was outweighed by another reading of the same (state, treaty).
        kept: bool,
    },
    /// Which part of the frame dropped the cue.
    Dropped(String),
}

/// Compiled rules; build once, classify many items.
pub struct Classifier {
    compiled: Compiled,
    state_codes: Vec<String>,
    groups: Vec<Vec<u16>>,
    treaty_ids: Vec<String>,
    treaties: Treaties,
}

impl Classifier {
    pub fn new(gazetteer: &Gazetteer, treaties: &Treaties, rules: &CueRules) -> Classifier {
        let index_of = |code: &str| {
            gazetteer
                .states
                .iter()
                .position(|s| s.code == code)
                .map(|i| i as u16)
        };
        Classifier {
            compiled: Compiled::new(gazetteer, treaties, rules),
            state_codes: gazetteer.states.iter().map(|s| s.code.clone()).collect(),
            groups: gazetteer
                .groups
                .iter()
                .map(|g| g.members.iter().filter_map(|m| index_of(m)).collect())
                .collect(),
            treaty_ids: treaties.list.iter().map(|t| t.id.clone()).collect(),
            treaties: treaties.clone(),
        }
    }

    /// How many distinct patterns the automaton holds.
    pub fn pattern_count(&self) -> usize {
        self.compiled.pattern_count()
    }

    /// Heap bytes the compiled automaton holds (it lives as long as the
    /// process, so it is most of the daemon's idle memory).
    pub fn memory_usage(&self) -> usize {
        self.compiled.memory_usage()
    }

    /// Every detection in `input`, at most one per (state, treaty, action),
    /// in text order.
    pub fn classify(&self, input: &Text) -> Vec<Detection> {
        self.run(input, None)
    }

    /// Like `classify`, also listing each cue that produced nothing and why.
    pub fn explain(&self, input: &Text) -> (Vec<Detection>, Vec<Explanation>) {
        let mut why = Vec::new();
        let found = self.run(input, Some(&mut why));
        (found, why)
    }

    fn run(&self, input: &Text, why: Option<&mut Vec<Explanation>>) -> Vec<Detection> {
        // Most news names no treaty anywhere, and then nothing in it can be
        // a detection; `--explain` still reads it, to say why.
        if why.is_none()
            && let Some(p) = &self.compiled.prefilter
            && !p.may_name_treaty(&input.title)
            && !p.may_name_treaty(&input.body)
        {
            return Vec::new();
        }
        let text = input.item_text();
        let sentences = sentences::split(&text);
        let title_end = input.title.len();
        // The whole item is normalised into one text and scanned once; each
        // sentence keeps its own tokens (`normalize_into`).
        let mut norm = Normalized::with_capacity(text.len() + 2 * sentences.len());
        let tokens: Vec<Range<usize>> = sentences
            .iter()
            .map(|r| normalize_into(&mut norm, &text[r.clone()], r.start))
            .collect();
        let mut found = scan::find(&self.compiled, &norm, &tokens, &text);
        // An item that names no treaty (most ordinary news) yields
        // nothing: every cue would be dropped for want of one. `--explain`
        // still reads it, to say so.
        if why.is_none() && !found.names_treaty() {
            return Vec::new();
        }
        // Nor does, and explains nothing, an item in which no cue phrase can
        // be complete: its mentions are never chosen. A third of the news
        // corpus in benches/classify.rs is such.
        found.find_phrases(&self.compiled);
        if !found.may_hold_cue(&self.compiled) {
            return Vec::new();
        }
        let mut scans: Vec<Scan> = sentences
            .iter()
            .zip(tokens)
            .enumerate()
            .map(|(i, (r, t))| {
                let f = found.sentence(i);
                let mut s = scan::read(&self.compiled, f, norm.view(t), &text[r.clone()], r.start);
                s.in_title = r.start < title_end;
                s
            })
            .collect();
        let is_title = |r: &Range<usize>| r.start < title_end;

        // Item-level discards: opinion columns, "years ago today".
        let discarded = scans.iter().zip(&sentences).any(|(s, r)| {
            s.discards
                .iter()
                .any(|&d| match self.compiled.discards.get(d as usize) {
                    Some((_, DiscardScope::Item)) => true,
                    Some((_, DiscardScope::Title)) => is_title(r),
                    _ => false,
                })
        });
        if discarded {
            return Vec::new();
        }

        // A name shown to mean something else once ("the ICC Champions
        // Trophy") means it throughout the item: a cricket story's other
        // "ICC"s are the cricket council too.
        let other_senses: Vec<u16> = scans
            .iter()
            .flat_map(|s| s.other_senses.iter().copied())
            .collect();
        if !other_senses.is_empty() {
            for scan in &mut scans {
                scan.mentions.retain(|m| match m.entity {
                    Entity::Treaty(t) => !other_senses.contains(&t),
                    _ => true,
                });
            }
        }
        // Whether the item speaks of a withdrawal at all, for cues that
        // count only then (a suspension law during a withdrawal). Looked up
        // only when such a cue occurs: most items have none.
        let withdrawal_in_item = std::cell::OnceCell::new();
        let speaks_of_withdrawal = || {
            *withdrawal_in_item.get_or_init(|| {
                // "it is not the exit from the treaty" denies one.
                let denied = |s: &Scan, i: usize| {
                    (i.saturating_sub(3)..i).any(|k| {
                        matches!(
                            s.norm.token(k),
                            "not" | "no" | "never" | "nor" | "without" | "instead" | "than"
                        )
                    })
                };
                scans.iter().any(|s| {
                    (0..s.norm.len()).any(|i| {
                        self.compiled
                            .withdrawal_words
                            .iter()
                            .any(|w| w == s.norm.token(i))
                            && !denied(s, i)
                    })
                })
            })
        };
        let mut ctx = self.context(&scans, &sentences, title_end, input.date);
        let mut readings: Vec<Candidate> = Vec::new();
        let mut notes: Vec<Explanation> = Vec::new();
        let mut title_actors: Vec<u16> = Vec::new();
        let mut title_done = false;
        let mut previous: Option<&Scan> = None;
        for (scan, range) in scans.iter().zip(&sentences) {
            // "Estonia, Latvia and Lithuania deposited ... All three will
            // ...": the last sentence naming two or more states sets the list.
            if let Some(prev) = previous.take() {
                let named: Vec<Actor> = prev
                    .mentions
                    .iter()
                    .filter_map(|m| match m.entity {
                        Entity::State(s) => Some(Actor::State(s)),
                        Entity::Group(g) => Some(Actor::Group(g)),
                        _ => None,
                    })
                    .collect();
                if named.len() >= 2 || matches!(named[..], [Actor::Group(_)]) {
                    ctx.last_list = named;
                }
            }
            previous = Some(scan);
            if !title_done && !is_title(range) {
                title_done = true;
                // The headline's actors are the item's state from here on.
                if !title_actors.is_empty() {
                    ctx.states = std::mem::take(&mut title_actors);
                }
            }
            let sentence_discarded = scan.discards.iter().any(|&d| {
                matches!(
                    self.compiled.discards.get(d as usize),
                    Some((_, DiscardScope::Sentence))
                )
            });
            if sentence_discarded {
                continue;
            }
            // A question reports nothing ("Will Lithuania quit the mine ban
            // next?").
            let question = text[range.clone()].trim_end().ends_with('?');
            for cue in &scan.cues {
                let Some(rule) = self.compiled.cues.get(cue.index as usize) else {
                    continue;
                };
                let reading = if question {
                    Err(resolve::Dropped::Question)
                } else if rule.needs_withdrawal && !speaks_of_withdrawal() {
                    Err(resolve::Dropped::NoWithdrawal)
                } else {
                    resolve::read(&self.compiled, &self.treaties, &ctx, scan, cue)
                };
                let matched = || {
                    let r = scan.norm.original_range(cue.tokens.clone());
                    text.get(r).unwrap_or("").to_string()
                };
                match reading {
                    Ok(reading) => {
                        let states = self.expand(&reading.actors);
                        if is_title(range) {
                            for &s in &states {
                                if !title_actors.contains(&s) {
                                    title_actors.push(s);
                                }
                            }
                        }
                        let note = notes.len();
                        if why.is_some() {
                            notes.push(Explanation {
                                rule: rule.id.clone(),
                                matched: matched(),
                                evidence_span: range.clone(),
                                outcome: Outcome::Read {
                                    states: states
                                        .iter()
                                        .map(|&s| self.state_codes[s as usize].clone())
                                        .collect(),
                                    agent: reading.agent.map(|a| a.as_str().to_string()),
                                    stage: reading.stage,
                                    cell: reading.cell.clone(),
                                    treaties: reading
                                        .treaties
                                        .iter()
                                        .map(|&t| self.treaty_ids[t as usize].clone())
                                        .collect(),
                                    kept: false,
                                },
                            });
                        }
                        for &state in &states {
                            for &treaty in &reading.treaties {
                                readings.push(Candidate {
                                    state,
                                    treaty,
                                    stage: reading.stage,
                                    rule: cue.index,
                                    span: range.clone(),
                                    in_title: is_title(range),
                                    note,
                                });
                            }
                        }
                    }
                    Err(reason) => {
                        if why.is_some() {
                            notes.push(Explanation {
                                rule: rule.id.clone(),
                                matched: matched(),
                                evidence_span: range.clone(),
                                outcome: Outcome::Dropped(reason.describe()),
                            });
                        }
                    }
                }
            }
        }
        let chosen = document::choose(&readings);
        let mut out = Vec::with_capacity(chosen.len());
        for c in chosen {
            if let Some(Explanation {
                outcome: Outcome::Read { kept, .. },
                ..
            }) = notes.get_mut(c.note)
            {
                *kept = true;
            }
            let Some(rule) = self.compiled.cues.get(c.rule as usize) else {
                continue;
            };
            out.push(Detection {
                state: self.state_codes[c.state as usize].clone(),
                treaty: self.treaty_ids[c.treaty as usize].clone(),
                action: c.stage,
                rule: rule.id.clone(),
                evidence: text[c.span.clone()].to_string(),
                span: c.span.clone(),
            });
        }
        if let Some(why) = why {
            *why = notes;
        }
        out
    }

    /// The headline's (or the item's most-named) treaty and the headline's
    /// single state, before any cue is read.
    fn context(
        &self,
        scans: &[Scan],
        sentences: &[Range<usize>],
        title_end: usize,
        date: Option<NaiveDate>,
    ) -> ItemContext {
        let mut counts: Vec<(u16, usize, bool)> = Vec::new();
        let mut title_states: Vec<u16> = Vec::new();
        let mut item_states: Vec<u16> = Vec::new();
        for (scan, r) in scans.iter().zip(sentences) {
            let in_title = r.start < title_end;
            for m in &scan.mentions {
                match m.entity {
                    Entity::Treaty(t) => match counts.iter_mut().find(|c| c.0 == t) {
                        Some(c) => {
                            c.1 += 1;
                            c.2 |= in_title;
                        }
                        None => counts.push((t, 1, in_title)),
                    },
                    Entity::State(s) => {
                        if in_title && !title_states.contains(&s) {
                            title_states.push(s);
                        }
                        if !item_states.contains(&s) {
                            item_states.push(s);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Earliest-named wins a tie: max_by_key keeps the last maximum, so
        // look at the list reversed.
        let treaty = counts.iter().rev().max_by_key(|c| (c.2, c.1)).map(|c| c.0);
        ItemContext {
            treaty,
            treaties: counts.iter().map(|c| c.0).collect(),
            // The headline's one state; failing that, the one state the
            // whole item names ("Putin submitted a bill ..." in an item that
            // only ever names Russia).
            states: match (title_states.len(), item_states.len()) {
                (1, _) => title_states,
                (0, 1) => item_states,
                _ => Vec::new(),
            },
            last_list: Vec::new(),
            date,
        }
    }

    /// Actors as gazetteer state indices, groups expanded, without repeats.
    fn expand(&self, actors: &[Actor]) -> Vec<u16> {
        let mut out = Vec::new();
        for a in actors {
            let members: &[u16] = match a {
                Actor::State(s) => std::slice::from_ref(s),
                Actor::Group(g) => self.groups.get(*g as usize).map_or(&[], Vec::as_slice),
            };
            for &m in members {
                if (m as usize) < self.state_codes.len() && !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }
}
