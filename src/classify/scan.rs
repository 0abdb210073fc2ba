//! Scanning an item: run the automaton once over its normalised text (its
//! sentences' normal forms, joined so that no match spans two), and sort
//! what matched, sentence by sentence, into mentions (treaties, states,
//! anaphora) and rule matches (cues, modifiers, suppressors, discards).
//!
//! Treaty names are chosen first, leftmost-longest, and consume their words;
//! anaphora and then states are chosen only from what is left, so "Ottawa
//! Convention" is never Canada and "Papua New Guinea" never Guinea. An
//! organisation's name (and a year) qualifying the next treaty name ("the
//! Council of Europe's 2011 convention on violence against women") joins
//! it; one named as the one addressed is kept aside (`Scan::addressed`).
//! Phrases
//! with gaps are joined here. Suppressors remove the cues and modifiers they
//! contain (and the treaty names: "ICC" in "the ICC Champions Trophy"), and
//! of overlapping cues the longest wins. Deciding who did what
//! is `resolve`'s job.

use std::ops::Range;

use super::compile::{Compiled, RuleRef, Use};
use crate::normalize::{BREAK, COMMA, Normalized, Tokens};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Treaty(u16),
    TreatyAnaphor(Option<u16>),
    State(u16),
    Group(u16),
    StateAnaphor,
    /// "all three", "the two countries": the states last named together.
    StateListAnaphor,
    /// A treaty the catalogue does not hold, named after an organisation
    /// that is one ("UNESCO's 1972 World Heritage Convention", "the ILO's
    /// Convention No. 190"): a cue about it is about no tracked treaty.
    OtherTreaty,
}

impl Entity {
    pub fn is_treaty(self) -> bool {
        matches!(
            self,
            Entity::Treaty(_) | Entity::TreatyAnaphor(_) | Entity::OtherTreaty
        )
    }
}

/// Most tokens between an organisation's name and the treaty noun it
/// qualifies ("UNESCO's 1972 World Heritage Convention").
const QUALIFIER_REACH: usize = 4;

#[derive(Debug, Clone)]
pub struct Mention {
    pub tokens: Range<usize>,
    pub entity: Entity,
}

#[derive(Debug, Clone)]
pub struct RuleMatch {
    pub index: u16,
    pub tokens: Range<usize>,
}

/// Everything found in one sentence.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    /// The sentence's tokens, numbered from 0.
    pub norm: Tokens<'a>,
    /// Non-overlapping, sorted by position.
    pub mentions: Vec<Mention>,
    pub companions: Vec<Range<usize>>,
    /// Agent phrases ("parliament", "the cabinet"): token range and index
    /// into `Compiled::agent_classes`; non-overlapping, by position.
    pub agents: Vec<(Range<usize>, u8)>,
    /// Cue matches after suppression and overlap resolution, by position.
    pub cues: Vec<RuleMatch>,
    pub modifiers: Vec<RuleMatch>,
    pub discards: Vec<u16>,
    /// Per token: written with a capital first letter (a proper noun or a
    /// title, when not at the start of a sentence).
    pub capitalized: Vec<bool>,
    /// The sentence is (part of) the headline, where capitals mean little.
    pub in_title: bool,
    /// Treaties whose name a suppressor showed to mean something else here
    /// ("ICC" in "the ICC Champions Trophy").
    pub other_senses: Vec<u16>,
    /// Organisations named as the one addressed or told, not as an object
    /// ("the UNESCO Director-General", "notified the Council of Europe of
    /// ..."): not mentions, but the treaty a cue falls back to when the
    /// item names none.
    pub addressed: Vec<Mention>,
}

/// One raw hit: a pattern use at a token range of sentence `sentence`.
#[derive(Clone)]
struct Hit {
    sentence: u32,
    tokens: Range<usize>,
    use_: Use,
}

/// One occurrence of a phrase part: a slot (`Compiled::slot_list`) at a
/// token range of sentence `sentence`.
#[derive(Clone)]
struct PartHit {
    sentence: u32,
    slot: u32,
    tokens: Range<usize>,
}

