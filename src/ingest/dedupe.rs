//! The third stage of a propose run: a staged row whose dedupe key was taken before it, earlier
//! in this run or by a proposal already queued, is skipped. It is the same proposal again (a
//! duplicate, counted) or, when an id comes back with other content, an error (rejected).
//! Both lookups are joins in SQLite, which sorts what it must on disk: nothing here is kept
//! per row.

use super::proposals::Run;
use crate::error::Result;
use crate::store::KeyRow;

/// What took a row's dedupe key before it.
#[derive(Debug, Clone, Copy)]
enum Earlier {
    /// A row on this line of the same run.
    Line(i64),
    /// A proposal already in the queue, by id.
    Proposal(i64),
}

impl Run<'_, '_> {
    /// Skips every staged row whose key was taken before it: by a twin in this run first, then
    /// by a queued proposal. A row skipped as a twin is not counted again.
    pub(super) fn skip_duplicates(&mut self) -> Result<()> {
        let w = self.w;
        w.staged_twins(|row, first| self.skip(&row, &first, Earlier::Line(first.line)))?;
        w.staged_known(|row, stored| self.skip(&row, &stored, Earlier::Proposal(stored.id)))
    }

    fn skip(&mut self, row: &KeyRow, earlier: &KeyRow, at: Earlier) -> Result<()> {
        if !self.w.skip_staged(row.id)? {
            return Ok(());
        }
        let file = self.file(row.ingest_id);
        match duplicate_of(row, earlier, at) {
            None => {
                self.files[file].report.duplicates += 1;
                Ok(())
            }
            Some(message) => self.reject(file, row.line as u64, message, None),
        }
    }
}

/// Why `row` may not be queued given the `earlier` row or proposal with its dedupe key, or
/// `None` when it is the same proposal again (a duplicate, skipped in silence).
fn duplicate_of(row: &KeyRow, earlier: &KeyRow, at: Earlier) -> Option<String> {
    let same_id = row.source == earlier.source && row.ext_id == earlier.ext_id;
    if same_id && row.content_key == earlier.content_key {
        return None;
    }
    let earlier = match at {
        Earlier::Line(line) => format!("on line {line} of this run"),
        Earlier::Proposal(id) => format!("as proposal {id}"),
    };
    Some(match (&row.ext_id, same_id) {
        (Some(id), true) => format!(
            "{}:{id} was already ingested {earlier} with different content; give the new proposal a new id",
            row.source
        ),
        _ => format!(
            "this proposal's key collides with the one ingested {earlier}; give it an id (or a different one)"
        ),
    })
}
