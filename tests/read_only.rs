//! Commands that only read the store open it read-only: a user who may read the store file but
//! not write it (nor, where it can be helped, its directory) can run `status`, `list`,
//! `export` and `audit verify`; they never migrate a store, and say so when one needs it.
//!
//! A file's mode does not stop root from writing it, so when the tests run as root the
//! commands run as `nobody` (through `setpriv`); without `setpriv` those tests say so and stop.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crmgate::store::{OpenMode, SCHEMA_VERSION, Store, migrations};

mod common;

use common::Env;

/// The reading commands the issue named, each with what it prints on success.
const READS: [(&[&str], &str); 4] = [
    (&["status"], "Queue:"),
    (&["list"], "Head of Data"),
    (&["export", "contacts"], "c-1001"),
    (&["audit", "verify"], "the chain is unbroken"),
];

/// `crmgate --db DB ARGS` as a user the file's mode applies to: `nobody` when the tests run as
/// root, else the user running them; `None` when that cannot be arranged here.
fn as_reader(db: &Path, args: &[&str]) -> Option<std::process::Command> {
    let root = crmgate::actor::os_user() == "root";
    let mut c = if root {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let mut c = std::process::Command::new(setpriv);
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::BIN,
        ]);
        c
    } else {
        std::process::Command::new(common::BIN)
    };
    common::controlled(&mut c);
    c.env("CRMGATE_NOW", common::NOW)
        .arg("--db")
        .arg(db)
        .args(args);
    Some(c)
}

