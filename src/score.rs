//! crmgate's own confidence in a proposal, and the signals behind it. Pure: the same
//! proposal, record and track record always give the same score, so a policy threshold means
//! the same thing tomorrow as today.
//!
//! The score starts from the proposer's stated confidence (0.50 when it gave none) and moves
//! only for stated reasons, each a [`Signal`] with its effect: for a valid value from a source
//! with no track record it *is* the stated confidence.

use crate::model::Value;
use crate::validate::FieldType;

/// One reason behind a score, stored compactly (as facts, not sentences) with every proposal:
/// a million proposals carry a million sets of signals.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "s", rename_all = "snake_case")]
pub enum Signal {
    /// The proposer's own confidence; `None` when it gave none (the score starts at 0.50).
    Stated { c: Option<f64> },
    /// Human decisions on this source's proposals of this kind and field, and their effect
    /// (not stored while there are none).
    Track {
        approved: u64,
        rejected: u64,
        effect: f64,
    },
    /// The value passed its field's validation.
    Valid,
    /// What the write does to the record.
    Change { c: Change },
    /// An email's domain against the record's company's domain.
    Domain {
        email: String,
        company: String,
        effect: f64,
    },
    /// Merges: how well the two records match, and the columns that said so most, as (column,
    /// log-odds evidence) with the strongest first; then the columns whose shared value added
    /// (next to) nothing for being common.
    Match {
        score: f64,
        by: Vec<(String, f64)>,
        /// For columns of `by` that agreed exactly: the share of the table's records that hold
        /// the shared value, as (column, share).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shared: Vec<(String, f64)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Fill,
    Same,
    Trivial,
    Overwrite,
}

impl Signal {
    /// How much it moved the score (0 for signals that only inform).
    pub fn effect(&self) -> f64 {
        match self {
            Signal::Track { effect, .. } | Signal::Domain { effect, .. } => *effect,
            _ => 0.0,
        }
    }

