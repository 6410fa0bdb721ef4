//! The kill switch: which scopes (the whole store, or one source) are paused.

use super::{Store, Writer, db_err};
use crate::error::Result;

/// A paused scope: `source` is `None` for the whole store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Pause {
    pub source: Option<String>,
    pub reason: String,
    pub actor: String,
    pub at: String,
}

fn read(conn: &rusqlite::Connection) -> Result<Vec<Pause>> {
    let mut stmt = conn
        .prepare_cached("SELECT scope, reason, actor, at FROM crmgate_pauses ORDER BY scope")
        .map_err(db_err)?;
    stmt.query_map([], |r| {
        let scope: String = r.get(0)?;
        Ok(Pause {
            source: (!scope.is_empty()).then_some(scope),
            reason: r.get(1)?,
            actor: r.get(2)?,
            at: r.get(3)?,
        })
    })
    .map_err(db_err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(db_err)
}

impl Store {
    pub fn pauses(&self) -> Result<Vec<Pause>> {
        read(&self.conn)
    }
}

impl Writer<'_> {
    pub fn pauses(&self) -> Result<Vec<Pause>> {
        read(&self.tx)
    }

    /// Pauses `source` (or the store); false if it already was.
    pub fn pause(&self, source: Option<&str>, reason: &str, actor: &str) -> Result<bool> {
        let n = self
            .tx
            .execute(
                "INSERT INTO crmgate_pauses (scope, reason, actor, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (scope) DO NOTHING",
                rusqlite::params![source.unwrap_or(""), reason, actor, self.now],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }

    /// Resumes `source` (or the store); false if it was not paused.
    pub fn resume(&self, source: Option<&str>) -> Result<bool> {
        let n = self
            .tx
            .execute(
                "DELETE FROM crmgate_pauses WHERE scope = ?1",
                [source.unwrap_or("")],
            )
            .map_err(db_err)?;
        Ok(n == 1)
    }
}
