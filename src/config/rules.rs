//! Cue rules: the phrases that tell the classifier what a sentence reports.
//!
//! Loads `rules.toml` (its header documents every field) into `CueRules`, a
//! plain data struct with no compiled automata: `classify::Classifier::new`
//! compiles it. Owns the checks a rule file must pass (unique ids, known
//! actions and kinds, well-formed phrases); deciding what a phrase means in
//! a sentence is the classifier's job.

use std::collections::HashSet;
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, SourceText};
use crate::domain::Action;
use crate::normalize::normalize;

/// Separates the parts of a phrase that may have a few words between them:
/// "deposited ... instrument of ratification".
pub const GAP: &str = "...";

/// Defaults for `[settings]`, exported so the docs and the code agree.
pub const DEFAULT_MAX_GAP: usize = 4;
pub const DEFAULT_MODIFIER_WINDOW: usize = 8;
pub const DEFAULT_HISTORY_DAYS: i64 = 60;

/// Every rule of a rules file, checked and ready to compile.
#[derive(Debug, Clone, Default)]
pub struct CueRules {
    pub settings: Settings,
    pub grammar: Grammar,
    pub context: ContextWords,
    /// Irregular inflections: base word -> its other forms ("withdraw" ->
    /// "withdrew", "withdrawn"), used where a rule says `inflect = true`.
    pub irregular: Vec<(String, Vec<String>)>,
    /// State names matched only as written, because in lower case they are
    /// ordinary words: state code -> names ("USA" -> "US").
    pub case_sensitive: Vec<(String, Vec<String>)>,
    /// Who acts, by kind: class -> the phrases naming such an agent.
    pub agents: Vec<AgentClassRule>,
    pub cues: Vec<Cue>,
    pub modifiers: Vec<Modifier>,
    pub suppressors: Vec<Suppressor>,
    pub discards: Vec<Discard>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Most words allowed where a phrase says `...`.
    pub max_gap: usize,
    /// Most words between a modifier and the cue it applies to.
    pub modifier_window: usize,
    /// A stage dated at least this many days before the item is history.
    pub history_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_gap: DEFAULT_MAX_GAP,
            modifier_window: DEFAULT_MODIFIER_WINDOW,
            history_days: DEFAULT_HISTORY_DAYS,
        }
    }
}

/// Single words with a grammatical job in the actor and scope heuristics.
#[derive(Debug, Clone, Default)]
pub struct Grammar {
    /// Words that start a new clause: modifiers and actors do not reach
    /// across them ("but", "while").
    pub clause_breaks: Vec<String>,
    /// Words allowed between the states of one list ("and", "the").
    pub list_words: Vec<String>,
    /// Words that introduce the actor after a passive cue ("by").
    pub passive_words: Vec<String>,
    /// Words after which a state is an object or a place ("in Moscow").
    pub object_words: Vec<String>,
    /// Phrases after a cue that add more actors ("along with").
    pub companions: Vec<String>,
    /// Words that may stand between a `treaty_follows` cue and its treaty
    /// ("the", "its").
    pub determiners: Vec<String>,
    /// Plural subjects that are not one state ("120 countries have
    /// joined"): the headline's state is not the actor then.
    pub generic_subjects: Vec<String>,
    /// Verbs that introduce reported speech ("said", "told"): a cue's agent
    /// is not looked for behind one (the speaker is not the actor).
    pub reporting_verbs: Vec<String>,
    /// Words that show an item speaks of a withdrawal, for cues with
    /// `needs_withdrawal`.
    pub withdrawal_words: Vec<String>,
}

/// Words that point back to the item's treaty or state.
#[derive(Debug, Clone, Default)]
pub struct ContextWords {
    /// Nouns that, after "the" (and optionally a year), mean the item's
    /// treaty: "the treaty", "the 1997 convention".
    pub treaty_nouns: Vec<String>,
    /// Phrases that mean the item's state: "the country".
    pub state_phrases: Vec<String>,
    /// Phrases that mean the states last named together: "all three",
    /// "the two countries".
    pub state_list_phrases: Vec<String>,
}

