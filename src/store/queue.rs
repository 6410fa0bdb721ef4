//! The proposal queue and its ingests.

use rusqlite::{OptionalExtension, params_from_iter};

use super::stage::{INPUT_COLUMNS, INPUT_COUNT, bind_input, input_from_row, placeholders};
use super::{Store, Writer, db_err, value_from};
use crate::audit::{LastEvent, ProposalBinding};
use crate::error::Result;
use crate::model::{Action, Kind, NewProposal, Proposal, State, Value, Verdict, source_id_key};

/// An undecided proposal for the same target key as one being ingested.
#[derive(Debug)]
pub struct OpenTarget {
    pub id: i64,
    pub source: String,
    pub object: String,
    pub record: String,
    pub field: Option<String>,
    pub ingest_id: i64,
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub state: Option<State>,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub object: Option<String>,
    /// `None`: every match.
    pub limit: Option<u64>,
}

impl ListFilter {
    /// Adds the state, source, kind and object clauses (numbered after `params`) to a query.
    fn narrow(&self, clauses: &mut Vec<String>, params: &mut Vec<String>) {
        if let Some(s) = self.state {
            params.push(s.as_str().to_string());
            clauses.push(format!("p.state = ?{}", params.len()));
        }
        super::narrow(
            &[
                ("p.source =", &self.source),
                ("p.kind =", &self.kind),
                ("p.object =", &self.object),
            ],
            clauses,
            params,
        );
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CountRow {
    pub key: String,
    pub count: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub file: String,
    pub sha256: Option<String>,
    pub format: String,
    pub rows: i64,
    pub ingested: i64,
    pub duplicates: i64,
    pub superseded: i64,
    pub rejected: i64,
}

pub struct IngestCounts {
    pub rows: u64,
    pub ingested: u64,
    pub duplicates: u64,
    pub superseded: u64,
    pub rejected: u64,
}

const PROPOSAL_COLUMNS: &str = "p.id, p.source, p.ext_id, p.kind, p.object, p.record, p.field, p.value, p.merge_into, p.stated_confidence, p.has_expected, p.expected, p.trigger, p.reason, p.baseline, p.state, p.confidence, p.superseded_by, p.ingest_id, i.file, p.line, i.at, p.decision, p.rules, p.signals, p.policy_version, p.baseline_fp, p.edited, p.proposed_value, p.evidence";

/// How many columns [`PROPOSAL_COLUMNS`] names: what a statement selects after them starts there.
const PROPOSAL_COLUMN_COUNT: usize = 30;

fn proposal_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Proposal> {
    let has_expected: bool = r.get(10)?;
    let kind: Kind = r.get(3)?;
    let value = value_from(r.get_ref(7)?).to_json();
    Ok(Proposal {
        id: r.get(0)?,
        source: r.get(1)?,
        ext_id: r.get(2)?,
        kind,
        object: r.get(4)?,
        record: r.get(5)?,
        field: r.get(6)?,
        value: match (kind, value) {
            // A create's fields are kept as the JSON text of an object.
            (Kind::Create, serde_json::Value::String(json)) => {
                serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json))
            }
            (_, value) => value,
        },
        merge_into: r.get(8)?,
        stated_confidence: r.get(9)?,
        expected: has_expected.then(|| value_from(r.get_ref(11).expect("column 11")).to_json()),
        trigger: r.get(12)?,
        reason: r.get(13)?,
        baseline: value_from(r.get_ref(14)?).to_json(),
        state: r.get(15)?,
        confidence: r.get(16)?,
        superseded_by: r.get(17)?,
        ingest_id: r.get(18)?,
        file: r.get(19)?,
        line: r.get(20)?,
        created_at: r.get(21)?,
        decision: r.get(22)?,
        rules: r
            .get::<_, Option<String>>(23)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        signals: r
            .get::<_, Option<String>>(24)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        policy_version: r.get(25)?,
        baseline_fp: r.get(26)?,
        proposed_value: if r.get::<_, bool>(27)? {
            Some(value_from(r.get_ref(28)?).to_json())
        } else {
            None
        },
        evidence: r.get(29)?,
    })
}

