//! No side doors: who may decide is read from the policy in force, every actor is on the record
//! next to the OS user who ran the command, rules see the records a target references, and a
//! source is bound to who may submit for it. Each case drives the real binary and checks the
//! store.

use std::path::PathBuf;

use assert_cmd::Command;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A demo store: the demo data, its proposals, and the demo policy.
    fn demo() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        ok(env.cmd(&["init", "--demo"]));
        env
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("crm.db")
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write");
        p.display().to_string()
    }

    /// `crmgate --db <store> ARGS` as `alice` (an admin in the demo policy), at a fixed time.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("crmgate").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("CRMGATE_DB")
            .env("CRMGATE_USER", "alice")
            .env("CRMGATE_NOW", "2026-01-02T03:04:05Z")
            .env("NO_COLOR", "1")
            .env("CRMGATE_BUSY_TIMEOUT_MS", "300")
            .env("COLUMNS", "400")
            .arg("--db")
            .arg(self.db())
            .args(args);
        c
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open store")
    }

    fn one<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.conn().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    fn state(&self, source_id: &str) -> String {
        let (source, id) = source_id.split_once(':').unwrap();
        self.one(&format!(
            "SELECT state FROM crmgate_proposals WHERE source = '{source}' AND ext_id = '{id}'"
        ))
    }

    /// The policy in force, as installed.
    fn policy_text(&self) -> String {
        ok(self.cmd(&["policy", "show"])).0
    }
}

/// (stdout, stderr) of a command that must succeed.
fn ok(mut c: impl std::borrow::BorrowMut<Command>) -> (String, String) {
    let out = c.borrow_mut().output().expect("run");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "failed:\n{o}\n{e}");
    (o, e)
}

/// stderr of a command that must exit with `code`.
fn exits(mut c: impl std::borrow::BorrowMut<Command>, code: i32) -> (String, String) {
    let out = c.borrow_mut().output().expect("run");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(code), "exit:\n{o}\n{e}");
    (o, e)
}

/// The policy in force with one more rule: every update takes a manager.
fn updates_need_a_manager(env: &Env) -> String {
    format!(
        "{}\n[[rule]]\nname = \"updates-need-manager\"\nkind = [\"update\"]\naction = \"review\"\napprovers = [\"manager\"]\n",
        env.policy_text()
    )
}

#[test]
fn approvals_are_checked_against_the_policy_in_force_not_the_one_at_ingest() {
    let env = Env::demo();
    // Under the demo policy no rule names approvers for these two title and phone updates.
    ok(env.cmd(&["--as", "bob", "approve", "clearbit:cb-107"]));
    assert_eq!(env.state("clearbit:cb-107"), "approved");
    let stricter = env.write("stricter.toml", updates_need_a_manager(&env));
    let (table, said) = ok(env.cmd(&["policy", "test", &stricter]));
    assert!(
        table.contains("clearbit:cb-107") && table.contains("bob"),
        "{table}"
    );
    assert!(
        said.contains("would no longer permit 1 approval by a person"),
        "{said}"
    );
    let (table, said) = ok(env.cmd(&["policy", "set", &stricter]));
    assert!(table.contains("clearbit:cb-107"), "{table}");
    assert!(
        said.contains("no longer permits 1 approval by a person"),
        "{said}"
    );
    // bob is an sdr: the proposal stored no approvers at ingest, but the policy in force asks
    // for a manager.
    let (_, e) = exits(env.cmd(&["--as", "bob", "approve", "clearbit:cb-108"]), 1);
    assert!(e.contains("takes the role manager"), "{e}");
    assert_eq!(env.state("clearbit:cb-108"), "pending");
    let (_, e) = exits(
        env.cmd(&["--as", "bob", "reject", "clearbit:cb-108", "--reason", "no"]),
        1,
    );
    assert!(e.contains("takes the role manager"), "{e}");
    ok(env.cmd(&["--as", "mia", "approve", "clearbit:cb-108"]));
    assert_eq!(env.state("clearbit:cb-108"), "approved");
}
