//! Undoing changes: each is checked against the record as it is now, at its turn, then
//! undone by a new change that names it, so a revert can itself be reverted.

use super::KEEP_ITEMS;
use super::merge::{from_snapshot, snapshot};
use super::one::show;
use crate::error::{Error, Result};
use crate::model::{NewEvent, State, Value};
use crate::store::{ChangeRow, Writer};

/// A revert run: how many changes it undid, and the first of them.
#[derive(Debug, Default, serde::Serialize)]
pub struct RevertSummary {
    pub count: usize,
    pub first: Vec<Reverted>,
}

impl RevertSummary {
    /// Adds what a later chunk of the same run undid, once it committed.
    pub(super) fn absorb(&mut self, chunk: RevertSummary) {
        self.count += chunk.count;
        let room = KEEP_ITEMS.saturating_sub(self.first.len());
        self.first.extend(chunk.first.into_iter().take(room));
    }

    fn push(&mut self, undone: Reverted) {
        self.count += 1;
        if self.first.len() < KEEP_ITEMS {
            self.first.push(undone);
        }
    }
}

/// What happened to one change in a revert.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reverted {
    pub change: i64,
    pub by: i64,
    pub record: String,
    pub field: String,
}

/// What became of one change a revert took.
enum Undo {
    Done(Reverted),
    Refused(String),
}

/// One revert run's work in one transaction: what it undid, and every change it could not.
pub(super) struct Reverting<'a> {
    run: i64,
    actor: &'a str,
    force: bool,
    refusals: Vec<String>,
    done: RevertSummary,
    taken: usize,
}

impl<'a> Reverting<'a> {
    /// Continues revert run `run`, or begins a new one.
    pub fn begin(w: &Writer<'_>, actor: &'a str, force: bool, run: Option<i64>) -> Result<Self> {
        let run = match run {
            Some(run) => run,
            None => w.begin_run("revert", actor)?,
        };
        Ok(Reverting {
            run,
            actor,
            force,
            refusals: Vec::new(),
            done: RevertSummary::default(),
            taken: 0,
        })
    }

    /// Undoes `ids`, newest first, each checked at its turn against the record as the newer
    /// ones left it: a merge's deletion is undone before the edits of the record it deleted.
    /// A change that cannot be undone is noted, for [`Reverting::finish`] to refuse the whole.
    pub fn undo(&mut self, w: &Writer<'_>, ids: &[i64]) -> Result<()> {
        for &id in ids {
            self.taken += 1;
            match undo_one(w, self.actor, self.run, id, self.force)? {
                Undo::Done(undone) => self.done.push(undone),
                Undo::Refused(why) => self.refusals.push(why),
            }
        }
        Ok(())
    }

    /// What was undone; refused, naming every change that could not be undone (the record
    /// moved on since, unless forced; or it was already reverted), if any could not, so that
    /// the transaction rolls back. `first` says whether this transaction began the run.
    pub fn finish(self, first: bool) -> Result<(i64, RevertSummary)> {
        if self.refusals.is_empty() {
            return Ok((self.run, self.done));
        }
        let what = if first {
            "nothing was reverted".to_string()
        } else {
            format!("none of the next {} changes were reverted", self.taken)
        };
        let why: Vec<String> = self
            .refusals
            .iter()
            .map(|r| crate::ui::safe(r).into_owned())
            .collect();
        Err(Error::Refused {
            message: format!("{what}:\n{}", why.join("\n")),
            hint: Some(
                "revert the later changes first, or pass --force (admin) to overwrite them".into(),
            ),
        })
    }
}

/// Reverts `ids` (newest first) in the caller's transaction as part of revert run `run`, or of
/// a new one; returns the run and what was undone. Refused whole when any change cannot be
/// undone: the error rolls the transaction back and names every such change.
pub fn revert_chunk(
    w: &Writer<'_>,
    actor: &str,
    ids: &[i64],
    force: bool,
    run: Option<i64>,
) -> Result<(i64, RevertSummary)> {
    let mut reverting = Reverting::begin(w, actor, force, run)?;
    reverting.undo(w, ids)?;
    reverting.finish(run.is_none())
}