fn proposal(conn: &rusqlite::Connection, id: i64) -> Result<Option<Proposal>> {
    // Cached: a decision over a whole filter (approve, reject) reads one per proposal.
    conn.prepare_cached(&format!(
        "SELECT {PROPOSAL_COLUMNS} FROM crmgate_proposals p
         JOIN crmgate_ingests i ON i.id = p.ingest_id WHERE p.id = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([id], proposal_from_row).optional())
    .map_err(db_err)
}

/// A proposal as apply needs it, with what binds it to the audit log: its digest, the state
/// it was queued in and its newest event (see [`crate::audit::approval_of`]).
///
/// One statement per proposal: no join for the ingest's file and time, no parse of the
/// signals, and the newest event found through the index of events by proposal.
pub(super) fn proposal_to_apply(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<Option<(Proposal, ProposalBinding)>> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{} WHERE p.id = ?1", bound_select()));
    conn.prepare_cached(&SQL)
        .and_then(|mut stmt| {
            stmt.query_row([id], |r| {
                Ok((
                    proposal_from_row(r)?,
                    binding_from_row(r, PROPOSAL_COLUMN_COUNT)?,
                ))
            })
            .optional()
        })
        .map_err(db_err)
}

/// A proposal's columns, then what binds it to the audit log (see [`binding_from_row`]).
fn bound_select() -> String {
    let columns = PROPOSAL_COLUMNS
        .replace("i.file", "'' AS file")
        .replace("i.at", "'' AS at")
        .replace("p.signals", "NULL AS signals");
    format!(
        "SELECT {columns}, p.digest, p.queued, e.action, e.actor_kind, e.actor, e.new_value,
             json_extract(e.detail, '$.to'), json_extract(e.detail, '$.decision'),
             (SELECT h.bound_from FROM crmgate_chain_head h WHERE h.id = 1)
         FROM crmgate_proposals p
         LEFT JOIN crmgate_events e ON e.seq = (SELECT max(x.seq) FROM crmgate_events x
             WHERE x.proposal_id = p.id)"
    )
}

impl Store {
    /// Every proposal in id order, with what binds it to the audit log: for `audit verify`.
    pub fn for_each_bound_proposal(
        &self,
        mut f: impl FnMut(&Proposal, &ProposalBinding) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(&format!("{} ORDER BY p.id", bound_select()))
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let p = proposal_from_row(r).map_err(db_err)?;
            f(
                &p,
                &binding_from_row(r, PROPOSAL_COLUMN_COUNT).map_err(db_err)?,
            )?;
        }
        Ok(())
    }
}

/// The binding columns of [`proposal_to_apply`], from column `at` on.
fn binding_from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ProposalBinding> {
    let action: Option<String> = r.get(at + 2)?;
    let last = match action {
        Some(action) => Some(LastEvent {
            action,
            actor_kind: r.get(at + 3)?,
            actor: r.get(at + 4)?,
            new_value: r.get(at + 5)?,
            to: r.get(at + 6)?,
            decision: r.get(at + 7)?,
        }),
        None => None,
    };
    // Read whatever a hand edit left there: a digest that is not a blob simply does not match.
    let digest = match r.get_ref(at)? {
        rusqlite::types::ValueRef::Null => None,
        rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => Some(b.to_vec()),
        _ => Some(Vec::new()),
    };
    Ok(ProposalBinding {
        digest,
        queued: r.get(at + 1)?,
        last,
        bound_from: r.get(at + 8)?,
    })
}

/// Binds what ingest found and decided for `p`: parameters after the input ones (see
/// [`bind_input`]), in the order of the queue's insert.
fn bind_verdict(
    stmt: &mut rusqlite::Statement<'_>,
    p: &NewProposal,
    v: &Verdict,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(INPUT_COUNT + 1, &p.baseline)?;
    stmt.raw_bind_parameter(INPUT_COUNT + 2, &p.baseline_fp)?;
    stmt.raw_bind_parameter(INPUT_COUNT + 3, v.state.as_str())?;
    stmt.raw_bind_parameter(INPUT_COUNT + 4, v.confidence)?;
    stmt.raw_bind_parameter(INPUT_COUNT + 5, &v.signals)?;
    stmt.raw_bind_parameter(INPUT_COUNT + 6, v.action.as_str())?;
    stmt.raw_bind_parameter(INPUT_COUNT + 7, &v.decision)?;
    stmt.raw_bind_parameter(INPUT_COUNT + 8, v.policy_version)
}

