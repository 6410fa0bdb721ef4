//! Policy versions.

use rusqlite::OptionalExtension;

use super::{Store, Writer, db_err};
use crate::error::Result;

#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyVersion {
    pub version: i64,
    pub at: String,
    pub actor: String,
    pub sha256: String,
    pub text: String,
}

const COLUMNS: &str = "version, at, actor, sha256, text";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyVersion> {
    Ok(PolicyVersion {
        version: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        sha256: r.get(3)?,
        text: r.get(4)?,
    })
}

impl Store {
    /// The policy in force: the newest version.
    pub fn current_policy(&self) -> Result<Option<PolicyVersion>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM crmgate_policies ORDER BY version DESC LIMIT 1"),
                [],
                from_row,
            )
            .optional()
            .map_err(db_err)
    }

    /// Every policy version, oldest first.
    pub fn all_policies(&self) -> Result<Vec<PolicyVersion>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM crmgate_policies ORDER BY version"
            ))
            .map_err(db_err)?;
        stmt.query_map([], from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    pub fn policy_version(&self, version: i64) -> Result<Option<PolicyVersion>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM crmgate_policies WHERE version = ?1"),
                [version],
                from_row,
            )
            .optional()
            .map_err(db_err)
    }
}

impl Writer<'_> {
    pub fn current_policy_version(&self) -> Result<Option<(i64, String)>> {
        self.tx
            .query_row(
                "SELECT version, sha256 FROM crmgate_policies ORDER BY version DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)
    }

    /// Adds a policy version; returns its number.
    pub fn add_policy(&self, actor: &str, sha256: &str, text: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO crmgate_policies (at, actor, sha256, text) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![self.now, actor, sha256, text],
            )
            .map_err(db_err)?;
        Ok(self.tx.last_insert_rowid())
    }
}