/// The kinds of agent a clause can have; the stage a cue reports depends on
/// which of them acts ("the cabinet approved withdrawal" announces it,
/// "parliament approved withdrawal" approves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentClass {
    Government,
    PrimeMinister,
    HeadOfState,
    Legislature,
    Committee,
    Court,
    Depositary,
    /// Opposition, parties, citizens, NGOs, experts: not the state acting.
    NonState,
}

impl AgentClass {
    pub const NAMES: [(&'static str, AgentClass); 8] = [
        ("government", AgentClass::Government),
        ("prime_minister", AgentClass::PrimeMinister),
        ("head_of_state", AgentClass::HeadOfState),
        ("legislature", AgentClass::Legislature),
        ("committee", AgentClass::Committee),
        ("court", AgentClass::Court),
        ("depositary", AgentClass::Depositary),
        ("non_state", AgentClass::NonState),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("agent", |(n, _)| n)
    }

    fn parse(s: &str) -> Option<AgentClass> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }
}

/// What a stage table cell says: a stage, or nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageCell {
    Stage(Action),
    Nothing,
}

impl StageCell {
    fn parse(s: &str) -> Result<StageCell, String> {
        if s == "none" {
            return Ok(StageCell::Nothing);
        }
        Action::from_str(s)
            .map(StageCell::Stage)
            .map_err(|e| format!("{e}, or \"none\""))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageCell::Stage(a) => a.as_str(),
            StageCell::Nothing => "none",
        }
    }
}

/// `[agents.CLASS]`: how news names an agent of that class, and the most
/// advanced stage such an agent can bring about on its own.
#[derive(Debug, Clone)]
pub struct AgentClassRule {
    pub class: AgentClass,
    pub phrases: Vec<String>,
    /// Withdrawal stages beyond this one become this one ("a committee
    /// approved the bill" announces); `Nothing` drops every cue.
    pub at_most: Option<StageCell>,
}

#[derive(Debug, Clone)]
pub struct Cue {
    pub id: String,
    pub action: Action,
    /// The stage table row of this predicate: agent class -> stage, where
    /// it differs from `action`.
    pub by_agent: Vec<(AgentClass, StageCell)>,
    /// A date after the item does not make the cue future ("effective as
    /// of 1 May": the notice has been given).
    pub future_ok: bool,
    /// Overrides `settings.max_gap` for this cue's phrases.
    pub max_gap: Option<usize>,
    /// The states written inside the cue act, before any named ahead of it
    /// ("Minsk commented the decision of the Sejm of Poland about ...").
    pub actor_inside: bool,
    /// Only when the item speaks of a withdrawal (`grammar.withdrawal_words`):
    /// a suspension law is the legislative step of a withdrawal under way,
    /// and nothing otherwise (LABELS.md).
    pub needs_withdrawal: bool,
    pub phrases: Vec<String>,
    pub inflect: bool,
    /// The treaty must follow the cue closely (or the clause must end):
    /// keeps "signs decree" from being a signature of a treaty.
    pub treaty_follows: bool,
    /// The sentence must name the treaty; the headline's is not enough.
    pub treaty_in_sentence: bool,
}

/// What a modifier says about a cue in its scope; every kind blocks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModifierKind {
    Negation,
    Hypothetical,
    Threat,
    Call,
    Background,
    History,
    /// Moves the cue to another stage instead of blocking it (`to`).
    Shift,
}

