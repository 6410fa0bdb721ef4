//! How each source is doing, and whether its autonomy should change. Pure: the numbers come
//! from the store, the judgement is here, so it is the same for every caller and testable.

use crate::policy::Autonomy;

/// Human decisions needed before a recommendation is made: fewer say more about luck than about
/// the source.
pub const MIN_DECISIONS: u64 = 20;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SourceStats {
    pub source: String,
    pub proposals: u64,
    pub auto: u64,
    pub review: u64,
    pub suggest: u64,
    pub block: u64,
    pub applied: u64,
    /// Human decisions on its proposals.
    pub approved: u64,
    pub rejected: u64,
    pub edited: u64,
    /// Mean squared gap between its stated confidence and the human outcome (1 approved, 0
    /// rejected), over decisions where it stated one: 0 is perfect, 0.25 is a coin toss.
    pub brier: Option<f64>,
}

impl SourceStats {
    pub fn decided(&self) -> u64 {
        self.approved + self.rejected
    }

    /// Share of human decisions that approved; edits count as approvals of a corrected value.
    pub fn acceptance(&self) -> Option<f64> {
        (self.decided() > 0).then(|| self.approved as f64 / self.decided() as f64)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recommendation {
    /// `keep`, `promote` or `demote`.
    pub verdict: &'static str,
    pub to: Option<&'static str>,
    pub why: String,
}

/// Promote a source humans almost always approve; demote one they often reject.
pub fn recommend(autonomy: Autonomy, s: &SourceStats) -> Recommendation {
    let keep = |why: String| Recommendation {
        verdict: "keep",
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
            verdict: "demote",
            to: Some("assistive"),
            why: format!("humans approve only {pct:.0}% of its proposals"),
        },
        Autonomy::Autonomous if rate < 0.8 => Recommendation {
            verdict: "demote",
            to: Some("supervised"),
            why: format!("humans approve {pct:.0}%: too many mistakes to apply unseen"),
        },
        Autonomy::Supervised if rate >= 0.95 => Recommendation {
            verdict: "promote",
            to: Some("autonomous"),
            why: format!("humans approve {pct:.0}% of its proposals"),
        },
        Autonomy::Supervised if rate < 0.5 => Recommendation {
            verdict: "demote",
            to: Some("assistive"),
            why: format!("humans approve only {pct:.0}%"),
        },
        Autonomy::Assistive if rate >= 0.9 => Recommendation {
            verdict: "promote",
            to: Some("supervised"),
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
            (Supervised, stats(5, 0), "keep", None),
            (Supervised, stats(19, 0), "keep", None),
            (Supervised, stats(19, 1), "promote", Some("autonomous")),
            (Supervised, stats(18, 2), "keep", None),
            (Supervised, stats(9, 11), "demote", Some("assistive")),
            (Autonomous, stats(30, 0), "keep", None),
            (Autonomous, stats(15, 5), "demote", Some("supervised")),
            (Autonomous, stats(8, 12), "demote", Some("assistive")),
            (Assistive, stats(18, 2), "promote", Some("supervised")),
            (Assistive, stats(10, 10), "keep", None),
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
