//! How often values occur in a CRM table's column: what a merge's evidence needs to know of how
//! common a shared value is (see `similarity::frequency`). Every answer is read from the table
//! at the time it is asked, in the reader's transaction; nothing here keeps a copy.

use rusqlite::Connection;

use super::{db_err, ident, value_from};
use crate::error::Result;
use crate::model::Value;
use crate::schema::Object;

/// The table's row count.
pub(super) fn rows(conn: &Connection, obj: &Object) -> Result<u64> {
    let sql = format!("SELECT count(*) FROM {}", ident(&obj.name));
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    stmt.query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(db_err)
}

/// How many records hold `value` in column `col`.
pub(super) fn count(conn: &Connection, obj: &Object, col: usize, value: &Value) -> Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE {} = ?1",
        ident(&obj.name),
        ident(&obj.columns[col].name)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    stmt.query_row([value], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(db_err)
}

/// Whether an index (not a partial one) leads with column `col`: then counting one value reads
/// only the index entries that hold it.
pub(super) fn indexed(conn: &Connection, obj: &Object, col: usize) -> Result<bool> {
    let name = &obj.columns[col].name;
    let mut stmt = conn
        .prepare_cached(
            "SELECT count(*) FROM pragma_index_list(?1) l
             JOIN pragma_index_info(l.name) i ON i.seqno = 0
             WHERE l.partial = 0 AND i.name = ?2 COLLATE NOCASE",
        )
        .map_err(db_err)?;
    stmt.query_row(rusqlite::params![obj.name, name], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
        .map_err(db_err)
}

/// The values of column `col` that more than two records hold, the most common first, at most
/// `limit` of them: one pass over the column, sorted by SQLite in its own temporary storage.
pub(super) fn common(
    conn: &Connection,
    obj: &Object,
    col: usize,
    limit: usize,
) -> Result<Vec<(Value, u64)>> {
    let (t, c) = (ident(&obj.name), ident(&obj.columns[col].name));
    let sql = format!(
        "SELECT {c}, count(*) FROM {t} WHERE {c} IS NOT NULL GROUP BY {c}
         HAVING count(*) > 2 ORDER BY count(*) DESC LIMIT ?1"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok((value_from(r.get_ref(0)?), r.get::<_, i64>(1)? as u64))
        })
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

/// Up to `limit` non-empty values of column `col`, in the table's order: a sample to confirm
/// what the column holds.
pub(super) fn sample(
    conn: &Connection,
    obj: &Object,
    col: usize,
    limit: usize,
) -> Result<Vec<Value>> {
    let (t, c) = (ident(&obj.name), ident(&obj.columns[col].name));
    let sql = format!("SELECT {c} FROM {t} WHERE {c} IS NOT NULL AND {c} <> '' LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map([limit as i64], |r| Ok(value_from(r.get_ref(0)?)))
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}
