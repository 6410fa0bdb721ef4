//! The store: the only module that talks to SQLite. One connection per command, WAL, foreign
//! keys on, a busy timeout; numbered forward-only migrations; every write inside [`Store::write`],
//! which commits on `Ok` and rolls back on `Err`.

mod changes;
mod frequency;
mod import;
mod live_schema;
mod lookup;
mod migrations;
mod pauses;
mod policies;
mod queue;
mod records;
mod redecide;
mod snapshot;
mod stage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};

use crate::audit::{self, EventRow};
use crate::error::{Error, Result};
use crate::model::{Action, Kind, NewEvent, State, Value};
use crate::schema::Schema;

pub use changes::{ChangeRow, LogScope, Logged, ReadLog};
pub use pauses::Pause;
pub use policies::PolicyVersion;
pub use queue::{CountRow, GroupWalk, IngestCounts, IngestRow, ListFilter, OpenTarget, Replay};
pub use records::{ColumnPlan, PlanRow, ReadRecords, UpsertOutcome, same_value as same};
pub use redecide::{Redecision, Replaying};
pub use snapshot::Snapshot;
pub use stage::{KeyRow, Staged};

/// The newest store schema this build knows.
pub const SCHEMA_VERSION: i64 = migrations::MIGRATIONS.len() as i64;

/// Every migration's SQL, in order: for tests that build a store as an earlier crmgate left it.
#[doc(hidden)]
pub fn migrations() -> &'static [&'static str] {
    migrations::MIGRATIONS
}

const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5000;

/// How long a connection waits for a lock before giving up: `CRMGATE_BUSY_TIMEOUT_MS`, else
/// five seconds.
fn busy_timeout() -> Duration {
    let ms = std::env::var("CRMGATE_BUSY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_BUSY_TIMEOUT_MS);
    Duration::from_millis(ms)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The store must exist and be a crmgate store; migrated to this build's schema if older.
    Existing,
    /// Create the file and crmgate's tables when missing (`init`).
    Create,
    /// The store must exist, be a crmgate store and need no migration; opened read-only, so
    /// that a user who may read the file but not write it (nor its directory) can read it.
    /// Nothing is written, not even a migration or the switch to WAL: [`Store::write`] fails.
    Read,
}

/// How many prepared statements a connection keeps: see [`Store::open`].
const STATEMENT_CACHE: usize = 128;

/// The page cache of a bulk command, in KiB: see [`Store::set_bulk_cache`].
pub const BULK_CACHE_KIB: i64 = 32 * 1024;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    schema: Schema,
    sql: live_schema::Sql,
    /// SQLite's `schema_version` when `schema` was read: see [`Store::writer`].
    schema_version: i64,
}