impl Writer<'_> {
    pub fn begin_ingest(&self, actor: &str, file: &str, format: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO crmgate_ingests (at, actor, file, format) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![self.now, actor, file, format],
            )
            .map_err(db_err)?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn finish_ingest(&self, id: i64, sha256: &str, c: &IngestCounts) -> Result<()> {
        self.tx
            .execute(
                "UPDATE crmgate_ingests SET sha256 = ?2, rows = ?3, ingested = ?4, duplicates = ?5,
                 superseded = ?6, rejected = ?7 WHERE id = ?1",
                rusqlite::params![
                    id,
                    sha256,
                    c.rows as i64,
                    c.ingested as i64,
                    c.duplicates as i64,
                    c.superseded as i64,
                    c.rejected as i64
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// The ingest of one requeued proposal: now, by `actor`, from the file the proposal it
    /// replaces came from, format `requeue`.
    pub fn requeue_ingest(&self, actor: &str, file: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO crmgate_ingests (at, actor, file, format, rows, ingested)
                 VALUES (?1, ?2, ?3, 'requeue', 1, 1)",
                rusqlite::params![self.now, actor, file],
            )
            .map_err(db_err)?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Drops an ingest row that ingested nothing, so a no-op re-ingest leaves no trace.
    pub fn discard_ingest(&self, id: i64) -> Result<()> {
        self.tx
            .execute("DELETE FROM crmgate_ingests WHERE id = ?1", [id])
            .map_err(db_err)?;
        Ok(())
    }

    /// Queues `p` under the id the caller gives it (see `ingest::proposals`), superseded
    /// already when a newer twin of the same run is known. Duplicates are decided before this;
    /// the unique index on the dedupe key, when present, guards that decision.
    pub fn insert_proposal(
        &self,
        id: i64,
        p: &NewProposal,
        ingest_id: i64,
        v: &Verdict,
        superseded_by: Option<i64>,
    ) -> Result<()> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "INSERT INTO crmgate_proposals ({INPUT_COLUMNS}, baseline, baseline_fp, state,
                 confidence, signals, decision, rules, policy_version, id, superseded_by,
                 digest, queued)
                 VALUES ({})",
                placeholders(INPUT_COUNT + 12)
            )
        });
        let digest = crate::audit::ProposalContent::of_new(id, ingest_id, p, v.state).digest();
        let mut stmt = self.prepared(&SQL).map_err(db_err)?;
        bind_input(&mut stmt, p, ingest_id)
            .and_then(|()| bind_verdict(&mut stmt, p, v))
            .and_then(|()| stmt.raw_bind_parameter(INPUT_COUNT + 9, id))
            .and_then(|()| stmt.raw_bind_parameter(INPUT_COUNT + 10, superseded_by))
            .and_then(|()| stmt.raw_bind_parameter(INPUT_COUNT + 11, &digest[..]))
            .and_then(|()| stmt.raw_bind_parameter(INPUT_COUNT + 12, v.state.as_str()))
            .and_then(|()| stmt.raw_execute())
            .map_err(db_err)?;
        self.note_digest(ingest_id, id, &digest);
        Ok(())
    }

    /// Calls `f` with the object and record of every undecided proposal, in index order.
    pub fn for_each_open_record(&self, mut f: impl FnMut(&str, &str)) -> Result<()> {
        let mut stmt = self.prepared(
                "SELECT object, record FROM crmgate_proposals INDEXED BY crmgate_proposals_open_record
                 WHERE state IN ('pending', 'suggested')",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let text = |i: usize| r.get_ref(i).and_then(|v| Ok(v.as_str()?)).map_err(db_err);
            f(text(0)?, text(1)?);
        }
        Ok(())
    }

    /// The undecided proposals about one record, oldest first.
    pub fn open_for_record(&self, object: &str, record: &str) -> Result<Vec<OpenTarget>> {
        let mut stmt = self.prepared(
                "SELECT id, source, object, record, field, ingest_id FROM crmgate_proposals
                 INDEXED BY crmgate_proposals_open_record
                 WHERE object = ?1 AND record = ?2 AND state IN ('pending', 'suggested') ORDER BY id",
            )
            .map_err(db_err)?;
        stmt.query_map([object, record], |r| {
            Ok(OpenTarget {
                id: r.get(0)?,
                source: r.get(1)?,
                object: r.get(2)?,
                record: r.get(3)?,
                field: r.get(4)?,
                ingest_id: r.get(5)?,
            })
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
    }

    /// Proposal `id` as its source proposed it (a reviewer's edit left out), with its ingest:
    /// what a requeue proposes again.
    pub fn proposal_input(&self, id: i64) -> Result<Option<(i64, NewProposal)>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let columns = INPUT_COLUMNS.replace(
                ", value,",
                ", CASE WHEN edited THEN proposed_value ELSE value END,",
            );
            format!("SELECT {columns} FROM crmgate_proposals WHERE id = ?1")
        });
        let mut stmt = self.prepared(&SQL).map_err(db_err)?;
        let mut rows = stmt.query([id]).map_err(db_err)?;
        match rows.next().map_err(db_err)? {
            Some(r) => Ok(Some(input_from_row(r, 0)?)),
            None => Ok(None),
        }
    }

    pub fn supersede(&self, old: i64, new: i64) -> Result<()> {
        let mut stmt = self
            .prepared(
                "UPDATE crmgate_proposals SET state = 'superseded', superseded_by = ?2
                 WHERE id = ?1",
            )
            .map_err(db_err)?;
        stmt.execute(rusqlite::params![old, new]).map_err(db_err)?;
        Ok(())
    }
}