/// What the automaton found in an item, sentence by sentence, before each
/// sentence is read (`read`): one set of buffers per item, not per
/// sentence. Token ranges are each sentence's own (from 0).
pub struct Found {
    /// By sentence, in the order found.
    hits: Vec<Hit>,
    /// By sentence, then slot, then start.
    part_hits: Vec<PartHit>,
    /// The phrases all of whose parts occur, by sentence, ascending in each.
    phrases: Vec<u32>,
    /// Per sentence, where its hits, part hits and phrases are.
    sentences: Vec<[Range<usize>; 3]>,
}

/// What the automaton found in one sentence.
#[derive(Clone, Copy)]
pub struct InSentence<'f> {
    hits: &'f [Hit],
    part_hits: &'f [PartHit],
    phrases: &'f [u32],
}

impl Found {
    /// What was found in sentence `i`.
    pub fn sentence(&self, i: usize) -> InSentence<'_> {
        let [h, p, f] = self.sentences.get(i).cloned().unwrap_or_default();
        InSentence {
            hits: self.hits.get(h).unwrap_or(&[]),
            part_hits: self.part_hits.get(p).unwrap_or(&[]),
            phrases: self.phrases.get(f).unwrap_or(&[]),
        }
    }

    /// Whether some sentence names a treaty ("the Ottawa Convention", "the
    /// treaty"). An item none of whose sentences does yields nothing: a
    /// cue's treaty is always one named in the item.
    pub fn names_treaty(&self) -> bool {
        self.hits.iter().any(|h| {
            matches!(
                h.use_,
                Use::Treaty(_) | Use::TreatyAnaphor(_) | Use::TreatyKeyword(_)
            )
        })
    }

    /// Finds the phrases all of whose parts occur in each sentence (only
    /// those can be complete); before it, no sentence has any.
    pub fn find_phrases(&mut self, c: &Compiled) {
        self.phrases.clear();
        for r in &mut self.sentences {
            let from = self.phrases.len();
            let parts = self.part_hits.get(r[1].clone()).unwrap_or(&[]);
            complete_phrases(c, parts, &mut self.phrases);
            r[2] = from..self.phrases.len();
        }
    }

    /// Whether a cue can be read in some sentence (after `find_phrases`):
    /// whether every part of a cue phrase occurs in one. An item none of whose sentences can hold a
    /// cue yields nothing, and needs no reading at all.
    pub fn may_hold_cue(&self, c: &Compiled) -> bool {
        self.phrases.iter().any(|&p| {
            c.phrases
                .get(p as usize)
                .is_some_and(|p| matches!(p.rule, RuleRef::Cue(_)))
        })
    }
}

