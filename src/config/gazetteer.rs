//! The gazetteer: which states exist, what news calls them, and named groups.
//!
//! Loads `states.toml` (see its header for the fields) into `Gazetteer`.
//! Owns the rule that a state code is ISO 3166-1 alpha-3 and that no name
//! may point at two states; finding names in text is the classifier's job.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, SourceText};

/// A state as the rest of the program sees it.
#[derive(Debug, Clone)]
pub struct State {
    /// ISO 3166-1 alpha-3, upper case.
    pub code: String,
    /// The name digests print.
    pub name: String,
    /// Every name and short form news uses for the state.
    pub names: Vec<String>,
    /// Adjective forms ("Ukrainian").
    pub adjectives: Vec<String>,
    /// Capitals or seats of government used as metonyms ("Kyiv said").
    pub capitals: Vec<String>,
    /// The legislature's own names ("Saeima", "Verkhovna Rada"): the state,
    /// acting through its legislature.
    pub legislatures: Vec<String>,
    /// Seats of the executive used as metonyms ("the Kremlin", "the
    /// Élysée"): the state, acting through its head of state or government.
    pub executives: Vec<String>,
    pub un: UnStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnStatus {
    Member,
    Observer,
}

/// Several states news names at once ("the Baltic states").
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub names: Vec<String>,
    /// State codes, all present in the gazetteer.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Gazetteer {
    pub states: Vec<State>,
    pub groups: Vec<Group>,
    by_code: HashMap<String, usize>,
}

impl Gazetteer {
    pub fn state(&self, code: &str) -> Option<&State> {
        self.by_code.get(code).map(|&i| &self.states[i])
    }

    /// The printable name of a state code, or the code itself when unknown.
    pub fn name_of<'a>(&'a self, code: &'a str) -> &'a str {
        self.state(code).map_or(code, |s| s.name.as_str())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    state: Vec<RawState>,
    #[serde(default)]
    group: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    code: Spanned<String>,
    name: String,
    #[serde(default)]
    names: Vec<Spanned<String>>,
    #[serde(default)]
    adjectives: Vec<Spanned<String>>,
    #[serde(default)]
    capitals: Vec<Spanned<String>>,
    #[serde(default)]
    legislatures: Vec<Spanned<String>>,
    #[serde(default)]
    executives: Vec<Spanned<String>>,
    un: UnStatus,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    id: Spanned<String>,
    names: Vec<Spanned<String>>,
    members: Vec<Spanned<String>>,
}

/// Parses and checks a states file, returning every problem found.
pub fn parse(src: &SourceText) -> Result<Gazetteer, Vec<Diagnostic>> {
    let raw: RawFile = toml::from_str(&src.text).map_err(|e| vec![src.from_toml(&e)])?;
    let mut problems = Vec::new();
    let mut gazetteer = Gazetteer::default();
    // Case-folded name -> owning state code, so one string never means two states.
    let mut owner: HashMap<String, String> = HashMap::new();

    for raw_state in raw.state {
        let code = raw_state.code.get_ref().clone();
        if !is_alpha3(&code) {
            problems.push(src.at(
                raw_state.code.span(),
                format!("state code {code:?} is not an ISO 3166-1 alpha-3 code; write three upper-case letters such as \"UKR\""),
            ));
            continue;
        }
        if gazetteer.by_code.contains_key(&code) {
            problems.push(src.at(
                raw_state.code.span(),
                format!("state {code} is defined twice; remove one of the [[state]] entries"),
            ));
            continue;
        }
        let mut strings = |list: Vec<Spanned<String>>, problems: &mut Vec<Diagnostic>| {
            let mut out = Vec::with_capacity(list.len());
            for s in list {
                let folded = s.get_ref().to_lowercase();
                if folded.trim().is_empty() {
                    problems
                        .push(src.at(s.span(), format!("empty name for state {code}; remove it")));
                    continue;
                }
                match owner.get(&folded) {
                    Some(other) if other != &code => problems.push(src.at(
                        s.span(),
                        format!(
                            "{:?} is listed for both {other} and {code}; an ambiguous name must be removed from both or kept for one",
                            s.get_ref()
                        ),
                    )),
                    _ => {
                        owner.insert(folded, code.clone());
                    }
                }
                out.push(s.into_inner());
            }
            out
        };
        let names = strings(raw_state.names, &mut problems);
        let adjectives = strings(raw_state.adjectives, &mut problems);
        let capitals = strings(raw_state.capitals, &mut problems);
        let legislatures = strings(raw_state.legislatures, &mut problems);
        let executives = strings(raw_state.executives, &mut problems);
        gazetteer
            .by_code
            .insert(code.clone(), gazetteer.states.len());
        gazetteer.states.push(State {
            code,
            name: raw_state.name,
            names,
            adjectives,
            capitals,
            legislatures,
            executives,
            un: raw_state.un,
        });
    }

    let mut group_ids = HashMap::new();
    for raw_group in raw.group {
        let id = raw_group.id.get_ref().clone();
        if group_ids.insert(id.clone(), ()).is_some() {
            problems.push(src.at(
                raw_group.id.span(),
                format!("group {id:?} is defined twice; remove one of the [[group]] entries"),
            ));
        }
        let mut members = Vec::new();
        for m in raw_group.members {
            if gazetteer.by_code.contains_key(m.get_ref()) {
                members.push(m.into_inner());
            } else {
                problems.push(src.at(
                    m.span(),
                    format!(
                        "group {id:?} names unknown state code {:?}; use a code defined by a [[state]] entry",
                        m.get_ref()
                    ),
                ));
            }
        }
        gazetteer.groups.push(Group {
            id,
            names: raw_group
                .names
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            members,
        });
    }

    if problems.is_empty() {
        Ok(gazetteer)
    } else {
        Err(problems)
    }
}

fn is_alpha3(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}
