//! The staging area of a propose run: a TEMP table holding every row that passed the checks that
//! need no lookups. Staging lets the expensive work run in the order that suits SQLite rather than
//! the file's: records are looked up in (object, record) order through SQLite's external sorter,
//! so memory stays flat however large the input.

use std::sync::LazyLock;

use super::{Writer, db_err, value_from};
use crate::error::Result;
use crate::model::{Kind, NewProposal, Value};

/// The page cache while the staged rows are sorted, in KiB: see [`Writer::for_each_staged`].
const SORT_CACHE_KIB: i64 = 12 * 1024;

/// A staged row, read back for lookups and queueing.
pub struct Staged {
    pub sid: i64,
    pub ingest_id: i64,
    pub p: NewProposal,
}

/// The identity of a staged row or stored proposal, for duplicate decisions.
#[derive(Debug, Clone)]
pub struct KeyRow {
    /// The staged row's id, or the stored proposal's id.
    pub id: i64,
    pub ingest_id: i64,
    pub line: i64,
    pub source: String,
    pub ext_id: Option<String>,
    pub content_key: i64,
}

impl KeyRow {
    /// The six columns from `at` on: (id, ingest_id, line, source, ext_id, content_key).
    fn from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<KeyRow> {
        Ok(KeyRow {
            id: r.get(at)?,
            ingest_id: r.get(at + 1)?,
            line: r.get(at + 2)?,
            source: r.get(at + 3)?,
            ext_id: r.get(at + 4)?,
            content_key: r.get(at + 5)?,
        })
    }
}

/// A proposal's columns as ingested: all of a staged row, and the first of a queued one. Bound
/// by [`bind_input`], as parameters 1 to [`INPUT_COUNT`].
pub(super) const INPUT_COLUMNS: &str = "ingest_id, line, source, ext_id, dedupe_key, content_key, kind, object, record, field, value, merge_into, stated_confidence, has_expected, expected, trigger, reason, evidence";
pub(super) const INPUT_COUNT: usize = 18;

/// Binds `p` as it was ingested to parameters 1 to [`INPUT_COUNT`] of `stmt`, in
/// [`INPUT_COLUMNS`] order: staging and queueing bind the same values the same way.
pub(super) fn bind_input(
    stmt: &mut rusqlite::Statement<'_>,
    p: &NewProposal,
    ingest_id: i64,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(1, ingest_id)?;
    stmt.raw_bind_parameter(2, p.line as i64)?;
    stmt.raw_bind_parameter(3, &p.source)?;
    stmt.raw_bind_parameter(4, &p.ext_id)?;
    stmt.raw_bind_parameter(5, p.dedupe_key)?;
    stmt.raw_bind_parameter(6, p.content_key)?;
    stmt.raw_bind_parameter(7, p.kind.as_str())?;
    stmt.raw_bind_parameter(8, &p.object)?;
    stmt.raw_bind_parameter(9, &p.record)?;
    stmt.raw_bind_parameter(10, &p.field)?;
    stmt.raw_bind_parameter(11, &p.value)?;
    stmt.raw_bind_parameter(12, &p.merge_into)?;
    stmt.raw_bind_parameter(13, p.stated_confidence)?;
    stmt.raw_bind_parameter(14, p.expected.is_some())?;
    stmt.raw_bind_parameter(15, p.expected.as_ref().unwrap_or(&Value::Null))?;
    stmt.raw_bind_parameter(16, &p.trigger)?;
    stmt.raw_bind_parameter(17, &p.reason)?;
    stmt.raw_bind_parameter(INPUT_COUNT, &p.evidence)
}

