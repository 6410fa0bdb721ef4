//! Reading the CRM objects from the live schema: tables, columns, foreign keys, and what a
//! write to each may reach besides what it names (foreign-key actions, user triggers). Also
//! builds, once per object, the SQL that reads a record and reads or writes one of its fields:
//! apply and revert run these once per change.

use std::collections::{BTreeSet, HashMap};

use rusqlite::Connection;

use super::{db_err, ident};
use crate::error::Result;
use crate::schema::{Affinity, Column, ForeignKey, Object, Reach, Schema};

/// The statements of one object, by primary key: read the whole record; read or write one
/// field (by column index).
#[derive(Clone)]
pub(super) struct ObjectSql {
    pub row: String,
    pub select: Vec<String>,
    pub update: Vec<String>,
}

/// Every object's statements, by object name.
pub(super) type Sql = HashMap<String, ObjectSql>;

/// `obj`'s statements.
pub(super) fn of<'a>(sql: &'a Sql, obj: &Object) -> Result<&'a ObjectSql> {
    sql.get(&obj.name).ok_or_else(|| {
        crate::error::Error::Store(format!("{} is not an object of this store", obj.name))
    })
}

/// The schema of the CRM objects and the statements that read and write their records.
pub(super) fn load(conn: &Connection) -> Result<(Schema, Sql)> {
    let mut schema = Schema::default();
    let acted_on = parents_acted_on(conn)?;
    let triggered = triggered_tables(conn)?;
    for (name, sql) in crm_tables(conn)? {
        if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            schema.unusable.insert(name, "it is a virtual table".into());
            continue;
        }
        let columns = columns(conn, &name)?;
        let pks: Vec<usize> = (0..columns.len())
            .filter(|&i| columns[i].primary_key)
            .collect();
        match pks[..] {
            [pk] => {
                let reach = if triggered.contains(&name) {
                    Reach::Trigger
                } else if acted_on.contains(&name) {
                    Reach::ForeignKeyAction
                } else {
                    Reach::Named
                };
                schema.objects.insert(
                    name.clone(),
                    Object {
                        name,
                        columns,
                        pk,
                        reach,
                    },
                );
            }
            [] => {
                schema.unusable.insert(name, "it has no primary key".into());
            }
            _ => {
                schema.unusable.insert(
                    name,
                    "it has a composite primary key; crmgate addresses records by one id column"
                        .into(),
                );
            }
        }
    }
    point_at_primary_keys(&mut schema);
    let sql = schema
        .objects
        .values()
        .map(|o| (o.name.clone(), object_sql(o)))
        .collect();
    Ok((schema, sql))
}

