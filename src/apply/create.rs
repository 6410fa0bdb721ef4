//! New records. An import into a table that has records inserts them (and, with `--direct`,
//! writes fields of existing ones), and a `create` proposal inserts one: each insert is logged
//! as a change of the whole record from nothing to its snapshot, so reverting it deletes the
//! record, refused while another record references it. Each is a change with its event, part
//! of its run, so `crmgate revert --run R` undoes the import or the apply.

use std::collections::HashMap;

use super::merge::snapshot;
use super::one::{
    Judge, Outcome, Stop, applied_event, decide_now, judge_now, refuse, requeue, unapprove,
};
use super::revert::{Put, WHOLE_RECORD, put};
use crate::error::{Error, Result};
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::Action;
use crate::schema::Object;
use crate::store::Writer;

/// Who imports what: the actor, the run the changes belong to, and the file they came from.
#[derive(Debug, Clone, Copy)]
pub struct Importing<'a> {
    pub actor: &'a str,
    pub run: i64,
    pub file: &'a str,
}

/// Inserts a record of the given columns (`cols` index `obj.columns`) and logs it as a change
/// from nothing to the record as stored (defaults filled in). Returns the change.
pub fn create_record(
    w: &Writer<'_>,
    how: Importing<'_>,
    obj: &Object,
    cols: &[usize],
    values: &[Value],
) -> Result<i64> {
    let (id, whole) = insert(w, obj, cols, values)?;
    log(w, how, obj, &id, WHOLE_RECORD, &Value::Null, &whole)
}

/// Inserts a record of the given columns; returns its id and its snapshot as stored.
pub(super) fn insert(
    w: &Writer<'_>,
    obj: &Object,
    cols: &[usize],
    values: &[Value],
) -> Result<(String, Value)> {
    w.insert_given(obj, cols, values)?;
    let pk = cols.iter().position(|&c| c == obj.pk).unwrap_or_default();
    let id = values[pk].display();
    let row = w.record_row(obj, &id)?.ok_or_else(|| {
        Error::Store(format!("{}/{id} was inserted but cannot be read", obj.name))
    })?;
    Ok((id, snapshot(obj, &row)))
}

/// A create proposal's fields, as ingest checked them (a JSON object of typed values, by
/// column name), back as the columns of `obj` they name and their values; `Err` names a field
/// the table no longer has.
pub fn create_fields(
    obj: &Object,
    fields: &serde_json::Value,
) -> std::result::Result<(Vec<usize>, Vec<Value>), String> {
    let Some(map) = fields.as_object() else {
        return Err("a create's value is not an object of fields".into());
    };
    let mut cols = Vec::with_capacity(map.len());
    let mut values = Vec::with_capacity(map.len());
    for (name, v) in map {
        let Some(i) = obj.columns.iter().position(|c| c.name == *name) else {
            return Err(format!("the field {name} no longer exists on {}", obj.name));
        };
        cols.push(i);
        values.push(super::json_to_value(v));
    }
    Ok((cols, values))
}

/// A whole row of `obj` with `values` in `cols` and nothing elsewhere: a record to be created,
/// as the policy's record conditions read it.
pub fn row_of(obj: &Object, cols: &[usize], values: &[Value]) -> Vec<Value> {
    let mut row = vec![Value::Null; obj.columns.len()];
    for (&i, v) in cols.iter().zip(values) {
        row[i] = v.clone();
    }
    row
}

/// Writes `after` into `field` of an existing record (it held `before`) and logs the change.
/// A write that does not hold (a trigger, the column's affinity) is an error naming why.
pub fn write_imported(
    w: &Writer<'_>,
    how: Importing<'_>,
    obj: &Object,
    record: &str,
    field: &str,
    (before, after): (&Value, &Value),
) -> Result<i64> {
    if let Put::Refused(why) = put(w, obj, record, field, after)? {
        return Err(Error::refused(format!("{}: {why}", how.file)));
    }
    log(w, how, obj, record, field, before, after)
}

/// The change and its event.
fn log(
    w: &Writer<'_>,
    how: Importing<'_>,
    obj: &Object,
    record: &str,
    field: &str,
    before: &Value,
    after: &Value,
) -> Result<i64> {
    let change = w.add_change(
        how.run,
        None,
        None,
        &obj.name,
        record,
        field,
        before,
        after,
        Some(how.actor),
        None,
    )?;
    w.append_event(NewEvent {
        actor: how.actor.to_string(),
        actor_kind: "human",
        action: "import",
        object: Some(obj.name.clone()),
        record: Some(record.to_string()),
        field: Some(field.to_string()),
        prev_value: Some(before.to_json()),
        new_value: Some(after.to_json()),
        change_id: Some(change),
        run_id: Some(how.run),
        detail: serde_json::json!({ "file": how.file }),
        ..NewEvent::default()
    })?;
    Ok(change)
}

/// The savepoint an insert is made under: a store that refuses it (a constraint, a trigger)
/// leaves nothing of it behind.
const INSERT: &str = "crmgate_create";

