//! Merges: the duplicate's references moved to the survivor, the duplicate deleted, the
//! survivor's empty fields filled from it, each step a change of its own.

use super::one::{Judge, Outcome, Stop, json_to_value, refuse, unapprove};
use super::revert::{Put, WHOLE_RECORD, put};
use crate::error::Result;
use crate::model::{NewEvent, Proposal, State, Value};
use crate::policy::{self, Action, Decision, Facts, Situation};
use crate::schema::Object;
use crate::store::Writer;

/// A merge: re-point every row that referenced the duplicate to the survivor, delete the
/// duplicate (its full snapshot kept in the change), then fill the survivor's empty fields from
/// it (never overwriting a set one). Each step is a change of its own, so a revert undoes them
/// newest first: the filled fields, then the duplicate re-created exactly, then the rows
/// pointed back. All or nothing, under a savepoint.
pub(super) fn merge_one(
    w: &Writer<'_>,
    judge: Judge<'_>,
    p: &Proposal,
    approver: Option<String>,
    run: i64,
) -> Result<Outcome> {
    let into = p.merge_into.as_deref().unwrap_or_default();
    let Some(obj) = w.schema().object(&p.object) else {
        let why = format!("the object {} no longer exists", p.object);
        return refuse(w, judge, p, Stop::Conflict, why);
    };
    let (Some(dup), Some(survivor)) = (w.record_row(obj, &p.record)?, w.record_row(obj, into)?)
    else {
        let why = "one of the two records no longer exists".to_string();
        return refuse(w, judge, p, Stop::Conflict, why);
    };
    let related =
        crate::related::related(judge.policy, w.schema(), obj, &[&dup, &survivor], |o, k| {
            w.record_row(o, k)
        })?;
    let now = decide_merge(judge, obj, p, (&dup, &survivor), &related);
    if now.action == Action::Block {
        let why = format!("blocked now: {}", now.why(judge.policy).join("; "));
        return refuse(w, judge, p, Stop::Block, why);
    }
    if let Some(by) = approver.as_deref()
        && let Err(why) = crate::admin::access::approval_holds(judge.policy, &now, by)
    {
        return unapprove(w, judge, p, by, why);
    }
    if super::pin::moved_since_pin(w, obj, p, run, (&dup, &survivor))? {
        let why = "one of the two records changed since the merge was approved".to_string();
        return refuse(w, judge, p, Stop::Conflict, super::one::requeue(p.id, why));
    }
    let log = MergeLog {
        w,
        judge,
        p,
        run,
        approved_by: approver.unwrap_or_else(|| "policy".into()),
    };
    w.savepoint(GUARD)?;
    let mut changes = Vec::new();
    let why = match merge_steps(&log, obj, &dup, &survivor, &mut changes) {
        Ok(Put::Done) => {
            w.set_state(p.id, &[State::Approved], State::Applied)?;
            w.release(GUARD)?;
            return Ok(Outcome::Applied(
                changes.last().copied().unwrap_or_default(),
            ));
        }
        Ok(Put::Refused(why)) => why,
        Err(e) => format!("the store refused the merge: {e}"),
    };
    w.rollback_to(GUARD)?;
    refuse(w, judge, p, Stop::Fail, why)
}

const GUARD: &str = "crmgate_merge_one";

/// The policy's decision on the merge against both records as they are now: a stop rule on
/// either (a legal hold on the survivor stops the merge too) outranks staleness, and its
/// approvers are who may have approved it.
fn decide_merge(
    judge: Judge<'_>,
    obj: &Object,
    p: &Proposal,
    (dup, survivor): (&[Value], &[Value]),
    related: &[crate::model::Related],
) -> Decision {
    let a: Vec<(&str, &Value)> = obj.column_names().zip(dup).collect();
    let b: Vec<(&str, &Value)> = obj.column_names().zip(survivor).collect();
    let records: Vec<&[(&str, &Value)]> = vec![&a, &b];
    policy::decide(
        judge.policy,
        &Facts {
            kind: crate::model::Kind::Merge,
            source: &p.source,
            object: &p.object,
            field: None,
            value: &Value::Null,
            current: &Value::Null,
            trigger: None,
            confidence: p.confidence.unwrap_or(0.0),
            records: &records,
            related,
        },
        &Situation::default(),
    )
}