impl Store {
    pub fn open(path: &Path, mode: OpenMode) -> Result<Store> {
        if mode != OpenMode::Create && !path.exists() {
            return Err(Error::NoStore {
                path: path.to_path_buf(),
            });
        }
        let conn = match mode {
            OpenMode::Read => open_read_only(path)?,
            OpenMode::Existing | OpenMode::Create => {
                let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                if mode == OpenMode::Create {
                    flags |= OpenFlags::SQLITE_OPEN_CREATE;
                }
                let conn = open_with(path, flags)?;
                refuse_read_only(&conn, path)?;
                conn
            }
        };
        configure(&conn)?;
        // A file that is not SQLite fails here, on the first read. A reader leaves the journal
        // mode as the file has it: crmgate's writers switched it to WAL.
        let set = match mode {
            OpenMode::Read => "PRAGMA journal_mode",
            OpenMode::Existing | OpenMode::Create => "PRAGMA journal_mode = WAL",
        };
        let journal: String = conn
            .query_row(set, [], |r| r.get(0))
            .map_err(|e| not_sqlite(path, e))?;
        if mode != OpenMode::Read && !journal.eq_ignore_ascii_case("wal") {
            return Err(Error::Store(format!(
                "could not switch {} to WAL journaling (it reports {journal})",
                path.display()
            )));
        }
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = FILE;",
        )
        .map_err(db_err)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            schema: Schema::default(),
            sql: live_schema::Sql::default(),
            schema_version: 0,
        };
        store.migrate(mode)?;
        store.reload_schema()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn has_crmgate_tables(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'crmgate_proposals'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(db_err)
    }

    fn user_version(conn: &Connection) -> Result<i64> {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err)
    }

    fn migrate(&mut self, mode: OpenMode) -> Result<()> {
        let version = Self::user_version(&self.conn)?;
        if version > SCHEMA_VERSION {
            return Err(Error::NewerStore {
                path: self.path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let ours = self.has_crmgate_tables()?;
        if version == 0 && !ours && mode != OpenMode::Create {
            return Err(Error::refused_with_hint(
                format!("{} is not a crmgate store", self.path.display()),
                format!(
                    "set it up with `crmgate init --db {}` (existing tables are kept as they are)",
                    self.path.display()
                ),
            ));
        }
        if version > 0 && !ours {
            return Err(Error::refused(format!(
                "{} uses PRAGMA user_version ({version}) for its own purposes; crmgate will not share it",
                self.path.display()
            )));
        }
        if mode == OpenMode::Read && version < SCHEMA_VERSION {
            return Err(Error::refused_with_hint(
                format!(
                    "{} was made by an earlier crmgate (store schema {version}; this one reads {SCHEMA_VERSION}) and must be migrated before it can be read; a command that only reads does not migrate it",
                    self.path.display()
                ),
                format!(
                    "migrate it with `crmgate init --db {}`, run by a user who may write the file and its directory (init keeps existing tables and records as they are)",
                    self.path.display()
                ),
            ));
        }
        for (i, sql) in migrations::MIGRATIONS.iter().enumerate() {
            let target = i as i64 + 1;
            // Up to date: no lock. Readers must not need the write lock (a long apply holds it).
            if Self::user_version(&self.conn)? >= target {
                continue;
            }
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            // Another process may have migrated while this one waited for the lock.
            if Self::user_version(&tx)? >= target {
                continue;
            }
            tx.execute_batch(sql).map_err(db_err)?;
            tx.pragma_update(None, "user_version", target)
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
        }
        Ok(())
    }

    /// Creates the default CRM tables that do not exist yet; returns the ones it created.
    pub fn create_default_tables(&mut self) -> Result<Vec<&'static str>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let mut created = Vec::new();
        for (name, sql) in migrations::DEFAULT_CRM_TABLES {
            let exists: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if exists == 0 {
                tx.execute_batch(sql).map_err(db_err)?;
                created.push(*name);
            }
        }
        if created.len() == migrations::DEFAULT_CRM_TABLES.len() {
            for sql in migrations::DEFAULT_CRM_INDEXES {
                tx.execute_batch(sql).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)?;
        self.reload_schema()?;
        Ok(created)
    }

    /// Reads the CRM objects from the live schema.
    fn reload_schema(&mut self) -> Result<()> {
        self.schema_version = schema_version(&self.conn)?;
        (self.schema, self.sql) = live_schema::load(&self.conn)?;
        Ok(())
    }

    /// A writer over a new `BEGIN IMMEDIATE` transaction. The schema is read again if it
    /// changed since it was read (a table, trigger or foreign key added between two chunks of
    /// a run): every decision in the transaction is taken on the schema as it is.
    fn writer(&mut self, now: &str) -> Result<Writer<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let version = schema_version(&tx)?;
        if version != self.schema_version {
            (self.schema, self.sql) = live_schema::load(&tx)?;
            self.schema_version = version;
        }
        Ok(Writer {
            tx,
            schema: &self.schema,
            sql: &self.sql,
            path: &self.path,
            head: std::cell::RefCell::new(None),
            head_moved: std::cell::Cell::new(false),
            ingests: std::cell::RefCell::new(std::collections::HashMap::new()),
            now: now.to_string(),
        })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: committed if it returns `Ok`, rolled back
    /// (nothing written) if it returns `Err`.
    pub fn write<T>(
        &mut self,
        now: &str,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut w = self.writer(now)?;
        let out = f(&mut w)?;
        w.save_chain_head()?;
        w.tx.commit().map_err(db_err)?;
        Ok(out)
    }

    /// Raises SQLite's page cache for a command that may touch a million rows (propose, apply,
    /// revert): the indexes it descends stay cached, within the memory budget.
    pub fn set_bulk_cache(&self) -> Result<()> {
        self.set_cache_kib(BULK_CACHE_KIB)
    }

    /// Sets how much memory SQLite may use for its page cache, in KiB. Bulk ingest raises it so
    /// that the lookup indexes stay cached.
    pub fn set_cache_kib(&self, kib: i64) -> Result<()> {
        self.conn
            .pragma_update(None, "cache_size", -kib)
            .map_err(db_err)
    }

    pub fn events_for_proposal(&self, id: i64) -> Result<Vec<EventRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM crmgate_events WHERE proposal_id = ?1 ORDER BY seq"
            ))
            .map_err(db_err)?;
        stmt.query_map([id], event_from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }

    /// The event that recorded change `id`.
    pub fn event_for_change(&self, id: i64) -> Result<Option<EventRow>> {
        event_for_change(&self.conn, id)
    }

    /// Events about a whole ingest (not tied to one proposal), e.g. the file it came from.
    pub fn ingest_event(&self, ingest_id: i64) -> Result<Option<EventRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM crmgate_events WHERE action = 'ingest'
                 AND json_extract(detail, '$.ingest_id') = ?1 LIMIT 1"
            ))
            .map_err(db_err)?;
        let mut rows = stmt
            .query_map([ingest_id], event_from_row)
            .map_err(db_err)?;
        rows.next().transpose().map_err(db_err)
    }
}

