//! A scratch directory with a store holding the bundled companies and contacts, the binary run
//! in it with a controlled environment, and the store read back as text.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const HEADER: &str =
    "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n";

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        env.cmd(&["init"]).assert().success();
        for t in ["companies", "contacts"] {
            let f = Path::new(ROOT).join(format!("fixtures/crm/{t}.csv"));
            env.cmd(&["import", t, f.to_str().unwrap()])
                .assert()
                .success();
        }
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `content` to `rel`, creating its directory.
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// `crmgate --db crm.db ARGS` in the scratch directory, as alice, at a fixed time.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("crmgate").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("CRMGATE_DB")
            .env("CRMGATE_USER", "alice")
            .env("CRMGATE_NOW", "2026-12-01T09:00:00Z")
            .env("CRMGATE_TEST_CLOCK", "1")
            .env("NO_COLOR", "1")
            .args(["--db", "crm.db"])
            .args(args);
        c
    }

    pub fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("crm.db")).unwrap()
    }

    /// Each row of `sql`, its columns as text joined by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        use rusqlite::types::ValueRef;
        let conn = self.conn();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    ValueRef::Null => "null".to_string(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    ValueRef::Blob(b) => format!("{b:?}"),
                })
                .collect();
            out.push(cells.join("|"));
        }
        out
    }
}
