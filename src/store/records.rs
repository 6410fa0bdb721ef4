//! CRM records: lookups for validation, upserts for import, streaming reads for export.
//! Table and column names reach SQL only from the live schema, quoted.

use rusqlite::{Connection, OptionalExtension};

use super::live_schema::{self, Sql};
use super::{Store, Writer, db_err, ident, value_from};
use crate::error::Result;
use crate::model::Value;
use crate::schema::{Column, Object, Schema};

/// Reading records, inside a write transaction or outside one: what a check that may run in
/// either (is this proposal stale?) needs.
pub trait ReadRecords {
    fn schema(&self) -> &crate::schema::Schema;
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>>;
    /// For a value of a foreign-key column, the parent table when the value is not one of its
    /// keys.
    fn missing_parent(&self, column: &Column, value: &Value) -> Result<Option<&Object>>;
}

impl ReadRecords for Store {
    fn schema(&self) -> &crate::schema::Schema {
        Store::schema(self)
    }
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        record_row(&self.conn, &self.sql, obj, record)
    }
    fn missing_parent(&self, column: &Column, value: &Value) -> Result<Option<&Object>> {
        missing_parent(&self.conn, Store::schema(self), column, value)
    }
}

impl ReadRecords for Writer<'_> {
    fn schema(&self) -> &crate::schema::Schema {
        Writer::schema(self)
    }
    fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        record_row(&self.tx, self.sql, obj, record)
    }
    fn missing_parent(&self, column: &Column, value: &Value) -> Result<Option<&Object>> {
        missing_parent(&self.tx, self.schema, column, value)
    }
}

/// See [`Writer::column_plan`].
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub cols: Vec<usize>,
    width: usize,
    /// The parents read in the same statement, through the foreign keys that lead to them.
    pub parents: Vec<ParentPlan>,
    sql: String,
}

/// A parent record read along with its child, through the child's foreign-key column `fk`: the
/// columns `cols` of `object` (named in `names`), read by a join on the parent's primary key.
#[derive(Debug, Clone)]
pub struct ParentPlan {
    pub fk: usize,
    pub object: String,
    pub cols: Vec<usize>,
    pub names: Vec<String>,
}

/// A record read by a [`ColumnPlan`]: its values at the plan's columns (the others `Null`), and
/// for each of the plan's parents, that parent's values at its columns, or `None` when the
/// record has no such parent.
pub struct PlanRow {
    pub values: Vec<Value>,
    pub parents: Vec<Option<Vec<Value>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Inserted,
    Updated,
    Unchanged,
}

impl ColumnPlan {
    /// A way to read some columns of one record, built once and used for every row of a run:
    /// a decision needs a few columns, and building SQL or copying whole records a million times
    /// would cost more than the lookups.
    pub fn new(obj: &Object, cols: &[usize]) -> ColumnPlan {
        ColumnPlan::with_parents(obj, cols, &[])
    }

    /// As [`ColumnPlan::new`], and the parents `(fk, parent, parent columns)` read in the same
    /// statement, each by a left join on its primary key: a decision that reads a contact's
    /// company costs one statement, not two. Each `fk` must be among `cols`.
    pub fn with_parents(
        obj: &Object,
        cols: &[usize],
        parents: &[(usize, &Object, Vec<usize>)],
    ) -> ColumnPlan {
        let mut select: Vec<String> = cols
            .iter()
            .map(|&c| format!("r.{}", ident(&obj.columns[c].name)))
            .collect();
        let mut from = format!("{} AS r", ident(&obj.name));
        for (i, (fk, parent, pcols)) in parents.iter().enumerate() {
            from.push_str(&format!(
                " LEFT JOIN {} AS p{i} ON p{i}.{} = r.{}",
                ident(&parent.name),
                ident(&parent.pk_column().name),
                ident(&obj.columns[*fk].name)
            ));
            // The parent's key first: whether there is a parent at all.
            for c in std::iter::once(parent.pk).chain(pcols.iter().copied()) {
                select.push(format!("p{i}.{}", ident(&parent.columns[c].name)));
            }
        }
        ColumnPlan {
            cols: cols.to_vec(),
            width: obj.columns.len(),
            parents: parents
                .iter()
                .map(|(fk, parent, pcols)| ParentPlan {
                    fk: *fk,
                    object: parent.name.clone(),
                    cols: pcols.clone(),
                    names: pcols
                        .iter()
                        .map(|&c| parent.columns[c].name.clone())
                        .collect(),
                })
                .collect(),
            sql: format!(
                "SELECT {} FROM {from} WHERE r.{} = ?1",
                select.join(", "),
                ident(&obj.pk_column().name)
            ),
        }
    }
}