/// The event that recorded change `id`, found through the index of events by change.
fn event_for_change(conn: &Connection, id: i64) -> Result<Option<EventRow>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM crmgate_events WHERE change_id = ?1 ORDER BY seq LIMIT 1"
    ))
    .and_then(|mut stmt| stmt.query_row([id], event_from_row).optional())
    .map_err(db_err)
}

const EVENT_COLUMNS: &str = "seq, at, actor, actor_kind, action, proposal_id, change_id, run_id, object, record, field, prev_value, new_value, source, confidence, rules, policy_version, approver, detail, prev_hash, hash, os_user";

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        actor_kind: r.get(3)?,
        action: r.get(4)?,
        proposal_id: r.get(5)?,
        change_id: r.get(6)?,
        run_id: r.get(7)?,
        object: r.get(8)?,
        record: r.get(9)?,
        field: r.get(10)?,
        prev_value: r.get(11)?,
        new_value: r.get(12)?,
        source: r.get(13)?,
        confidence: r.get(14)?,
        rules: r.get(15)?,
        policy_version: r.get(16)?,
        approver: r.get(17)?,
        detail: r.get(18)?,
        prev_hash: r.get(19)?,
        hash: r.get(20)?,
        os_user: r.get(21)?,
    })
}

/// The open write transaction handed to [`Store::write`]'s closure.
pub struct Writer<'s> {
    tx: rusqlite::Transaction<'s>,
    schema: &'s Schema,
    sql: &'s live_schema::Sql,
    path: &'s Path,
    /// (seq, hash) of the newest event, once read in this transaction.
    head: std::cell::RefCell<Option<(i64, String)>>,
    /// Whether an event was appended in this transaction: the chain head is saved at commit.
    head_moved: std::cell::Cell<bool>,
    /// Per ingest queued into in this transaction: the XOR of its proposals' digests, and the
    /// lowest and highest id queued.
    ingests: std::cell::RefCell<std::collections::HashMap<i64, IngestDigest>>,
    now: String,
}

