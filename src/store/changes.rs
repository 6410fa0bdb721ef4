//! Runs and changes: what apply and revert wrote, with the values before and after.

use rusqlite::OptionalExtension;

use super::{Store, Writer, db_err, ident, value_from};
use crate::error::{Error, Result};
use crate::model::Value;
use crate::schema::Object;

#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub id: i64,
    pub run_id: i64,
    pub proposal_id: Option<i64>,
    pub reverts: Option<i64>,
    pub object: String,
    pub record: String,
    pub field: String,
    pub before: Value,
    pub after: Value,
    pub approved_by: Option<String>,
    pub at: String,
}

const COLUMNS: &str =
    "id, run_id, proposal_id, reverts, object, record, field, before, after, approved_by, at";
const COLUMN_COUNT: usize = 11;

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChangeRow> {
    Ok(ChangeRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        proposal_id: r.get(2)?,
        reverts: r.get(3)?,
        object: r.get(4)?,
        record: r.get(5)?,
        field: r.get(6)?,
        before: value_from(r.get_ref(7)?),
        after: value_from(r.get_ref(8)?),
        approved_by: r.get(9)?,
        at: r.get(10)?,
    })
}

fn change(conn: &rusqlite::Connection, id: i64) -> Result<Option<ChangeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM crmgate_changes WHERE id = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([id], from_row).optional())
    .map_err(db_err)
}

/// A change and the change that reverted it, if one did: what a revert checks first, in one
/// step (a revert of a run reads a million of these).
pub(super) fn change_to_revert(
    conn: &rusqlite::Connection,
    id: i64,
) -> Result<Option<(ChangeRow, Option<i64>)>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS}, (SELECT r.id FROM crmgate_changes r WHERE r.reverts = c.id
                 ORDER BY r.id LIMIT 1)
             FROM crmgate_changes c WHERE c.id = ?1"
        )
    });
    conn.prepare_cached(&SQL)
        .and_then(|mut stmt| {
            stmt.query_row([id], |r| Ok((from_row(r)?, r.get(COLUMN_COUNT)?)))
                .optional()
        })
        .map_err(db_err)
}

/// Calls `f` with every change, in id order.
pub(super) fn for_each(
    conn: &rusqlite::Connection,
    f: &mut dyn FnMut(&ChangeRow) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM crmgate_changes ORDER BY id"
        ))
        .map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    while let Some(r) = rows.next().map_err(db_err)? {
        f(&from_row(r).map_err(db_err)?)?;
    }
    Ok(())
}

fn reverted_by(conn: &rusqlite::Connection, id: i64) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM crmgate_changes WHERE reverts = ?1 ORDER BY id LIMIT 1")
        .and_then(|mut stmt| stmt.query_row([id], |r| r.get(0)).optional())
        .map_err(db_err)
}

