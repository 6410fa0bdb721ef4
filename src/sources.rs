//! How each source is doing, and whether its autonomy should change. Pure: the numbers come
//! from the store, the judgement is here, so it is the same for every caller and testable.

use crate::policy::Autonomy;

/// Human decisions needed before a recommendation is made: fewer say more about luck than about
/// the source.
pub const MIN_DECISIONS: u64 = 20;

pub use crate::model::SourceStats;

/// What to do with a source's autonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Advice {
    Keep,
    Promote,
    Demote,
}

impl std::fmt::Display for Advice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Advice::Keep => "keep",
            Advice::Promote => "promote",
            Advice::Demote => "demote",
        })
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recommendation {
    pub verdict: Advice,
    /// The autonomy to move it to, unless it is kept.
    pub to: Option<Autonomy>,
    pub why: String,
}

/// Promote a source humans almost always approve; demote one they often reject.
pub fn recommend(autonomy: Autonomy, s: &SourceStats) -> Recommendation {
    let keep = |why: String| Recommendation {
        verdict: Advice::Keep,
        to: None,
        why,
    };
    let Some(rate) = s.acceptance().filter(|_| s.decided() >= MIN_DECISIONS) else {
        return keep(format!(
            "not enough human decisions yet ({} of {MIN_DECISIONS})",
            s.decided()
        ));
    };
    let pct = rate * 100.0;
    match autonomy {
        Autonomy::Autonomous if rate < 0.5 => Recommendation {
            verdict: Advice::Demote,
            to: Some(Autonomy::Assistive),
            why: format!("humans approve only {pct:.0}% of its proposals"),
        },
        Autonomy::Autonomous if rate < 0.8 => Recommendation {
            verdict: Advice::Demote,
            to: Some(Autonomy::Supervised),
            why: format!("humans approve {pct:.0}%: too many mistakes to apply unseen"),
        },
        Autonomy::Supervised if rate >= 0.95 => Recommendation {
            verdict: Advice::Promote,
            to: Some(Autonomy::Autonomous),
            why: format!("humans approve {pct:.0}% of its proposals"),
        },
        Autonomy::Supervised if rate < 0.5 => Recommendation {
            verdict: Advice::Demote,
            to: Some(Autonomy::Assistive),
            why: format!("humans approve only {pct:.0}%"),
        },
        Autonomy::Assistive if rate >= 0.9 => Recommendation {
            verdict: Advice::Promote,
            to: Some(Autonomy::Supervised),
            why: format!("humans approve {pct:.0}% of its suggestions"),
        },
        _ => keep(format!(
            "humans approve {pct:.0}%, in line with its autonomy"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(approved: u64, rejected: u64) -> SourceStats {
        SourceStats {
            approved,
            rejected,
            ..SourceStats::default()
        }
    }

    #[test]
    fn recommendations_follow_the_acceptance_rate() {
        use Autonomy::*;
        let cases = [
            (Supervised, stats(5, 0), Advice::Keep, None),
            (Supervised, stats(19, 0), Advice::Keep, None),
            (Supervised, stats(19, 1), Advice::Promote, Some(Autonomous)),
            (Supervised, stats(18, 2), Advice::Keep, None),
            (Supervised, stats(9, 11), Advice::Demote, Some(Assistive)),
            (Autonomous, stats(30, 0), Advice::Keep, None),
            (Autonomous, stats(15, 5), Advice::Demote, Some(Supervised)),
            (Autonomous, stats(8, 12), Advice::Demote, Some(Assistive)),
            (Assistive, stats(18, 2), Advice::Promote, Some(Supervised)),
            (Assistive, stats(10, 10), Advice::Keep, None),
        ];
        for (autonomy, s, verdict, to) in cases {
            let r = recommend(autonomy, &s);
            assert_eq!(
                (r.verdict, r.to),
                (verdict, to),
                "{autonomy:?} {}+/{}-: {}",
                s.approved,
                s.rejected,
                r.why
            );
        }
    }
}