/// What an ingest's event holds of its proposals: see [`Writer::ingest_digest`].
#[derive(Debug, Clone, Copy)]
pub struct IngestDigest {
    pub xor: [u8; 32],
    pub first: i64,
    pub last: i64,
}

impl Writer<'_> {
    /// The statement for `sql`, from the connection's statement cache.
    fn prepared(&self, sql: &str) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        self.tx.prepare_cached(sql)
    }
}

impl Writer<'_> {
    pub fn schema(&self) -> &Schema {
        self.schema
    }

    pub fn now(&self) -> &str {
        &self.now
    }

    /// Appends one event to the hash-chained audit log.
    pub fn append_event(&self, ev: NewEvent) -> Result<i64> {
        let (seq, prev_hash) = self.chain_head()?;
        let mut row = event_row(ev, seq + 1, &self.now, prev_hash);
        row.hash = row.compute_hash();
        self.insert_event(&row)?;
        *self.head.borrow_mut() = Some((row.seq, row.hash));
        self.head_moved.set(true);
        Ok(seq + 1)
    }

    /// Writes the chain's head to `crmgate_chain_head`, once per transaction that appended.
    fn save_chain_head(&self) -> Result<()> {
        if !self.head_moved.get() {
            return Ok(());
        }
        let (seq, hash) = self.chain_head()?;
        self.tx
            .execute(
                "INSERT INTO crmgate_chain_head (id, seq, hash, bound_from) VALUES (1, ?1, ?2, 1)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                rusqlite::params![seq, hash],
            )
            .map_err(db_err)?;
        *self.head.borrow_mut() = Some((seq, hash));
        Ok(())
    }

    /// The event that recorded change `id`.
    pub fn event_for_change(&self, id: i64) -> Result<Option<EventRow>> {
        event_for_change(&self.tx, id)
    }

    /// The event the row of ingest `ingest_id` names as its own, if it names one that exists.
    pub fn ingest_event_of(&self, ingest_id: i64) -> Result<Option<EventRow>> {
        use rusqlite::OptionalExtension;
        self.prepared(&format!(
            "SELECT {EVENT_COLUMNS} FROM crmgate_events
             WHERE seq = (SELECT event_seq FROM crmgate_ingests WHERE id = ?1)"
        ))
        .and_then(|mut stmt| stmt.query_row([ingest_id], event_from_row).optional())
        .map_err(db_err)
    }

    /// The XOR of the digests of ingest `ingest_id`'s proposals with ids `first..=last`.
    pub fn digests_xor(&self, ingest_id: i64, first: i64, last: i64) -> Result<[u8; 32]> {
        let mut stmt = self
            .prepared(
                "SELECT digest FROM crmgate_proposals
                 WHERE id BETWEEN ?1 AND ?2 AND ingest_id = ?3",
            )
            .map_err(db_err)?;
        let mut rows = stmt
            .query(rusqlite::params![first, last, ingest_id])
            .map_err(db_err)?;
        let mut acc = [0u8; 32];
        while let Some(r) = rows.next().map_err(db_err)? {
            let mut d = [0u8; 32];
            if let rusqlite::types::ValueRef::Blob(b) = r.get_ref(0).map_err(db_err)?
                && b.len() == 32
            {
                d.copy_from_slice(b);
            }
            audit::xor_into(&mut acc, &d);
        }
        Ok(acc)
    }

    /// Notes proposal `id`'s digest as one of ingest `ingest_id`'s.
    pub(crate) fn note_digest(&self, ingest_id: i64, id: i64, d: &[u8; 32]) {
        let mut all = self.ingests.borrow_mut();
        let e = all.entry(ingest_id).or_insert(IngestDigest {
            xor: [0; 32],
            first: id,
            last: id,
        });
        audit::xor_into(&mut e.xor, d);
        (e.first, e.last) = (e.first.min(id), e.last.max(id));
    }

    /// What ingest `ingest_id` queued in this transaction, for its event.
    pub fn ingest_digest(&self, ingest_id: i64) -> Option<IngestDigest> {
        self.ingests.borrow().get(&ingest_id).copied()
    }

    /// Names the event that records ingest `ingest_id`.
    pub fn set_ingest_event(&self, ingest_id: i64, seq: i64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE crmgate_ingests SET event_seq = ?2 WHERE id = ?1",
                rusqlite::params![ingest_id, seq],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// (seq, hash) of the newest event: kept from the last append in this transaction, else
    /// read (the genesis hash when there is none).
    fn chain_head(&self) -> Result<(i64, String)> {
        if let Some(h) = self.head.borrow_mut().take() {
            return Ok(h);
        }
        self.tx
            .query_row(
                "SELECT seq, hash FROM crmgate_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok((0, audit::GENESIS.to_string())),
                e => Err(e),
            })
            .map_err(db_err)
    }

    fn insert_event(&self, row: &EventRow) -> Result<()> {
        static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "INSERT INTO crmgate_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
            )
        });
        let mut stmt = self.prepared(&INSERT).map_err(db_err)?;
        stmt.execute(rusqlite::params![
            row.seq,
            row.at,
            row.actor,
            row.actor_kind,
            row.action,
            row.proposal_id,
            row.change_id,
            row.run_id,
            row.object,
            row.record,
            row.field,
            row.prev_value,
            row.new_value,
            row.source,
            row.confidence,
            row.rules,
            row.policy_version,
            row.approver,
            row.detail,
            row.prev_hash,
            row.hash,
            row.os_user,
        ])
        .map_err(db_err)?;
        Ok(())
    }
}