/// The ingest and the proposal as ingested, from [`INPUT_COLUMNS`] read from column `at` on;
/// what ingest finds and decides (baseline, verdict) is left for the caller.
pub(super) fn input_from_row(r: &rusqlite::Row<'_>, at: usize) -> Result<(i64, NewProposal)> {
    fn column<T: rusqlite::types::FromSql>(r: &rusqlite::Row<'_>, i: usize) -> Result<T> {
        r.get(i).map_err(db_err)
    }
    let get = |i: usize| r.get_ref(at + i).map_err(db_err);
    // Borrowed, not a String: this runs for every staged row.
    let kind = get(6)?.as_str().map_err(|e| db_err(e.into()))?;
    let has_expected: bool = column(r, at + 13)?;
    let p = NewProposal {
        line: column::<i64>(r, at + 1)? as u64,
        source: column(r, at + 2)?,
        ext_id: column(r, at + 3)?,
        dedupe_key: column(r, at + 4)?,
        content_key: column(r, at + 5)?,
        kind: Kind::parse(kind).expect("queued kinds were checked"),
        object: column(r, at + 7)?,
        record: column(r, at + 8)?,
        field: column(r, at + 9)?,
        value: value_from(get(10)?),
        merge_into: column(r, at + 11)?,
        stated_confidence: column(r, at + 12)?,
        expected: has_expected.then(|| get(14).map(value_from)).transpose()?,
        trigger: column(r, at + 15)?,
        reason: column(r, at + 16)?,
        evidence: column(r, at + 17)?,
        baseline: Value::Null,
        baseline_fp: None,
    };
    Ok((column(r, at)?, p))
}

