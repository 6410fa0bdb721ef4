//! The harness every integration test shares: the `crmgate` binary in a controlled environment
//! (no inherited store or settings, no colour; fixed time; acting as the OS user running the tests), a
//! scratch directory with its own store, and dumps of a store to compare whole.
//!
//! Each test file is its own crate and uses part of this, so what one file leaves unused is fine.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_crmgate");

/// The time every [`Env`] command runs at.
pub const NOW: &str = "2026-01-02T03:04:05Z";

/// The header of a proposals CSV with every column.
pub const HEADER: &str =
    "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n";

/// The binary with nothing inherited that changes what it does: no `CRMGATE_*` variable (so no
/// store from `CRMGATE_DB`, no user, time or tuning), no colour, and tables wide enough that
/// no value is wrapped (piped output is otherwise 80 columns). Callers add what they fix.
pub fn crmgate() -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    controlled(&mut c);
    c
}

/// The environment of [`crmgate`] on any command (a shell running `crmgate` lines, say).
pub fn controlled(c: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CRMGATE_") {
            c.env_remove(name);
        }
    }
    c.env("NO_COLOR", "1");
    c.env("COLUMNS", "400");
}

/// The OS user running the tests, as crmgate names it on every event.
pub fn os_user() -> &'static str {
    crmgate::actor::os_user()
}

/// `text`, a policy, with the OS user running the tests added to its `[roles]` as an admin. The
/// harness acts as that OS user unless a test says `--as`; with `[roles]` set, crmgate lets an OS
/// user act as a named person (`--as alice`) only when it holds admin, as `sudo -u` needs root,
/// and an actor holding no role decides nothing. Tests of those refusals act `--as` a person the
/// policy names without admin.
pub fn with_test_admins(text: &str) -> String {
    let line = format!("\"{}\" = [\"admin\"]\n", os_user());
    match text.find("\n[roles]") {
        Some(i) => {
            let at = text[i + 1..].find('\n').map_or(text.len(), |j| i + 2 + j);
            format!("{}{line}{}", &text[..at], &text[at..])
        }
        None => format!("{text}\n[roles]\n{line}"),
    }
}

