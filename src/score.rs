//! crmgate's own confidence in a proposal, and the signals behind it (SPEC §4). Pure: the same
//! proposal, record and track record always give the same score, so a policy threshold means
//! the same thing tomorrow as today.
//!
//! The score starts from the proposer's stated confidence (0.50 when it gave none) and moves
//! only for stated reasons, each a [`Signal`] with its effect: for a valid value from a source
//! with no track record it *is* the stated confidence.

use crate::model::Value;
use crate::validate::FieldType;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Signal {
    pub name: &'static str,
    /// What was seen, in words.
    pub detail: String,
    /// How much it moved the score (0 for signals that only inform).
    pub effect: f64,
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
    match stated {
        Some(c) => {
            signals.push(Signal {
                name: "stated",
                detail: format!("the proposer's confidence is {c:.2}"),
                effect: 0.0,
            });
            c
        }
        None => {
            signals.push(Signal {
                name: "stated",
                detail: "the proposer gave no confidence; starting from 0.50".into(),
                effect: 0.0,
            });
            0.5
        }
    }
}

/// Blends in the track record: with `n` human decisions the acceptance rate weighs
/// `n / (n + 20)`, so a new source follows its stated confidence and history takes over as it
/// accumulates. A smoothed rate (one virtual approval and rejection) keeps a short run of
/// luck from reaching 0 or 1.
fn track(score: f64, t: TrackRecord, signals: &mut Vec<Signal>) -> f64 {
    let n = (t.approved + t.rejected) as f64;
    if n == 0.0 {
        signals.push(Signal {
            name: "track_record",
            detail: "no human decisions on this source's proposals of this kind and field yet"
                .into(),
            effect: 0.0,
        });
        return score;
    }
    let rate = (t.approved as f64 + 1.0) / (n + 2.0);
    let w = n / (n + TRACK_WEIGHT);
    let blended = score * (1.0 - w) + rate * w;
    signals.push(Signal {
        name: "track_record",
        detail: format!(
            "humans approved {} of {} ({:.0}%); weight {:.2}",
            t.approved,
            t.approved + t.rejected,
            100.0 * t.approved as f64 / n,
            w
        ),
        effect: blended - score,
    });
    blended
}

pub fn score_field(f: &FieldFacts<'_>) -> Score {
    let mut signals = Vec::new();
    let mut s = stated(f.stated, &mut signals);
    s = track(s, f.track, &mut signals);
    signals.push(Signal {
        name: "validity",
        detail: format!("the value is valid for a {:?} field", f.field_type).to_lowercase(),
        effect: 0.0,
    });
    let change = if f.current.is_empty() {
        "fills an empty field"
    } else if f.current == f.value {
        "the record already holds this value"
    } else if f.current.display().trim().to_lowercase() == f.value.display().trim().to_lowercase() {
        "a trivial edit (case or spacing only)"
    } else {
        "overwrites an existing value"
    };
    signals.push(Signal {
        name: "change",
        detail: change.into(),
        effect: 0.0,
    });
    // An email at another domain than the record's company is the classic wrong-person match.
    if f.field_type == FieldType::Email
        && let (Value::Text(email), Some(domain)) = (f.value, f.company_domain)
        && let Some((_, at)) = email.rsplit_once('@')
    {
        let at = at.to_ascii_lowercase();
        let domain = domain.to_ascii_lowercase();
        if at == domain || at.ends_with(&format!(".{domain}")) {
            signals.push(Signal {
                name: "consistency",
                detail: format!("the email's domain matches the company's ({domain})"),
                effect: 0.0,
            });
        } else {
            let before = s;
            s = (s - 0.10).max(0.0);
            signals.push(Signal {
                name: "consistency",
                detail: format!("the email's domain {at} is not the company's ({domain})"),
                effect: s - before,
            });
        }
    }
    Score {
        value: s.clamp(0.0, 1.0),
        signals,
    }
}

/// A merge's score until record similarity is scored: the stated confidence, blended with the
/// track record, and a signal that says so.
pub fn score_merge(stated_confidence: Option<f64>, t: TrackRecord) -> Score {
    let mut signals = Vec::new();
    let mut s = stated(stated_confidence, &mut signals);
    s = track(s, t, &mut signals);
    signals.push(Signal {
        name: "similarity",
        detail: "field-by-field similarity of the two records is not scored yet".into(),
        effect: 0.0,
    });
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
                .any(|g| g.detail == "overwrites an existing value")
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
                .any(|g| g.name == "consistency" && g.effect < 0.0)
        );
        let sub = Value::Text("ana@eu.acme.com".into());
        assert_eq!(
            score_field(&f(&sub)).value,
            0.92,
            "a subdomain of the company's domain is consistent"
        );
    }
}