/// Runs the automaton once over `norm`, an item's text normalised
/// sentence by sentence (`normalize_into`, whose padding keeps every match
/// inside one sentence), and sorts what it finds by sentence: `sentences`
/// are the token ranges of the sentences, in order, and `text` is the item
/// text the original ranges point into.
pub fn find(c: &Compiled, norm: &Normalized, sentences: &[Range<usize>], text: &str) -> Found {
    let mut hits: Vec<Hit> = Vec::new();
    let mut part_hits: Vec<PartHit> = Vec::new();
    // The token after a match's end: matches come by end position, so a
    // cursor moving forward finds it (a binary search if one ever did not).
    let mut end = 0;
    // The sentence holding the token before `end`, likewise.
    let mut at = 0;
    for m in c.automaton.find_overlapping_iter(norm.text.as_str()) {
        let pattern = m.pattern().as_usize();
        let last_space = m.end().saturating_sub(1);
        if end > 0 && norm.tokens[end - 1].start > last_space {
            end = norm.token_at(last_space);
        }
        while end < norm.tokens.len() && norm.tokens[end].start <= last_space {
            end += 1;
        }
        // A pattern is " tok tok ", as the text is: its first token is its
        // token count before the end.
        let length = c.patterns.get(pattern).map_or(0, |p| p.tokens as usize);
        let Some(first) = end.checked_sub(length).filter(|_| length > 0) else {
            continue;
        };
        if !sentences
            .get(at)
            .is_some_and(|s| s.start < end && end <= s.end)
        {
            at = sentences.partition_point(|s| s.end < end);
        }
        let Some(sentence) = sentences.get(at).filter(|s| first >= s.start) else {
            continue;
        };
        let tokens = first - sentence.start..end - sentence.start;
        for &slot in c.slots(pattern) {
            part_hits.push(PartHit {
                sentence: at as u32,
                slot,
                tokens: tokens.clone(),
            });
        }
        for &use_ in c.uses(pattern) {
            let use_ = match use_ {
                // "US" is the United States, "us" is not; "WHO" is the
                // World Health Organization, "who" is not.
                Use::StateCased { state, form } => {
                    if !written_as(c, text, norm, first..end, form) {
                        continue;
                    }
                    Use::State(state)
                }
                Use::TreatyCased { treaty, form } => {
                    if !written_as(c, text, norm, first..end, form) {
                        continue;
                    }
                    Use::Treaty(treaty)
                }
                other => other,
            };
            hits.push(Hit {
                sentence: at as u32,
                tokens: tokens.clone(),
                use_,
            });
        }
    }

    // By sentence (as found already, matches coming by end position; the
    // stable sort only makes sure), each sentence's hits in the order
    // found and each slot's occurrences together, by start (ties in the
    // order found).
    // Each sentence's part hits are sorted alone: a few at a time sort in
    // place, where the item's together would need scratch memory.
    if !hits.is_sorted_by_key(|h| h.sentence) {
        hits.sort_by_key(|h| h.sentence);
    }
    if !part_hits.is_sorted_by_key(|p| p.sentence) {
        part_hits.sort_by_key(|p| p.sentence);
    }
    let mut ranges = Vec::with_capacity(sentences.len());
    let (mut h, mut p) = (0, 0);
    for i in 0..sentences.len() as u32 {
        let h_end = h + hits[h..].partition_point(|x| x.sentence <= i);
        let p_end = p + part_hits[p..].partition_point(|x| x.sentence <= i);
        part_hits[p..p_end].sort_by_key(|x| (x.slot, x.tokens.start));
        ranges.push([h..h_end, p..p_end, 0..0]);
        (h, p) = (h_end, p_end);
    }
    Found {
        hits,
        part_hits,
        phrases: Vec::new(),
        sentences: ranges,
    }
}

/// Most words between a treaty noun and a keyword of the treaty it names.
const KEYWORD_REACH: usize = 12;

/// Treaty names written loosely: a treaty noun followed, within the same
/// clause, by a keyword of one treaty ("the Convention about the
/// prohibition of the anti-personnel mines" is Ottawa, "the Treaty to
/// Energy Charter" the ECT) is a mention of that treaty from the noun (and
/// its "the") to the keyword. Exact names, found as whole aliases, win over
/// these where they overlap (both are treaty mentions; the leftmost-longest
/// is kept).
fn named_by_keywords(c: &Compiled, norm: &Tokens, hits: &[Hit]) -> Vec<Hit> {
    let mut out = Vec::new();
    for h in hits {
        let Use::TreatyKeyword(t) = h.use_ else {
            continue;
        };
        let is_noun = |i: usize| {
            let w = norm.token(i);
            c.name_nouns.iter().any(|n| n == w)
        };
        let from = h.tokens.start.saturating_sub(KEYWORD_REACH);
        let noun = (from..h.tokens.start)
            .rev()
            .take_while(|&i| norm.token(i) != BREAK)
            .find(|&i| is_noun(i));
        let Some(n) = noun else { continue };
        let start = if n > 0 && norm.token(n - 1) == "the" {
            n - 1
        } else {
            n
        };
        out.push(Hit {
            sentence: h.sentence,
            tokens: start..h.tokens.end,
            use_: Use::Treaty(t),
        });
    }
    out
}