/// The record as the plan reads it, or `None` if there is no such record.
pub(super) fn read_columns(
    conn: &Connection,
    plan: &ColumnPlan,
    record: &str,
) -> Result<Option<PlanRow>> {
    let mut stmt = conn.prepare_cached(&plan.sql).map_err(db_err)?;
    stmt.query_row([record], |r| {
        let mut values = vec![Value::Null; plan.width];
        for (i, &c) in plan.cols.iter().enumerate() {
            values[c] = value_from(r.get_ref(i)?);
        }
        let mut at = plan.cols.len();
        let mut parents = Vec::with_capacity(plan.parents.len());
        for p in &plan.parents {
            let found = r.get_ref(at)? != rusqlite::types::ValueRef::Null;
            let row = (at + 1..at + 1 + p.cols.len())
                .map(|i| r.get_ref(i).map(value_from))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            parents.push(found.then_some(row));
            at += 1 + p.cols.len();
        }
        Ok(PlanRow { values, parents })
    })
    .optional()
    .map_err(db_err)
}

/// For a value of a foreign-key column, the parent table when the value is not one of its keys.
pub(super) fn missing_parent<'a>(
    conn: &Connection,
    schema: &'a Schema,
    column: &Column,
    value: &Value,
) -> Result<Option<&'a Object>> {
    let Some(fk) = &column.foreign_key else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let Some(parent) = schema.object(&fk.table) else {
        return Ok(None);
    };
    let Some(parent_col) = parent.column(&fk.column) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} = ?1 LIMIT 1",
        ident(&parent.name),
        ident(&parent_col.name)
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let found = stmt
        .query_row([value], |_| Ok(()))
        .optional()
        .map_err(db_err)?;
    Ok(found.is_none().then_some(parent))
}

/// The whole record, column by column in schema order, or `None` if there is no such record.
pub(super) fn record_row(
    conn: &Connection,
    sql: &Sql,
    obj: &Object,
    record: &str,
) -> Result<Option<Vec<Value>>> {
    let mut stmt = conn
        .prepare_cached(&live_schema::of(sql, obj)?.row)
        .map_err(db_err)?;
    stmt.query_row([record], |r| {
        (0..obj.columns.len())
            .map(|i| r.get_ref(i).map(value_from))
            .collect::<rusqlite::Result<Vec<Value>>>()
    })
    .optional()
    .map_err(db_err)
}

impl Writer<'_> {
    pub fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        record_row(&self.tx, self.sql, obj, record)
    }

    /// For a value of a foreign-key column, the parent table when the value is not one of its
    /// keys: the check behind "company_id "co-9" does not exist in companies".
    pub fn missing_parent(&self, column: &Column, value: &Value) -> Result<Option<&Object>> {
        missing_parent(&self.tx, self.schema, column, value)
    }

    /// Inserts the record, or updates the given columns of the existing one with the same id.
    /// `cols` index `obj.columns` and must include the primary key.
    pub fn upsert(
        &mut self,
        obj: &Object,
        cols: &[usize],
        values: &[Value],
    ) -> Result<UpsertOutcome> {
        let pk_pos = cols
            .iter()
            .position(|&c| c == obj.pk)
            .expect("upsert needs the primary key");
        let id = values[pk_pos].display();
        match record_row(&self.tx, self.sql, obj, &id)? {
            None => {
                self.insert_columns(obj, cols, values)?;
                Ok(UpsertOutcome::Inserted)
            }
            Some(current)
                if cols
                    .iter()
                    .zip(values)
                    .all(|(&c, v)| same_value(&current[c], v)) =>
            {
                Ok(UpsertOutcome::Unchanged)
            }
            Some(_) => {
                self.update_columns(obj, cols, pk_pos, values)?;
                Ok(UpsertOutcome::Updated)
            }
        }
    }

    /// Inserts a record of the given columns (`cols` index `obj.columns`).
    pub(super) fn insert_columns(
        &self,
        obj: &Object,
        cols: &[usize],
        values: &[Value],
    ) -> Result<()> {
        let names: Vec<String> = cols.iter().map(|&c| ident(&obj.columns[c].name)).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            ident(&obj.name),
            names.join(", "),
            marks.join(", ")
        );
        let mut stmt = self.prepared(&sql).map_err(db_err)?;
        stmt.execute(rusqlite::params_from_iter(values.iter()))
            .map_err(db_err)?;
        Ok(())
    }

    /// Updates the given columns of the record whose primary key is `values[pk_pos]`.
    fn update_columns(
        &self,
        obj: &Object,
        cols: &[usize],
        pk_pos: usize,
        values: &[Value],
    ) -> Result<()> {
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != obj.pk)
            .map(|(i, &c)| format!("{} = ?{}", ident(&obj.columns[c].name), i + 1))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ?{}",
            ident(&obj.name),
            sets.join(", "),
            ident(&obj.pk_column().name),
            pk_pos + 1
        );
        let mut stmt = self.prepared(&sql).map_err(db_err)?;
        stmt.execute(rusqlite::params_from_iter(values.iter()))
            .map_err(db_err)?;
        Ok(())
    }
}