/// `?1, ?2, …, ?n`.
pub(super) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Writer<'_> {
    /// Creates the staging table in a temporary database that gives its space back: see
    /// [`Writer::stage_drop`].
    pub fn stage_create(&self) -> Result<()> {
        self.tx
            .execute_batch(
                "DROP TABLE IF EXISTS temp.crmgate_stage;
                 PRAGMA temp.auto_vacuum = FULL;
                 CREATE TEMP TABLE crmgate_stage (
                    sid INTEGER PRIMARY KEY, ingest_id INTEGER NOT NULL, line INTEGER NOT NULL,
                    source TEXT NOT NULL, ext_id TEXT, dedupe_key INTEGER NOT NULL,
                    content_key INTEGER NOT NULL, kind TEXT NOT NULL,
                    object TEXT NOT NULL, record TEXT NOT NULL, field TEXT, value, merge_into TEXT,
                    stated_confidence REAL, has_expected INTEGER NOT NULL, expected, trigger TEXT,
                    reason TEXT, evidence TEXT);
                 DROP TABLE IF EXISTS temp.crmgate_skipped;
                 CREATE TEMP TABLE crmgate_skipped (sid INTEGER PRIMARY KEY);",
            )
            .map_err(db_err)
    }

    pub fn stage(&self, p: &NewProposal, ingest_id: i64) -> Result<i64> {
        // Built once: this runs for every row of a run.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO temp.crmgate_stage ({INPUT_COLUMNS}) VALUES ({})",
                placeholders(INPUT_COUNT)
            )
        });
        let mut stmt = self.prepared(&SQL).map_err(db_err)?;
        bind_input(&mut stmt, p, ingest_id).map_err(db_err)?;
        stmt.raw_execute().map_err(db_err)?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Drops the staged rows once they are queued. With the temporary database in `auto_vacuum`
    /// mode its file is truncated at commit, so the OS's cache pages the staged rows held are
    /// free before the commit's checkpoint copies the run into the store, and the checkpoint
    /// writes into them rather than into memory not touched before, which costs several times
    /// more (benches/README.md has the figures).
    pub fn stage_drop(&self) -> Result<()> {
        self.tx
            .execute_batch("DROP TABLE temp.crmgate_skipped; DROP TABLE temp.crmgate_stage")
            .map_err(db_err)
    }

    /// Drops the rows staged from one ingest (a file set aside whole); returns how many.
    pub fn unstage_ingest(&self, ingest_id: i64) -> Result<u64> {
        let n = self
            .tx
            .execute(
                "DELETE FROM temp.crmgate_stage WHERE ingest_id = ?1",
                [ingest_id],
            )
            .map_err(db_err)?;
        Ok(n as u64)
    }

    /// Marks a staged row as not to be queued (see [`Writer::for_each_staged`]); false if it
    /// was already.
    pub fn skip_staged(&self, sid: i64) -> Result<bool> {
        let mut stmt = self
            .prepared("INSERT OR IGNORE INTO temp.crmgate_skipped (sid) VALUES (?1)")
            .map_err(db_err)?;
        Ok(stmt.execute([sid]).map_err(db_err)? == 1)
    }

    /// Staged rows whose dedupe key an earlier staged row has too: (later, first), by key and
    /// then staging order. The keys that repeat are found by one sort, on disk when it is large;
    /// the table of them, usually empty, is what each staged row is then looked up in.
    pub fn staged_twins(&self, mut f: impl FnMut(KeyRow, KeyRow) -> Result<()>) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare(
                "WITH twins AS MATERIALIZED (
                     SELECT dedupe_key, min(sid) AS first FROM temp.crmgate_stage
                     GROUP BY dedupe_key HAVING count(*) > 1)
                 SELECT s.sid, s.ingest_id, s.line, s.source, s.ext_id, s.content_key,
                        f.sid, f.ingest_id, f.line, f.source, f.ext_id, f.content_key
                 FROM temp.crmgate_stage s
                 CROSS JOIN twins t ON t.dedupe_key = s.dedupe_key AND s.sid > t.first
                 JOIN temp.crmgate_stage f ON f.sid = t.first
                 ORDER BY s.dedupe_key, s.sid",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let key = |at: usize| KeyRow::from_row(r, at).map_err(db_err);
            f(key(0)?, key(6)?)?;
        }
        Ok(())
    }

    /// Staged rows whose dedupe key is already taken by a stored proposal: (staged, stored).
    pub fn staged_known(&self, mut f: impl FnMut(KeyRow, KeyRow) -> Result<()>) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare(
                "SELECT s.sid, s.ingest_id, s.line, s.source, s.ext_id, s.content_key,
                        p.id, p.ingest_id, p.line, p.source, p.ext_id, p.content_key
                 FROM temp.crmgate_stage s JOIN crmgate_proposals p ON p.dedupe_key = s.dedupe_key",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let key = |at: usize| KeyRow::from_row(r, at).map_err(db_err);
            f(key(0)?, key(6)?)?;
        }
        Ok(())
    }

    /// Every staged row not skipped, sorted by (object, record, staging order): records are then looked up
    /// in index order, and a record's proposals are queued together, oldest first.
    pub fn for_each_staged(&self, mut f: impl FnMut(Staged) -> Result<()>) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare(&format!(
                "SELECT sid, {INPUT_COLUMNS} FROM temp.crmgate_stage
                 WHERE sid NOT IN (SELECT sid FROM temp.crmgate_skipped)
                 ORDER BY object, record, sid"
            ))
            .map_err(db_err)?;
        // The whole sort happens in the first step. A helper thread (PRAGMA threads) sorts and
        // writes out one run while this one fills the next; SQLite sizes a run by the page
        // cache, so the cache is smaller for that step and peak memory stays where it was.
        // Both settings are put back after that step, or on any error.
        let (threads, cache) = self.sort_settings()?;
        let set = |threads: i64, cache: i64| self.set_sort_settings(threads, cache);
        set(1, -SORT_CACHE_KIB)?;
        let mut sorting = true;
        let walked = (|| -> Result<()> {
            let mut rows = stmt.query([]).map_err(db_err)?;
            while let Some(r) = rows.next().map_err(db_err)? {
                if sorting {
                    sorting = false;
                    set(threads, cache)?;
                }
                let (ingest_id, p) = input_from_row(r, 1)?;
                f(Staged {
                    sid: r.get(0).map_err(db_err)?,
                    ingest_id,
                    p,
                })?;
            }
            Ok(())
        })();
        if sorting {
            set(threads, cache)?;
        }
        walked
    }

    /// The highest proposal id so far: how large the queue is, for choosing the bulk path.
    pub fn max_proposal_id(&self) -> Result<i64> {
        self.tx
            .query_row(
                "SELECT coalesce(max(id), 0) FROM crmgate_proposals",
                [],
                |r| r.get(0),
            )
            .map_err(db_err)
    }

    /// Drops the proposal index by dedupe key, which a bulk load would otherwise update a row
    /// at a time in random key order; returns its definition so [`Writer::restore_index`]
    /// rebuilds it exactly, by sorting.
    pub fn drop_dedupe_index(&self) -> Result<String> {
        let name = "crmgate_proposals_dedupe";
        let sql: String = self
            .tx
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                [name],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        self.tx
            .execute_batch(&format!("DROP INDEX {name}"))
            .map_err(db_err)?;
        Ok(sql)
    }

    /// Rebuilds an index dropped by [`Writer::drop_dedupe_index`]. Its sort, like the staged
    /// rows', holds no more than [`SORT_CACHE_KIB`] in memory; the rest goes to temporary files.
    pub fn restore_index(&self, sql: &str) -> Result<()> {
        let (threads, cache) = self.sort_settings()?;
        self.set_sort_settings(threads, -SORT_CACHE_KIB)?;
        let built = self.tx.execute_batch(sql).map_err(db_err);
        self.set_sort_settings(threads, cache)?;
        built
    }

    /// `PRAGMA cache_size`: pages when positive, KiB when negative.
    pub fn cache_size(&self) -> Result<i64> {
        Ok(self.sort_settings()?.1)
    }

    pub fn set_cache_size(&self, cache: i64) -> Result<()> {
        self.tx
            .execute_batch(&format!("PRAGMA cache_size = {cache}"))
            .map_err(db_err)
    }

    /// `PRAGMA threads` and `PRAGMA cache_size`, which size SQLite's sorts.
    fn sort_settings(&self) -> Result<(i64, i64)> {
        let pragma = |name: &str| -> Result<i64> {
            self.tx
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(db_err)
        };
        Ok((pragma("threads")?, pragma("cache_size")?))
    }

    fn set_sort_settings(&self, threads: i64, cache: i64) -> Result<()> {
        self.tx
            .execute_batch(&format!(
                "PRAGMA threads = {threads}; PRAGMA cache_size = {cache}"
            ))
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OpenMode, Store};
    use crate::model::{Kind, NewProposal, Value};

    fn proposal(i: u64) -> NewProposal {
        NewProposal {
            line: i + 2,
            source: "vendor".into(),
            ext_id: Some(format!("p-{i}")),
            kind: Kind::Update,
            object: "contacts".into(),
            record: format!("c-{i}"),
            field: Some("title".into()),
            value: Value::Text("Head of Revenue Operations".into()),
            merge_into: None,
            stated_confidence: Some(0.9),
            expected: None,
            trigger: None,
            reason: Some("x".repeat(200)),
            evidence: None,
            baseline: Value::Null,
            baseline_fp: None,
            content_key: i as i64,
            dedupe_key: i as i64,
        }
    }

    fn temp_pages(store: &Store) -> i64 {
        store
            .conn
            .query_row("PRAGMA temp.page_count", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn dropped_staged_rows_give_their_space_back_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        // Opened again, as every command after the one that made or upgraded the store: a
        // migration that alters a table (9) writes the connection's temporary schema, and
        // auto_vacuum can be set only on an empty database. So the one propose that upgrades a
        // store keeps its staged pages to the end of its connection.
        drop(Store::open(&path, OpenMode::Create).unwrap());
        let mut store = Store::open(&path, OpenMode::Existing).unwrap();
        let now = "2026-11-22T00:00:00Z";
        let staged_pages = store
            .write(now, |w| {
                w.stage_create()?;
                for i in 0..5_000 {
                    w.stage(&proposal(i), 1)?;
                }
                let pages: rusqlite::Result<i64> =
                    w.tx.query_row("PRAGMA temp.page_count", [], |r| r.get(0));
                w.stage_drop()?;
                Ok(pages.unwrap())
            })
            .unwrap();
        // 5,000 rows of over 300 bytes: hundreds of pages while staged, and only the temporary
        // database's own first pages once the drop is committed.
        assert!(staged_pages > 300, "{staged_pages} pages staged");
        let after = temp_pages(&store);
        assert!(after <= 4, "{after} pages left after the drop");
    }
}