/// Bumped by SQLite on every change to the schema.
fn schema_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(db_err)
}

/// The row of an event, its hash not yet computed.
fn event_row(ev: NewEvent, seq: i64, now: &str, prev_hash: String) -> EventRow {
    // Straight into a buffer: `Display` (`to_string`) goes through the formatting
    // machinery a piece at a time, and an apply writes one event per change.
    let json_text = |v: &serde_json::Value| serde_json::to_string(v).expect("JSON serializes");
    let json_text = |v: &Option<serde_json::Value>| v.as_ref().map(json_text);
    EventRow {
        seq,
        at: now.to_string(),
        actor: ev.actor,
        actor_kind: ev.actor_kind.to_string(),
        action: ev.action.to_string(),
        proposal_id: ev.proposal_id,
        change_id: ev.change_id,
        run_id: ev.run_id,
        object: ev.object,
        record: ev.record,
        field: ev.field,
        prev_value: json_text(&ev.prev_value),
        new_value: json_text(&ev.new_value),
        source: ev.source,
        confidence: ev.confidence,
        rules: ev.rules,
        policy_version: ev.policy_version,
        approver: ev.approver,
        detail: match (ev.detail, audit::test_clock()) {
            (serde_json::Value::Null, false) => None,
            (serde_json::Value::Object(mut m), true) => {
                m.insert("test_clock".into(), serde_json::Value::Bool(true));
                json_text(&Some(serde_json::Value::Object(m)))
            }
            (serde_json::Value::Null, true) => {
                json_text(&Some(serde_json::json!({ "test_clock": true })))
            }
            (d, _) => json_text(&Some(d)),
        },
        prev_hash,
        hash: String::new(),
        os_user: Some(crate::actor::os_user().to_string()),
    }
}

/// Quotes an identifier for SQL. Only ever called with names taken from the live schema.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// For each condition that is set, a clause `column op ?N` (`column op` given, `N` numbered
/// after the parameters already in `params`) and its value as the parameter.
fn narrow(conds: &[(&str, &Option<String>)], clauses: &mut Vec<String>, params: &mut Vec<String>) {
    for (col_op, v) in conds {
        if let Some(v) = v {
            params.push(v.clone());
            clauses.push(format!("{col_op} ?{}", params.len()));
        }
    }
}

