//! Deciding the queue again under a new policy: the proposals no person has decided yet, read
//! the same way by `policy test` (from the store) and by `policy set` (inside its transaction),
//! and the new decision written back.

use super::{Pause, ReadRecords, Replay, Store, Writer, db_err, value_from};
use crate::error::Result;
use crate::model::State;

/// Proposals whose decision is still the policy's: waiting for a person (pending, suggested),
/// blocked, or approved by the policy itself and not yet applied. A person's approval or
/// rejection is never decided again. Read a batch at a time: at most `?2` of them, after id `?1`.
const UNDECIDED: &str = "SELECT id, source, ext_id, kind, object, record, field, value, merge_into,
        coalesce(confidence, stated_confidence, 0.5), trigger, decision
     FROM crmgate_proposals
     WHERE (state IN ('pending', 'suggested', 'blocked')
            OR (state = 'approved' AND decision = 'auto'))
       AND id > ?1
     ORDER BY id LIMIT ?2";

/// How many proposals a replay reads at once: its memory, whatever the size of the queue.
const BATCH: i64 = 10_000;

/// What a replay reads: the store, or a write transaction that will act on what it finds.
pub trait Replaying: ReadRecords {
    fn pauses(&self) -> Result<Vec<Pause>>;
    /// Calls `f` with every proposal no person has decided yet, in id order, read a batch at a
    /// time with no statement open while `f` runs: `f` may write the proposal's new decision.
    fn for_each_undecided(&self, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()>;
    /// Every proposal a person approved that is not applied yet, with its approver.
    fn human_approvals(&self) -> Result<Vec<(Replay, String)>>;
}

/// Proposals a person approved that are not applied yet, each with its approver: the actor of
/// the latest approve or edit on it.
const HUMAN_APPROVALS: &str =
    "SELECT id, source, ext_id, kind, object, record, field, value, merge_into,
        coalesce(confidence, stated_confidence, 0.5), trigger, decision,
        (SELECT e.actor FROM crmgate_events e
          WHERE e.proposal_id = p.id AND e.actor_kind = 'human' AND e.action IN ('approve', 'edit')
          ORDER BY e.seq DESC LIMIT 1)
     FROM crmgate_proposals p
     WHERE state = 'approved' AND coalesce(decision, '') <> 'auto'
     ORDER BY id";

fn human_approvals(conn: &rusqlite::Connection) -> Result<Vec<(Replay, String)>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare(HUMAN_APPROVALS).map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        let approver: Option<String> = r.get(12).map_err(db_err)?;
        if let Some(approver) = approver {
            out.push((replay_of(r).map_err(db_err)?, approver));
        }
    }
    Ok(out)
}

/// A proposal row read as a [`Replay`], from its first twelve columns in the order of
/// [`UNDECIDED`].
pub(super) fn replay_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Replay> {
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
}

fn for_each(
    conn: &rusqlite::Connection,
    sql: &str,
    f: &mut dyn FnMut(Replay) -> Result<()>,
) -> Result<()> {
    let mut after = i64::MIN;
    loop {
        let batch = {
            let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
            stmt.query_map([after, BATCH], replay_of)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)?
        };
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.id;
        for replay in batch {
            f(replay)?;
        }
    }
}

impl Replaying for Store {
    fn pauses(&self) -> Result<Vec<Pause>> {
        Store::pauses(self)
    }
    fn for_each_undecided(&self, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()> {
        for_each(&self.conn, UNDECIDED, f)
    }
    fn human_approvals(&self) -> Result<Vec<(Replay, String)>> {
        human_approvals(&self.conn)
    }
}

impl Replaying for Writer<'_> {
    fn pauses(&self) -> Result<Vec<Pause>> {
        Writer::pauses(self)
    }
    fn for_each_undecided(&self, f: &mut dyn FnMut(Replay) -> Result<()>) -> Result<()> {
        for_each(&self.tx, UNDECIDED, f)
    }
    fn human_approvals(&self) -> Result<Vec<(Replay, String)>> {
        human_approvals(&self.tx)
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
