//! Undoing changes: each is checked against the record as it is now, at its turn, then
//! undone by a new change that names it, so a revert can itself be reverted.
//!
//! A change and the reverts that name it form a chain (a change, its revert, the revert of
//! that, ...), each link reverted at most once. The change is in effect when the chain is of
//! even length: undoing it again reverts the chain's last link, so a change reverted, put back
//! and reverted again reads as such in the log. A run's revert skips what is already undone
//! and says by which change, so running it again after a crash finishes it.

use super::KEEP_ITEMS;
use super::merge::{from_snapshot, snapshot, snapshot_at, snapshot_rowid};
use super::one::show;
use crate::error::{Error, Holds, Result};
use crate::model::{NewEvent, State, Value};
use crate::store::{ChangeRow, Writer};

/// A revert run: how many changes it undid and the first of them, and how many of the
/// changes it took were already undone, and the first of those. One transaction's part keeps
/// every item when asked to (`keep_all`: they are streamed once it commits); the summary of a
/// whole run keeps the first.
#[derive(Debug, Default, serde::Serialize)]
pub struct RevertSummary {
    pub count: usize,
    pub first: Vec<Reverted>,
    pub skipped: usize,
    pub first_skipped: Vec<Skipped>,
    #[serde(skip)]
    keep_all: bool,
}

impl RevertSummary {
    fn keeping(keep_all: bool) -> Self {
        RevertSummary {
            keep_all,
            ..RevertSummary::default()
        }
    }

    /// Adds what a later chunk of the same run undid, once it committed.
    pub(super) fn absorb(&mut self, chunk: RevertSummary) {
        self.count += chunk.count;
        let room = KEEP_ITEMS.saturating_sub(self.first.len());
        self.first.extend(chunk.first.into_iter().take(room));
        self.skipped += chunk.skipped;
        let room = KEEP_ITEMS.saturating_sub(self.first_skipped.len());
        self.first_skipped
            .extend(chunk.first_skipped.into_iter().take(room));
    }

    fn push(&mut self, undone: Reverted) {
        self.count += 1;
        if self.keep_all || self.first.len() < KEEP_ITEMS {
            self.first.push(undone);
        }
    }

    fn skip(&mut self, skipped: Skipped) {
        self.skipped += 1;
        if self.keep_all || self.first_skipped.len() < KEEP_ITEMS {
            self.first_skipped.push(skipped);
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
    /// Written over a value another change left since (`--force`).
    pub forced: bool,
}

/// A change a run's revert left alone: it was already undone, by change `by`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub change: i64,
    pub by: i64,
}

/// What became of one change a revert took.
enum Undo {
    Done(Reverted),
    Skipped(Skipped),
    Refused(String),
}

/// How a revert treats a change it takes.
#[derive(Debug, Clone)]
pub struct Undoing<'a> {
    pub actor: &'a str,
    /// Undo even where the record moved on since: write the value before over what is there.
    pub force: bool,
    /// Leave a change already undone alone (a run's revert) rather than refuse (one change's).
    pub skip_undone: bool,
    /// The command that was run, to name in a refusal: `crmgate revert --run 1`.
    pub command: String,
}

/// One revert run's work in one transaction: what it undid, and every change it could not.
pub(super) struct Reverting<'a> {
    how: Undoing<'a>,
    /// Begun at the first change undone: a revert that undoes nothing leaves no run.
    run: Option<i64>,
    refusals: Vec<String>,
    done: RevertSummary,
    taken: usize,
}

impl<'a> Reverting<'a> {
    /// Continues revert run `run`, or begins a new one when the first change is undone;
    /// `keep_all` keeps every item of what it undoes, not only the first.
    pub fn begin(how: Undoing<'a>, run: Option<i64>, keep_all: bool) -> Self {
        Reverting {
            how,
            run,
            refusals: Vec::new(),
            done: RevertSummary::keeping(keep_all),
            taken: 0,
        }
    }