/// Whether every change of `run` can be undone as things stand, as far as a few set-wise
/// queries can tell: only field writes (no merge), none undone and then put back (a chain
/// the revert must follow at its turn), every object and field still there, no object whose
/// writes reach other records, and (unless `force`) every record still holding what the run's
/// last change to it that is still in effect left. Changes already undone are skipped at their
/// turn. A large run that passes is reverted in chunks, one transaction each; any other is
/// reverted in one transaction, which names every change that cannot be undone.
pub(super) fn run_revertible_in_chunks(
    conn: &rusqlite::Connection,
    schema: &crate::schema::Schema,
    run: i64,
    force: bool,
) -> Result<bool> {
    let count = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<i64> {
        conn.query_row(sql, params, |r| r.get(0)).map_err(db_err)
    };
    // Undone and put back: a revert of one of the run's changes was itself reverted. Walked
    // from the reverts (those within the run's span of ids), not from the run's million
    // changes. A merge needs no check of its own: it always writes a whole-record change,
    // refused below.
    let put_back = count(
        "SELECT EXISTS (SELECT 1 FROM crmgate_changes r
            CROSS JOIN crmgate_changes c ON c.id = r.reverts
            CROSS JOIN crmgate_changes b ON b.reverts = r.id
            WHERE r.reverts BETWEEN (SELECT min(id) FROM crmgate_changes WHERE run_id = ?1)
                                AND (SELECT max(id) FROM crmgate_changes WHERE run_id = ?1)
              AND c.run_id = ?1)",
        &[&run],
    )?;
    if put_back != 0 {
        return Ok(false);
    }
    let mut stmt = conn
        .prepare("SELECT DISTINCT object, field FROM crmgate_changes WHERE run_id = ?1")
        .map_err(db_err)?;
    let targets: Vec<(String, String)> = stmt
        .query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?;
    for (object, field) in &targets {
        let Some(obj) = schema.object(object) else {
            return Ok(false);
        };
        // Undoing one change may change records other changes of the run name: each must be
        // checked at its turn, which only one transaction can promise.
        if obj.reach.beyond() {
            return Ok(false);
        }
        let Some(column) = obj.column(field) else {
            return Ok(false); // also a merge's whole-record change, field "*"
        };
        if force {
            continue;
        }
        // A record moved on: it is gone, or its field differs (in value, type or bytes)
        // from the `after` of the run's last change to it. Older changes to the same field
        // are checked against the newer ones' `before` as the revert reaches them. A run
        // mostly changes a field of a record once, so one pass over the run's changes asks
        // whether any record differs from a change's `after` at all; only if one does are
        // the changes grouped by record, to compare each record with its last change alone
        // (with `max(id)`, SQLite takes the other columns from the row holding the maximum).
        let (t, pk, f) = (
            ident(&obj.name),
            ident(&obj.pk_column().name),
            ident(&column.name),
        );
        let differs = |changes: &str| -> Result<bool> {
            let found = count(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM ({changes}) c
                     LEFT JOIN {t} t ON t.{pk} = c.record
                     WHERE t.{pk} IS NULL OR typeof(t.{f}) <> typeof(c.after)
                        OR t.{f} IS NOT c.after COLLATE BINARY)"
                ),
                &[&run, object, field],
            )?;
            Ok(found != 0)
        };
        // Only the changes still in effect: one undone already is skipped at its turn.
        const ALL: &str = "SELECT record, after FROM crmgate_changes x
                           WHERE run_id = ?1 AND object = ?2 AND field = ?3
                             AND NOT EXISTS (SELECT 1 FROM crmgate_changes r WHERE r.reverts = x.id)";
        const LAST: &str = "SELECT record, after, max(id) FROM crmgate_changes x
                            WHERE run_id = ?1 AND object = ?2 AND field = ?3
                              AND NOT EXISTS (SELECT 1 FROM crmgate_changes r WHERE r.reverts = x.id)
                            GROUP BY record";
        if differs(ALL)? && differs(LAST)? {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Store {
    pub fn change(&self, id: i64) -> Result<Option<ChangeRow>> {
        change(&self.conn, id)
    }

    /// The change that reverted `id`, if one did.
    pub fn reverted_by(&self, id: i64) -> Result<Option<i64>> {
        reverted_by(&self.conn, id)
    }

    /// Whether every change of `run` can be undone as things stand, a chunk at a time: only
    /// field writes, none undone and put back, no object whose writes reach further, and
    /// (unless `force`) every record holding what the run's changes still in effect left.
    pub fn run_revertible_in_chunks(&self, run: i64, force: bool) -> Result<bool> {
        run_revertible_in_chunks(&self.conn, &self.schema, run, force)
    }

    /// How many changes run `run` made.
    pub fn run_change_count(&self, run: i64) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT count(*) FROM crmgate_changes WHERE run_id = ?1",
                [run],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(db_err)
    }

    /// How many proposals are approved (of `source`, when given): an apply's queue.
    pub fn count_approved(&self, source: Option<&str>) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'
                 AND (?1 IS NULL OR source = ?1)",
                [source],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db_err)
    }
}

