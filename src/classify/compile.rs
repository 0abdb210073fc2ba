//! Compiling the gazetteer, the treaty catalogue and the cue rules into one
//! Aho-Corasick automaton, built once per `Classifier`.
//!
//! Every phrase is normalised exactly as text is (see `normalize`), padded
//! with a space at each end so that matches fall on whole words, and
//! expanded into its variants: adjective plurals ("Ukrainians"), the year
//! forms of treaty anaphora ("the 1997 treaty"), and, where a rule asks for
//! it, the inflections of the first word of each of its parts ("withdraw",
//! "withdraws", "withdrew", "withdrawn", "withdrawing"). A pattern can serve several
//! purposes at once, so each carries a list of `Use`s. Phrases with "..."
//! are split into parts that `scan` joins again; a part is a slot (its set
//! of forms) shared by every phrase that writes it alike, and each phrase is
//! keyed by its least shared slot, so that a common word costs one record
//! per hit rather than one per phrase it begins or ends. Owns the pattern
//! table; reading sentences is elsewhere.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::config::rules::{
    AgentClass, CueRules, DiscardScope, GAP, Modifier, Position, StageCell,
};
use crate::config::{Gazetteer, Treaties};
use crate::domain::Action;
use crate::normalize::normalize;

/// What a pattern means when it matches, besides being a form of a phrase
/// part (`Compiled::pattern_slots`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Treaty(u16),
    State(u16),
    Group(u16),
    /// A case-sensitive state name: form `form` of `Compiled::cased_forms`.
    StateCased {
        state: u16,
        form: u16,
    },
    /// A case-sensitive treaty alias ("WHO"), likewise.
    TreatyCased {
        treaty: u16,
        form: u16,
    },
    /// "the treaty"; with a year, "the 1997 treaty".
    TreatyAnaphor(Option<u16>),
    /// A word of a treaty's name that, after a treaty noun, names it
    /// ("anti-personnel mines" in "the convention banning the
    /// anti-personnel mines").
    TreatyKeyword(u16),
    /// "the country".
    StateAnaphor,
    /// "all three": the states last named together.
    StateListAnaphor,
    /// A companion phrase after a cue ("along with").
    Companion,
    /// An agent of class `Compiled::agent_classes[i]` ("parliament",
    /// "the cabinet", "the Constitutional Court").
    Agent(u8),
}

/// What a rule phrase belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRef {
    Cue(u16),
    Modifier(u16),
    Suppressor(u16),
    Discard(u16),
}

#[derive(Debug, Clone)]
pub struct Phrase {
    pub rule: RuleRef,
    /// Per part, in order, the slot (`Compiled::pattern_slots`) that matches it.
    pub slots: Vec<u32>,
    /// Most words between two parts.
    pub max_gap: usize,
}

/// A cue rule ready for matching.
#[derive(Debug, Clone)]
pub struct CueRule {
    pub id: String,
    pub action: Action,
    /// The stage table row: agent class -> stage, where it differs.
    pub by_agent: Vec<(AgentClass, StageCell)>,
    pub future_ok: bool,
    pub needs_withdrawal: bool,
    pub actor_inside: bool,
    pub treaty_follows: bool,
    pub treaty_in_sentence: bool,
    /// The normalised words of its phrases, so that a negation inside a
    /// gap ("the exit cannot become effective") is told from the phrase's
    /// own words ("no longer bound").
    pub words: Vec<String>,
}

/// A modifier rule ready for matching.
#[derive(Debug, Clone)]
pub struct ModifierRule {
    pub id: String,
    pub kind: crate::config::rules::ModifierKind,
    pub before: bool,
    pub window: usize,
    /// Bit `a as usize` set for each action affected.
    pub actions: u8,
    pub stops_at_comma: bool,
    pub lowercase_only: bool,
    pub present_only: bool,
    /// For a shift: the stage the cue moves to.
    pub to: Option<StageCell>,
}

impl ModifierRule {
    pub fn applies_to(&self, action: Action) -> bool {
        self.actions & action_bit(action) != 0
    }
}