/// A path under `fixtures/`.
pub fn fixture(rel: &str) -> String {
    Path::new(ROOT)
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

/// The demo policy's text (`fixtures/policy/demo.toml`).
pub fn demo_policy() -> String {
    std::fs::read_to_string(fixture("policy/demo.toml")).expect("the demo policy")
}

/// A file a test wrote: its path, as a `&str` argument (`&file`) or as a path.
pub struct Written(String);

impl Written {
    pub fn to_str(&self) -> Option<&str> {
        Some(&self.0)
    }

    pub fn display(&self) -> &str {
        &self.0
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl Deref for Written {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for Written {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

impl AsRef<OsStr> for Written {
    fn as_ref(&self) -> &OsStr {
        OsStr::new(&self.0)
    }
}

impl AsRef<str> for Written {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A scratch directory with its own store, and who acts in it.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// `CRMGATE_USER` of every [`Env::cmd`]: none (the OS user running the tests acts), or
    /// `alice` (an admin) in a demo store.
    pub user: Option<&'static str>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            user: None,
        }
    }

    /// A store made by `init --demo` (the bundled records, proposals and demo policy), acted on
    /// by `alice`, who holds ops and admin in the demo policy.
    pub fn demo() -> Env {
        let env = Env {
            user: Some("alice"),
            ..Env::new()
        };
        env.cmd(&["init", "--demo"]).assert().success();
        env
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("crm.db")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> Written {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write");
        Written(p.display().to_string())
    }

    /// A policy file in the scratch directory: `text` with the test admins (see
    /// [`with_test_admins`]), so that the tests may act as the people it names.
    pub fn policy(&self, name: &str, text: &str) -> String {
        self.write(name, with_test_admins(text))
            .display()
            .to_string()
    }

    /// A policy from `fixtures/policy/`, with the test admins: see [`Env::policy`].
    pub fn fixture_policy(&self, name: &str) -> String {
        let text = std::fs::read_to_string(fixture(&format!("policy/{name}"))).expect("fixture");
        self.policy(name, &text)
    }

    /// Proposes `rows` (lines under [`HEADER`]) from a file `name` in the scratch directory.
    pub fn propose_rows(&self, name: &str, rows: &str) {
        let f = self.write(name, format!("{HEADER}{rows}"));
        self.cmd(&["propose", &f]).assert().success();
    }

    /// Proposes `file` under `--skip-invalid` with the rejects file `rejects.csv` in the scratch
    /// directory, expects exit 3 (some rows were set aside), and returns the rejects' rows.
    pub fn propose_skipping(&self, file: &str) -> Vec<csv::StringRecord> {
        let rejects = self.path("rejects.csv");
        self.cmd(&[
            "propose",
            file,
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
        ])
        .assert()
        .code(3);
        let mut rdr = csv::Reader::from_path(&rejects).unwrap();
        rdr.records().map(Result::unwrap).collect()
    }

    /// Two contacts, m-2 a duplicate of m-1 whose title is empty, imported into the store; then
    /// dedupe-bot:mg-1 proposes merging m-2 into m-1 and clearbit:t-1 fills m-1's title with CTO.
    pub fn ada_pair_merge_and_title(&self) {
        let c = self.write(
            "pair.csv",
            "id,first_name,last_name,email\n\
             m-1,Ada,Byron,ada@example.com\n\
             m-2,Ada,Byron,ada@example.org\n",
        );
        self.cmd(&["import", "contacts", &c]).assert().success();
        self.propose_rows(
            "merge.csv",
            "mg-1,dedupe-bot,merge,contacts,m-2,,,m-1,0.99,,,\n",
        );
        self.propose_rows(
            "title.csv",
            "t-1,clearbit,update,contacts,m-1,title,CTO,,0.95,,,\n",
        );
    }

    /// `crmgate --db <store> ARGS` with a controlled environment, run in the scratch directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::from_std(crmgate());
        c.current_dir(self.dir.path())
            .env("CRMGATE_NOW", NOW)
            .env("CRMGATE_TEST_CLOCK", "1")
            .env("CRMGATE_BUSY_TIMEOUT_MS", "300")
            .arg("--db")
            .arg(self.db())
            .args(args);
        if let Some(user) = self.user {
            c.env("CRMGATE_USER", user);
        }
        c
    }

    /// `crmgate --db <store>` as `actor` on a 120×50 xterm, for a pseudo-terminal session.
    pub fn terminal(&self, actor: &str) -> std::process::Command {
        let mut c = crmgate();
        c.current_dir(self.dir.path())
            .env("CRMGATE_USER", actor)
            .env("CRMGATE_NOW", NOW)
            .env("CRMGATE_TEST_CLOCK", "1")
            .env("TERM", "xterm")
            .env("COLUMNS", "120")
            .env("LINES", "50")
            .arg("--db")
            .arg(self.db());
        c
    }

    /// A store under `policy` (the test admins added) with `n` contacts (`k-000`, `k-001`, …),
    /// and beside it `proposals.csv`, not yet proposed: a title and a phone for each contact
    /// from clearbit, at `confidence`.
    pub fn with_contacts_and_fills(n: usize, confidence: &str, policy: &str) -> Env {
        let env = Env::new();
        env.cmd(&["init"]).assert().success();
        let p = env.policy("policy.toml", policy);
        env.cmd(&["policy", "set", &p]).assert().success();
        let mut contacts = String::from("id,first_name\n");
        let mut proposals = String::from(HEADER);
        for i in 0..n {
            contacts.push_str(&format!("k-{i:03},Kim\n"));
            proposals.push_str(&format!(
                "t-{i},clearbit,update,contacts,k-{i:03},title,Engineer {i},,{confidence},,,\n\
                 p-{i},clearbit,update,contacts,k-{i:03},phone,+1 415 555 {i:04},,{confidence},,,\n"
            ));
        }
        let c = env.write("contacts.csv", contacts);
        env.cmd(&["import", "contacts", &c]).assert().success();
        env.write("proposals.csv", proposals);
        env
    }

    /// A store with the bundled demo CRM records but no proposals.
    pub fn with_crm() -> Env {
        let env = Env::new();
        env.cmd(&["init"]).assert().success();
        for t in ["companies", "contacts", "deals", "activities"] {
            env.cmd(&["import", t, &fixture(&format!("crm/{t}.csv"))])
                .assert()
                .success();
        }
        env
    }

    /// A connection to the store, with foreign keys on as crmgate has them.
    pub fn conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.db()).expect("open store");
        conn.execute_batch("PRAGMA foreign_keys = ON")
            .expect("foreign keys");
        conn
    }

    /// The store through the library, as a program embedding crmgate opens it.
    pub fn store(&self) -> crmgate::store::Store {
        crmgate::store::Store::open(&self.db(), crmgate::store::OpenMode::Existing)
            .expect("open store")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.one(sql)
    }

    /// The one value `sql` selects.
    pub fn one<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.conn().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// The first column of every row `sql` selects.
    pub fn column<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<T> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql).expect(sql);
        stmt.query_map([], |r| r.get(0))
            .expect(sql)
            .map(Result::unwrap)
            .collect()
    }

    /// The one value `sql` selects, as text (`NULL` for none).
    pub fn text(&self, sql: &str) -> String {
        use rusqlite::types::Value;
        match self.one(sql) {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) => t,
            Value::Blob(b) => format!("{b:?}"),
        }
    }

    /// The state of the proposal `SOURCE:ID`.
    pub fn state(&self, source_id: &str) -> String {
        let (source, id) = source_id.split_once(':').expect("SOURCE:ID");
        self.one(&format!(
            "SELECT state FROM crmgate_proposals WHERE source = '{source}' AND ext_id = '{id}'"
        ))
    }

    /// `record field before after` of every change of `run`, in order.
    pub fn changes(&self, run: i64) -> Vec<String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT object || '/' || record || ' ' || field || ' ' || quote(before) || ' ' ||
                 quote(after) FROM crmgate_changes WHERE run_id = ?1 ORDER BY id",
            )
            .unwrap();
        stmt.query_map([run], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every row of every table, in a stable order: "the store holds exactly what it held".
    pub fn dump(&self) -> String {
        dump(&self.db())
    }

    /// Every row of the named tables, in a stable order.
    pub fn dump_of(&self, tables: &[&str]) -> String {
        dump_tables(&self.db(), |t| tables.contains(&t))
    }
}