impl Writer<'_> {
    /// A change and the change that reverted it, if one did.
    pub fn change_to_revert(&self, id: i64) -> Result<Option<(ChangeRow, Option<i64>)>> {
        change_to_revert(&self.tx, id)
    }

    pub fn begin_run(&self, kind: &str, actor: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO crmgate_runs (kind, at, actor) VALUES (?1, ?2, ?3)",
                rusqlite::params![kind, self.now, actor],
            )
            .map_err(db_err)?;
        Ok(self.tx.last_insert_rowid())
    }

    /// The statements that write and read `field` of `obj`.
    fn field_sql(&self, obj: &Object, field: &str) -> Result<(&str, &str)> {
        let sql = super::live_schema::of(self.sql, obj)?;
        let at = obj
            .columns
            .iter()
            .position(|c| c.name == field)
            .ok_or_else(|| Error::Store(format!("{} has no field {field}", obj.name)))?;
        Ok((&sql.update[at], &sql.select[at]))
    }

    /// Writes `value` into one field of one record. Returns false when there is no such record;
    /// a constraint the write breaks (a foreign key, NOT NULL, CHECK) is an error of the store.
    pub fn write_field(
        &self,
        obj: &Object,
        record: &str,
        field: &str,
        value: &Value,
    ) -> Result<bool> {
        let mut stmt = self
            .prepared(self.field_sql(obj, field)?.0)
            .map_err(db_err)?;
        let n = stmt
            .execute(rusqlite::params![value, record])
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// One field of a record (`field` a column of `obj`, from the live schema), or `None` if
    /// there is no such record.
    pub fn read_field(&self, obj: &Object, record: &str, field: &str) -> Result<Option<Value>> {
        let mut stmt = self
            .prepared(self.field_sql(obj, field)?.1)
            .map_err(db_err)?;
        stmt.query_row([record], |r| r.get_ref(0).map(value_from))
            .optional()
            .map_err(db_err)
    }

    /// Writes one field and returns what the record holds there now, as SQLite stored it
    /// (after the column's affinity and any trigger), or `None` if there is no such record.
    /// It is read back only where it may differ from `value`.
    /// Two statements rather than `UPDATE … RETURNING`: SQLite buffers returned rows in a
    /// temporary table it opens and closes for every statement, which costs more than the
    /// second statement, and `RETURNING` would not see what an AFTER trigger does.
    pub fn write_and_read_back(
        &self,
        obj: &Object,
        record: &str,
        field: &str,
        value: &Value,
    ) -> Result<Option<Value>> {
        if !self.write_field(obj, record, field, value)? {
            return Ok(None);
        }
        // Nothing to read where nothing can have changed the value: a write that reaches
        // nothing it does not name, into a column whose affinity stores the value as given.
        if !obj.reach.beyond() && obj.column(field).is_some_and(|c| c.stores_as_given(value)) {
            return Ok(Some(value.clone()));
        }
        self.read_field(obj, record, field)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add_change(
        &self,
        run: i64,
        proposal: Option<i64>,
        reverts: Option<i64>,
        object: &str,
        record: &str,
        field: &str,
        before: &Value,
        after: &Value,
        approved_by: Option<&str>,
        policy_version: Option<i64>,
    ) -> Result<i64> {
        let mut stmt = self.prepared(
                "INSERT INTO crmgate_changes (run_id, proposal_id, reverts, object, record, field, before,
                 after, approved_by, policy_version, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(db_err)?;
        stmt.execute(rusqlite::params![
            run,
            proposal,
            reverts,
            object,
            record,
            field,
            before,
            after,
            approved_by,
            policy_version,
            self.now
        ])
        .map_err(db_err)?;
        Ok(self.tx.last_insert_rowid())
    }

    /// The next `n` approved proposals (of `source`, and of the ingests `ingests` spans, when
    /// given) after proposal `after`, oldest first, field writes or merges (`merges`): the apply
    /// queue, a chunk at a time.
    pub fn approved_ids_after(
        &self,
        (source, ingests): (Option<&str>, Option<(i64, i64)>),
        merges: bool,
        after: i64,
        n: usize,
    ) -> Result<Vec<i64>> {
        let mut stmt = self
            .prepared(
                "SELECT id FROM crmgate_proposals WHERE id > ?2 AND state = 'approved'
                 AND (?1 IS NULL OR source = ?1) AND (merge_into IS NOT NULL) = ?4
                 AND (?5 IS NULL OR ingest_id BETWEEN ?5 AND ?6)
                 ORDER BY id LIMIT ?3",
            )
            .map_err(db_err)?;
        let (first, last) = ingests.unzip();
        let params = rusqlite::params![source, after, n as i64, merges, first, last];
        stmt.query_map(params, |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    /// The next `n` changes of run `run` before change `before`, newest first: the order a
    /// revert undoes them in, a chunk at a time.
    pub fn run_change_ids_before(&self, run: i64, before: i64, n: usize) -> Result<Vec<i64>> {
        let mut stmt = self
            .prepared(
                "SELECT id FROM crmgate_changes WHERE run_id = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(db_err)?;
        stmt.query_map(rusqlite::params![run, before, n as i64], |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    /// The next `n` proposals (by id, after `after`) that changes of run `run` were made for,
    /// each with those changes' ids; `None` stands for the changes made for no proposal (an
    /// import's) and comes first. What a revert of the run checks its actor may undo.
    pub fn run_proposals_after(
        &self,
        run: i64,
        after: Option<i64>,
        n: usize,
    ) -> Result<Vec<(Option<i64>, Vec<i64>)>> {
        let mut stmt = self
            .prepared(
                "SELECT proposal_id, group_concat(id) FROM crmgate_changes
                 WHERE run_id = ?1 AND (?2 IS NULL OR proposal_id > ?2)
                 GROUP BY proposal_id ORDER BY proposal_id LIMIT ?3",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(rusqlite::params![run, after, n as i64], |r| {
                Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (proposal, ids) = row.map_err(db_err)?;
            let mut ids: Vec<i64> = ids.split(',').filter_map(|i| i.parse().ok()).collect();
            ids.sort_unstable();
            out.push((proposal, ids));
        }
        Ok(out)
    }

    /// The sources of the proposals that changes of run `run` were made for.
    pub fn run_sources(&self, run: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .prepared(
                "SELECT DISTINCT p.source FROM crmgate_changes c
                 JOIN crmgate_proposals p ON p.id = c.proposal_id
                 WHERE c.run_id = ?1 ORDER BY p.source",
            )
            .map_err(db_err)?;
        stmt.query_map([run], |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    /// See [`Store::run_revertible_in_chunks`]: asked in the transaction that begins the revert.
    pub fn run_revertible_in_chunks(&self, run: i64, force: bool) -> Result<bool> {
        run_revertible_in_chunks(&self.tx, self.schema, run, force)
    }
}

impl Writer<'_> {
    /// Starts a savepoint: everything after it can be undone alone with [`Writer::rollback_to`].
    pub fn savepoint(&self, name: &str) -> Result<()> {
        self.tx
            .execute_batch(&format!("SAVEPOINT {}", ident(name)))
            .map_err(db_err)
    }

    pub fn release(&self, name: &str) -> Result<()> {
        self.tx
            .execute_batch(&format!("RELEASE {}", ident(name)))
            .map_err(db_err)
    }

    pub fn rollback_to(&self, name: &str) -> Result<()> {
        self.tx
            .execute_batch(&format!("ROLLBACK TO {0}; RELEASE {0}", ident(name)))
            .map_err(db_err)?;
        // Events appended since the savepoint are gone with it: forget the cached chain head,
        // or the next event would chain to one that no longer exists.
        *self.head.borrow_mut() = None;
        Ok(())
    }
}

impl Writer<'_> {
    /// Primary keys of the rows of `table` whose `column` holds `value`: the rows a merge
    /// re-points.
    pub fn referencing_ids(
        &self,
        table: &Object,
        column: &str,
        value: &Value,
    ) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT CAST({} AS TEXT) FROM {} WHERE {} = ?1 ORDER BY 1",
            ident(&table.pk_column().name),
            ident(&table.name),
            ident(column)
        );
        let mut stmt = self.prepared(&sql).map_err(db_err)?;
        stmt.query_map([value], |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    pub fn delete_record(&self, obj: &Object, record: &str) -> Result<bool> {
        let sql = format!(
            "DELETE FROM {} WHERE {} = ?1",
            ident(&obj.name),
            ident(&obj.pk_column().name)
        );
        let n = self.tx.execute(&sql, [record]).map_err(db_err)?;
        Ok(n == 1)
    }

    /// Inserts a whole record, every column given in schema order, at `rowid` when given and
    /// free (a merge's revert re-creates the duplicate where it was: a table's rows are stored,
    /// and dumped, in rowid order); elsewhere when not.
    pub fn insert_record(&self, obj: &Object, values: &[Value], rowid: Option<i64>) -> Result<()> {
        let all: Vec<usize> = (0..obj.columns.len()).collect();
        let (Some(rowid), Some(name)) = (rowid, rowid_name(obj)) else {
            return self.insert_columns(obj, &all, values);
        };
        let table = ident(&obj.name);
        let taken = format!("SELECT count(*) FROM {table} WHERE {name} = ?1");
        let n: i64 = self
            .prepared(&taken)
            .and_then(|mut s| s.query_row([rowid], |r| r.get(0)))
            .map_err(db_err)?;
        if n > 0 {
            return self.insert_columns(obj, &all, values);
        }
        let names: Vec<String> = obj.columns.iter().map(|c| ident(&c.name)).collect();
        let marks: Vec<String> = (2..=names.len() + 1).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({name}, {}) VALUES (?1, {})",
            names.join(", "),
            marks.join(", ")
        );
        let at = Value::Integer(rowid);
        let params = std::iter::once(&at).chain(values);
        self.prepared(&sql)
            .and_then(|mut s| s.execute(rusqlite::params_from_iter(params)))
            .map_err(db_err)?;
        Ok(())
    }

    /// The record's rowid: `None` when there is no such record, or the table has no rowid to
    /// name (`WITHOUT ROWID`, or columns that take each of its names).
    pub fn record_rowid(&self, obj: &Object, record: &str) -> Result<Option<i64>> {
        let Some(name) = rowid_name(obj) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {name} FROM {} WHERE {} = ?1",
            ident(&obj.name),
            ident(&obj.pk_column().name)
        );
        let mut stmt = match self.prepared(&sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.starts_with("no such column") => {
                return Ok(None);
            }
            Err(e) => return Err(db_err(e)),
        };
        stmt.query_row([record], |r| r.get(0))
            .optional()
            .map_err(db_err)
    }
}

/// The name by which SQL reaches a table's rowid: the first of its three that no column takes.
fn rowid_name(obj: &Object) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| obj.columns.iter().all(|c| !c.name.eq_ignore_ascii_case(n)))
}

/// A change as [`ReadLog::changes_to`] reads it: id, field, before, after.
pub type Logged = (i64, String, Value, Value);

/// Which changes to a record [`ReadLog::changes_to`] reads.
#[derive(Debug, Clone, Copy)]
pub enum LogScope<'a> {
    /// Those of one run.
    Run(i64),
    /// Those made at or after a time (RFC 3339, as the log writes it).
    Since(&'a str),
}

/// What a merge is judged against, read from the logs: the approval's pin, and the changes
/// the log holds to each of its records.
pub trait ReadLog {
    /// The fingerprint the latest approval of `proposal` pinned, unless it was undone since.
    fn pinned_fingerprint(&self, proposal: i64) -> Result<Option<String>>;
    /// `(change, field, before, after)` of the changes to `object/record` in `scope`, newest
    /// first.
    fn changes_to(&self, object: &str, record: &str, scope: LogScope<'_>) -> Result<Vec<Logged>>;
}

fn pinned_fingerprint(conn: &rusqlite::Connection, proposal: i64) -> Result<Option<String>> {
    conn.prepare_cached(
        "SELECT CASE WHEN action = 'approve' THEN json_extract(detail, '$.pinned') END
         FROM crmgate_events WHERE proposal_id = ?1 AND action IN ('approve', 'undo')
         ORDER BY seq DESC LIMIT 1",
    )
    .and_then(|mut stmt| stmt.query_row([proposal], |r| r.get(0)).optional())
    .map(Option::flatten)
    .map_err(db_err)
}

fn changes_to(
    conn: &rusqlite::Connection,
    object: &str,
    record: &str,
    scope: LogScope<'_>,
) -> Result<Vec<Logged>> {
    let (run, since) = match scope {
        LogScope::Run(run) => (Some(run), None),
        LogScope::Since(at) => (None, Some(at)),
    };
    conn.prepare_cached(
        "SELECT id, field, before, after FROM crmgate_changes WHERE object = ?1 AND record = ?2
           AND (?3 IS NULL OR run_id = ?3) AND (?4 IS NULL OR at >= ?4)
         ORDER BY id DESC",
    )
    .and_then(|mut stmt| {
        stmt.query_map(rusqlite::params![object, record, run, since], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                value_from(r.get_ref(2)?),
                value_from(r.get_ref(3)?),
            ))
        })?
        .collect()
    })
    .map_err(db_err)
}

impl ReadLog for Store {
    fn pinned_fingerprint(&self, proposal: i64) -> Result<Option<String>> {
        pinned_fingerprint(&self.conn, proposal)
    }
    fn changes_to(&self, object: &str, record: &str, scope: LogScope<'_>) -> Result<Vec<Logged>> {
        changes_to(&self.conn, object, record, scope)
    }
}

impl ReadLog for Writer<'_> {
    fn pinned_fingerprint(&self, proposal: i64) -> Result<Option<String>> {
        pinned_fingerprint(&self.tx, proposal)
    }
    fn changes_to(&self, object: &str, record: &str, scope: LogScope<'_>) -> Result<Vec<Logged>> {
        changes_to(&self.tx, object, record, scope)
    }
}
