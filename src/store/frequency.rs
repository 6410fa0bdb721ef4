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

/// Column `col`'s values (empty ones included) in at most `limit` records of the table's `rows`
/// (its row count, see [`rows`]), and whether that is every record. A larger table is sampled by rowid at an even stride from its lowest to its
/// highest, one indexed lookup per sampled record, so the cost does not grow with the table and
/// the same store gives the same sample; a table without rowids gives its first `limit` records
/// in key order.
pub(super) fn column_sample(
    conn: &Connection,
    obj: &Object,
    col: usize,
    (limit, rows): (usize, u64),
) -> Result<(Vec<Value>, bool)> {
    let (t, c) = (ident(&obj.name), ident(&obj.columns[col].name));
    if rows <= limit as u64 || !has_rowid(conn, obj)? {
        let values = first_column(conn, &format!("SELECT {c} FROM {t} LIMIT ?1"), limit)?;
        let whole = values.len() as u64 == rows;
        return Ok((values, whole));
    }
    let sql = format!(
        "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?1),
              span(lo, n) AS (SELECT min(rowid), max(rowid) - min(rowid) + 1 FROM {t})
         SELECT t.{c} FROM k, span JOIN {t} AS t ON t.rowid = span.lo + (k.i * span.n) / ?1"
    );
    Ok((first_column(conn, &sql, limit)?, false))
}

/// The first column of every row `sql` (one parameter: `limit`) returns.
fn first_column(conn: &Connection, sql: &str, limit: usize) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    stmt.query_map([limit as i64], |r| Ok(value_from(r.get_ref(0)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)
}

/// Whether `obj` is a rowid table (not declared `WITHOUT ROWID`).
fn has_rowid(conn: &Connection, obj: &Object) -> Result<bool> {
    let sql = format!("SELECT rowid FROM {} LIMIT 0", ident(&obj.name));
    Ok(conn.prepare(&sql).is_ok())
}