pub fn action_bit(action: Action) -> u8 {
    1 << (action as u8)
}

/// Where one pattern's uses and slots are, and how many tokens it spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatternInfo {
    pub tokens: u32,
    uses: (u32, u32),
    slots: (u32, u32),
}

pub struct Compiled {
    pub automaton: AhoCorasick,
    /// Whether an item can name a treaty at all (`None`: always read).
    pub prefilter: Option<super::prefilter::Prefilter>,
    /// Per pattern id, its length in tokens and where its uses and slots
    /// are in `use_list` and `slot_list`: one flat table, because it is read
    /// for every match and a vector per pattern costs a cache miss each.
    pub patterns: Vec<PatternInfo>,
    /// Each pattern's uses (what it means as a name or a grammar phrase).
    pub use_list: Vec<Use>,
    /// Each pattern's slots, ascending. A slot is one set of forms ("sign",
    /// "signs", "signed", "signing") shared by every phrase part written
    /// alike: a pattern such as "withdrawal" ends some two hundred phrases,
    /// and a hit of it is recorded once per slot, not once per phrase.
    pub slot_list: Vec<u32>,
    pub phrases: Vec<Phrase>,
    /// Per slot, the phrases keyed by it (ascending): each phrase is keyed
    /// by its part shared with the fewest other phrases, and is tried only
    /// when that part occurs. Common first words ("sign", "pass") start
    /// hundreds of phrases; keying on them would try every one.
    pub keyed: Vec<Vec<u32>>,
    pub cues: Vec<CueRule>,
    pub modifiers: Vec<ModifierRule>,
    /// Agent classes by `Use::Agent` index, with their stage caps.
    pub agent_classes: Vec<(AgentClass, Option<StageCell>)>,
    pub discards: Vec<(String, DiscardScope)>,
    pub clause_breaks: Vec<String>,
    pub list_words: Vec<String>,
    pub passive_words: Vec<String>,
    pub object_words: Vec<String>,
    pub generic_subjects: Vec<String>,
    pub determiners: Vec<String>,
    pub reporting_verbs: Vec<String>,
    pub withdrawal_words: Vec<String>,
    pub treaty_nouns: Vec<String>,
    /// The treaty nouns plus the nouns organisations' founding treaties go
    /// by ("charter", "constitution"): what may head a treaty's name
    /// ("the Charter of the OAS"), though "the constitution" alone is no
    /// anaphor of the item's treaty.
    pub name_nouns: Vec<String>,
    /// Per treaty index: whether it founds an organisation (`organisation`
    /// in treaties.toml).
    pub organisations: Vec<bool>,
    /// The exact spellings of case-sensitive state names.
    pub cased_forms: Vec<String>,
    pub history_days: i64,
}

/// Collects patterns, merging the uses of identical ones.
#[derive(Default)]
struct Builder {
    patterns: Vec<String>,
    uses: Vec<Vec<Use>>,
    index: HashMap<String, usize>,
}

impl Builder {
    /// Adds the normalised form of `phrase` (one part, no gaps) for `use_`.
    fn add(&mut self, phrase: &str, use_: Use) {
        if let Some(id) = self.pattern(phrase)
            && !self.uses[id].contains(&use_)
        {
            self.uses[id].push(use_);
        }
    }

    /// The id of the normalised form of `phrase`, added if new; `None` when
    /// it normalises to nothing.
    fn pattern(&mut self, phrase: &str) -> Option<usize> {
        let norm = normalize(phrase, 0).text;
        if norm.trim().is_empty() {
            return None;
        }
        Some(match self.index.get(&norm) {
            Some(&id) => id,
            None => {
                let id = self.patterns.len();
                self.index.insert(norm.clone(), id);
                self.patterns.push(norm);
                self.uses.push(Vec::new());
                id
            }
        })
    }
}

/// Phrase parts deduplicated by their set of forms.
#[derive(Default)]
struct Slots {
    /// Per slot, its forms (pattern ids, ascending).
    forms: Vec<Vec<usize>>,
    index: HashMap<Vec<usize>, u32>,
}