impl ModifierKind {
    const NAMES: [(&'static str, ModifierKind); 7] = [
        ("negation", ModifierKind::Negation),
        ("hypothetical", ModifierKind::Hypothetical),
        ("threat", ModifierKind::Threat),
        ("call", ModifierKind::Call),
        ("background", ModifierKind::Background),
        ("history", ModifierKind::History),
        ("shift", ModifierKind::Shift),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("modifier", |(n, _)| n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Before,
    After,
}

#[derive(Debug, Clone)]
pub struct Modifier {
    pub id: String,
    pub kind: ModifierKind,
    pub phrases: Vec<String>,
    pub inflect: bool,
    pub position: Position,
    /// Overrides `settings.modifier_window`.
    pub window: Option<usize>,
    /// Only cues of these actions are affected; empty means all.
    pub actions: Vec<Action>,
    /// The modifier does not reach past a comma ("Russia, which ...,").
    pub stops_at_comma: bool,
    /// Matches only where the text is written in lower case ("may", not
    /// the month "May").
    pub lowercase_only: bool,
    /// Blocks only a cue in the present or future ("takes effect six
    /// months after the notice"), not one in the past or perfect ("has
    /// become effective six months after the deposit").
    pub present_only: bool,
    /// For `kind = "shift"`: the stage the cue moves to.
    pub to: Option<StageCell>,
}

#[derive(Debug, Clone)]
pub struct Suppressor {
    pub id: String,
    pub phrases: Vec<String>,
    pub inflect: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardScope {
    /// The sentence containing the phrase is ignored.
    Sentence,
    /// The whole item is ignored when its title contains the phrase.
    Title,
    /// The whole item is ignored when any of it contains the phrase.
    Item,
}

#[derive(Debug, Clone)]
pub struct Discard {
    pub id: String,
    pub scope: DiscardScope,
    pub phrases: Vec<String>,
}

impl CueRules {
    /// Every rule id, for checks and listings.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.cues
            .iter()
            .map(|c| c.id.as_str())
            .chain(self.modifiers.iter().map(|m| m.id.as_str()))
            .chain(self.suppressors.iter().map(|s| s.id.as_str()))
            .chain(self.discards.iter().map(|d| d.id.as_str()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    settings: Option<RawSettings>,
    grammar: Option<RawGrammar>,
    context: Option<RawContext>,
    #[serde(default)]
    irregular: toml::Table,
    #[serde(default)]
    case_sensitive: toml::Table,
    #[serde(default)]
    agents: std::collections::BTreeMap<Spanned<String>, RawAgentClass>,
    #[serde(default)]
    cue: Vec<RawCue>,
    #[serde(default)]
    modifier: Vec<RawModifier>,
    #[serde(default)]
    suppressor: Vec<RawSuppressor>,
    #[serde(default)]
    discard: Vec<RawDiscard>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    max_gap: Option<Spanned<i64>>,
    modifier_window: Option<Spanned<i64>>,
    history_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrammar {
    #[serde(default)]
    clause_breaks: Vec<Spanned<String>>,
    #[serde(default)]
    list_words: Vec<Spanned<String>>,
    #[serde(default)]
    passive_words: Vec<Spanned<String>>,
    #[serde(default)]
    object_words: Vec<Spanned<String>>,
    #[serde(default)]
    companions: Vec<Spanned<String>>,
    #[serde(default)]
    generic_subjects: Vec<Spanned<String>>,
    #[serde(default)]
    determiners: Vec<Spanned<String>>,
    #[serde(default)]
    reporting_verbs: Vec<Spanned<String>>,
    #[serde(default)]
    withdrawal_words: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    #[serde(default)]
    treaty_nouns: Vec<Spanned<String>>,
    #[serde(default)]
    state_phrases: Vec<Spanned<String>>,
    #[serde(default)]
    state_list_phrases: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgentClass {
    phrases: Vec<Spanned<String>>,
    at_most: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCue {
    id: Spanned<String>,
    action: Spanned<String>,
    #[serde(default)]
    by_agent: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    future_ok: bool,
    max_gap: Option<Spanned<i64>>,
    #[serde(default)]
    needs_withdrawal: bool,
    #[serde(default)]
    actor_inside: bool,
    phrases: Vec<Spanned<String>>,
    #[serde(default)]
    inflect: bool,
    #[serde(default)]
    treaty_follows: bool,
    #[serde(default)]
    treaty_in_sentence: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModifier {
    id: Spanned<String>,
    kind: Spanned<String>,
    phrases: Vec<Spanned<String>>,
    #[serde(default)]
    inflect: bool,
    position: Option<Spanned<String>>,
    window: Option<Spanned<i64>>,
    #[serde(default)]
    actions: Vec<Spanned<String>>,
    #[serde(default)]
    stops_at_comma: bool,
    #[serde(default)]
    lowercase_only: bool,
    #[serde(default)]
    present_only: bool,
    to: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppressor {
    id: Spanned<String>,
    phrases: Vec<Spanned<String>>,
    #[serde(default)]
    inflect: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscard {
    id: Spanned<String>,
    scope: Spanned<String>,
    phrases: Vec<Spanned<String>>,
}

/// Parses and checks a rules file, returning every problem found.
pub fn parse(src: &SourceText) -> Result<CueRules, Vec<Diagnostic>> {
    let raw: RawFile = toml::from_str(&src.text).map_err(|e| vec![src.from_toml(&e)])?;
    let mut c = Checker {
        src,
        problems: Vec::new(),
        ids: HashSet::new(),
    };
    let mut rules = CueRules::default();

    if let Some(s) = raw.settings {
        let d = Settings::default();
        rules.settings = Settings {
            max_gap: c.count(s.max_gap.as_ref(), "max_gap", 0, 12, d.max_gap),
            modifier_window: c.count(
                s.modifier_window.as_ref(),
                "modifier_window",
                1,
                30,
                d.modifier_window,
            ),
            history_days: c.count(s.history_days.as_ref(), "history_days", 1, 3660, 60) as i64,
        };
    }
    if let Some(g) = raw.grammar {
        rules.grammar = Grammar {
            clause_breaks: c.words(g.clause_breaks, "clause_breaks"),
            list_words: c.words(g.list_words, "list_words"),
            passive_words: c.words(g.passive_words, "passive_words"),
            object_words: c.words(g.object_words, "object_words"),
            companions: c.phrases(g.companions, "companions", false),
            generic_subjects: c.words(g.generic_subjects, "generic_subjects"),
            determiners: c.words(g.determiners, "determiners"),
            reporting_verbs: c.words(g.reporting_verbs, "reporting_verbs"),
            withdrawal_words: c.words(g.withdrawal_words, "withdrawal_words"),
        };
    }
    if let Some(ctx) = raw.context {
        rules.context = ContextWords {
            treaty_nouns: c.words(ctx.treaty_nouns, "treaty_nouns"),
            state_phrases: c.phrases(ctx.state_phrases, "state_phrases", false),
            state_list_phrases: c.phrases(ctx.state_list_phrases, "state_list_phrases", false),
        };
    }
    rules.irregular = c.string_lists(
        raw.irregular,
        "irregular",
        "[\"withdrew\", \"withdrawn\"]",
        true,
    );
    rules.case_sensitive = c.string_lists(raw.case_sensitive, "case_sensitive", "[\"US\"]", false);
    for (code, _) in &rules.case_sensitive {
        if !(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())) {
            let at = c.src.text.find("[case_sensitive]").unwrap_or(0);
            c.problems.push(c.src.at(
                at..at,
                format!(
                    "case_sensitive.{code}: keys are ISO 3166-1 alpha-3 state codes such as \"USA\""
                ),
            ));
        }
    }

    for (class, a) in raw.agents {
        let Some(k) = AgentClass::parse(class.get_ref()) else {
            let names: Vec<&str> = AgentClass::NAMES.iter().map(|(n, _)| *n).collect();
            c.err(
                class.span(),
                format!(
                    "agents.{}: unknown agent class; write one of: {}",
                    class.get_ref(),
                    names.join(", ")
                ),
            );
            continue;
        };
        let at_most = a
            .at_most
            .as_ref()
            .and_then(|v| match StageCell::parse(v.get_ref()) {
                Ok(cell) => Some(cell),
                Err(e) => {
                    c.err(v.span(), format!("agents.{}.at_most: {e}", class.get_ref()));
                    None
                }
            });
        let phrases = c.phrases(a.phrases, class.get_ref(), false);
        rules.agents.push(AgentClassRule {
            class: k,
            phrases,
            at_most,
        });
    }

    for cue in raw.cue {
        let id_ok = c.id(&cue.id);
        let mut by_agent = Vec::new();
        for (class, stage) in &cue.by_agent {
            let Some(k) = AgentClass::parse(class.get_ref()) else {
                let names: Vec<&str> = AgentClass::NAMES.iter().map(|(n, _)| *n).collect();
                c.err(
                    class.span(),
                    format!(
                        "cue {}: by_agent names unknown agent class {:?}; write one of: {}",
                        cue.id.get_ref(),
                        class.get_ref(),
                        names.join(", ")
                    ),
                );
                continue;
            };
            match StageCell::parse(stage.get_ref()) {
                Ok(cell) => by_agent.push((k, cell)),
                Err(e) => c.err(stage.span(), format!("cue {}: {e}", cue.id.get_ref())),
            }
        }
        let action = match Action::from_str(cue.action.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                c.err(cue.action.span(), format!("cue {}: {e}", cue.id.get_ref()));
                None
            }
        };
        let phrases = c.phrases(cue.phrases, cue.id.get_ref(), true);
        if let (true, Some(action)) = (id_ok, action) {
            rules.cues.push(Cue {
                id: cue.id.into_inner(),
                action,
                by_agent,
                future_ok: cue.future_ok,
                needs_withdrawal: cue.needs_withdrawal,
                actor_inside: cue.actor_inside,
                max_gap: cue
                    .max_gap
                    .as_ref()
                    .map(|g| c.count(Some(g), "max_gap", 0, 12, DEFAULT_MAX_GAP)),
                phrases,
                inflect: cue.inflect,
                treaty_follows: cue.treaty_follows,
                treaty_in_sentence: cue.treaty_in_sentence,
            });
        }
    }

    for m in raw.modifier {
        let id_ok = c.id(&m.id);
        let name = m.id.get_ref().clone();
        let kind = ModifierKind::NAMES
            .iter()
            .find(|(n, _)| n == m.kind.get_ref())
            .map(|(_, k)| *k);
        if kind.is_none() {
            let names: Vec<&str> = ModifierKind::NAMES.iter().map(|(n, _)| *n).collect();
            c.err(
                m.kind.span(),
                format!(
                    "modifier {name}: unknown kind {:?}; write one of: {}",
                    m.kind.get_ref(),
                    names.join(", ")
                ),
            );
        }
        let position = match m.position.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("before") => Position::Before,
            Some("after") => Position::After,
            Some(other) => {
                let span = m.position.as_ref().map_or(0..0, Spanned::span);
                c.err(
                    span,
                    format!(
                        "modifier {name}: position {other:?} is not understood; write \"before\" (the default) or \"after\""
                    ),
                );
                Position::Before
            }
        };
        let window = m
            .window
            .as_ref()
            .map(|w| c.count(Some(w), "window", 0, 30, DEFAULT_MODIFIER_WINDOW));
        let mut actions = Vec::new();
        for a in &m.actions {
            match Action::from_str(a.get_ref()) {
                Ok(action) => actions.push(action),
                Err(e) => c.err(a.span(), format!("modifier {name}: {e}")),
            }
        }
        let to = match (&m.to, kind) {
            (Some(v), Some(ModifierKind::Shift)) => match StageCell::parse(v.get_ref()) {
                Ok(cell) => Some(cell),
                Err(e) => {
                    c.err(v.span(), format!("modifier {name}: to: {e}"));
                    None
                }
            },
            (None, Some(ModifierKind::Shift)) => {
                c.err(
                    m.kind.span(),
                    format!("modifier {name}: kind \"shift\" needs `to = \"<stage>\"`, the stage the cue moves to"),
                );
                None
            }
            (Some(v), _) => {
                c.err(
                    v.span(),
                    format!("modifier {name}: `to` only applies to kind = \"shift\"; remove it or change the kind"),
                );
                None
            }
            (None, _) => None,
        };
        let phrases = c.phrases(m.phrases, &name, true);
        if let (true, Some(kind)) = (id_ok, kind) {
            rules.modifiers.push(Modifier {
                id: name,
                kind,
                phrases,
                inflect: m.inflect,
                position,
                window,
                actions,
                stops_at_comma: m.stops_at_comma,
                lowercase_only: m.lowercase_only,
                present_only: m.present_only,
                to,
            });
        }
    }

    for s in raw.suppressor {
        let id_ok = c.id(&s.id);
        let phrases = c.phrases(s.phrases, s.id.get_ref(), true);
        if id_ok {
            rules.suppressors.push(Suppressor {
                id: s.id.into_inner(),
                phrases,
                inflect: s.inflect,
            });
        }
    }

    for d in raw.discard {
        let id_ok = c.id(&d.id);
        let scope = match d.scope.get_ref().as_str() {
            "sentence" => Some(DiscardScope::Sentence),
            "title" => Some(DiscardScope::Title),
            "item" => Some(DiscardScope::Item),
            other => {
                c.err(
                    d.scope.span(),
                    format!(
                        "discard {}: scope {other:?} is not understood; write \"sentence\", \"title\" or \"item\"",
                        d.id.get_ref()
                    ),
                );
                None
            }
        };
        let phrases = c.phrases(d.phrases, d.id.get_ref(), true);
        if let (true, Some(scope)) = (id_ok, scope) {
            rules.discards.push(Discard {
                id: d.id.into_inner(),
                scope,
                phrases,
            });
        }
    }

    if c.problems.is_empty() {
        Ok(rules)
    } else {
        Err(c.problems)
    }
}

/// Accumulates diagnostics while checking raw rules.
struct Checker<'a> {
    src: &'a SourceText,
    problems: Vec<Diagnostic>,
    ids: HashSet<String>,
}

impl Checker<'_> {
    fn err(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) {
        self.problems.push(self.src.at(span, message));
    }

    /// Checks a rule id's shape and uniqueness across all rule kinds.
    fn id(&mut self, id: &Spanned<String>) -> bool {
        let s = id.get_ref();
        let shape_ok = !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
            });
        if !shape_ok {
            self.err(
                id.span(),
                format!("rule id {s:?} may only use a-z, 0-9, '_', '-' and '.' (ids are stored with every detection); rename it"),
            );
            return false;
        }
        if !self.ids.insert(s.clone()) {
            self.err(
                id.span(),
                format!("rule id {s:?} is used twice; every rule needs its own id"),
            );
            return false;
        }
        true
    }

    fn count(
        &mut self,
        value: Option<&Spanned<i64>>,
        key: &str,
        min: i64,
        max: i64,
        default: usize,
    ) -> usize {
        match value {
            None => default,
            Some(v) if (min..=max).contains(v.get_ref()) => *v.get_ref() as usize,
            Some(v) => {
                self.err(
                    v.span(),
                    format!("{key} = {} is out of range; use {min}–{max}", v.get_ref()),
                );
                default
            }
        }
    }

    /// Checks phrases; `gaps` says whether `...` may join parts.
    fn phrases(&mut self, list: Vec<Spanned<String>>, owner: &str, gaps: bool) -> Vec<String> {
        if list.is_empty() {
            // No span for an empty list itself in every case; point at the owner.
            let at = self.src.text.find(owner).unwrap_or(0);
            self.err(
                at..at,
                format!("{owner}: no phrases; add at least one or remove the rule"),
            );
        }
        let mut out = Vec::with_capacity(list.len());
        for p in list {
            let s = p.get_ref();
            let parts: Vec<&str> = s.split(GAP).map(str::trim).collect();
            if parts.iter().all(|part| !has_word(part)) {
                self.err(
                    p.span(),
                    format!("{owner}: phrase {s:?} has no words; remove it"),
                );
                continue;
            }
            if parts.len() > 1 && !gaps {
                self.err(
                    p.span(),
                    format!("{owner}: phrase {s:?} may not contain {GAP:?} here"),
                );
                continue;
            }
            if parts.iter().any(|part| !has_word(part)) {
                self.err(
                    p.span(),
                    format!("{owner}: phrase {s:?} has {GAP:?} at its start, its end or twice in a row; {GAP:?} only joins two groups of words"),
                );
                continue;
            }
            out.push(p.into_inner());
        }
        out
    }

    /// Reads a table of string lists (`key = ["a", "b"]`). toml::Table keeps
    /// no spans, so problems point at the table header.
    fn string_lists(
        &mut self,
        table: toml::Table,
        name: &str,
        example: &str,
        lowercase: bool,
    ) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for (key, value) in table {
            let list: Option<Vec<String>> = match value {
                toml::Value::Array(a) => a
                    .into_iter()
                    .map(|v| {
                        v.as_str().map(|s| {
                            if lowercase {
                                s.to_lowercase()
                            } else {
                                s.to_string()
                            }
                        })
                    })
                    .collect(),
                _ => None,
            };
            match list {
                Some(list) => out.push((if lowercase { key.to_lowercase() } else { key }, list)),
                None => {
                    let header = format!("[{name}]");
                    let at = self.src.text.find(&header).unwrap_or(0);
                    self.problems.push(self.src.at(
                        at..at,
                        format!("{name}.{key} must be a list of strings, such as {example}"),
                    ));
                }
            }
        }
        out
    }

    /// Checks a list of single words, stored in the classifier's normal
    /// form ("U.N." -> "u.n") so they compare equal to text tokens.
    fn words(&mut self, list: Vec<Spanned<String>>, key: &str) -> Vec<String> {
        let mut out = Vec::with_capacity(list.len());
        for w in list {
            let norm = normalize(w.get_ref(), 0);
            if norm.len() == 1 {
                out.push(norm.token(0).to_string());
            } else {
                self.err(
                    w.span(),
                    format!("{key}: {:?} must be one word (or \",\")", w.get_ref()),
                );
            }
        }
        out
    }
}

fn has_word(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn check(text: &str) -> Result<CueRules, Vec<String>> {
        let src = SourceText::new(Path::new("rules.toml"), text.to_string());
        parse(&src).map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_minimal_file_parses() {
        let rules = check(
            "[[cue]]\nid = \"ratify\"\naction = \"ratified\"\nphrases = [\"ratify\"]\ninflect = true\n",
        )
        .unwrap();
        assert_eq!(rules.cues[0].action, Action::Ratified);
        assert_eq!(rules.settings, Settings::default());
    }

    #[test]
    fn problems_point_at_the_offending_value() {
        let errors = check(concat!(
            "[[cue]]\nid = \"a\"\naction = \"ratifed\"\nphrases = [\"ratify\"]\n",
            "[[cue]]\nid = \"a\"\naction = \"signed\"\nphrases = [\"... sign\"]\n",
            "[[modifier]]\nid = \"Bad Id\"\nkind = \"maybe\"\nphrases = [\"could\"]\n",
        ))
        .unwrap_err();
        assert!(
            errors[0].starts_with("rules.toml:3:10: cue a: unknown action \"ratifed\""),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("rules.toml:6:6: rule id \"a\" is used twice"));
        assert!(errors[2].starts_with("rules.toml:8:12: a: phrase \"... sign\""));
        assert!(errors[3].starts_with("rules.toml:10:6: rule id \"Bad Id\""));
        assert!(errors[4].starts_with("rules.toml:11:8: modifier Bad Id: unknown kind"));
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn unknown_fields_are_refused_with_a_position() {
        let errors = check("[[cue]]\nid = \"a\"\nacton = \"signed\"\n").unwrap_err();
        assert!(errors[0].starts_with("rules.toml:3:1:"), "{errors:?}");
    }
}