/// What `args` did run as a reader of `db`: its exit status, stdout and stderr. `None`, saying
/// so, when the tests run as root with no setpriv, where a file's mode stops nothing.
fn read_as_reader(db: &Path, args: &[&str]) -> Option<(std::process::ExitStatus, String, String)> {
    let Some(mut c) = as_reader(db, args) else {
        eprintln!("skipped: running as root without setpriv, a file's mode stops nothing");
        return None;
    };
    let out = c.output().unwrap();
    Some((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A store made by `init` (whose policy names no roles: every actor may read and export), with
/// the demo's companies and contacts and a proposal, in a directory of its own with mode `dir_mode`, the store
/// file read-only to all, nothing beside it.
fn read_only_store(env: &Env, dir_mode: u32) -> std::path::PathBuf {
    let dir = env.path("shared");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("crm.db");
    let mut init = assert_cmd::Command::from_std(common::crmgate());
    init.args(["--db", db.to_str().unwrap(), "init"])
        .assert()
        .success();
    for t in ["companies", "contacts"] {
        let mut import = assert_cmd::Command::from_std(common::crmgate());
        import
            .args(["--db", db.to_str().unwrap(), "import", t])
            .arg(common::fixture(&format!("crm/{t}.csv")))
            .assert()
            .success();
    }
    let p = env.write(
        "p.csv",
        format!(
            "{}t-1,bot,update,contacts,c-1001,title,Head of Data,,0.5,,,\n",
            common::HEADER
        ),
    );
    let mut propose = assert_cmd::Command::from_std(common::crmgate());
    propose
        .args(["--db", db.to_str().unwrap(), "propose", &p])
        .assert()
        .success();
    assert!(
        !dir.join("crm.db-wal").exists(),
        "the last writer closed the log"
    );
    chmod(&db, 0o444);
    chmod(&dir, dir_mode);
    chmod(env.dir.path(), 0o755);
    db
}

fn reads_succeed(env: &Env, dir_mode: u32) {
    let db = read_only_store(env, dir_mode);
    let before = std::fs::read(&db).unwrap();
    for (args, shows) in READS {
        let Some((status, stdout, stderr)) = read_as_reader(&db, args) else {
            return;
        };
        assert!(status.success(), "{args:?}: {stderr}");
        assert!(
            stdout.contains(shows) || stderr.contains(shows),
            "{args:?}: {stdout}{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the store file is as it was"
    );
    // A command that writes is refused, saying why, and writes nothing.
    let mut c = as_reader(&db, &["approve", "bot:t-1"]).unwrap();
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("may not be written by this user") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before);
    chmod(db.parent().unwrap(), 0o755);
}

#[test]
fn reading_commands_read_a_store_file_the_user_may_not_write_in_a_directory_they_may() {
    reads_succeed(&Env::new(), 0o777);
}

#[test]
fn reading_commands_read_a_store_file_the_user_may_not_write_in_a_directory_they_may_not() {
    reads_succeed(&Env::new(), 0o555);
}

/// A store as the crmgate before this one left it: every migration but the last, and a
/// contacts table.
fn store_one_migration_behind(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for sql in &migrations()[..SCHEMA_VERSION as usize - 1] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION - 1)
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE contacts (id TEXT PRIMARY KEY NOT NULL, first_name TEXT, title TEXT);
         INSERT INTO contacts VALUES ('c-1', 'Ada', NULL);",
    )
    .unwrap();
    let policy = "[[rule]]\nname = \"everything\"\naction = \"review\"\n";
    conn.execute(
        "INSERT INTO crmgate_policies (version, at, actor, sha256, text) VALUES (1, ?1, 'ops', ?2, ?3)",
        rusqlite::params![common::NOW, crmgate::audit::sha256_hex(policy.as_bytes()), policy],
    )
    .unwrap();
}

#[test]
fn a_reading_command_on_a_store_that_needs_migrating_says_so_names_init_and_changes_nothing() {
    let env = Env::new();
    store_one_migration_behind(&env.db());
    let before = std::fs::read(env.db()).unwrap();
    for (args, _) in READS {
        let err = common::refused(env.cmd(args));
        assert!(
            err.contains("must be migrated before it can be read"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("hint:") && err.contains("`crmgate init --db"),
            "{args:?}: {err}"
        );
    }
    let opened = Store::open(&env.db(), OpenMode::Read);
    assert!(opened.is_err(), "the library refuses it the same way");
    assert_eq!(std::fs::read(env.db()).unwrap(), before, "not migrated");
    assert_eq!(env.count("PRAGMA user_version"), SCHEMA_VERSION - 1);
    // The command the hint names migrates it; then it reads.
    env.cmd(&["init"]).assert().success();
    assert_eq!(env.count("PRAGMA user_version"), SCHEMA_VERSION);
    env.cmd(&["status"]).assert().success();
}

#[test]
fn a_store_opened_to_read_cannot_be_written_through_the_library() {
    let env = Env::demo();
    let before = env.dump();
    let mut store = Store::open(&env.db(), OpenMode::Read).unwrap();
    assert!(store.count_approved(None).unwrap() > 0, "it reads");
    let wrote = store.write(common::NOW, |w| w.pause(None, "x", "alice"));
    assert!(wrote.is_err(), "a read-only store takes no write");
    drop(store);
    assert_eq!(env.dump(), before);
}

#[test]
fn a_store_whose_log_holds_changes_is_not_read_without_them() {
    let env = Env::new();
    let src = read_only_store(&env, 0o755);
    chmod(&src, 0o644);
    // A change left in the write-ahead log, as by a writer still open or one that crashed.
    let conn = rusqlite::Connection::open(&src).unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint = 0; UPDATE contacts SET title = 'Only in the log' WHERE id = 'c-1001';",
    )
    .unwrap();
    for (dir_mode, readable) in [(0o555, false), (0o777, true)] {
        let dir = env.path(&format!("copy-{dir_mode:o}"));
        std::fs::create_dir(&dir).unwrap();
        let db = dir.join("crm.db");
        std::fs::copy(&src, &db).unwrap();
        std::fs::copy(src.with_extension("db-wal"), dir.join("crm.db-wal")).unwrap();
        assert!(std::fs::metadata(dir.join("crm.db-wal")).unwrap().len() > 0);
        chmod(&db, 0o444);
        chmod(&dir.join("crm.db-wal"), 0o444);
        chmod(&dir, dir_mode);
        let Some((status, stdout, stderr)) = read_as_reader(&db, &["export", "contacts"]) else {
            return;
        };
        if readable {
            assert!(status.success(), "{stderr}");
            assert!(stdout.contains("Only in the log"), "{stdout}");
        } else {
            assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
            assert!(stderr.contains("cannot be read"), "{stderr}");
            assert!(stderr.contains("`crmgate init --db"), "{stderr}");
        }
        chmod(&dir, 0o755);
    }
    drop(conn);
}