impl Slots {
    fn slot(&mut self, mut forms: Vec<usize>) -> u32 {
        forms.sort_unstable();
        forms.dedup();
        if let Some(&id) = self.index.get(&forms) {
            return id;
        }
        let id = self.forms.len() as u32;
        self.forms.push(forms.clone());
        self.index.insert(forms, id);
        id
    }
}

/// The forms of an English word a news text may use: third person,
/// past, participles and plurals. Over-generation is harmless (a form that
/// is not a word never matches), so the rules are simple.
pub fn inflections(word: &str, irregular: &HashMap<&str, &[String]>) -> Vec<String> {
    let mut out = vec![word.to_string()];
    if let Some(forms) = irregular.get(word) {
        out.extend(forms.iter().cloned());
    }
    let chars: Vec<char> = word.chars().collect();
    let n = chars.len();
    if n < 2 || !chars.iter().all(|c| c.is_ascii_alphabetic()) {
        return out;
    }
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u');
    let last = chars[n - 1];
    let stem = &word[..n - 1];
    if word.ends_with('e') {
        out.push(format!("{word}s"));
        out.push(format!("{word}d"));
        out.push(format!("{stem}ing"));
    } else if last == 'y' && !is_vowel(chars[n - 2]) {
        out.push(format!("{stem}ies"));
        out.push(format!("{stem}ied"));
        out.push(format!("{word}ing"));
    } else {
        let sibilant = ["s", "x", "z", "ch", "sh"]
            .iter()
            .any(|e| word.ends_with(e));
        out.push(format!("{word}{}", if sibilant { "es" } else { "s" }));
        out.push(format!("{word}ed"));
        out.push(format!("{word}ing"));
        // Consonant-vowel-consonant endings double: "quit" -> "quitting".
        if n >= 3
            && !is_vowel(last)
            && !matches!(last, 'w' | 'x' | 'y')
            && is_vowel(chars[n - 2])
            // "qu" sounds as a consonant: "quit" doubles like "submit".
            && (!is_vowel(chars[n - 3]) || (n >= 4 && chars[n - 4] == 'q'))
        {
            out.push(format!("{word}{last}ed"));
            out.push(format!("{word}{last}ing"));
        }
    }
    out
}

/// The forms of one part of a phrase to match: the part itself and, when
/// `inflect`, one per form of its first word ("adopt ... law on ...
/// withdrawal" also matches "adopted the laws on the withdrawals").
fn part_forms(part: &str, inflect: bool, irregular: &HashMap<&str, &[String]>) -> Vec<String> {
    let part = part.trim();
    if !inflect {
        return vec![part.to_string()];
    }
    let (first, rest) = part.split_once(' ').unwrap_or((part, ""));
    inflections(&first.to_lowercase(), irregular)
        .into_iter()
        .map(|f| {
            if rest.is_empty() {
                f
            } else {
                format!("{f} {rest}")
            }
        })
        .collect()
}