/// The steps of a merge in order; the first refused one ends it.
fn merge_steps(
    log: &MergeLog<'_, '_>,
    obj: &Object,
    dup: &[Value],
    survivor: &[Value],
    changes: &mut Vec<i64>,
) -> Result<Put> {
    let (w, record) = (log.w, log.p.record.as_str());
    let into = log.p.merge_into.as_deref().unwrap_or_default();
    // A row names the duplicate by the column its foreign key references (the primary key, or
    // another unique one): it is pointed at the survivor's value of that column, so that
    // deleting the duplicate leaves no row for a foreign key's ON DELETE to act on.
    for (table, column) in w.schema().referencing(&obj.name) {
        let Some(at) = column
            .foreign_key
            .as_ref()
            .and_then(|fk| obj.columns.iter().position(|c| c.name == fk.column))
        else {
            continue;
        };
        let (from, to) = (&dup[at], &survivor[at]);
        if *from == Value::Null {
            continue; // NULL names no row
        }
        for id in w.referencing_ids(table, &column.name, from)? {
            if let Put::Refused(why) = put(w, table, &id, &column.name, to)? {
                return Ok(Put::Refused(why));
            }
            changes.push(log.change(table, &id, &column.name, from, to)?);
        }
    }
    let rowid = w.record_rowid(obj, record)?;
    if let Put::Refused(why) = put(w, obj, record, WHOLE_RECORD, &Value::Null)? {
        return Ok(Put::Refused(why));
    }
    let whole = snapshot_at(obj, dup, rowid);
    changes.push(log.change(obj, record, WHOLE_RECORD, &whole, &Value::Null)?);
    for (i, c) in obj.columns.iter().enumerate() {
        if c.primary_key || !survivor[i].is_empty() || dup[i].is_empty() {
            continue;
        }
        if let Put::Refused(why) = put(w, obj, into, &c.name, &dup[i])? {
            return Ok(Put::Refused(why));
        }
        changes.push(log.change(obj, into, &c.name, &survivor[i], &dup[i])?);
    }
    Ok(Put::Done)
}

/// Records a merge's steps: each a change and an event of its own, so the log alone can
/// replay the merge.
struct MergeLog<'w, 'a> {
    w: &'w Writer<'w>,
    judge: Judge<'a>,
    p: &'a Proposal,
    run: i64,
    approved_by: String,
}

impl MergeLog<'_, '_> {
    fn change(
        &self,
        obj: &Object,
        record: &str,
        field: &str,
        before: &Value,
        after: &Value,
    ) -> Result<i64> {
        let (w, p) = (self.w, self.p);
        let id = w.add_change(
            self.run,
            Some(p.id),
            None,
            &obj.name,
            record,
            field,
            before,
            after,
            Some(&self.approved_by),
            p.policy_version,
        )?;
        let into = p.merge_into.as_deref().unwrap_or_default();
        w.append_event(NewEvent {
            actor: self.judge.actor.to_string(),
            actor_kind: "human",
            action: "apply",
            proposal_id: Some(p.id),
            object: Some(obj.name.clone()),
            record: Some(record.to_string()),
            field: Some(field.to_string()),
            prev_value: Some(before.to_json()),
            new_value: Some(after.to_json()),
            source: Some(p.source.clone()),
            confidence: p.confidence,
            policy_version: Some(self.judge.version),
            approver: Some(self.approved_by.clone()),
            change_id: Some(id),
            run_id: Some(self.run),
            detail: p.with_evidence(
                serde_json::json!({ "merge": { "duplicate": p.record, "into": into } }),
            ),
            ..NewEvent::default()
        })?;
        Ok(id)
    }
}

/// Where a merge's snapshot of the duplicate keeps its rowid, so that a revert re-creates it
/// where it was (rows are stored, and dumped, in rowid order). Not kept when a column has this
/// name; a snapshot without it is re-created wherever SQLite puts a new row.
pub const ROWID_KEY: &str = "crmgate:rowid";

/// A record as one value: its columns as a JSON object.
pub(super) fn snapshot(obj: &crate::schema::Object, row: &[Value]) -> Value {
    snapshot_at(obj, row, None)
}