/// Equality as SQLite stores it: an integer 5 and a real 5.0 are different values.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

impl Store {
    pub fn record_row(&self, obj: &Object, record: &str) -> Result<Option<Vec<Value>>> {
        record_row(&self.conn, &self.sql, obj, record)
    }

    /// How many rows of `table` hold `value` in `column` (a column from the live schema): the
    /// rows a merge of `value` would re-point.
    pub fn count_referencing(&self, table: &Object, column: &Column, value: &str) -> Result<i64> {
        self.conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {} WHERE {} = ?1",
                    ident(&table.name),
                    ident(&column.name)
                ),
                [value],
                |r| r.get(0),
            )
            .map_err(db_err)
    }

    /// Streams every record of `obj` in primary-key order to `f`.
    pub fn for_each_record(
        &self,
        obj: &Object,
        mut f: impl FnMut(&[Value]) -> Result<()>,
    ) -> Result<u64> {
        let cols: Vec<String> = obj.columns.iter().map(|c| ident(&c.name)).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            ident(&obj.name),
            ident(&obj.pk_column().name)
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        let mut n = 0;
        let mut buf = Vec::with_capacity(obj.columns.len());
        while let Some(r) = rows.next().map_err(db_err)? {
            buf.clear();
            for i in 0..obj.columns.len() {
                buf.push(value_from(r.get_ref(i).map_err(db_err)?));
            }
            f(&buf)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The store is the one place that opens SQLite, so the check of what the schema says about
/// SQLite's storage runs here.
#[cfg(test)]
mod stores_as_given {
    use crate::model::Value;
    use crate::schema::{Affinity, Column};

    /// Every kind of value in every affinity, as SQLite itself stores them: wherever
    /// `stores_as_given` says so, the value reads back identical (type, value and bits).
    #[test]
    fn a_value_said_to_be_stored_as_given_reads_back_identical() {
        let decls = [
            "INTEGER",
            "TEXT",
            "BLOB",
            "REAL",
            "NUMERIC",
            "",
            "VARCHAR(40)",
            "DOUBLE",
        ];
        let values = [
            Value::Null,
            Value::Integer(7),
            Value::Integer(i64::MIN),
            Value::Real(2.0),
            Value::Real(2.5),
            Value::Real(-0.0),
            Value::Real(f64::NAN),
            Value::Real(f64::INFINITY),
            Value::Real(1e300),
            Value::Text("12".into()),
            Value::Text("2.0".into()),
            Value::Text(" 3".into()),
            Value::Text("abc".into()),
            Value::Text(String::new()),
            Value::Blob(vec![0, 159, 146]),
        ];
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut said = 0;
        for (t, decl) in decls.iter().enumerate() {
            for not_null in [false, true] {
                let table = format!("t{t}_{not_null}");
                let constraint = if not_null {
                    "NOT NULL ON CONFLICT REPLACE DEFAULT 'd'"
                } else {
                    ""
                };
                conn.execute_batch(&format!(
                    "CREATE TABLE {table} (id INTEGER PRIMARY KEY, v {decl} {constraint});
                     INSERT INTO {table} (id, v) VALUES (1, 'x')"
                ))
                .unwrap();
                let column = Column {
                    name: "v".into(),
                    decl_type: decl.to_string(),
                    affinity: Affinity::from_decl(decl),
                    not_null,
                    has_default: not_null,
                    primary_key: false,
                    foreign_key: None,
                };
                for v in &values {
                    conn.execute(&format!("UPDATE {table} SET v = ?1 WHERE id = 1"), [v])
                        .unwrap();
                    let back: Value = conn
                        .query_row(&format!("SELECT v FROM {table} WHERE id = 1"), [], |r| {
                            r.get_ref(0).map(crate::store::value_from)
                        })
                        .unwrap();
                    if column.stores_as_given(v) {
                        said += 1;
                        assert!(
                            crate::store::same(&back, v),
                            "{decl} (not null: {not_null}): wrote {v:?}, read back {back:?}"
                        );
                    }
                }
            }
        }
        assert!(
            said > 40,
            "only {said} cases were said to be stored as given"
        );
    }
}