impl Compiled {
    pub fn new(gazetteer: &Gazetteer, treaties: &Treaties, rules: &CueRules) -> Compiled {
        let mut b = Builder::default();
        for (i, t) in treaties.list.iter().enumerate() {
            let i = i as u16;
            b.add(&t.short_name, Use::Treaty(i));
            b.add(&t.name, Use::Treaty(i));
            for a in &t.aliases {
                b.add(a, Use::Treaty(i));
            }
            for k in &t.keywords {
                b.add(k, Use::TreatyKeyword(i));
            }
        }
        for (i, s) in gazetteer.states.iter().enumerate() {
            let i = i as u16;
            for n in s
                .names
                .iter()
                .chain(&s.capitals)
                .chain(&s.legislatures)
                .chain(&s.executives)
            {
                b.add(n, Use::State(i));
            }
            for a in &s.adjectives {
                b.add(a, Use::State(i));
                // Plural nouns from adjectives: "Ukrainians", "Lithuanians".
                b.add(&format!("{a}s"), Use::State(i));
            }
        }
        let mut cased_forms = Vec::new();
        for (i, t) in treaties.list.iter().enumerate() {
            for n in &t.cased_aliases {
                let form = cased_forms.len() as u16;
                cased_forms.push(n.clone());
                b.add(
                    n,
                    Use::TreatyCased {
                        treaty: i as u16,
                        form,
                    },
                );
            }
        }
        for (code, names) in &rules.case_sensitive {
            let Some(state) = gazetteer.states.iter().position(|s| &s.code == code) else {
                continue;
            };
            for n in names {
                let form = cased_forms.len() as u16;
                cased_forms.push(n.clone());
                b.add(
                    n,
                    Use::StateCased {
                        state: state as u16,
                        form,
                    },
                );
            }
        }
        for (i, g) in gazetteer.groups.iter().enumerate() {
            for n in &g.names {
                b.add(n, Use::Group(i as u16));
            }
        }
        let mut years: Vec<u16> = treaties.list.iter().filter_map(|t| t.year).collect();
        years.sort_unstable();
        years.dedup();
        for noun in &rules.context.treaty_nouns {
            b.add(&format!("the {noun}"), Use::TreatyAnaphor(None));
            for &y in &years {
                b.add(&format!("the {y} {noun}"), Use::TreatyAnaphor(Some(y)));
                b.add(&format!("its {y} {noun}"), Use::TreatyAnaphor(Some(y)));
            }
        }
        for p in &rules.context.state_phrases {
            b.add(p, Use::StateAnaphor);
        }
        for p in &rules.context.state_list_phrases {
            b.add(p, Use::StateListAnaphor);
        }
        for p in &rules.grammar.companions {
            b.add(p, Use::Companion);
        }
        // Agent classes: the configured phrases, plus every legislature's
        // and executive seat's own name ("the Saeima voted").
        let mut agent_classes: Vec<(AgentClass, Option<StageCell>)> = Vec::new();
        let mut class_index = |class: AgentClass, at_most: Option<StageCell>| match agent_classes
            .iter()
            .position(|(k, _)| *k == class)
        {
            Some(i) => i as u8,
            None => {
                agent_classes.push((class, at_most));
                (agent_classes.len() - 1) as u8
            }
        };
        for a in &rules.agents {
            let i = class_index(a.class, a.at_most);
            for p in &a.phrases {
                b.add(p, Use::Agent(i));
            }
        }
        let legislature = class_index(AgentClass::Legislature, None);
        let executive = class_index(AgentClass::Government, None);
        for s in &gazetteer.states {
            for n in &s.legislatures {
                b.add(n, Use::Agent(legislature));
            }
            for n in &s.executives {
                b.add(n, Use::Agent(executive));
            }
        }

        let irregular: HashMap<&str, &[String]> = rules
            .irregular
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let mut phrases = Vec::new();
        let mut slots = Slots::default();
        // Every form of a part is a pattern for that same part, so a phrase
        // with several inflected parts costs the sum of their forms, not
        // the product.
        let default_gap = rules.settings.max_gap;
        let mut add_phrase = |b: &mut Builder,
                              rule: RuleRef,
                              phrase: &str,
                              inflect: bool,
                              max_gap: Option<usize>| {
            let parts: Vec<&str> = phrase.split(GAP).map(str::trim).collect();
            if u8::try_from(parts.len()).is_err() {
                return;
            }
            let phrase_slots = parts
                .iter()
                .map(|part| {
                    let forms = part_forms(part, inflect, &irregular)
                        .iter()
                        .filter_map(|form| b.pattern(form))
                        .collect();
                    slots.slot(forms)
                })
                .collect();
            phrases.push(Phrase {
                rule,
                slots: phrase_slots,
                max_gap: max_gap.unwrap_or(default_gap),
            });
        };

        let mut cues = Vec::new();
        for (i, c) in rules.cues.iter().enumerate() {
            for p in &c.phrases {
                add_phrase(&mut b, RuleRef::Cue(i as u16), p, c.inflect, c.max_gap);
            }
            cues.push(CueRule {
                id: c.id.clone(),
                action: c.action,
                by_agent: c.by_agent.clone(),
                future_ok: c.future_ok,
                needs_withdrawal: c.needs_withdrawal,
                actor_inside: c.actor_inside,
                treaty_follows: c.treaty_follows,
                treaty_in_sentence: c.treaty_in_sentence,
                words: {
                    let mut w: Vec<String> = c
                        .phrases
                        .iter()
                        .flat_map(|p| {
                            let n = normalize(p, 0);
                            (0..n.len()).map(move |i| n.token(i).to_string())
                        })
                        .collect();
                    w.sort();
                    w.dedup();
                    w
                },
            });
        }
        let mut modifiers = Vec::new();
        for (i, m) in rules.modifiers.iter().enumerate() {
            for p in &m.phrases {
                add_phrase(&mut b, RuleRef::Modifier(i as u16), p, m.inflect, None);
            }
            modifiers.push(modifier_rule(m, rules.settings.modifier_window));
        }
        for (i, s) in rules.suppressors.iter().enumerate() {
            for p in &s.phrases {
                add_phrase(&mut b, RuleRef::Suppressor(i as u16), p, s.inflect, None);
            }
        }
        for (i, d) in rules.discards.iter().enumerate() {
            for p in &d.phrases {
                add_phrase(&mut b, RuleRef::Discard(i as u16), p, false, None);
            }
        }

        let mut pattern_slots = vec![Vec::new(); b.patterns.len()];
        for (slot, forms) in slots.forms.iter().enumerate() {
            for &p in forms {
                pattern_slots[p].push(slot as u32);
            }
        }
        let (mut use_list, mut slot_list) = (Vec::new(), Vec::new());
        let patterns = b
            .patterns
            .iter()
            .zip(&b.uses)
            .zip(&pattern_slots)
            .map(|((text, uses), own_slots)| {
                let info = PatternInfo {
                    tokens: text.split(' ').filter(|t| !t.is_empty()).count() as u32,
                    uses: (use_list.len() as u32, (use_list.len() + uses.len()) as u32),
                    slots: (
                        slot_list.len() as u32,
                        (slot_list.len() + own_slots.len()) as u32,
                    ),
                };
                use_list.extend_from_slice(uses);
                slot_list.extend_from_slice(own_slots);
                info
            })
            .collect();
        // How many phrases use each slot; a phrase is keyed by its least
        // shared one (the last such part on a tie).
        let mut sharing = vec![0usize; slots.forms.len()];
        for p in &phrases {
            let mut own = p.slots.clone();
            own.sort_unstable();
            own.dedup();
            for s in own {
                sharing[s as usize] += 1;
            }
        }
        let mut keyed = vec![Vec::new(); slots.forms.len()];
        for (id, p) in phrases.iter().enumerate() {
            if let Some(&key) = p.slots.iter().rev().min_by_key(|&&s| sharing[s as usize]) {
                keyed[key as usize].push(id as u32);
            }
        }

        // Overlapping search needs Standard semantics. A contiguous NFA,
        // not a DFA: with the shipped rules the DFA takes 8.9 MB, which no
        // cache holds, and scans normalised news at 66 MB/s against the
        // NFA's 92 MB/s in 0.5 MB (benches/classify.rs corpora, same
        // matches in the same order).
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&b.patterns)
            .or_else(|_| {
                // A contiguous NFA can exceed its size limit with a very
                // large rule set; the default choice always builds.
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&b.patterns)
            })
            .unwrap_or_else(|_| {
                AhoCorasick::new(Vec::<String>::new()).expect("an empty automaton builds")
            });

        let name_nouns: Vec<String> = rules
            .context
            .treaty_nouns
            .iter()
            .cloned()
            .chain(["charter".to_string(), "constitution".to_string()])
            .collect();
        let cased: Vec<String> = treaties
            .list
            .iter()
            .flat_map(|t| t.cased_aliases.iter().cloned())
            .collect();
        let prefilter = super::prefilter::Prefilter::new(
            treaties.list.iter().flat_map(|t| {
                [t.name.as_str(), t.short_name.as_str()]
                    .into_iter()
                    .chain(t.aliases.iter().map(String::as_str))
                    .chain(t.keywords.iter().map(String::as_str))
            }),
            name_nouns.iter().map(String::as_str),
            &cased,
        );
        Compiled {
            automaton,
            prefilter,
            patterns,
            use_list,
            slot_list,
            phrases,
            keyed,
            cues,
            modifiers,
            agent_classes,
            discards: rules
                .discards
                .iter()
                .map(|d| (d.id.clone(), d.scope))
                .collect(),
            clause_breaks: rules.grammar.clause_breaks.clone(),
            list_words: rules.grammar.list_words.clone(),
            passive_words: rules.grammar.passive_words.clone(),
            object_words: rules.grammar.object_words.clone(),
            generic_subjects: rules.grammar.generic_subjects.clone(),
            determiners: rules.grammar.determiners.clone(),
            reporting_verbs: rules.grammar.reporting_verbs.clone(),
            withdrawal_words: rules.grammar.withdrawal_words.clone(),
            treaty_nouns: rules.context.treaty_nouns.clone(),
            name_nouns,
            organisations: treaties.list.iter().map(|t| t.organisation).collect(),
            cased_forms,
            history_days: rules.settings.history_days,
        }
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// What pattern `p` means as a name or a grammar phrase.
    pub fn uses(&self, p: usize) -> &[Use] {
        let (from, to) = self.patterns.get(p).map_or((0, 0), |i| i.uses);
        self.use_list.get(from as usize..to as usize).unwrap_or(&[])
    }

    /// The slots pattern `p` is a form of.
    pub fn slots(&self, p: usize) -> &[u32] {
        let (from, to) = self.patterns.get(p).map_or((0, 0), |i| i.slots);
        self.slot_list
            .get(from as usize..to as usize)
            .unwrap_or(&[])
    }

    /// Heap bytes held by the automaton.
    pub fn memory_usage(&self) -> usize {
        self.automaton.memory_usage()
            + self
                .prefilter
                .as_ref()
                .map_or(0, super::prefilter::Prefilter::memory_usage)
    }
}