/// Whether "the treaty" / "the agreement" is followed by a complement that
/// may name some other one: "the agreement on common aviation", "the
/// treaty on strategic partnership", "the agreement with Uzbekistan". A
/// time after "on" ("the treaty on Friday", "on 27 June", "on the same
/// day") is no such complement. (`resolve` then compares the complement
/// with the item's treaty's name.)
pub fn names_another_agreement(norm: &Tokens, m: &Mention) -> bool {
    const TIME: &[&str] = &[
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "behalf",
        "its",
        "their",
        "his",
        "her",
        "this",
        "that",
        "paper",
        "time",
        "schedule",
        "condition",
        "grounds",
        "record",
    ];
    const THE_TIME: &[&str] = &[
        "same",
        "day",
        "eve",
        "anniversary",
        "sidelines",
        "occasion",
        "basis",
        "grounds",
        "first",
        "last",
        "next",
        "morning",
        "evening",
        "night",
        "weekend",
        "date",
        "day",
        "margins",
        "following",
        "previous",
        "second",
        "third",
    ];
    let at = |k: usize| norm.token(m.tokens.end + k);
    match at(0) {
        "on" | "about" => {
            let next = at(1);
            let time = TIME.contains(&next)
                || next.starts_with(|c: char| c.is_ascii_digit())
                || (next == "the" && THE_TIME.contains(&at(2)));
            !time && !next.is_empty() && next != COMMA && next != BREAK
        }
        "with" | "between" => !at(1).is_empty() && at(1) != COMMA && at(1) != BREAK,
        _ => false,
    }
}

