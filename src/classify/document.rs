//! The document layer: from every frame an item's sentences produced to one
//! detection per (state, treaty), the stage the item as a whole reports.
//!
//! The most advanced stage wins (an item about the final vote implies the
//! announcement before it), with one exception: when the headline claims
//! more than the body's own account, the body's concrete stage wins ("X has
//! left the treaty" over a story about a vote that still awaits the
//! president's signature); a headline's reversal or joining stands. Pure;
//! reads only the candidates it is given.

use std::ops::Range;

use crate::domain::Action;

/// One (state, treaty, stage) a frame produced.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub state: u16,
    pub treaty: u16,
    pub stage: Action,
    /// The cue rule's index.
    pub rule: u16,
    /// The evidence sentence.
    pub span: Range<usize>,
    pub in_title: bool,
    /// The frame's index among the explanations, when they are kept.
    pub note: usize,
}

/// One candidate per (state, treaty), in text order of their evidence.
pub fn choose(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut pairs: Vec<(u16, u16)> = Vec::new();
    for c in candidates {
        if !pairs.contains(&(c.state, c.treaty)) {
            pairs.push((c.state, c.treaty));
        }
    }
    let mut out: Vec<&Candidate> = Vec::with_capacity(pairs.len());
    for (state, treaty) in pairs {
        let of_pair = || {
            candidates
                .iter()
                .filter(move |c| c.state == state && c.treaty == treaty)
        };
        // The first candidate of the most advanced stage: max_by_key keeps
        // the last maximum, so compare positions too.
        let best = |it: &mut dyn Iterator<Item = &'_ Candidate>| -> Option<usize> {
            let mut best: Option<(Action, usize)> = None;
            for (i, c) in it.enumerate() {
                if best.is_none_or(|(a, _)| c.stage > a) {
                    best = Some((c.stage, i));
                }
            }
            best.map(|(_, i)| i)
        };
        let all: Vec<&Candidate> = of_pair().collect();
        let body: Vec<&Candidate> = all.iter().copied().filter(|c| !c.in_title).collect();
        let pick = match (
            best(&mut all.iter().copied()),
            best(&mut body.iter().copied()),
        ) {
            (Some(a), Some(b))
                if all[a].in_title
                    && all[a].stage > body[b].stage
                    && is_progression(all[a].stage) =>
            {
                body[b]
            }
            (Some(a), _) => all[a],
            (None, _) => continue,
        };
        out.push(pick);
    }
    out.sort_by_key(|c| c.span.start);
    out
}

/// The steps of a withdrawal, where a headline can claim a later one than
/// its body reports. A reversal or a joining is its own event.
fn is_progression(stage: Action) -> bool {
    matches!(
        stage,
        Action::WithdrawalApproved | Action::WithdrawalNotified | Action::WithdrawalEffective
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(state: u16, stage: Action, in_title: bool, at: usize) -> Candidate {
        Candidate {
            state,
            treaty: 0,
            stage,
            rule: 0,
            span: at..at + 1,
            in_title,
            note: 0,
        }
    }

    #[test]
    fn the_most_advanced_stage_wins_unless_only_the_headline_claims_it() {
        use Action::*;
        let check = |cs: Vec<Candidate>, expected: &[(u16, Action)]| {
            let got: Vec<(u16, Action)> = choose(&cs).iter().map(|c| (c.state, c.stage)).collect();
            assert_eq!(got, expected);
        };
        check(
            vec![
                cand(1, WithdrawalAnnounced, false, 5),
                cand(1, WithdrawalApproved, false, 9),
            ],
            &[(1, WithdrawalApproved)],
        );
        // The headline overstates; the body's vote is what happened.
        check(
            vec![
                cand(1, WithdrawalEffective, true, 0),
                cand(1, WithdrawalApproved, false, 9),
            ],
            &[(1, WithdrawalApproved)],
        );
        // The body agrees, or says nothing of its own: the headline stands.
        check(
            vec![
                cand(1, WithdrawalNotified, true, 0),
                cand(1, WithdrawalNotified, false, 9),
                cand(2, Ratified, true, 0),
            ],
            &[(1, WithdrawalNotified), (2, Ratified)],
        );
    }
}
