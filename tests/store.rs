//! The store: `init`, existing CRM files, refusing what is not a store or is from a newer
//! crmgate, a write that does not read back, and a locked store.

mod common;

use predicates::prelude::*;

use common::{Env, HEADER, contact_where};

#[test]
fn init_creates_the_default_tables_once() {
    let env = Env::new();
    env.cmd(&["init"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "created companies, contacts, deals, activities",
        ));
    let before = env.dump();
    env.cmd(&["init"])
        .assert()
        .success()
        .stderr(predicate::str::contains("no tables needed creating"));
    assert_eq!(env.dump(), before, "a second init changes nothing");
    assert_eq!(
        env.count("PRAGMA user_version"),
        crmgate::store::SCHEMA_VERSION
    );
    let mode: String = env
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_store_from_a_newer_crmgate_is_refused() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    env.conn().pragma_update(None, "user_version", 99).unwrap();
    env.cmd(&["status"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("newer crmgate"))
        .stderr(predicate::str::contains("hint:"));
}

#[test]
fn a_missing_store_says_how_to_create_one() {
    let env = Env::new();
    env.cmd(&["status"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no crmgate store"))
        .stderr(predicate::str::contains("crmgate init"));
    assert!(!env.db().exists(), "a read command never creates the store");
}

#[test]
fn a_plain_sqlite_file_is_not_taken_for_a_store() {
    let env = Env::new();
    env.conn()
        .execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY)")
        .unwrap();
    env.cmd(&["status"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a crmgate store"));
}

#[test]
fn an_existing_crm_file_works_with_its_own_tables() {
    let env = Env::new();
    env.conn()
        .execute_batch(
            "CREATE TABLE people (pid INTEGER PRIMARY KEY, full_name TEXT NOT NULL, work_email TEXT, score REAL);
             CREATE TABLE tags (person INTEGER, tag TEXT, PRIMARY KEY (person, tag));
             INSERT INTO people VALUES (7, 'Ada', NULL, 0.5);",
        )
        .unwrap();
    env.cmd(&["init"]).assert().success();
    let p = env.write(
        "p.csv",
        format!(
            "{HEADER}a1,crm-bot,update,people,7,work_email,ada@example.org,,,,,\na2,crm-bot,update,people,7,score,0.75,,,,,\n"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE object = 'people' AND state = 'pending'"
        ),
        2
    );
    let bad = env.write(
        "bad.csv",
        format!("{HEADER}b1,crm-bot,update,people,7,work_email,not-mail,,,,,\nb2,crm-bot,update,tags,1,tag,x,,,,,\n"),
    );
    env.cmd(&["propose", bad.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "bad.csv:2: work_email: \"not-mail\" is not a valid email address",
        ))
        .stderr(predicate::str::contains(
            "bad.csv:3: object \"tags\" cannot be used: it has a composite primary key",
        ));
}

#[test]
fn a_write_that_does_not_read_back_as_written_is_undone_and_marked_failed() {
    // A NUMERIC column stores 2.0 as the integer 2: the read-back differs from what was
    // written, so the write must not stand. `plain` has no triggers (the write is put back);
    // `watched` has one that logs every update (a savepoint undoes the trigger's row too).
    let env = Env::new();
    env.conn()
        .execute_batch(
            "CREATE TABLE plain (id TEXT PRIMARY KEY, revenue NUMERIC, note TEXT);
             CREATE TABLE watched (id TEXT PRIMARY KEY, revenue NUMERIC, note TEXT);
             CREATE TABLE watch_log (what TEXT);
             CREATE TRIGGER watched_log AFTER UPDATE ON watched
               BEGIN INSERT INTO watch_log VALUES (new.id); END;
             INSERT INTO plain VALUES ('a', 7, NULL);
             INSERT INTO watched VALUES ('a', 7, NULL);",
        )
        .unwrap();
    env.cmd(&["init"]).assert().success();
    let p = env.write(
        "p.csv",
        format!(
            "{HEADER}r1,bot,update,plain,a,revenue,2.0,,,,,\nr2,bot,update,watched,a,revenue,2.0,,,,,\n\
             n1,bot,update,plain,a,note,checked,,,,,\nn2,bot,update,watched,a,note,checked,,,,,\n"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["approve", "bot:r1", "bot:r2", "bot:n1", "bot:n2"])
        .assert()
        .success();
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("read back 2 instead of 2.0"));
    let state = |id: &str| -> String {
        env.conn()
            .query_row(
                "SELECT state FROM crmgate_proposals WHERE ext_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(state("r1"), "failed");
    assert_eq!(state("r2"), "failed");
    assert_eq!(state("n1"), "applied");
    assert_eq!(state("n2"), "applied");
    for t in ["plain", "watched"] {
        let (rev, ty, note): (i64, String, String) = env
            .conn()
            .query_row(
                &format!("SELECT revenue, typeof(revenue), note FROM {t} WHERE id = 'a'"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (rev, ty.as_str(), note.as_str()),
            (7, "integer", "checked"),
            "{t}"
        );
    }
    // Only the applied note's update fired the trigger; the failed write's row is gone.
    assert_eq!(env.count("SELECT count(*) FROM watch_log"), 1);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE field = 'revenue'"),
        0
    );
}

#[test]
fn a_locked_store_exits_75_and_changes_nothing() {
    let env = Env::with_crm();
    let id = contact_where(&env, "title IS NOT NULL");
    let p = env.write(
        "p.csv",
        format!("{HEADER}l1,clearbit,update,contacts,{id},title,CEO,,,,,\n"),
    );
    let before = env.dump();
    let holder = env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("locked"));
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(env.dump(), before);
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
}