/// Reads what `find` found in `sentence` (at byte `base` of the item text),
/// whose tokens are `norm`.
pub fn read<'a>(
    c: &Compiled,
    found: InSentence<'_>,
    norm: Tokens<'a>,
    sentence: &str,
    base: usize,
) -> Scan<'a> {
    let InSentence {
        hits,
        part_hits,
        phrases,
    } = found;
    let mut out = Scan {
        norm,
        ..Scan::default()
    };
    // Most sentences of a news item name no treaty, state or cue.
    if hits.is_empty() && part_hits.is_empty() {
        return out;
    }
    let named = named_by_keywords(c, &out.norm, hits);
    out.mentions = if named.is_empty() {
        choose_mentions(hits, out.norm.len())
    } else {
        let all: Vec<Hit> = hits.iter().cloned().chain(named).collect();
        choose_mentions(&all, out.norm.len())
    };
    // An organisation's name before another treaty's name only qualifies
    // it ("the Council of Europe's Istanbul Convention"): dropped. Before a
    // treaty noun a few words on, it names a treaty of that organisation
    // the catalogue does not hold ("UNESCO's World Heritage Convention").
    out.agents = choose_agents(hits, out.norm.len());
    let mut kept: Vec<Mention> = Vec::with_capacity(out.mentions.len());
    // Where the next treaty name starts once a qualifying organisation's
    // name is joined to it.
    let mut qualified_from: Option<usize> = None;
    for (i, m) in out.mentions.iter().enumerate() {
        if !matches!(m.entity, Entity::Treaty(_)) {
            kept.push(m.clone());
            continue;
        }
        let mut m = m.clone();
        if let Some(from) = qualified_from.take() {
            m.tokens.start = from;
        }
        let m = &m;
        let organisation = match m.entity {
            Entity::Treaty(t) => c.organisations.get(t as usize).copied().unwrap_or(false),
            _ => false,
        };
        // "the Council of Europe's Istanbul Convention", "the Council of
        // Europe's 2011 convention on violence against women": the
        // organisation (and a year) only qualify the treaty named next,
        // whose name they become part of, so the cue's object is that
        // treaty and the year no date of the event.
        let next = out.mentions.get(i + 1);
        if next.is_some_and(|n| {
            matches!(n.entity, Entity::Treaty(_))
                && n.tokens.start >= m.tokens.end
                && (n.tokens.start == m.tokens.end
                    || (organisation
                        && n.entity != m.entity
                        && n.tokens.start - m.tokens.end <= 2
                        && (m.tokens.end..n.tokens.start).all(|k| is_year(out.norm.token(k)))))
        }) {
            qualified_from = Some(m.tokens.start);
            continue;
        }
        // "the Council of Europe's Secretary General", "the ECOWAS
        // Commission": the organisation as an addressee, not an object.
        // Not across a comma: "Venezuela to leave OAS, foreign minister
        // says" names the organisation left, and its speaker.
        let addressee = organisation
            && out.agents.iter().any(|(t, _)| {
                t.start == m.tokens.end
                    || (t.start == m.tokens.end + 1
                        && !matches!(out.norm.token(m.tokens.end), COMMA | BREAK))
            });
        // "The Secretary General of the Council of Europe received the
        // notification of denunciation of the Istanbul Convention": the
        // organisation names whose officer is told, when another treaty
        // follows.
        let officer_of = organisation && {
            let mut k = m.tokens.start;
            if k > 0 && out.norm.token(k - 1) == "the" {
                k -= 1;
            }
            k > 0 && out.norm.token(k - 1) == "of" && out.agents.iter().any(|(t, _)| t.end + 1 == k)
        };
        // "notifies the Council of Europe of its denunciation of the
        // Istanbul Convention": the organisation told is an addressee too,
        // when another treaty follows ("notified UNESCO of its withdrawal"
        // is about UNESCO's own constitution).
        let another_follows = out.mentions[i + 1..]
            .iter()
            .any(|n| matches!(n.entity, Entity::Treaty(t) if Entity::Treaty(t) != m.entity));
        let told = organisation && another_follows && {
            let mut k = m.tokens.start;
            if k > 0 && out.norm.token(k - 1) == "the" {
                k -= 1;
            }
            k > 0
                && matches!(
                    out.norm.token(k - 1),
                    "notify"
                        | "notifies"
                        | "notified"
                        | "notifying"
                        | "inform"
                        | "informs"
                        | "informed"
                        | "informing"
                        | "told"
                        | "tells"
                        | "tell"
                )
        };
        if addressee || told || (officer_of && another_follows) {
            // Not the cue's object, but still the one treaty such a
            // sentence names ("The UNESCO Director-General regrets the
            // decision"): `resolve` falls back to it when the item names
            // no other.
            out.addressed.push(m.clone());
            continue;
        }
        let limit = next.map_or(out.norm.len(), |n| n.tokens.start);
        let noun = organisation
            && (m.tokens.end..limit.min(m.tokens.end + QUALIFIER_REACH))
                .take_while(|&k| !matches!(out.norm.token(k), COMMA | BREAK))
                .any(|k| c.treaty_nouns.iter().any(|w| w == out.norm.token(k)));
        if noun {
            kept.push(Mention {
                tokens: m.tokens.clone(),
                entity: Entity::OtherTreaty,
            });
        } else {
            kept.push(m.clone());
        }
    }
    out.mentions = kept;
    out.companions = hits
        .iter()
        .filter(|h| h.use_ == Use::Companion)
        .map(|h| h.tokens.clone())
        .collect();

    // Words a gap is measured in: a named treaty or state counts as one.
    // Only gapped phrases need the count.
    let gapped = phrases
        .iter()
        .any(|&p| c.phrases.get(p as usize).is_some_and(|p| p.slots.len() > 1));
    let mut words = Vec::new();
    // Commas inside a list of states ("the withdrawal of Burkina Faso, Mali
    // and Niger took effect") are part of the list, not a parenthetical.
    let mut list_comma = Vec::new();
    if gapped {
        words = vec![0usize; out.norm.len() + 1];
        let mut inner = vec![false; out.norm.len()];
        list_comma = vec![false; out.norm.len()];
        let is_state = |m: &Mention| matches!(m.entity, Entity::State(_) | Entity::Group(_));
        for m in &out.mentions {
            for i in m.tokens.start + 1..m.tokens.end.min(inner.len()) {
                inner[i] = true;
            }
        }
        for pair in out.mentions.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if is_state(a)
                && is_state(b)
                && b.tokens.start == a.tokens.end + 1
                && out.norm.token(a.tokens.end) == COMMA
            {
                list_comma[a.tokens.end] = true;
                inner[a.tokens.end] = true;
            }
        }
        for i in 0..out.norm.len() {
            words[i + 1] = words[i] + usize::from(!inner[i]);
        }
    }
    let mut rule_hits = join_parts(c, phrases, part_hits, &out.norm, &words, &list_comma);
    // Suppressors remove the cues and modifiers lying inside them.
    // reach[i] = the furthest end of a suppressor starting at or before
    // token i; a match is inside one when reach[start] >= end.
    if rule_hits
        .iter()
        .any(|(r, _)| matches!(r, RuleRef::Suppressor(_)))
    {
        let mut reach = vec![0usize; out.norm.len() + 1];
        for (r, t) in &rule_hits {
            if matches!(r, RuleRef::Suppressor(_)) && t.start < reach.len() {
                reach[t.start] = reach[t.start].max(t.end);
            }
        }
        for i in 1..reach.len() {
            reach[i] = reach[i].max(reach[i - 1]);
        }
        rule_hits.retain(|(r, t)| {
            matches!(r, RuleRef::Suppressor(_) | RuleRef::Discard(_))
                || reach.get(t.start).is_none_or(|&end| end < t.end)
        });
        // A treaty alias inside a suppressor means something else: "ICC"
        // in "the ICC Champions Trophy", "CCM" in "the ruling CCM party".
        let mut suppressed = Vec::new();
        out.mentions.retain(|m| {
            let inside = m.entity.is_treaty()
                && reach
                    .get(m.tokens.start)
                    .is_some_and(|&end| end >= m.tokens.end);
            if let (true, Entity::Treaty(t)) = (inside, m.entity) {
                suppressed.push(t);
            }
            !inside
        });
        out.other_senses = suppressed;
    }

    let mut cues: Vec<RuleMatch> = Vec::new();
    for (rule, tokens) in &rule_hits {
        match *rule {
            RuleRef::Cue(i) => cues.push(RuleMatch {
                index: i,
                tokens: tokens.clone(),
            }),
            RuleRef::Modifier(i) => {
                let lowercase_only = c
                    .modifiers
                    .get(i as usize)
                    .is_some_and(|m| m.lowercase_only);
                if !lowercase_only || is_lowercase(sentence, base, &out.norm, tokens) {
                    out.modifiers.push(RuleMatch {
                        index: i,
                        tokens: tokens.clone(),
                    });
                }
            }
            RuleRef::Discard(i) => out.discards.push(i),
            RuleRef::Suppressor(_) => {}
        }
    }
    // Of overlapping cues the longest is the most specific ("voted to
    // withdraw" over "withdraw").
    // A reversal is kept whatever it overlaps: "deposited a notification
    // revoking its notice of withdrawal" is a reversal inside a deposit.
    cues.sort_by_key(|m| (std::cmp::Reverse(m.tokens.len()), m.tokens.start));
    let mut kept: Vec<RuleMatch> = Vec::new();
    let mut taken = vec![false; out.norm.len()];
    for m in cues {
        let reversal = c
            .cues
            .get(m.index as usize)
            .is_some_and(|r| r.action == crate::domain::Action::WithdrawalReversed);
        if reversal || claim(&mut taken, &m.tokens) {
            kept.push(m);
        }
    }
    kept.sort_by_key(|m| m.tokens.start);
    out.cues = kept;
    out.modifiers.sort_by_key(|m| m.tokens.start);
    // Capitals are only read when a cue's actors are looked for.
    if !out.cues.is_empty() {
        out.capitalized = out
            .norm
            .original()
            .iter()
            .map(|r| {
                sentence
                    .get(r.start.saturating_sub(base)..)
                    .and_then(|s| s.chars().next())
                    .is_some_and(char::is_uppercase)
            })
            .collect();
    }
    out
}