impl Store {
    pub fn proposal(&self, id: i64) -> Result<Option<Proposal>> {
        proposal(&self.conn, id)
    }

    /// The undecided (pending or suggested) proposals ingested before `before` (the events'
    /// time format): how many, and the oldest of them.
    pub fn undecided_before(&self, before: &str) -> Result<Option<(i64, Proposal)>> {
        let (n, oldest): (i64, Option<i64>) = self
            .conn
            .query_row(
                "SELECT count(*),
                        (SELECT p2.id FROM crmgate_proposals p2
                           JOIN crmgate_ingests i2 ON i2.id = p2.ingest_id
                          WHERE p2.state IN ('pending', 'suggested') AND i2.at < ?1
                          ORDER BY i2.at, p2.id LIMIT 1)
                   FROM crmgate_proposals p JOIN crmgate_ingests i ON i.id = p.ingest_id
                  WHERE p.state IN ('pending', 'suggested') AND i.at < ?1",
                [before],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db_err)?;
        let Some(id) = oldest else { return Ok(None) };
        Ok(self.proposal(id)?.map(|p| (n, p)))
    }

    /// The proposal a source calls `ext_id`: the latest of them, once it has been requeued
    /// (a requeue keeps the source's id, and supersedes the proposal it replaces).
    pub fn proposal_by_source_id(&self, source: &str, ext_id: &str) -> Result<Option<Proposal>> {
        let mut found = self.first_by_source_id(source, ext_id)?;
        while let Some(p) = &found
            && let Some(next) = p.superseded_by
        {
            match self.proposal(next)? {
                Some(n) if n.source == p.source && n.ext_id == p.ext_id => found = Some(n),
                _ => break,
            }
        }
        Ok(found)
    }

    /// The proposal first ingested as `ext_id`, which holds the key of (source, id).
    fn first_by_source_id(&self, source: &str, ext_id: &str) -> Result<Option<Proposal>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {PROPOSAL_COLUMNS} FROM crmgate_proposals p
                     JOIN crmgate_ingests i ON i.id = p.ingest_id
                     WHERE p.dedupe_key = ?1 AND p.source = ?2 AND p.ext_id = ?3"
                ),
                rusqlite::params![source_id_key(source, ext_id), source, ext_id],
                proposal_from_row,
            )
            .optional()
            .map_err(db_err)
    }

    /// Proposals matching `filter`, newest first, and how many match in all.
    pub fn list_proposals(&self, filter: &ListFilter) -> Result<(Vec<Proposal>, i64)> {
        let mut clauses = Vec::new();
        let mut params: Vec<String> = Vec::new();
        filter.narrow(&mut clauses, &mut params);
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let total: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM crmgate_proposals p {where_sql}"),
                params_from_iter(params.iter()),
                |r| r.get(0),
            )
            .map_err(db_err)?;
        let limit = filter.limit.map(|l| l as i64).unwrap_or(-1);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PROPOSAL_COLUMNS} FROM crmgate_proposals p
                 JOIN crmgate_ingests i ON i.id = p.ingest_id {where_sql}
                 ORDER BY p.id DESC LIMIT {limit}"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params_from_iter(params.iter()), proposal_from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)?;
        Ok((rows, total))
    }

    /// Proposal counts grouped by one of `state`, `kind`, `source`, `object`.
    pub fn count_proposals_by(&self, column: &str) -> Result<Vec<CountRow>> {
        let column = match column {
            "state" | "kind" | "source" | "object" => column,
            other => panic!("count_proposals_by: not a grouping column: {other}"),
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {column}, count(*) FROM crmgate_proposals GROUP BY {column} ORDER BY count(*) DESC, {column}"
            ))
            .map_err(db_err)?;
        stmt.query_map([], |r| {
            Ok(CountRow {
                key: r.get(0)?,
                count: r.get(1)?,
            })
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
    }

    pub fn recent_ingests(&self, limit: u32) -> Result<Vec<IngestRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, at, actor, file, sha256, format, rows, ingested, duplicates, superseded, rejected
                 FROM crmgate_ingests ORDER BY id DESC LIMIT ?1",
            )
            .map_err(db_err)?;
        stmt.query_map([limit], |r| {
            Ok(IngestRow {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                file: r.get(3)?,
                sha256: r.get(4)?,
                format: r.get(5)?,
                rows: r.get(6)?,
                ingested: r.get(7)?,
                duplicates: r.get(8)?,
                superseded: r.get(9)?,
                rejected: r.get(10)?,
            })
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
    }
}

