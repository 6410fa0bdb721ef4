//! Writes an import makes into a table that has records: a new record, logged as a change of
//! the whole record from nothing to its snapshot (so reverting it deletes the record), and,
//! with `--direct`, a field of an existing record. Each is a change with its event, part of
//! the import's run, so `crmgate revert --run R` undoes the import.

use super::merge::snapshot;
use super::revert::{Put, WHOLE_RECORD, put};
use crate::error::{Error, Result};
use crate::model::{NewEvent, Value};
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
    w.insert_given(obj, cols, values)?;
    let pk = cols.iter().position(|&c| c == obj.pk).unwrap_or_default();
    let id = values[pk].display();
    let row = w.record_row(obj, &id)?.ok_or_else(|| {
        Error::Store(format!("{}/{id} was inserted but cannot be read", obj.name))
    })?;
    let whole = snapshot(obj, &row);
    log(w, how, obj, &id, WHOLE_RECORD, &Value::Null, &whole)
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
