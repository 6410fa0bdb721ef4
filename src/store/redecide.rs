//! Deciding the queue again under a new policy: the proposals no person has decided yet, read
//! the same way by `policy test` (from the store) and by `policy set` (inside its transaction),
//! and the new decision written back.

use super::{Pause, Replay, Store, Writer, db_err, value_from};
use crate::error::Result;
use crate::model::{State, Value};
use crate::schema::{Object, Schema};

/// Proposals whose decision is still the policy's: waiting for a person (pending, suggested),
/// blocked, or approved by the policy itself and not yet applied. A person's approval or
/// rejection is never decided again.
const UNDECIDED: &str = "SELECT id, source, ext_id, kind, object, record, field, value, merge_into,
        coalesce(confidence, stated_confidence, 0.5), trigger, decision
     FROM crmgate_proposals
     WHERE state IN ('pending', 'suggested', 'blocked')
        OR (state = 'approved' AND decision = 'auto')
     ORDER BY id";

/// What a replay reads: the store, or a write transaction that will act on what it finds.
pub trait Replaying {
    fn schema(&self) -> &Schema;
    fn pauses(&self) -> Result<Vec<Pause>>;
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>>;
    /// Calls `f` with every proposal no person has decided yet, in id order.
    fn for_each_undecided(&self, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()>;
}

fn for_each(conn: &rusqlite::Connection, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()> {
    let mut stmt = conn.prepare(UNDECIDED).map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        let replay = (|| -> rusqlite::Result<Replay> {
            Ok(Replay {
                id: r.get(0)?,
                source: r.get(1)?,
                ext_id: r.get(2)?,
                kind: r.get(3)?,
                object: r.get(4)?,
                record: r.get(5)?,
                field: r.get(6)?,
                value: value_from(r.get_ref(7)?),
                merge_into: r.get(8)?,
                confidence: r.get(9)?,
                trigger: r.get(10)?,
                decision: r.get(11)?,
            })
        })()
        .map_err(db_err)?;
        f(replay)?;
    }
    Ok(())
}

impl Replaying for Store {
    fn schema(&self) -> &Schema {
        Store::schema(self)
    }
    fn pauses(&self) -> Result<Vec<Pause>> {
        Store::pauses(self)
    }
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        Store::record_row(self, obj, record)
    }
    fn for_each_undecided(&self, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()> {
        for_each(&self.conn, f)
    }
}

impl Replaying for Writer<'_> {
    fn schema(&self) -> &Schema {
        Writer::schema(self)
    }
    fn pauses(&self) -> Result<Vec<Pause>> {
        Writer::pauses(self)
    }
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        Writer::record_row(self, obj, record)
    }
    fn for_each_undecided(&self, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()> {
        for_each(&self.tx, f)
    }
}

/// A proposal's new decision under a new policy version.
pub struct Redecision<'a> {
    pub id: i64,
    pub state: State,
    /// The action, as stored in its own column.
    pub action: &'a str,
    /// The decision in full (rules, approvers, why), as JSON.
    pub decision: &'a str,
    pub policy_version: i64,
}

impl Writer<'_> {
    /// Writes a proposal's new decision, if it is still one no person has decided; returns
    /// whether it was.
    pub fn redecide(&self, r: &Redecision<'_>) -> Result<bool> {
        let n = self
            .tx
            .execute(
                "UPDATE crmgate_proposals
                 SET state = ?2, decision = ?3, rules = ?4, policy_version = ?5
                 WHERE id = ?1 AND (state IN ('pending', 'suggested', 'blocked')
                    OR (state = 'approved' AND decision = 'auto'))",
                rusqlite::params![
                    r.id,
                    r.state.as_str(),
                    r.action,
                    r.decision,
                    r.policy_version
                ],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }
}