/// What replaying a proposal through a policy needs.
#[derive(Debug, Clone)]
pub struct Replay {
    pub id: i64,
    pub source: String,
    pub ext_id: Option<String>,
    pub kind: Kind,
    pub object: String,
    pub record: String,
    pub field: Option<String>,
    pub value: Value,
    pub merge_into: Option<String>,
    pub confidence: f64,
    pub trigger: Option<String>,
    pub decision: Option<Action>,
}

impl Store {
    /// Per source: volume, decisions, and the human decisions on its proposals (from the audit
    /// log: `approve`, `reject` and `edit` events by humans).
    pub fn source_stats(&self) -> Result<Vec<crate::model::SourceStats>> {
        let mut out: Vec<crate::model::SourceStats> = Vec::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source, count(*), sum(decision = 'auto'), sum(decision = 'review'),
                        sum(decision = 'suggest'), sum(decision = 'block'), sum(state = 'applied'),
                        sum(state = 'reverted'), sum(state = 'conflict')
                 FROM crmgate_proposals GROUP BY source ORDER BY source",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
            out.push(crate::model::SourceStats {
                source: r.get(0).map_err(db_err)?,
                proposals: n(1).map_err(db_err)?,
                auto: n(2).map_err(db_err)?,
                review: n(3).map_err(db_err)?,
                suggest: n(4).map_err(db_err)?,
                block: n(5).map_err(db_err)?,
                applied: n(6).map_err(db_err)?,
                reverted: n(7).map_err(db_err)?,
                conflicts: n(8).map_err(db_err)?,
                ..Default::default()
            });
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.source, sum(e.action IN ('approve', 'edit')), sum(e.action = 'reject'),
                        sum(e.action = 'edit'),
                        avg(CASE WHEN p.stated_confidence IS NULL THEN NULL
                                 ELSE (p.stated_confidence - (e.action <> 'reject'))
                                    * (p.stated_confidence - (e.action <> 'reject')) END)
                 FROM crmgate_events e JOIN crmgate_proposals p ON p.id = e.proposal_id
                 WHERE e.actor_kind = 'human' AND e.action IN ('approve', 'reject', 'edit') AND NOT
                       EXISTS (SELECT 1 FROM crmgate_events u WHERE u.proposal_id = e.proposal_id
                               AND u.action = 'undo' AND u.seq > e.seq)
                 GROUP BY p.source",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let source: String = r.get(0).map_err(db_err)?;
            if let Some(s) = out.iter_mut().find(|s| s.source == source) {
                let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
                s.approved = n(1).map_err(db_err)?;
                s.rejected = n(2).map_err(db_err)?;
                s.edited = n(3).map_err(db_err)?;
                s.brier = r.get(4).map_err(db_err)?;
            }
        }
        Ok(out)
    }
}