    /// Undoes `ids`, newest first, each checked at its turn against the record as the newer
    /// ones left it: a merge's deletion is undone before the edits of the record it deleted.
    /// A change that cannot be undone is noted, for [`Reverting::finish`] to refuse the whole.
    pub fn undo(&mut self, w: &Writer<'_>, ids: &[i64]) -> Result<()> {
        for &id in ids {
            self.taken += 1;
            match undo_one(w, &self.how, &mut self.run, id)? {
                Undo::Done(undone) => self.done.push(undone),
                Undo::Skipped(skipped) => self.done.skip(skipped),
                Undo::Refused(why) => self.refusals.push(why),
            }
        }
        Ok(())
    }

    /// The revert run (`None` if nothing was undone) and what was undone; refused, naming every
    /// change that could not be undone (the record moved on since, unless forced), if any
    /// could not, so that the transaction rolls back. `first` says whether this transaction
    /// began the revert.
    pub fn finish(self, first: bool) -> Result<(Option<i64>, RevertSummary)> {
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
        let command = &self.how.command;
        let hint = if self.how.force {
            "`crmgate log --record OBJECT/ID` shows what removed them since; revert that first, \
             then run this again"
                .to_string()
        } else {
            format!(
                "revert the later changes first (`crmgate log --record OBJECT/ID` lists them), \
                 or `{command} --force` (admin) to write the values back over them"
            )
        };
        Err(Error::Refused {
            message: format!("{what}:\n{}", why.join("\n")),
            hint: Some(hint),
        })
    }
}

/// Reverts `ids` (newest first) in the caller's transaction as part of revert run `run`, or of
/// a new one; returns the run (if anything was undone) and what was undone, every item of it.
/// Refused whole when any change cannot be undone: the error rolls the transaction back and
/// names every such change.
pub fn revert_chunk(
    w: &Writer<'_>,
    how: Undoing<'_>,
    ids: &[i64],
    run: Option<i64>,
) -> Result<(Option<i64>, RevertSummary)> {
    let mut reverting = Reverting::begin(how, run, true);
    reverting.undo(w, ids)?;
    reverting.finish(run.is_none())
}

/// Where a change stands: in effect (the chain's last link, to revert to undo it), or undone
/// by the chain's last link.
enum Standing {
    InEffect(Box<ChangeRow>),
    Undone(i64),
}

/// Follows the chain of reverts from change `c` (reverted by `by`) to its last link.
fn standing(w: &Writer<'_>, c: &ChangeRow, mut by: Option<i64>) -> Result<Standing> {
    let (mut last, mut undone) = (None, false);
    while let Some(r) = by {
        let Some((row, next)) = w.change_to_revert(r)? else {
            break;
        };
        (last, by, undone) = (Some(row), next, !undone);
    }
    Ok(match last {
        Some(r) if undone => Standing::Undone(r.id),
        Some(r) => Standing::InEffect(Box::new(r)),
        None => Standing::InEffect(Box::new(c.clone())),
    })
}

/// How many reverts lie between change `c` and the apply at the root of its chain.
fn depth(w: &Writer<'_>, c: &ChangeRow) -> Result<usize> {
    let (mut n, mut next) = (0, c.reverts);
    while let Some(id) = next {
        n += 1;
        next = w.change_to_revert(id)?.and_then(|(row, _)| row.reverts);
    }
    Ok(n)
}