/// A four-digit year ("the 2011 convention").
pub fn is_year(token: &str) -> bool {
    token.len() == 4
        && token.bytes().all(|b| b.is_ascii_digit())
        && matches!(token.as_bytes()[0], b'1' | b'2')
}

/// Whether `tokens` are written in `text` exactly as case-sensitive form
/// `form`.
fn written_as(
    c: &Compiled,
    text: &str,
    norm: &Normalized,
    tokens: Range<usize>,
    form: u16,
) -> bool {
    let r = norm.original_range(tokens);
    let written = text.get(r);
    let form = c.cased_forms.get(form as usize).map(String::as_str);
    written.is_some() && written == form
}

/// Marks `tokens` as held if none of them is; says whether it did.
fn claim(held: &mut [bool], tokens: &Range<usize>) -> bool {
    let Some(slot) = held.get_mut(tokens.clone()) else {
        return false;
    };
    if slot.iter().any(|&h| h) {
        return false;
    }
    slot.fill(true);
    true
}

/// Treaties first, then anaphora, then states and groups; each
/// leftmost-longest among what earlier kinds left free.
fn choose_mentions(hits: &[Hit], tokens: usize) -> Vec<Mention> {
    let tier = |u: Use| match u {
        Use::Treaty(t) => Some((0, Entity::Treaty(t))),
        Use::TreatyAnaphor(y) => Some((1, Entity::TreatyAnaphor(y))),
        Use::StateAnaphor => Some((1, Entity::StateAnaphor)),
        Use::StateListAnaphor => Some((1, Entity::StateListAnaphor)),
        Use::State(s) => Some((2, Entity::State(s))),
        Use::Group(g) => Some((2, Entity::Group(g))),
        _ => None,
    };
    let mut candidates: Vec<(u8, Mention)> = hits
        .iter()
        .filter_map(|h| {
            tier(h.use_).map(|(k, entity)| {
                (
                    k,
                    Mention {
                        tokens: h.tokens.clone(),
                        entity,
                    },
                )
            })
        })
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    // One stable sort puts the tiers in order, each leftmost-longest.
    candidates.sort_by_key(|(k, m)| (*k, m.tokens.start, std::cmp::Reverse(m.tokens.end)));
    // Which tokens a chosen mention already holds; a bitmap keeps this
    // linear however many names a hostile text repeats.
    let mut held = vec![false; tokens];
    let mut chosen: Vec<Mention> = candidates
        .into_iter()
        .filter_map(|(_, m)| claim(&mut held, &m.tokens).then_some(m))
        .collect();
    chosen.sort_by_key(|m| m.tokens.start);
    chosen
}

