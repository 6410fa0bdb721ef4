//! A merge is judged against what its approver saw. Approving a merge pins both records as they
//! are then: their fingerprint goes into the approval's event, on the hash chain. A merge the
//! policy let through is pinned as it was proposed. Apply runs a run's field writes before its
//! merges, and refuses a merge only when its records, with that run's own changes to them taken
//! back, no longer match the pin: something else changed them after the approval.

use super::WHOLE_RECORD;
use super::merge::from_snapshot;
use crate::error::{Error, Result};
use crate::model::{Proposal, Value, merge_fingerprint};
use crate::schema::Object;
use crate::store::{LogScope, ReadLog, ReadRecords, Writer, same};

/// The fingerprint of a merge's two records as they are now, for its approval to pin (in the
/// approval's event, as `pinned`). Refused when the proposal is not a merge or a record is gone.
pub fn pin_merge(w: &Writer<'_>, p: &Proposal) -> Result<String> {
    let pair = records_now(w, p)?;
    match pair {
        Some((_, (Some(dup), Some(survivor)))) => Ok(merge_fingerprint(&dup, &survivor)),
        _ => Err(Error::refused(format!(
            "proposal {}: both records of a merge must exist to approve it",
            p.id
        ))),
    }
}

/// The fingerprint a merge is judged against: its latest approval's pin, else (approved by the
/// policy, or before approvals pinned) the one taken when it was proposed.
pub fn pin_of(r: &impl ReadLog, p: &Proposal) -> Result<Option<String>> {
    Ok(r.pinned_fingerprint(p.id)?
        .or_else(|| p.baseline_fp.clone()))
}

/// The duplicate and the survivor, as rows (`None` where gone); `None` if the object is gone.
type Pair = (Option<Vec<Value>>, Option<Vec<Value>>);

fn records_now<'s>(r: &'s impl ReadRecords, p: &Proposal) -> Result<Option<(&'s Object, Pair)>> {
    let Some(obj) = r.schema().object(&p.object) else {
        return Ok(None);
    };
    let into = p.merge_into.as_deref().unwrap_or_default();
    Ok(Some((
        obj,
        (r.record_row(obj, &p.record)?, r.record_row(obj, into)?),
    )))
}

/// Whether the merge's records, as they are now (`dup`, `survivor`), changed since its pin by
/// anything but run `run`'s own changes.
pub(super) fn moved_since_pin(
    w: &Writer<'_>,
    obj: &Object,
    p: &Proposal,
    run: i64,
    (dup, survivor): (&[Value], &[Value]),
) -> Result<bool> {
    let pin = pin_of(w, p)?;
    let mut pair = (Some(dup.to_vec()), Some(survivor.to_vec()));
    for step in log_of(w, obj, p, LogScope::Run(run))? {
        if !take_back(obj, &mut pair, &step) {
            return Ok(true);
        }
    }
    Ok(fingerprint(&pair).as_deref() != pin.as_deref())
}

/// One change to either record of a merge, and whether to the survivor.
struct Step {
    survivor: bool,
    field: String,
    before: Value,
    after: Value,
}

/// The changes `scope` holds to either record, newest first.
fn log_of(r: &impl ReadLog, obj: &Object, p: &Proposal, scope: LogScope<'_>) -> Result<Vec<Step>> {
    let into = p.merge_into.as_deref().unwrap_or_default();
    let mut all: Vec<(i64, Step)> = Vec::new();
    for (survivor, record) in [(false, p.record.as_str()), (true, into)] {
        for (id, field, before, after) in r.changes_to(&obj.name, record, scope)? {
            let step = Step {
                survivor,
                field,
                before,
                after,
            };
            all.push((id, step));
        }
    }
    all.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

/// Takes one change back: its target held what it left, and now holds what it found. False
/// when the target does not hold what the change left (something else changed it since).
fn take_back(obj: &Object, pair: &mut Pair, step: &Step) -> bool {
    let row = if step.survivor {
        &mut pair.1
    } else {
        &mut pair.0
    };
    if step.field == WHOLE_RECORD {
        let now = row
            .as_deref()
            .map_or(Value::Null, |r| super::merge::snapshot(obj, r));
        if !same(&now, &super::merge::columns_only(obj, &step.after)) {
            return false;
        }
        *row = match &step.before {
            Value::Text(json) => match from_snapshot(obj, json) {
                Ok(values) => Some(values),
                Err(_) => return false,
            },
            _ => None,
        };
        return true;
    }
    let (Some(row), Some(at)) = (row, obj.columns.iter().position(|c| c.name == step.field)) else {
        return false;
    };
    if !same(&row[at], &step.after) {
        return false;
    }
    row[at] = step.before.clone();
    true
}

fn fingerprint(pair: &Pair) -> Option<String> {
    match pair {
        (Some(dup), Some(survivor)) => Some(merge_fingerprint(dup, survivor)),
        _ => None,
    }
}

/// One field of a merge's records that changed since the merge was proposed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldChanged {
    /// The record's id: the duplicate's or the survivor's.
    pub record: String,
    pub field: String,
    /// What it held when the merge was proposed.
    pub then: serde_json::Value,
    pub now: serde_json::Value,
}

/// What changed in a merge's two records since it was proposed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SinceProposed {
    /// Field by field, the duplicate's first.
    pub fields: Vec<FieldChanged>,
    /// False when the records also changed in ways the change log cannot account for (a write
    /// outside crmgate): `fields` then lists only what the log shows.
    pub complete: bool,
}

/// For `show` and the review screen: what changed in a merge's two records since it was
/// proposed, field by field, as the change log tells it (its changes made since the proposal,
/// taken back newest first until both records match the proposal's fingerprint). `None` when
/// `p` is not a merge or either record (or the object) no longer exists.
pub fn merge_changes_since_proposed(
    r: &(impl ReadRecords + ReadLog),
    p: &Proposal,
) -> Result<Option<SinceProposed>> {
    let Some((obj, now)) = records_now(r, p)? else {
        return Ok(None);
    };
    if p.merge_into.is_none() || now.0.is_none() || now.1.is_none() {
        return Ok(None);
    }
    let mut then = now.clone();
    let mut complete = fingerprint(&then) == p.baseline_fp;
    for step in log_of(r, obj, p, LogScope::Since(&p.created_at))? {
        if complete || !take_back(obj, &mut then, &step) {
            break;
        }
        complete = fingerprint(&then) == p.baseline_fp;
    }
    let into = p.merge_into.clone().unwrap_or_default();
    let mut fields = Vec::new();
    for (record, was, is) in [(&p.record, &then.0, &now.0), (&into, &then.1, &now.1)] {
        let (Some(was), Some(is)) = (was, is) else {
            continue;
        };
        for ((c, a), b) in obj.columns.iter().zip(was).zip(is) {
            if !same(a, b) {
                fields.push(FieldChanged {
                    record: record.clone(),
                    field: c.name.clone(),
                    then: a.to_json(),
                    now: b.to_json(),
                });
            }
        }
    }
    Ok(Some(SinceProposed { fields, complete }))
}