/// Undoes one change, if it can be undone now, as part of revert run `run` (begun here if it
/// has not been).
fn undo_one(w: &Writer<'_>, how: &Undoing<'_>, run: &mut Option<i64>, id: i64) -> Result<Undo> {
    let Some((c, reverted_by)) = w.change_to_revert(id)? else {
        return Ok(Undo::Refused(format!("change {id} does not exist")));
    };
    let tip = match standing(w, &c, reverted_by)? {
        Standing::InEffect(tip) => tip,
        Standing::Undone(by) if how.skip_undone => {
            return Ok(Undo::Skipped(Skipped { change: c.id, by }));
        }
        Standing::Undone(by) => {
            return Ok(Undo::Refused(format!(
                "change {} is already undone, by change {by}; `crmgate revert {by}` puts it back",
                c.id
            )));
        }
    };
    // The change, and the link of its chain a revert writes back (itself, unless reverted).
    let rows: &[&ChangeRow] = if tip.id == c.id { &[&c] } else { &[&c, &tip] };
    for row in rows {
        let event = w.event_for_change(row.id)?;
        if let Err(why) = crate::audit::check_change(row, event.as_ref()) {
            return Ok(Undo::Refused(format!(
                "change {} does not match the audit log: {why}; `crmgate audit verify` names what was changed",
                row.id
            )));
        }
    }
    let Some(obj) = w.schema().object(&c.object) else {
        let why = format!("change {}: the object {} no longer exists", c.id, c.object);
        return Ok(Undo::Refused(why));
    };
    // Read now, at its turn: what the newer changes' undoing did to it, named or not, is seen.
    let current = match current_of(w, obj, &c.record, &c.field, &tip.after)? {
        Holds::Yes(v) => v,
        Holds::No(why) => return Ok(Undo::Refused(format!("change {}: {why}", c.id))),
    };
    let moved_on = !crate::store::same(&current, &tip.after);
    if moved_on && !how.force {
        return Ok(Undo::Refused(format!(
            "change {}: {}/{} {} is now {}, not {} as the change left it (another change came after)",
            c.id,
            c.object,
            c.record,
            c.field,
            show(&current.to_json()),
            show(&tip.after.to_json())
        )));
    }
    // Deleting a created record: never while another record references it, even forced.
    if c.field == WHOLE_RECORD
        && tip.before == Value::Null
        && let Some(why) = super::create::referenced(w, obj, &c.record)?
    {
        return Ok(Undo::Refused(format!("change {}: {why}", c.id)));
    }
    if let Put::Refused(why) = put(w, obj, &c.record, &c.field, &tip.before)? {
        return Ok(Undo::Refused(format!("change {}: {why}", c.id)));
    }
    let run = match *run {
        Some(run) => run,
        None => *run.insert(w.begin_run("revert", how.actor)?),
    };
    // The new change's distance from the apply at the root: odd undoes the proposal.
    let undoes = depth(w, &tip)? % 2 == 0;
    let by = record_undo(w, how.actor, run, &tip, &current, moved_on, undoes)?;
    Ok(Undo::Done(Reverted {
        change: c.id,
        by,
        record: format!("{}/{}", c.object, c.record),
        field: c.field.clone(),
        forced: moved_on,
    }))
}

/// The change that undoes `c` (from `current` back to its `before`), the proposal's state
/// (`undoes`: reverted, else applied again), and the event; returns the new change.
fn record_undo(
    w: &Writer<'_>,
    actor: &str,
    run: i64,
    c: &ChangeRow,
    current: &Value,
    forced: bool,
    undoes: bool,
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
        let (from, to) = if undoes {
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
/// snapshot (`Null` when it does not exist), with its rowid when `left` (what the change left
/// there) has one, so that the two compare.
fn current_of(
    w: &Writer<'_>,
    obj: &crate::schema::Object,
    record: &str,
    field: &str,
    left: &Value,
) -> Result<Holds<Value>> {
    if field == WHOLE_RECORD {
        let Some(row) = w.record_row(obj, record)? else {
            return Ok(Holds::Yes(Value::Null));
        };
        let kept = matches!(left, Value::Text(t) if snapshot_rowid(obj, t).is_some());
        return Ok(Holds::Yes(match kept {
            true => snapshot_at(obj, &row, w.record_rowid(obj, record)?),
            false => snapshot(obj, &row),
        }));
    }
    if obj.column(field).is_none() {
        return Ok(Holds::No(format!("the field {field} no longer exists")));
    }
    Ok(match w.read_field(obj, record, field)? {
        Some(v) => Holds::Yes(v),
        None => Holds::No(format!("{}/{record} no longer exists", obj.name)),
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
                w.insert_record(obj, &values, snapshot_rowid(obj, json))?;
                Put::Done
            }
            Err(why) => Put::Refused(why),
        },
        _ => Put::Refused("a record snapshot must be text".into()),
    })
}