/// A record as one value, with its rowid when given: see [`ROWID_KEY`].
pub(super) fn snapshot_at(obj: &crate::schema::Object, row: &[Value], rowid: Option<i64>) -> Value {
    let mut m: serde_json::Map<String, serde_json::Value> = obj
        .columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.name.clone(), v.to_json()))
        .collect();
    if let Some(rowid) = rowid.filter(|_| obj.column(ROWID_KEY).is_none()) {
        m.insert(ROWID_KEY.to_string(), rowid.into());
    }
    Value::Text(serde_json::Value::Object(m).to_string())
}

/// A snapshot without the rowid it keeps: the record's columns alone, to compare with a
/// record as it is read.
pub(super) fn columns_only(obj: &crate::schema::Object, v: &Value) -> Value {
    let Value::Text(text) = v else {
        return v.clone();
    };
    if snapshot_rowid(obj, text).is_none() {
        return v.clone();
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(mut m) => {
            m.remove(ROWID_KEY);
            Value::Text(serde_json::Value::Object(m).to_string())
        }
        Err(_) => v.clone(),
    }
}

/// The rowid a snapshot keeps, if it keeps one: see [`ROWID_KEY`].
pub(super) fn snapshot_rowid(obj: &crate::schema::Object, text: &str) -> Option<i64> {
    if obj.column(ROWID_KEY).is_some() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get(ROWID_KEY)?.as_i64()
}

/// The record a snapshot holds, column by column in schema order.
pub(super) fn from_snapshot(
    obj: &crate::schema::Object,
    text: &str,
) -> std::result::Result<Vec<Value>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("unreadable snapshot: {e}"))?;
    obj.columns
        .iter()
        .map(|c| {
            let x = v.get(&c.name).cloned().unwrap_or(serde_json::Value::Null);
            match x.get("blob_hex").and_then(|h| h.as_str()) {
                Some(hex) => (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                    .collect::<std::result::Result<Vec<u8>, _>>()
                    .map(Value::Blob)
                    .map_err(|e| format!("unreadable blob in snapshot: {e}")),
                None => Ok(json_to_value(&x)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Affinity, Column, Object, Reach};

    fn object(names: &[&str]) -> Object {
        Object {
            name: "orgs".into(),
            pk: 0,
            reach: Reach::Named,
            columns: names
                .iter()
                .map(|n| Column {
                    name: n.to_string(),
                    decl_type: "TEXT".into(),
                    affinity: Affinity::from_decl("TEXT"),
                    not_null: false,
                    has_default: false,
                    primary_key: *n == "code",
                    foreign_key: None,
                })
                .collect(),
        }
    }

    #[test]
    fn a_snapshot_keeps_the_rowid_beside_the_columns_and_an_older_one_without_it_reads_as_before() {
        let obj = object(&["code", "name"]);
        let row = [Value::Text("o-2".into()), Value::Text("Acme".into())];
        let Value::Text(kept) = snapshot_at(&obj, &row, Some(7)) else {
            panic!("a snapshot is text")
        };
        assert_eq!(snapshot_rowid(&obj, &kept), Some(7));
        assert_eq!(from_snapshot(&obj, &kept).unwrap(), row);
        assert_eq!(columns_only(&obj, &Value::Text(kept)), snapshot(&obj, &row));
        // As merges recorded it before the rowid was kept: re-created wherever SQLite puts it.
        let Value::Text(old) = snapshot(&obj, &row) else {
            panic!("a snapshot is text")
        };
        assert_eq!(snapshot_rowid(&obj, &old), None);
        assert_eq!(from_snapshot(&obj, &old).unwrap(), row);
    }

    #[test]
    fn a_column_named_like_the_rowid_key_keeps_its_value_and_no_rowid_is_kept() {
        let obj = object(&["code", ROWID_KEY]);
        let row = [Value::Text("o-2".into()), Value::Integer(3)];
        let Value::Text(text) = snapshot_at(&obj, &row, Some(7)) else {
            panic!("a snapshot is text")
        };
        assert_eq!(snapshot_rowid(&obj, &text), None);
        assert_eq!(from_snapshot(&obj, &text).unwrap(), row);
    }
}