impl Writer<'_> {
    /// A proposal as stored, read inside the write transaction.
    pub fn proposal(&self, id: i64) -> Result<Option<Proposal>> {
        proposal(&self.tx, id)
    }

    /// The proposal and what binds it to the audit log, for apply: see [`proposal_to_apply`].
    pub fn proposal_to_apply(&self, id: i64) -> Result<Option<(Proposal, ProposalBinding)>> {
        proposal_to_apply(&self.tx, id)
    }

    /// Moves a proposal from one of `from` to `to`; false if it was in another state.
    pub fn set_state(&self, id: i64, from: &[State], to: State) -> Result<bool> {
        // One statement for every call (apply makes a million): `from` fills two slots,
        // the second repeating the first when there is one state.
        let (a, b) = match from {
            [a] => (a, a),
            [a, b] => (a, b),
            _ => {
                let states: Vec<String> =
                    from.iter().map(|s| format!("'{}'", s.as_str())).collect();
                let sql = format!(
                    "UPDATE crmgate_proposals SET state = ?2 WHERE id = ?1 AND state IN ({})",
                    states.join(", ")
                );
                let n = self
                    .tx
                    .execute(&sql, rusqlite::params![id, to.as_str()])
                    .map_err(db_err)?;
                return Ok(n == 1);
            }
        };
        let n = self
            .prepared("UPDATE crmgate_proposals SET state = ?2 WHERE id = ?1 AND state IN (?3, ?4)")
            .and_then(|mut stmt| {
                stmt.execute(rusqlite::params![id, to.as_str(), a.as_str(), b.as_str()])
            })
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// The latest `n` human decisions on `source`'s proposals, newest first: true for a rejection.
    pub fn recent_human_decisions(&self, source: &str, n: u32) -> Result<Vec<bool>> {
        let mut stmt = self
            .prepared(
                // Each arm walks the log newest first and stops at the window: the cost is
                // the window's, not the source's whole history of decisions and reverts.
                "SELECT rejected FROM (
                   SELECT * FROM (
                     SELECT e.seq, e.action = 'reject' AS rejected FROM crmgate_events e
                     JOIN crmgate_proposals p ON p.id = e.proposal_id
                     WHERE p.source = ?1 AND e.actor_kind = 'human'
                       AND e.action IN ('approve', 'reject', 'edit') AND NOT
                           EXISTS (SELECT 1 FROM crmgate_events u WHERE u.proposal_id = e.proposal_id
                                   AND u.action = 'undo' AND u.seq > e.seq)
                     ORDER BY e.seq DESC LIMIT ?2)
                   UNION ALL
                   -- A revert of what was applied counts as a rejection, at its latest revert.
                   SELECT * FROM (
                     SELECT e.seq, 1 FROM crmgate_events e
                     JOIN crmgate_proposals p ON p.id = e.proposal_id
                     WHERE e.action = 'revert' AND p.source = ?1 AND p.state = 'reverted'
                       AND NOT EXISTS (SELECT 1 FROM crmgate_events l
                                       WHERE l.proposal_id = e.proposal_id
                                         AND l.action = 'revert' AND l.seq > e.seq)
                     ORDER BY e.seq DESC LIMIT ?2))
                 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(db_err)?;
        stmt.query_map(rusqlite::params![source, n], |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }
}

impl Store {
    /// Ids of proposals in `states` matching the filter, oldest first.
    pub fn proposal_ids(&self, filter: &ListFilter, states: &[State]) -> Result<Vec<i64>> {
        let mut clauses = vec![format!(
            "p.state IN ({})",
            states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        let mut params: Vec<String> = Vec::new();
        filter.narrow(&mut clauses, &mut params);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT p.id FROM crmgate_proposals p WHERE {} ORDER BY p.id",
                clauses.join(" AND ")
            ))
            .map_err(db_err)?;
        stmt.query_map(params_from_iter(params.iter()), |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }
}

/// Where a walk of the undecided proposals, record by record, has got to.
#[derive(Debug, Default)]
pub struct GroupWalk {
    after: Option<(String, String)>,
}

/// The undecided proposals a review walks: `state` narrows to pending or suggested.
const OPEN: &str = "p.state IN ('pending', 'suggested')";

impl Store {
    /// `OPEN` and the filter's own clauses, with their parameters. Written so that SQLite can
    /// use the partial index on undecided proposals by record.
    fn open_clauses(filter: &ListFilter) -> (Vec<String>, Vec<String>) {
        let mut clauses = vec![OPEN.to_string()];
        let mut params = Vec::new();
        filter.narrow(&mut clauses, &mut params);
        (clauses, params)
    }

    /// How many undecided proposals match `filter`.
    pub fn open_count(&self, filter: &ListFilter) -> Result<i64> {
        let (clauses, params) = Self::open_clauses(filter);
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM crmgate_proposals p WHERE {}",
                    clauses.join(" AND ")
                ),
                params_from_iter(params.iter()),
                |r| r.get(0),
            )
            .map_err(db_err)
    }

    /// The next record with undecided proposals matching `filter` after the one `walk` is at,
    /// and all of those proposals; `walk` moves on to it. Empty when there is none.
    pub fn next_open_group(
        &self,
        filter: &ListFilter,
        walk: &mut GroupWalk,
    ) -> Result<Vec<Proposal>> {
        let group = self.open_group_after(
            filter,
            walk.after.as_ref().map(|(o, r)| (o.as_str(), r.as_str())),
        )?;
        if let Some(first) = group.first() {
            walk.after = Some((first.object.clone(), first.record.clone()));
        }
        Ok(group)
    }

    /// The next record after `after` (object, record) with undecided proposals matching
    /// `filter`, and all of those proposals, oldest first. Records come in (object, record)
    /// order, each found through the index, so the first screen of a review costs the same on
    /// a queue of ten or of a million.
    fn open_group_after(
        &self,
        filter: &ListFilter,
        after: Option<(&str, &str)>,
    ) -> Result<Vec<Proposal>> {
        let (mut clauses, mut params) = Self::open_clauses(filter);
        if let Some((object, record)) = after {
            params.push(object.to_string());
            params.push(record.to_string());
            clauses.push(format!(
                "(p.object, p.record) > (?{}, ?{})",
                params.len() - 1,
                params.len()
            ));
        }
        let next: Option<(String, String)> = self
            .conn
            .query_row(
                &format!(
                    "SELECT p.object, p.record FROM crmgate_proposals p WHERE {}
                     ORDER BY p.object, p.record LIMIT 1",
                    clauses.join(" AND ")
                ),
                params_from_iter(params.iter()),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        let Some((object, record)) = next else {
            return Ok(Vec::new());
        };
        let (mut clauses, mut params) = Self::open_clauses(filter);
        params.push(object);
        params.push(record);
        clauses.push(format!(
            "p.object = ?{} AND p.record = ?{}",
            params.len() - 1,
            params.len()
        ));
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PROPOSAL_COLUMNS} FROM crmgate_proposals p
                 JOIN crmgate_ingests i ON i.id = p.ingest_id WHERE {} ORDER BY p.id",
                clauses.join(" AND ")
            ))
            .map_err(db_err)?;
        stmt.query_map(params_from_iter(params.iter()), proposal_from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }
}

