//! Saved plans, and the staleness check every path to a write shares: whether the record still
//! holds what a proposal was made against.

use super::one::{json_to_value, show};
use super::{Ending, Report};
use crate::error::Result;
use crate::model::{Proposal, State, Value, merge_fingerprint};
use crate::store::{ReadRecords, Writer};

/// A saved plan: exactly what an apply would do, to be applied later only if nothing in it
/// changed (`apply --plan-out`, `apply --plan`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub items: Vec<PlanItem>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanItem {
    pub proposal: i64,
    pub record: String,
    pub field: Option<String>,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    /// For merges: both records' fingerprint.
    pub fingerprint: Option<String>,
}

impl Plan {
    /// The plan of an apply run: its applied items.
    pub fn of(report: &Report, w: &Writer<'_>) -> Result<Plan> {
        let mut items = Vec::new();
        for i in report.items.iter().filter(|i| i.result == Ending::Applied) {
            let fingerprint = match w.proposal(i.proposal)? {
                Some(p) if p.merge_into.is_some() => super::pin_of(w, &p)?,
                _ => None,
            };
            items.push(PlanItem {
                proposal: i.proposal,
                record: i.record.clone(),
                field: i.field.clone(),
                before: i.before.clone(),
                after: i.after.clone(),
                fingerprint,
            });
        }
        Ok(Plan { items })
    }

    /// The first item that does not describe its proposal (another record, field or value
    /// than the proposal's), as `why`: a plan edited by hand, or made on another store, is
    /// not applied at all, whatever its proposal ids name.
    pub fn mismatch(&self, w: &Writer<'_>) -> Result<Option<String>> {
        for (n, item) in self.items.iter().enumerate() {
            let Some(p) = w.proposal(item.proposal)? else {
                continue; // gone: a change since, which changes_since names
            };
            let planned = (
                &item.record,
                item.field.as_deref(),
                &item.before,
                &item.after,
            );
            let actual = (&p.record_ref(), p.field.as_deref(), &p.baseline, &p.value);
            if planned != actual {
                return Ok(Some(format!(
                    "item {} of the plan does not match proposal {}: the plan says {} {} from {} to {}, the proposal {} {} from {} to {}",
                    n + 1,
                    p.id,
                    item.record,
                    item.field.as_deref().unwrap_or("(merge)"),
                    show(&item.before),
                    show(&item.after),
                    p.record_ref(),
                    p.field.as_deref().unwrap_or("(merge)"),
                    show(&p.baseline),
                    show(&p.value),
                )));
            }
        }
        Ok(None)
    }

    /// Why each item can no longer be applied as planned: not approved any more, a merge
    /// approved again on other records, or a record that moved on.
    pub fn changes_since(&self, w: &Writer<'_>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for item in &self.items {
            let Some(p) = w.proposal(item.proposal)? else {
                out.push(format!("proposal {} no longer exists", item.proposal));
                continue;
            };
            if p.state != State::Approved {
                out.push(format!("proposal {} is now {}", p.id, p.state));
                continue;
            }
            let pin = match p.merge_into {
                Some(_) => super::pin_of(w, &p)?,
                None => None,
            };
            if pin != item.fingerprint {
                out.push(format!("proposal {} is not the one planned", p.id));
                continue;
            }
            let why = match staleness(w, &p)? {
                None if p.merge_into.is_some() => merge_moved(w, &p, pin.as_deref())?,
                why => why,
            };
            if let Some(why) = why {
                out.push(format!("proposal {} ({}): {why}", p.id, p.record_ref()));
            }
        }
        Ok(out)
    }
}

/// Why a merge's records, both there, no longer match `pin`, if they do not: checked before
/// the plan's first write, so nothing of the run can have changed them yet.
fn merge_moved(w: &Writer<'_>, p: &Proposal, pin: Option<&str>) -> Result<Option<String>> {
    let into = p.merge_into.as_deref().unwrap_or_default();
    let Some(obj) = w.schema().object(&p.object) else {
        return Ok(None);
    };
    let (Some(dup), Some(survivor)) = (w.record_row(obj, &p.record)?, w.record_row(obj, into)?)
    else {
        return Ok(None);
    };
    let now = merge_fingerprint(&dup, &survivor);
    Ok((pin != Some(now.as_str()))
        .then(|| "one of the two records changed since the merge was approved".to_string()))
}

/// Whether the record still holds what the proposal was made against; `Some(why)` if not.
/// Review shows it, approve refuses on it, and a plan is checked with it before it is applied.
/// A merge is judged against what its approver sees: only a record gone makes it stale.
pub fn staleness(w: &impl ReadRecords, p: &Proposal) -> Result<Option<String>> {
    let Some(obj) = w.schema().object(&p.object) else {
        return Ok(Some(format!("the object {} no longer exists", p.object)));
    };
    if p.kind == crate::model::Kind::Create {
        return super::create::create_staleness(w, obj, p);
    }
    let Some(row) = w.record_row(obj, &p.record)? else {
        return Ok(Some(format!(
            "the record {}/{} no longer exists",
            p.object, p.record
        )));
    };
    if let Some(into) = &p.merge_into {
        return Ok(w
            .record_row(obj, into)?
            .is_none()
            .then(|| format!("the record {}/{into} no longer exists", p.object)));
    }
    let field = p.field.as_deref().unwrap_or_default();
    let Some(at) = obj.columns.iter().position(|c| c.name == field) else {
        return Ok(Some(format!("the field {field} no longer exists")));
    };
    Ok(baseline_moved(p, &row[at]).map(|why| format!("stale: {why}")))
}

/// Why the field's value now (`current`) is not what the proposal was made against: not the
/// baseline it held when proposed, or not what the proposer said it expected.
pub(super) fn field_moved_on(p: &Proposal, current: &Value) -> Option<String> {
    baseline_moved(p, current).or_else(|| {
        let expected = p.expected.as_ref()?;
        (!crate::validate::loosely_equal(&json_to_value(expected), current)).then(|| {
            format!(
                "the proposer expected {} but the record holds {}",
                show(expected),
                show(&current.to_json())
            )
        })
    })
}

fn baseline_moved(p: &Proposal, current: &Value) -> Option<String> {
    let now = current.to_json();
    (now != p.baseline).then(|| {
        format!(
            "{} is now {} but was {} when proposed",
            p.field.as_deref().unwrap_or_default(),
            show(&now),
            show(&p.baseline)
        )
    })
}
