//! A second, read-only connection to the store, opened while a write transaction holds the
//! write lock. Nobody else can commit until that transaction ends, so the snapshot sees the
//! store exactly as the writer found it; the writer's own changes, which it does not see, are to
//! crmgate's queue, never to CRM records. That lets the reads a decision needs (records, parent
//! keys, track records) run on a second core while the writer queues on the first. Apply and
//! revert never read through one: they write records, and read each at its turn in their own
//! transaction.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::records::{self, ColumnPlan, PlanRow, ReadRecords};
use super::{Writer, db_err};
use crate::error::Result;
use crate::model::Value;
use crate::schema::{Column, Object, Schema};

/// The snapshot's page cache, in KiB: enough for the upper levels of the indexes it descends
/// (records come sorted, so the leaves it needs are mostly the ones it just read).
const SNAPSHOT_CACHE_KIB: i64 = 4 * 1024;

pub struct Snapshot {
    conn: Connection,
    schema: Schema,
    sql: super::live_schema::Sql,
}

impl Writer<'_> {
    /// Opens a [`Snapshot`] of the store as this transaction found it. Its records are the
    /// writer's only while the writer has changed none: propose, which writes only the queue.
    pub fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::open(self.path, self.schema.clone(), self.sql.clone())
    }
}

impl Snapshot {
    fn open(path: &Path, schema: Schema, sql: super::live_schema::Sql) -> Result<Snapshot> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db_err)?;
        super::configure(&conn)?;
        conn.pragma_update(None, "cache_size", -SNAPSHOT_CACHE_KIB)
            .map_err(db_err)?;
        let mut snapshot = Snapshot { conn, schema, sql };
        snapshot.renew()?;
        Ok(snapshot)
    }

    /// Begins a new read transaction, which sees what was committed since the last one. A read
    /// transaction starts at its first read and keeps its view until it ends.
    fn renew(&mut self) -> Result<()> {
        self.release()?;
        self.conn.execute_batch("BEGIN").map_err(db_err)?;
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(db_err)
    }

    /// Ends the read transaction. A reader that keeps one open holds back the checkpoint of
    /// everything committed after it began, and the write-ahead log grows until it ends.
    fn release(&mut self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("COMMIT").map_err(db_err)?;
        }
        Ok(())
    }

    /// The record as the plan reads it, or `None` if there is no such record.
    pub fn read_columns(&self, plan: &ColumnPlan, record: &str) -> Result<Option<PlanRow>> {
        records::read_columns(&self.conn, plan, record)
    }

    /// See [`Writer::missing_parent`].
    pub fn missing_parent(&self, column: &Column, value: &Value) -> Result<Option<&Object>> {
        records::missing_parent(&self.conn, &self.schema, column, value)
    }

    /// How many of `source`'s proposals ingested since `since` the policy let through on its own.
    pub fn auto_decisions_since(&self, source: &str, since: &str) -> Result<u64> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM crmgate_proposals p JOIN crmgate_ingests i ON i.id = p.ingest_id
                 WHERE p.source = ?1 AND p.decision = 'auto' AND i.at >= ?2",
            )
            .map_err(db_err)?;
        stmt.query_row(rusqlite::params![source, since], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(db_err)
    }

    /// Human approvals (edits count as approvals of a corrected value) and rejections of
    /// `source`'s proposals of this kind and field: its track record.
    pub fn track_record(
        &self,
        source: &str,
        kind: &str,
        field: Option<&str>,
    ) -> Result<(u64, u64)> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT coalesce(sum(e.action IN ('approve', 'edit')), 0), coalesce(sum(e.action = 'reject'), 0)
                        -- A proposal applied and then reverted counts as a rejection.
                        + (SELECT count(*) FROM crmgate_proposals r WHERE r.source = ?1
                           AND r.kind = ?2 AND r.field IS ?3 AND r.state = 'reverted')
                 FROM crmgate_events e JOIN crmgate_proposals p ON p.id = e.proposal_id
                 WHERE p.source = ?1 AND p.kind = ?2 AND p.field IS ?3
                   AND e.actor_kind = 'human' AND e.action IN ('approve', 'reject', 'edit') AND NOT
                       EXISTS (SELECT 1 FROM crmgate_events u WHERE u.proposal_id = e.proposal_id
                               AND u.action = 'undo' AND u.seq > e.seq)",
            )
            .map_err(db_err)?;
        stmt.query_row(rusqlite::params![source, kind, field], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .map_err(db_err)
    }
}

/// How common values are in a table's columns, for merge evidence: see `store::frequency`.
impl Snapshot {
    /// How many records `obj` holds.
    pub fn row_count(&self, obj: &Object) -> Result<u64> {
        super::frequency::rows(&self.conn, obj)
    }

    /// Column `col`'s values in at most `limit` records of `obj`, which holds `rows` (see
    /// [`Snapshot::row_count`]), and whether that is all of them: an even sample by rowid of a
    /// larger table (see `store::frequency`).
    pub fn column_sample(
        &self,
        obj: &Object,
        col: usize,
        (limit, rows): (usize, u64),
    ) -> Result<(Vec<Value>, bool)> {
        super::frequency::column_sample(&self.conn, obj, col, (limit, rows))
    }
}

impl ReadRecords for Snapshot {
    fn schema(&self) -> &Schema {
        &self.schema
    }
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        records::record_row(&self.conn, &self.sql, obj, record)
    }
    fn missing_parent(&self, column: &Column, value: &Value) -> Result<Option<&Object>> {
        records::missing_parent(&self.conn, &self.schema, column, value)
    }
}