/// Undoes one change, if it can be undone now.
fn undo_one(w: &Writer<'_>, actor: &str, run: i64, id: i64, force: bool) -> Result<Undo> {
    let Some((c, reverted_by)) = w.change_to_revert(id)? else {
        return Ok(Undo::Refused(format!("change {id} does not exist")));
    };
    if let Some(by) = reverted_by {
        let why = format!("change {} was already reverted by change {by}", c.id);
        return Ok(Undo::Refused(why));
    }
    let Some(obj) = w.schema().object(&c.object) else {
        let why = format!("change {}: the object {} no longer exists", c.id, c.object);
        return Ok(Undo::Refused(why));
    };
    // Read now, at its turn: what the newer changes' undoing did to it, named or not, is seen.
    let current = match current_of(w, obj, &c.record, &c.field)? {
        Ok(v) => v,
        Err(why) => return Ok(Undo::Refused(format!("change {}: {why}", c.id))),
    };
    let moved_on = !crate::store::same(&current, &c.after);
    if moved_on && !force {
        return Ok(Undo::Refused(format!(
            "change {}: {}/{} {} is now {}, not {} as the change left it (another change came after; --force overrides)",
            c.id,
            c.object,
            c.record,
            c.field,
            show(&current.to_json()),
            show(&c.after.to_json())
        )));
    }
    if let Put::Refused(why) = put(w, obj, &c.record, &c.field, &c.before)? {
        return Ok(Undo::Refused(format!("change {}: {why}", c.id)));
    }
    let by = record_undo(w, actor, run, &c, &current, moved_on)?;
    Ok(Undo::Done(Reverted {
        change: c.id,
        by,
        record: format!("{}/{}", c.object, c.record),
        field: c.field.clone(),
    }))
}

/// The change that undoes `c` (from `current` back to its `before`), the proposal's state, and
/// the event; returns the new change.
fn record_undo(
    w: &Writer<'_>,
    actor: &str,
    run: i64,
    c: &ChangeRow,
    current: &Value,
    forced: bool,
) -> Result<i64> {
    let id = w.add_change(
        run,
        c.proposal_id,
        Some(c.id),
        &c.object,
        &c.record,
        &c.field,
        current,
        &c.before,
        None,
        None,
    )?;
    if let Some(p) = c.proposal_id {
        // Undoing an apply reverts the proposal; undoing a revert applies it again.
        let (from, to) = if c.reverts.is_none() {
            (State::Applied, State::Reverted)
        } else {
            (State::Reverted, State::Applied)
        };
        w.set_state(p, &[from], to)?;
    }
    w.append_event(NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: "revert",
        proposal_id: c.proposal_id,
        object: Some(c.object.clone()),
        record: Some(c.record.clone()),
        field: Some(c.field.clone()),
        prev_value: Some(current.to_json()),
        new_value: Some(c.before.to_json()),
        change_id: Some(id),
        run_id: Some(run),
        detail: serde_json::json!({ "reverts": c.id, "forced": forced }),
        ..NewEvent::default()
    })?;
    Ok(id)
}

/// The field name a change uses for a whole record: a merge's deletion of the duplicate.
pub const WHOLE_RECORD: &str = "*";

/// What a change's target holds now: a field's value, or for [`WHOLE_RECORD`] the record's
/// snapshot (`Null` when it does not exist).
fn current_of(
    w: &Writer<'_>,
    obj: &crate::schema::Object,
    record: &str,
    field: &str,
) -> Result<std::result::Result<Value, String>> {
    if field == WHOLE_RECORD {
        let row = w.record_row(obj, record)?;
        return Ok(Ok(row.map(|r| snapshot(obj, &r)).unwrap_or(Value::Null)));
    }
    if obj.column(field).is_none() {
        return Ok(Err(format!("the field {field} no longer exists")));
    }
    Ok(match w.read_field(obj, record, field)? {
        Some(v) => Ok(v),
        None => Err(format!("{}/{record} no longer exists", obj.name)),
    })
}

/// Whether a write made its target hold what it was to hold.
pub(super) enum Put {
    Done,
    Refused(String),
}

/// Makes a change's target hold `value`: writes the field (and checks it holds), or for
/// [`WHOLE_RECORD`] deletes the record (`Null`) or re-creates it exactly from its snapshot.
pub(super) fn put(
    w: &Writer<'_>,
    obj: &crate::schema::Object,
    record: &str,
    field: &str,
    value: &Value,
) -> Result<Put> {
    let gone = || Put::Refused(format!("{}/{record} no longer exists", obj.name));
    if field != WHOLE_RECORD {
        return Ok(match w.write_and_read_back(obj, record, field, value)? {
            Some(back) if crate::store::same(&back, value) => Put::Done,
            Some(back) => Put::Refused(format!(
                "{}/{record} {field} reads back {} instead of {}",
                obj.name,
                show(&back.to_json()),
                show(&value.to_json())
            )),
            None => gone(),
        });
    }
    Ok(match value {
        Value::Null if w.delete_record(obj, record)? => Put::Done,
        Value::Null => Put::Refused(format!("{}/{record} was already gone", obj.name)),
        Value::Text(json) => match from_snapshot(obj, json) {
            Ok(values) => {
                w.insert_record(obj, &values)?;
                Put::Done
            }
            Err(why) => Put::Refused(why),
        },
        _ => Put::Refused("a record snapshot must be text".into()),
    })
}