/// Agent phrases, leftmost-longest ("parliamentary committee" over
/// "parliament").
fn choose_agents(hits: &[Hit], tokens: usize) -> Vec<(Range<usize>, u8)> {
    let mut candidates: Vec<(Range<usize>, u8)> = hits
        .iter()
        .filter_map(|h| match h.use_ {
            Use::Agent(k) => Some((h.tokens.clone(), k)),
            _ => None,
        })
        .collect();
    if candidates.is_empty() {
        return candidates;
    }
    candidates.sort_by_key(|(t, _)| (t.start, std::cmp::Reverse(t.end)));
    let mut held = vec![false; tokens];
    candidates.retain(|(t, _)| claim(&mut held, t));
    candidates
}

/// The occurrences of `slot` in `part_hits` (sorted by slot, then start).
fn occurrences(part_hits: &[PartHit], slot: u32) -> &[PartHit] {
    let from = part_hits.partition_point(|p| p.slot < slot);
    let to = part_hits.partition_point(|p| p.slot <= slot);
    &part_hits[from..to]
}

/// The phrases every part of which occurs in `part_hits`, ascending: only
/// those can be complete. Each phrase is looked at only when its key part
/// (its least shared one, `Compiled::keyed`) occurs, so the hundreds of
/// phrases a common word starts or ends cost nothing in ordinary news.
fn complete_phrases(c: &Compiled, part_hits: &[PartHit], out: &mut Vec<u32>) {
    // Which slots occur, one bit each (a thousand slots are 16 words, kept
    // on the stack: this runs for nearly every sentence).
    let words = c.keyed.len().div_ceil(64);
    let (mut stack, mut heap) = ([0u64; 32], Vec::new());
    let present: &mut [u64] = if words <= stack.len() {
        &mut stack[..words]
    } else {
        heap.resize(words, 0);
        &mut heap
    };
    let has = |present: &[u64], s: u32| {
        present
            .get(s as usize / 64)
            .is_some_and(|w| w & (1 << (s % 64)) != 0)
    };
    for s in part_hits.iter().map(|p| p.slot) {
        if let Some(w) = present.get_mut(s as usize / 64) {
            *w |= 1 << (s % 64);
        }
    }
    let from = out.len();
    let mut previous = None;
    for slot in part_hits.iter().map(|p| p.slot) {
        if previous == Some(slot) {
            continue;
        }
        previous = Some(slot);
        for &id in c.keyed.get(slot as usize).map_or(&[][..], Vec::as_slice) {
            let all = c
                .phrases
                .get(id as usize)
                .is_some_and(|p| p.slots.iter().all(|&s| has(present, s)));
            if all {
                out.push(id);
            }
        }
    }
    out[from..].sort_unstable();
}