/// The settings every connection crmgate opens shares: how long it waits for a lock, its
/// statement cache, and plans that stay the same whatever the bound values.
pub(super) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(busy_timeout()).map_err(db_err)?;
    // More distinct statements than one transaction uses (apply: a few per object and field it
    // writes; propose: a few dozen), so none is prepared twice in one.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The same plan whatever the bound values. Without it, SQLite marks some statements (a join
    // among them) to be re-planned when a parameter's value changes, and rusqlite's statement
    // cache clears the bindings of every statement it takes back: those statements were
    // compiled anew on every use, a third of an apply's time.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
    .map_err(db_err)
}

/// A connection to the store file with `flags`; a file that cannot be opened is an I/O error.
fn open_with(path: &Path, flags: OpenFlags) -> Result<Connection> {
    Connection::open_with_flags(path, flags).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::CannotOpen => {
            Error::io(path, std::io::Error::other("cannot open the store file"))
        }
        other => db_err(other),
    })
}

/// Refuses a store that SQLite opened read-only although asked to write (a file this user may
/// not write): the command would fail at its first write, saying only that the store is
/// read-only.
fn refuse_read_only(conn: &Connection, path: &Path) -> Result<()> {
    if !conn.is_readonly(rusqlite::MAIN_DB).map_err(db_err)? {
        return Ok(());
    }
    Err(Error::refused_with_hint(
        format!(
            "{} may not be written by this user, and this command writes to it; nothing was changed",
            path.display()
        ),
        "run it as a user who may write the store file and its directory; commands that only read (status, list, show, export, log, sources, audit) work as this user",
    ))
}

/// A read-only connection to the store file. SQLite reads a WAL store through its `-shm`
/// file, which it creates if missing; where it cannot (a directory the reader may not write)
/// and no `-wal` file holds changes not yet in the store file (no connection is open, and none
/// crashed), the file alone is the whole store: it is read as immutable, without locks. A
/// writer that starts meanwhile (it needs write access to the directory) is not seen.
fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = open_with(path, flags)?;
    let first = conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()));
    // Without a `-wal` file SQLite says the store is read-only; with one, that it cannot open it.
    let cannot_init = matches!(&first, Err(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen));
    if !cannot_init {
        return Ok(conn);
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let pending = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    match path.to_str() {
        Some(name) if !pending => {
            drop(conn);
            // In a URI file name, `?` and `#` end the path and `%` begins an escape.
            let escaped = name
                .replace('%', "%25")
                .replace('?', "%3f")
                .replace('#', "%23");
            open_with(
                Path::new(&format!("file:{escaped}?immutable=1")),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )
        }
        _ => Err(Error::refused_with_hint(
            format!(
                "{} cannot be read: SQLite needs to create {}-shm beside it, and its directory may not be written",
                path.display(),
                path.display()
            ),
            format!(
                "run it as a user who may write the store's directory, or ask one to run `crmgate init --db {}` (on a store already set up it writes nothing but a migration, and on closing it moves what the -wal file holds into the store file)",
                path.display()
            ),
        )),
    }
}

fn not_sqlite(path: &Path, e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            Error::refused(format!("{} is not an SQLite database", path.display()))
        }
        _ => db_err(e),
    }
}

/// Maps SQLite errors to ours; a lock held past the busy timeout becomes [`Error::Busy`] (exit 75).
fn db_err(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Error::Busy
        }
        _ => Error::Store(e.to_string()),
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

pub(crate) fn value_from(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Store {
    /// The action of the store's first event: `demo` marks a store the demo built.
    pub fn first_event_action(&self) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT action FROM crmgate_events ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
    }
}

