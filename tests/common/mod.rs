//! The harness every integration test shares: the `crmgate` binary in a controlled environment
//! (no inherited store or settings, no colour; fixed time and user where a test reads them), a
//! scratch directory with its own store, and dumps of a store to compare whole.
//!
//! Each test file is its own crate and uses part of this, so what one file leaves unused is fine.
#![allow(dead_code)]

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

/// A path under `fixtures/`.
pub fn fixture(rel: &str) -> String {
    Path::new(ROOT)
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

/// A scratch directory with its own store.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("crm.db")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write");
        p
    }

    /// `crmgate --db <store> ARGS` with a controlled environment, run in the scratch directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::from_std(crmgate());
        c.current_dir(self.dir.path())
            .env("CRMGATE_USER", "tester")
            .env("CRMGATE_NOW", NOW)
            .env("CRMGATE_BUSY_TIMEOUT_MS", "300")
            .arg("--db")
            .arg(self.db())
            .args(args);
        c
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

    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open store")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// Every row of every table, in a stable order: "the store holds exactly what it held".
    pub fn dump(&self) -> String {
        dump(&self.db())
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
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            out.push_str(&cells.join("|"));
            out.push('\n');
        }
    }
    out
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