/// Every row of every table of the store at `db`, in a stable order.
pub fn dump(db: &Path) -> String {
    dump_tables(db, |_| true)
}

/// The CRM tables only (not crmgate's own), row by row: what a revert must restore exactly.
pub fn crm_dump_of(db: &Path) -> String {
    dump_tables(db, |t| {
        !t.starts_with("crmgate_") && !t.starts_with("sqlite_")
    })
}

pub fn crm_dump(env: &Env) -> String {
    crm_dump_of(&env.db())
}

/// Every row of the tables `keep` names, table by table, in a stable order.
fn dump_tables(db: &Path, keep: impl Fn(&str) -> bool) -> String {
    let conn = rusqlite::Connection::open(db).expect("open store");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for t in tables.into_iter().filter(|t| keep(t)) {
        out.push_str(&format!("== {t}\n"));
        out.push_str(&rows_text(
            &conn,
            &format!("SELECT * FROM \"{t}\" ORDER BY 1"),
        ));
    }
    out
}

/// The rows `sql` returns, a line each, its cells as SQLite holds them (type and value).
pub fn rows_text(conn: &rusqlite::Connection, sql: &str) -> String {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut out = String::new();
    while let Some(r) = rows.next().unwrap() {
        let cells: Vec<String> = (0..n)
            .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
            .collect();
        out.push_str(&cells.join("|"));
        out.push('\n');
    }
    out
}

/// (stdout, stderr) of a command that must succeed.
pub fn ok(mut c: impl std::borrow::BorrowMut<Command>) -> (String, String) {
    let out = c.borrow_mut().output().expect("run");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "failed:\n{o}\n{e}");
    (o, e)
}

/// stderr of a command that must exit 1.
pub fn refused(mut c: impl std::borrow::BorrowMut<Command>) -> String {
    let out = c.borrow_mut().output().expect("run");
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected a refusal:\n{e}");
    e
}

/// How long a pseudo-terminal session waits for a screen: generous, as CI machines are slow,
/// and a failed expectation says what was on screen.
pub const PTY_TIMEOUT_MS: u64 = 20_000;

/// Waits for `text` (ASCII) and returns everything printed before it. The pty session hands
/// over bytes one char each; they are put back together as the UTF-8 the binary wrote.
pub fn expect(p: &mut rexpect::session::PtySession, text: &str) -> String {
    let before = p
        .exp_string(text)
        .unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"));
    let bytes: Vec<u8> = before.chars().map(|c| c as u32 as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// How many events the store's audit log holds, each checked link by link.
pub fn audit_checked(store: &crmgate::store::Store) -> u64 {
    let mut v = crmgate::audit::Verifier::default();
    store
        .for_each_event(None, |e| {
            v.check(e).expect("the audit log verifies");
            Ok(())
        })
        .expect("read the audit log");
    v.checked
}

pub fn stdout_of(c: &mut Command) -> String {
    let out = c.output().expect("run");
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

pub fn json_of(c: &mut Command) -> serde_json::Value {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The first contact of the demo CRM with the given field empty / set.
pub fn contact_where(env: &Env, cond: &str) -> String {
    env.conn()
        .query_row(
            &format!("SELECT id FROM contacts WHERE {cond} ORDER BY id LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .expect(cond)
}