/// Applies an approved create, as part of run `run` (`auto_in_run` counts what the policy let
/// through on its own): the id must still be free and its foreign keys still name records, the
/// policy must still let the new record through (as `apply` judges any write); then it is
/// inserted and logged as a change of the whole record from nothing to its snapshot.
pub(super) fn apply_create(
    w: &Writer<'_>,
    judge: Judge<'_>,
    p: &Proposal,
    approver: Option<String>,
    (run, auto_in_run): (i64, &mut HashMap<String, u64>),
) -> Result<Outcome> {
    let Some(obj) = w.schema().object(&p.object) else {
        let why = format!("the object {} no longer exists", p.object);
        return refuse(w, judge, p, Stop::Conflict, why);
    };
    let (cols, values) = match create_fields(obj, &p.value) {
        Ok(fields) => fields,
        Err(why) => return refuse(w, judge, p, Stop::Conflict, why),
    };
    if let Some(why) = create_blocked(w, obj, p, (&cols, &values))? {
        return refuse(w, judge, p, Stop::Conflict, requeue(p.id, why));
    }
    let row = row_of(obj, &cols, &values);
    let by_policy = p.decision == Some(Action::Auto) && approver.is_none();
    let by_policy_with = by_policy.then(|| auto_in_run.get(&p.source).copied().unwrap_or(0));
    let related = crate::related::related(judge.policy, w.schema(), obj, &[&row], |o, k| {
        w.record_row(o, k)
    })?;
    let facts = (&Value::Null, &related[..]);
    let now = decide_now(judge.policy, obj, p, &row, facts, by_policy_with);
    if let Some((stop, why)) = judge_now(judge.policy, p, &now, &Value::Null, by_policy_with) {
        return refuse(w, judge, p, stop, why);
    }
    if let Some(by) = approver.as_deref()
        && let Err(why) = crate::admin::access::approval_holds(judge.policy, &now, by)
    {
        return unapprove(w, judge, p, by, why);
    }
    w.savepoint(INSERT)?;
    let whole = match insert(w, obj, &cols, &values) {
        Ok((_, whole)) => whole,
        Err(e) => {
            w.rollback_to(INSERT)?;
            let why = format!("the store refused the insert: {e}");
            return refuse(w, judge, p, Stop::Fail, why);
        }
    };
    let approved_by = approver.unwrap_or_else(|| "policy".into());
    let (name, id) = (&obj.name, &p.record);
    let (none, by) = (&Value::Null, Some(approved_by.as_str()));
    let change = w.add_change(
        run,
        Some(p.id),
        None,
        name,
        id,
        WHOLE_RECORD,
        none,
        &whole,
        by,
        p.policy_version,
    )?;
    w.set_state(p.id, &[State::Approved], State::Applied)?;
    let mut event = applied_event(judge, p, by_policy, none, approved_by, change, run);
    event.field = Some(WHOLE_RECORD.into());
    event.new_value = Some(whole.to_json());
    w.append_event(event)?;
    w.release(INSERT)?;
    if by_policy {
        *auto_in_run.entry(p.source.clone()).or_default() += 1;
    }
    Ok(Outcome::Applied(change))
}

/// Why a create cannot be applied to the store as it is now, if it cannot: its id is taken,
/// or a record its foreign keys name is gone.
pub(crate) fn create_blocked(
    w: &impl crate::store::ReadRecords,
    obj: &Object,
    p: &Proposal,
    (cols, values): (&[usize], &[Value]),
) -> Result<Option<String>> {
    if w.record_row(obj, &p.record)?.is_some() {
        return Ok(Some(format!(
            "{} exists now: a create needs an id no record has",
            p.record_ref()
        )));
    }
    let dangling =
        crate::validate::dangling(obj, cols, values, &mut |c, v| w.missing_parent(c, v))?;
    Ok((!dangling.is_empty()).then(|| dangling.join("; ")))
}

/// Why a create no longer holds against the store as it is now, if it does not: see
/// [`create_blocked`]; the staleness that review shows and approve refuses on.
pub(crate) fn create_staleness(
    w: &impl crate::store::ReadRecords,
    obj: &Object,
    p: &Proposal,
) -> Result<Option<String>> {
    match create_fields(obj, &p.value) {
        Ok((cols, values)) => create_blocked(w, obj, p, (&cols, &values)),
        Err(why) => Ok(Some(why)),
    }
}

/// How many referencing records a refusal names.
const REFERENCES_SHOWN: usize = 5;

/// Why `obj`'s record `record` may not be deleted, if it may not: records reference it by a
/// foreign key of the live schema. Deleting it would leave them dangling, fail, or (by the
/// key's own action) delete or clear them unlogged, so a revert of its creation waits until
/// they are reverted or re-pointed, `--force` or not.
pub(super) fn referenced(w: &Writer<'_>, obj: &Object, record: &str) -> Result<Option<String>> {
    let Some(row) = w.record_row(obj, record)? else {
        return Ok(None);
    };
    let mut by = Vec::new();
    for table in w.schema().objects.values() {
        for column in &table.columns {
            let Some(fk) = column
                .foreign_key
                .as_ref()
                .filter(|fk| fk.table == obj.name)
            else {
                continue;
            };
            let Some(at) = obj.columns.iter().position(|c| c.name == fk.column) else {
                continue;
            };
            for id in w.referencing_ids(table, &column.name, &row[at])? {
                if table.name != obj.name || id != record {
                    by.push(format!("{}/{id} ({})", table.name, column.name));
                }
            }
        }
    }
    if by.is_empty() {
        return Ok(None);
    }
    let more = by.len().saturating_sub(REFERENCES_SHOWN);
    by.truncate(REFERENCES_SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Ok(Some(format!(
        "{}/{record} is referenced by {}{more}: revert or re-point them first; --force does not \
         delete a record others reference",
        obj.name,
        by.join(", ")
    )))
}