/// Every table but SQLite's and crmgate's own, with its `CREATE` statement.
fn crm_tables(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare(
            "SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             AND name NOT LIKE 'crmgate\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(db_err)?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
}

/// A table's columns in order, with the single-column foreign keys (composite ones are left
/// to SQLite to enforce).
fn columns(conn: &Connection, table: &str) -> Result<Vec<Column>> {
    let mut stmt = conn
        .prepare(
            "SELECT name, coalesce(type, ''), \"notnull\", dflt_value IS NOT NULL, pk
             FROM pragma_table_info(?1) ORDER BY cid",
        )
        .map_err(db_err)?;
    let mut columns: Vec<Column> = stmt
        .query_map([table], |r| {
            let decl: String = r.get(1)?;
            Ok(Column {
                name: r.get(0)?,
                affinity: Affinity::from_decl(&decl),
                decl_type: decl,
                not_null: r.get(2)?,
                has_default: r.get(3)?,
                primary_key: r.get::<_, i64>(4)? > 0,
                foreign_key: None,
            })
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?;
    let mut stmt = conn
        .prepare(
            "SELECT \"from\", \"table\", coalesce(\"to\", '') FROM pragma_foreign_key_list(?1) f
             WHERE (SELECT count(*) FROM pragma_foreign_key_list(?1) g WHERE g.id = f.id) = 1",
        )
        .map_err(db_err)?;
    let fks: Vec<(String, String, String)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?;
    for (from, table, column) in fks {
        if let Some(c) = columns.iter_mut().find(|c| c.name == from) {
            c.foreign_key = Some(ForeignKey { table, column });
        }
    }
    Ok(columns)
}

/// Tables some foreign key (composite ones too) acts on: an update or delete of their rows
/// cascades, or sets the referencing rows' columns to null or their default.
fn parents_acted_on(conn: &Connection) -> Result<BTreeSet<String>> {
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT f.\"table\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
             WHERE m.type = 'table'
               AND (upper(f.on_update) IN ('CASCADE', 'SET NULL', 'SET DEFAULT')
                    OR upper(f.on_delete) IN ('CASCADE', 'SET NULL', 'SET DEFAULT'))",
        )
        .map_err(db_err)?;
    stmt.query_map([], |r| r.get(0))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
}

/// Tables a trigger fires on. crmgate's own triggers are on its own tables, never a CRM table.
fn triggered_tables(conn: &Connection) -> Result<BTreeSet<String>> {
    let mut stmt = conn
        .prepare("SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger'")
        .map_err(db_err)?;
    stmt.query_map([], |r| r.get(0))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
}

/// A foreign key that names no column refers to the parent's primary key.
fn point_at_primary_keys(schema: &mut Schema) {
    let pk_of: HashMap<String, String> = schema
        .objects
        .values()
        .map(|o| (o.name.clone(), o.pk_column().name.clone()))
        .collect();
    for o in schema.objects.values_mut() {
        for c in &mut o.columns {
            if let Some(fk) = &mut c.foreign_key
                && fk.column.is_empty()
                && let Some(pk) = pk_of.get(&fk.table)
            {
                fk.column = pk.clone();
            }
        }
    }
}

fn object_sql(obj: &Object) -> ObjectSql {
    let (table, pk) = (ident(&obj.name), ident(&obj.pk_column().name));
    let columns: Vec<String> = obj.columns.iter().map(|c| ident(&c.name)).collect();
    ObjectSql {
        row: format!("SELECT {} FROM {table} WHERE {pk} = ?1", columns.join(", ")),
        select: columns
            .iter()
            .map(|c| format!("SELECT {c} FROM {table} WHERE {pk} = ?1"))
            .collect(),
        update: columns
            .iter()
            .map(|c| format!("UPDATE {table} SET {c} = ?1 WHERE {pk} = ?2"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach_of(sql: &str) -> Vec<(String, Reach)> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        let (schema, _) = load(&conn).unwrap();
        schema
            .objects
            .values()
            .map(|o| (o.name.clone(), o.reach))
            .collect()
    }

    #[test]
    fn a_table_a_foreign_key_acts_on_or_a_trigger_fires_on_says_its_writes_reach_further() {
        let got = reach_of(
            "CREATE TABLE teams (id TEXT PRIMARY KEY, code TEXT UNIQUE);
             CREATE TABLE people (id TEXT PRIMARY KEY,
                 team_code TEXT REFERENCES teams(code) ON UPDATE CASCADE);
             CREATE TABLE rooms (id TEXT PRIMARY KEY);
             CREATE TABLE desks (id TEXT PRIMARY KEY,
                 room TEXT REFERENCES rooms ON DELETE SET NULL);
             CREATE TABLE notes (id TEXT PRIMARY KEY, person TEXT REFERENCES people(id));
             CREATE TABLE log (id INTEGER PRIMARY KEY, what TEXT);
             CREATE TRIGGER notes_logged AFTER UPDATE ON notes
                 BEGIN INSERT INTO log (what) VALUES (new.id); END;",
        );
        let want = [
            ("desks", Reach::Named),
            ("log", Reach::Named),
            ("notes", Reach::Trigger),
            ("people", Reach::Named),
            ("rooms", Reach::ForeignKeyAction),
            ("teams", Reach::ForeignKeyAction),
        ];
        let want: Vec<(String, Reach)> = want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(got, want);
    }
}