fn modifier_rule(m: &Modifier, default_window: usize) -> ModifierRule {
    let actions = if m.actions.is_empty() {
        u8::MAX
    } else {
        m.actions.iter().fold(0, |bits, &a| bits | action_bit(a))
    };
    ModifierRule {
        id: m.id.clone(),
        kind: m.kind,
        before: m.position == Position::Before,
        window: m.window.unwrap_or(default_window),
        actions,
        stops_at_comma: m.stops_at_comma,
        lowercase_only: m.lowercase_only,
        present_only: m.present_only,
        to: m.to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_words_inflect_regularly_and_irregularly() {
        let withdrew = vec!["withdrew".to_string(), "withdrawn".to_string()];
        let irregular: HashMap<&str, &[String]> = [("withdraw", withdrew.as_slice())].into();
        let forms = inflections("withdraw", &irregular);
        for f in [
            "withdraw",
            "withdraws",
            "withdrew",
            "withdrawn",
            "withdrawing",
        ] {
            assert!(forms.contains(&f.to_string()), "{f} missing from {forms:?}");
        }
        let none = HashMap::new();
        assert!(inflections("ratify", &none).contains(&"ratified".to_string()));
        assert!(inflections("ratify", &none).contains(&"ratifies".to_string()));
        assert!(inflections("accede", &none).contains(&"acceding".to_string()));
        assert!(inflections("quit", &none).contains(&"quitting".to_string()));
        assert!(inflections("vote", &none).contains(&"voted".to_string()));
        assert_eq!(part_forms("sign", true, &none)[1], "signs");
        assert_eq!(part_forms("law on", true, &none)[1], "laws on");
    }
}
