//! Finding what a mistyped proposal address meant.

use super::{Store, db_err};
use crate::error::Result;

impl Store {
    /// `SOURCE:ID` of the proposals (at most five) whose proposer's id is `ext_id`, from any
    /// source: what `w4` meant when only `zoominfo:w4` exists. A scan, on the refusal path only.
    pub fn source_ids_for(&self, ext_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT source || ':' || ext_id FROM crmgate_proposals
                 WHERE ext_id = ?1 ORDER BY 1 LIMIT 5",
            )
            .map_err(db_err)?;
        stmt.query_map([ext_id], |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }
}