impl Writer<'_> {
    /// Replaces the value a proposal will apply with a reviewer's edit, keeping the proposer's
    /// value. False if it was already edited.
    pub fn set_edited_value(&self, id: i64, value: &Value) -> Result<bool> {
        let n = self
            .tx
            .execute(
                "UPDATE crmgate_proposals SET proposed_value = value, value = ?2, edited = 1
                 WHERE id = ?1 AND edited = 0",
                rusqlite::params![id, value],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// Puts back the proposer's value after an edit is undone.
    pub fn clear_edited_value(&self, id: i64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE crmgate_proposals SET value = proposed_value, proposed_value = NULL,
                 edited = 0 WHERE id = ?1 AND edited = 1",
                [id],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// The latest human decision on a proposal that has not been undone: (action, actor,
    /// the state it moved the proposal from).
    pub fn last_human_decision(&self, id: i64) -> Result<Option<(String, String, String)>> {
        let row: Option<(String, String, Option<String>)> = self
            .tx
            .query_row(
                "SELECT action, actor, json_extract(detail, '$.was') FROM crmgate_events
                 WHERE proposal_id = ?1 AND actor_kind = 'human'
                   AND action IN ('approve', 'reject', 'edit', 'undo')
                 ORDER BY seq DESC LIMIT 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db_err)?;
        Ok(row
            .filter(|(action, _, _)| action != "undo")
            .map(|(a, who, was)| (a, who, was.unwrap_or_else(|| "pending".into()))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_column_count_is_the_number_of_proposal_columns() {
        assert_eq!(
            super::PROPOSAL_COLUMNS.split(',').count(),
            super::PROPOSAL_COLUMN_COUNT
        );
    }
}