/// Joins the parts of gapped phrases: each next part must start within
/// `max_gap` words of the previous one's end (`words` is a prefix count of
/// words, where a name counts once), with no comma or clause break between.
/// `phrases` are the candidates, ascending; the matches come out in that
/// order.
fn join_parts(
    c: &Compiled,
    phrases: &[u32],
    part_hits: &[PartHit],
    norm: &Tokens,
    words: &[usize],
    list_comma: &[bool],
) -> Vec<(RuleRef, Range<usize>)> {
    let gap = |from: usize, to: usize| {
        words
            .get(to)
            .copied()
            .unwrap_or(0)
            .saturating_sub(words.get(from).copied().unwrap_or(0))
    };
    let mut out = Vec::new();
    for &phrase_id in phrases {
        let Some(phrase) = c.phrases.get(phrase_id as usize) else {
            continue;
        };
        // Each part's occurrences, sorted by start: a binary search finds
        // the candidates for the next part, so long texts stay linear.
        let Some((&first_slot, rest)) = phrase.slots.split_first() else {
            continue;
        };
        for first in occurrences(part_hits, first_slot).iter().map(|p| &p.tokens) {
            let mut end = first.end;
            let mut complete = true;
            for &slot in rest {
                let candidates = occurrences(part_hits, slot);
                let from = candidates.partition_point(|p| p.tokens.start < end);
                let next = candidates[from..]
                    .iter()
                    .take_while(|p| gap(end, p.tokens.start) <= phrase.max_gap + PARENTHETICAL + 2)
                    .find(|p| {
                        gap_fits(norm, end..p.tokens.start, &gap, phrase.max_gap, list_comma)
                    });
                match next {
                    Some(p) => end = p.tokens.end,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                out.push((phrase.rule, first.start..end));
            }
        }
    }
    out
}

/// Most words a gap may skip inside a comma-delimited parenthetical
/// ("voted, with two abstentions, to withdraw"; "voted 107-0 - with three
/// abstentions and several members present but not voting - to
/// denounce", whose dashes `normalize` reads as commas).
pub const PARENTHETICAL: usize = 16;

/// Whether tokens `range` may stand between two parts of a phrase: no clause
/// break, and either no comma or an even number of them (a parenthetical
/// such as ", 90 to 3," or ", acting as depositary,"), where the words
/// outside the commas are at most `max_gap` and those inside at most
/// `PARENTHETICAL`.
fn gap_fits(
    norm: &Tokens,
    range: Range<usize>,
    words: &dyn Fn(usize, usize) -> usize,
    max_gap: usize,
    list_comma: &[bool],
) -> bool {
    let commas: Vec<usize> = range
        .clone()
        .filter(|&x| norm.token(x) == COMMA && !list_comma.get(x).copied().unwrap_or(false))
        .collect();
    if range.clone().any(|x| norm.token(x) == BREAK) || commas.len() % 2 == 1 {
        return false;
    }
    // The words inside the commas (the commas themselves count on
    // neither side).
    let mut inside = 0;
    for pair in commas.chunks(2) {
        inside += words(pair[0] + 1, pair[1]);
    }
    inside <= PARENTHETICAL
        && words(range.start, range.end).saturating_sub(inside + commas.len()) <= max_gap
}

fn is_lowercase(sentence: &str, base: usize, norm: &Tokens, tokens: &Range<usize>) -> bool {
    let r = norm.original_range(tokens.clone());
    sentence
        .get(r.start.saturating_sub(base)..r.end.saturating_sub(base))
        .is_some_and(|s| !s.chars().any(char::is_uppercase))
}