impl Store {
    /// Every event in sequence order, streamed; `since` keeps those at or after a time.
    pub fn for_each_event(
        &self,
        since: Option<&str>,
        mut f: impl FnMut(&EventRow) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM crmgate_events WHERE ?1 IS NULL OR at >= ?1 ORDER BY seq"
            ))
            .map_err(db_err)?;
        let mut rows = stmt.query([since]).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            f(&event_from_row(r).map_err(db_err)?)?;
        }
        Ok(())
    }

    /// The chain's head as the store records it beside the log (`crmgate_chain_head`), if it does.
    pub fn recorded_chain_head(&self) -> Result<Option<(i64, String)>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT seq, hash FROM crmgate_chain_head WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)
    }

    /// How many proposals, changes and policy versions the store holds.
    pub fn bound_row_counts(&self) -> Result<(i64, i64, i64)> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM crmgate_proposals),
                        (SELECT count(*) FROM crmgate_changes),
                        (SELECT count(*) FROM crmgate_policies)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(db_err)
    }

    /// Every change's row, in id order.
    pub fn for_each_change(&self, mut f: impl FnMut(&ChangeRow) -> Result<()>) -> Result<()> {
        changes::for_each(&self.conn, &mut f)
    }

    /// The newest `policy` event: the one that put the policy in force.
    pub fn latest_policy_event(&self) -> Result<Option<EventRow>> {
        use rusqlite::OptionalExtension;
        self.conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM crmgate_events WHERE action = 'policy'
                 ORDER BY seq DESC LIMIT 1"
            ))
            .and_then(|mut stmt| stmt.query_row([], event_from_row).optional())
            .map_err(db_err)
    }

    /// The newest event's (seq, hash).
    pub fn chain_head(&self) -> Result<Option<(i64, String)>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT seq, hash FROM crmgate_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)
    }
}

/// Which events `log` shows.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub object: Option<String>,
    pub record: Option<String>,
    pub source: Option<String>,
    pub actor: Option<String>,
    pub since: Option<String>,
    pub limit: Option<u64>,
}

impl Store {
    /// Events matching `f`, newest first.
    pub fn events(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        let mut clauses = Vec::new();
        let mut params: Vec<String> = Vec::new();
        narrow(
            &[
                ("object =", &f.object),
                ("record =", &f.record),
                ("source =", &f.source),
                ("actor =", &f.actor),
                ("at >=", &f.since),
            ],
            &mut clauses,
            &mut params,
        );
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let limit = f.limit.map(|l| l as i64).unwrap_or(-1);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM crmgate_events {where_sql} ORDER BY seq DESC LIMIT {limit}"
            ))
            .map_err(db_err)?;
        stmt.query_map(rusqlite::params_from_iter(params.iter()), event_from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)
    }
}

impl Store {
    /// Runs `f` in a write transaction and always rolls it back: the dry run goes through the
    /// very code that applies, and leaves the store as it was.
    pub fn write_and_roll_back<T>(
        &mut self,
        now: &str,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut w = self.writer(now)?;
        let out = f(&mut w);
        w.tx.rollback().map_err(db_err)?;
        out
    }
}

/// Reads a stored word as one of the model's enums; a word the model does not know (a store
/// edited by hand, or written by a newer crmgate) is an error that names it, never a guess. The
/// word is quoted as Rust's `Debug` does, so its control characters come out escaped.
fn stored_word<T>(v: ValueRef<'_>, what: &str, parse: fn(&str) -> Option<T>) -> FromSqlResult<T> {
    let word = v.as_str()?;
    parse(word).ok_or_else(|| {
        FromSqlError::Other(format!("the store holds an unknown {what} {word:?}").into())
    })
}

impl FromSql for State {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        stored_word(v, "proposal state", State::parse)
    }
}

impl FromSql for Kind {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        stored_word(v, "proposal kind", Kind::parse)
    }
}

impl FromSql for Action {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        stored_word(v, "decision", Action::parse)
    }
}

impl ToSql for State {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.as_str().as_bytes(),
        )))
    }
}

impl ToSql for Kind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.as_str().as_bytes(),
        )))
    }
}

impl ToSql for Action {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.as_str().as_bytes(),
        )))
    }
}