    /// The signal in words, for `show` and `review`.
    pub fn detail(&self) -> String {
        match self {
            Signal::Stated { c: Some(c) } => format!("the proposer's confidence is {c:.2}"),
            Signal::Stated { c: None } => {
                "the proposer gave no confidence; starting from 0.50".into()
            }
            Signal::Track {
                approved, rejected, ..
            } => {
                let n = approved + rejected;
                format!(
                    "humans approved {approved} of {n} ({:.0}%), weight {:.2}",
                    100.0 * *approved as f64 / n as f64,
                    n as f64 / (n as f64 + TRACK_WEIGHT)
                )
            }
            Signal::Valid => "the value is valid for its field".into(),
            Signal::Change { c } => match c {
                Change::Fill => "fills an empty field",
                Change::Same => "the record already holds this value",
                Change::Trivial => "a trivial edit (case or spacing only)",
                Change::Overwrite => "overwrites an existing value",
            }
            .into(),
            Signal::Domain { email, company, .. } if email == company => {
                format!("the email's domain matches the company's ({company})")
            }
            Signal::Domain { email, company, .. } => {
                format!("the email's domain {email} is not the company's ({company})")
            }
            Signal::Match { score, by, shared } => {
                let evidence: Vec<String> = by
                    .iter()
                    .map(|(c, w)| match shared.iter().find(|(s, _)| s == c) {
                        Some((_, share)) => {
                            format!(
                                "{c} {w:+.1} (shared value held by {} of records)",
                                percent(*share)
                            )
                        }
                        None => format!("{c} {w:+.1}"),
                    })
                    .collect();
                format!(
                    "the two records match at {score:.2} (evidence in log-odds: {})",
                    if evidence.is_empty() {
                        "none".into()
                    } else {
                        evidence.join(", ")
                    }
                )
            }
        }
    }
}

/// A share of records in words: `12%`, `0.4%`, `0.002%`.
fn percent(share: f64) -> String {
    let p = 100.0 * share;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 1.0 {
        format!("{p:.1}%")
    } else {
        let digits = (-p.log10()).ceil().clamp(1.0, 6.0) as usize;
        format!("{p:.digits$}%")
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Score {
    pub value: f64,
    pub signals: Vec<Signal>,
}

/// How a source's proposals of one kind and field fared with humans.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrackRecord {
    pub approved: u64,
    pub rejected: u64,
}

/// How many human decisions weigh as much as the stated confidence.
const TRACK_WEIGHT: f64 = 20.0;

/// What scoring a field write needs to know.
pub struct FieldFacts<'a> {
    pub stated: Option<f64>,
    pub field_type: FieldType,
    pub value: &'a Value,
    pub current: &'a Value,
    /// The domain of the record's company, when the record has one (for email consistency).
    pub company_domain: Option<&'a str>,
    pub track: TrackRecord,
}

fn stated(stated: Option<f64>, signals: &mut Vec<Signal>) -> f64 {
    signals.push(Signal::Stated { c: stated });
    stated.unwrap_or(0.5)
}

/// Blends in the track record: with `n` human decisions the acceptance rate weighs
/// `n / (n + 20)`, so a new source follows its stated confidence and history takes over as it
/// accumulates. A smoothed rate (one virtual approval and rejection) keeps a short run of
/// luck from reaching 0 or 1.
fn track(score: f64, t: TrackRecord, signals: &mut Vec<Signal>) -> f64 {
    let n = (t.approved + t.rejected) as f64;
    if n == 0.0 {
        return score;
    }
    let rate = (t.approved as f64 + 1.0) / (n + 2.0);
    let w = n / (n + TRACK_WEIGHT);
    let blended = score * (1.0 - w) + rate * w;
    signals.push(Signal::Track {
        approved: t.approved,
        rejected: t.rejected,
        effect: blended - score,
    });
    blended
}

pub fn score_field(f: &FieldFacts<'_>) -> Score {
    let mut signals = Vec::with_capacity(5);
    let mut s = stated(f.stated, &mut signals);
    s = track(s, f.track, &mut signals);
    signals.push(Signal::Valid);
    let change = if f.current.is_empty() {
        Change::Fill
    } else if f.current == f.value {
        Change::Same
    } else if f.current.display().trim().to_lowercase() == f.value.display().trim().to_lowercase() {
        Change::Trivial
    } else {
        Change::Overwrite
    };
    signals.push(Signal::Change { c: change });
    // An email at another domain than the record's company is the classic wrong-person match.
    if f.field_type == FieldType::Email
        && let (Value::Text(email), Some(domain)) = (f.value, f.company_domain)
        && let Some((_, at)) = email.rsplit_once('@')
    {
        let at = at.to_ascii_lowercase();
        let company = domain.to_ascii_lowercase();
        let consistent = at == company || at.ends_with(&format!(".{company}"));
        let before = s;
        if !consistent {
            s = (s - 0.10).max(0.0);
        }
        signals.push(Signal::Domain {
            email: if consistent { company.clone() } else { at },
            company,
            effect: s - before,
        });
    }
    Score {
        value: s.clamp(0.0, 1.0),
        signals,
    }
}

/// A create's score: the stated confidence, blended with the source's track record; the values
/// were checked valid.
pub fn score_create(stated_confidence: Option<f64>, t: TrackRecord) -> Score {
    let mut signals = Vec::with_capacity(3);
    let s = stated(stated_confidence, &mut signals);
    let s = track(s, t, &mut signals);
    signals.push(Signal::Valid);
    Score {
        value: s.clamp(0.0, 1.0),
        signals,
    }
}

/// How many columns a merge's signal names.
const MATCH_COLUMNS: usize = 8;

/// A merge's score: how well the two records match, field by field (the proposer's stated
/// confidence is shown but does not move it: a merge is judged on the records), blended with the
/// source's track record like any other proposal.
pub fn score_merge(
    stated_confidence: Option<f64>,
    t: TrackRecord,
    similarity: &crate::similarity::Similarity,
) -> Score {
    let mut signals = Vec::with_capacity(3);
    signals.push(Signal::Stated {
        c: stated_confidence,
    });
    // The columns that weighed, strongest first; then those that agreed on a value too common
    // to weigh.
    let mut fields: Vec<&crate::similarity::FieldMatch> = similarity
        .fields
        .iter()
        .filter(|f| f.weight != 0.0 || f.share.is_some())
        .collect();
    fields.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    fields.truncate(MATCH_COLUMNS);
    let by = fields
        .iter()
        .map(|f| (f.column.clone(), (f.weight * 10.0).round() / 10.0))
        .collect();
    let shared = fields
        .iter()
        .filter_map(|f| Some((f.column.clone(), f.share?)))
        .collect();
    signals.push(Signal::Match {
        score: similarity.score,
        by,
        shared,
    });
    let s = track(similarity.score, t, &mut signals);
    Score {
        value: s.clamp(0.0, 1.0),
        signals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(value: &'a Value, current: &'a Value) -> FieldFacts<'a> {
        FieldFacts {
            stated: Some(0.92),
            field_type: FieldType::Text,
            value,
            current,
            company_domain: None,
            track: TrackRecord::default(),
        }
    }

    #[test]
    fn a_new_source_scores_its_stated_confidence() {
        let (v, c) = (Value::Text("CTO".into()), Value::Null);
        assert_eq!(score_field(&facts(&v, &c)).value, 0.92);
        let none = FieldFacts {
            stated: None,
            ..facts(&v, &c)
        };
        assert_eq!(score_field(&none).value, 0.5);
        let over = Value::Text("CEO".into());
        let s = score_field(&facts(&v, &over));
        assert_eq!(s.value, 0.92, "overwriting is shown, not penalised");
        assert!(
            s.signals
                .iter()
                .any(|g| g.detail() == "overwrites an existing value")
        );
    }

    #[test]
    fn the_track_record_takes_over_as_decisions_accumulate() {
        let (v, c) = (Value::Text("CTO".into()), Value::Null);
        let with = |approved, rejected| {
            score_field(&FieldFacts {
                track: TrackRecord { approved, rejected },
                ..facts(&v, &c)
            })
            .value
        };
        assert!(
            with(0, 5) < 0.92 && with(0, 5) > with(0, 50),
            "rejections pull it down, more so with more of them"
        );
        assert!(with(0, 500) < 0.1);
        assert!(with(500, 0) > 0.95);
        // 20 decisions weigh 20 / (20 + 20) = 0.5; the smoothed rate is 11 / 22.
        assert!(
            (with(10, 10) - (0.92 * 0.5 + 0.5 * 0.5)).abs() < 1e-9,
            "the documented blend"
        );
    }

    #[test]
    fn a_merge_names_how_common_each_shared_value_is() {
        let m = Signal::Match {
            score: 0.12,
            by: vec![
                ("date_of_birth".into(), -7.0),
                ("street_number".into(), 0.0),
            ],
            shared: vec![("street_number".into(), 0.104)],
        };
        assert_eq!(
            m.detail(),
            "the two records match at 0.12 (evidence in log-odds: date_of_birth -7.0, \
             street_number +0.0 (shared value held by 10% of records))"
        );
        assert_eq!(percent(0.0002), "0.02%");
        assert_eq!(percent(0.012), "1.2%");
        // Signals stored before shares were recorded still read.
        let old: Signal =
            serde_json::from_str(r#"{"s":"match","score":0.9,"by":[["email",8.0]]}"#).unwrap();
        assert!(old.detail().ends_with("(evidence in log-odds: email +8.0)"));
    }

    #[test]
    fn an_email_at_another_domain_than_the_company_scores_lower() {
        let cur = Value::Null;
        let same = Value::Text("ana@acme.com".into());
        let other = Value::Text("ana@gmail.com".into());
        let f = |v| FieldFacts {
            field_type: FieldType::Email,
            company_domain: Some("acme.com"),
            ..facts(v, &cur)
        };
        assert_eq!(score_field(&f(&same)).value, 0.92);
        let s = score_field(&f(&other));
        assert!((s.value - 0.82).abs() < 1e-9);
        assert!(
            s.signals
                .iter()
                .any(|g| matches!(g, Signal::Domain { .. }) && g.effect() < 0.0)
        );
        let sub = Value::Text("ana@eu.acme.com".into());
        assert_eq!(
            score_field(&f(&sub)).value,
            0.92,
            "a subdomain of the company's domain is consistent"
        );
    }
}
