//! Tests that drive the real `crmgate` binary with a controlled environment (fixed time and
//! user, no colour, no inherited store) and check the outcome in the store itself.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A scratch directory with its own store.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("crm.db")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).expect("write");
        p
    }

    /// `crmgate --db <store> ARGS` with a controlled environment, run in the scratch directory.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("crmgate").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("CRMGATE_DB")
            .env("CRMGATE_USER", "tester")
            .env("CRMGATE_NOW", "2026-01-02T03:04:05Z")
            .env("NO_COLOR", "1")
            .env("CRMGATE_BUSY_TIMEOUT_MS", "300")
            .arg("--db")
            .arg(self.db())
            .args(args);
        c
    }

    /// A store with the bundled demo CRM records but no proposals.
    fn with_crm() -> Env {
        let env = Env::new();
        env.cmd(&["init"]).assert().success();
        for t in ["companies", "contacts", "deals", "activities"] {
            env.cmd(&["import", t, &fixture(&format!("crm/{t}.csv"))])
                .assert()
                .success();
        }
        env
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open store")
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    /// Every row of every table, in a stable order: "the store holds exactly what it held".
    fn dump(&self) -> String {
        let conn = self.conn();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut out = String::new();
        for t in tables {
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
}

fn fixture(rel: &str) -> String {
    Path::new(ROOT)
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn stdout_of(c: &mut Command) -> String {
    let out = c.output().expect("run");
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn json_of(c: &mut Command) -> serde_json::Value {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

const HEADER: &str =
    "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n";

/// The first contact of the demo CRM with the given field empty / set.
fn contact_where(env: &Env, cond: &str) -> String {
    env.conn()
        .query_row(
            &format!("SELECT id FROM contacts WHERE {cond} ORDER BY id LIMIT 1"),
            [],
            |r| r.get(0),
        )
        .expect(cond)
}

// ---------------------------------------------------------------- store

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

// ---------------------------------------------------------------- import / export

#[test]
fn import_then_export_round_trips() {
    let env = Env::with_crm();
    let csv = stdout_of(&mut env.cmd(&["export", "contacts"]));
    let original = std::fs::read_to_string(fixture("crm/contacts.csv")).unwrap();
    assert_eq!(csv.lines().count(), original.lines().count());
    // Re-importing the export changes nothing.
    let before = env.dump();
    let out = env.write("contacts.csv", &csv);
    env.cmd(&["import", "contacts", out.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "0 inserted, 0 updated, 1000 unchanged",
        ));
    assert_eq!(env.dump(), before);
    // JSON export into a fresh store reproduces the table.
    let fresh = Env::new();
    fresh.cmd(&["init"]).assert().success();
    for t in ["companies", "contacts"] {
        let json = stdout_of(&mut env.cmd(&["export", t, "--format", "json"]));
        let f = fresh.write(&format!("{t}.json"), json);
        fresh
            .cmd(&["import", t, f.to_str().unwrap()])
            .assert()
            .success();
    }
    let rows = |e: &Env| {
        let mut s = e.dump();
        s = s
            .split("== contacts\n")
            .nth(1)
            .unwrap()
            .split("== ")
            .next()
            .unwrap()
            .to_string();
        s
    };
    assert_eq!(rows(&fresh), rows(&env));
}

#[test]
fn import_refuses_a_bad_row_and_writes_nothing() {
    let env = Env::with_crm();
    let before = env.dump();
    let f = env.write(
        "c.csv",
        "id,first_name,email,company_id\nn-1,Ann,ann@acme.com,\nn-2,Ben,ben@,\nn-3,Cy,cy@acme.com,co-nope\n",
    );
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "c.csv:3: email: \"ben@\" is not a valid email address",
        ))
        .stderr(predicate::str::contains(
            "c.csv:4: company_id: \"co-nope\" does not exist in companies",
        ));
    assert_eq!(env.dump(), before);
}

#[test]
fn export_can_neutralise_formulas_for_spreadsheets() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "c.csv",
        format!("id,title\n{id},=HYPERLINK(\"http://x\")\n"),
    );
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    let raw = stdout_of(&mut env.cmd(&["export", "contacts"]));
    assert!(
        raw.contains(",\"=HYPERLINK(\"\"http://x\"\")\","),
        "exact by default"
    );
    let safe = stdout_of(&mut env.cmd(&["export", "contacts", "--spreadsheet-safe"]));
    assert!(
        safe.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","),
        "neutralised when asked"
    );
}

// ---------------------------------------------------------------- propose

#[test]
fn proposals_are_queued_pending_with_the_value_at_ingest() {
    let env = Env::with_crm();
    let empty = contact_where(&env, "phone IS NULL");
    let set = contact_where(&env, "title IS NOT NULL");
    let title: String = env
        .conn()
        .query_row("SELECT title FROM contacts WHERE id = ?1", [&set], |r| {
            r.get(0)
        })
        .unwrap();
    let p = env.write(
        "p.csv",
        format!(
            "{HEADER}p-1,clearbit,update,contacts,{empty},phone,+1 415 555 0100,,0.9,,,found\np-2,clearbit,update,contacts,{set},title,Chief Vibes Officer,,0.4,,,\n"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("queued 2 proposals (2 update)"))
        // The default policy has no sources: every source is supervised, so both wait.
        .stderr(predicate::str::contains("decisions: 2 wait for review"));
    let conn = env.conn();
    let (state, baseline): (String, Option<String>) = conn
        .query_row(
            "SELECT state, baseline FROM crmgate_proposals WHERE ext_id = 'p-2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "pending");
    assert_eq!(baseline.as_deref(), Some(title.as_str()));
    let baseline: Option<String> = conn
        .query_row(
            "SELECT baseline FROM crmgate_proposals WHERE ext_id = 'p-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(baseline, None);
    // The record itself is untouched: proposing is not applying.
    let phone: Option<String> = conn
        .query_row("SELECT phone FROM contacts WHERE id = ?1", [&empty], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(phone, None);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action = 'ingest'"),
        1
    );
}

#[test]
fn signals_and_rules_that_repeat_are_kept_in_each_row_and_read_back_the_same() {
    let env = Env::with_crm();
    let empty: Vec<String> = env
        .conn()
        .prepare("SELECT id FROM contacts WHERE phone IS NULL ORDER BY id LIMIT 3")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(empty.len(), 3);
    // Three fills of an empty field at the same stated confidence: the same signals each time.
    let rows: String = empty
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!("s-{i},clearbit,update,contacts,{id},phone,+1 415 555 010{i},,0.9,,,found\n")
        })
        .collect();
    let p = env.write("p.csv", format!("{HEADER}{rows}"));
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    // Each proposal keeps its own signals and rules, in its own row.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE signals IS NOT NULL AND rules IS NOT NULL"
        ),
        3
    );
    let shown = |id: &str| {
        let v = json_of(&mut env.cmd(&["show", id, "--json"]));
        (v["signals"].clone(), v["proposal"]["rules"].clone())
    };
    let inline = shown("clearbit:s-0");
    assert!(
        inline.0.to_string().contains("fills an empty field"),
        "{:?}",
        inline.0
    );
    assert!(
        inline.1.to_string().contains("supervised"),
        "{:?}",
        inline.1
    );
    assert_eq!(shown("clearbit:s-1"), inline);
    assert_eq!(shown("clearbit:s-2"), inline);
}

#[test]
fn reingesting_the_same_file_or_a_shuffled_copy_changes_nothing() {
    let env = Env::with_crm();
    let file = fixture("proposals/generated.csv");
    env.cmd(&["propose", &file]).assert().success();
    let before = env.dump();
    env.cmd(&["propose", &file])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing new"));
    assert_eq!(env.dump(), before, "same file");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    lines.reverse();
    let third = lines.len() / 3;
    lines.rotate_left(third);
    let shuffled = env.write("shuffled.csv", format!("{header}\n{}\n", lines.join("\n")));
    env.cmd(&["propose", shuffled.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing new"));
    assert_eq!(env.dump(), before, "shuffled copy");
}

#[test]
fn rows_without_an_id_are_idempotent_by_content() {
    let env = Env::with_crm();
    let id = contact_where(&env, "title IS NOT NULL");
    let body = format!("{HEADER},zoominfo,update,contacts,{id},title,Head of Ops,,0.7,,,\n");
    let f = env.write("noid.csv", &body);
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    let before = env.dump();
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing new"));
    assert_eq!(env.dump(), before);
}

#[test]
fn a_reused_id_with_different_content_is_refused() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let a = env.write(
        "a.csv",
        format!("{HEADER}x-1,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    let b = env.write(
        "b.csv",
        format!("{HEADER}x-1,clearbit,update,contacts,{id},title,CFO,,,,,\n"),
    );
    env.cmd(&["propose", a.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["propose", b.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "b.csv:2: clearbit:x-1 was already ingested as proposal 1 with different content",
        ));
}

#[test]
fn a_newer_proposal_supersedes_an_undecided_one_for_the_same_field() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let a = env.write(
        "a.csv",
        format!("{HEADER}s-1,clearbit,update,contacts,{id},title,CTO,,,,,\ns-2,zoominfo,update,contacts,{id},title,CIO,,,,,\n"),
    );
    let b = env.write(
        "b.csv",
        format!("{HEADER}s-3,clearbit,update,contacts,{id},title,CEO,,,,,\n"),
    );
    env.cmd(&["propose", a.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["propose", b.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "1 older undecided proposals were superseded",
        ));
    let state = |ext: &str| -> (String, Option<i64>) {
        env.conn()
            .query_row(
                "SELECT state, superseded_by FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(state("s-1"), ("superseded".into(), Some(3)));
    assert_eq!(
        state("s-2").0,
        "pending",
        "another source's proposal stands"
    );
    assert_eq!(state("s-3").0, "pending");
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events WHERE action = 'supersede' AND proposal_id = 1"
        ),
        1
    );
}

#[test]
fn within_one_file_the_newest_twin_supersedes_the_older_undecided_ones() {
    let env = Env::with_crm();
    let open = contact_where(
        &env,
        "title IS NOT NULL AND sensitive = 0 AND legal_hold = 0",
    );
    env.conn()
        .execute(
            "UPDATE contacts SET legal_hold = 1 WHERE id = (SELECT id FROM contacts WHERE id <> ?1 ORDER BY id LIMIT 1)",
            [&open],
        )
        .unwrap();
    let held = contact_where(&env, "legal_hold = 1");
    let f = env.write(
        "twins.csv",
        format!(
            "{HEADER}t-1,clearbit,update,contacts,{open},title,CTO,,,,,\n\
             h-1,clearbit,update,contacts,{held},title,CTO,,,,,\n\
             t-2,clearbit,update,contacts,{open},title,CIO,,,,,\n\
             h-2,clearbit,update,contacts,{held},title,CIO,,,,,\n\
             t-3,clearbit,update,contacts,{open},title,CEO,,,,,\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "2 older undecided proposals were superseded",
        ));
    let row = |ext: &str| -> (i64, String, Option<i64>) {
        env.conn()
            .query_row(
                "SELECT id, state, superseded_by FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let newest = row("t-3");
    assert_eq!((newest.1.as_str(), newest.2), ("pending", None));
    for older in ["t-1", "t-2"] {
        let (id, state, by) = row(older);
        assert_eq!(
            (state.as_str(), by),
            ("superseded", Some(newest.0)),
            "{older}"
        );
        assert_eq!(
            env.count(&format!(
                "SELECT count(*) FROM crmgate_events WHERE action = 'supersede' AND proposal_id = {id}"
            )),
            1,
            "{older}"
        );
    }
    // Blocked proposals are decided: a newer twin leaves them as they are.
    assert_eq!(row("h-1").1, "blocked");
    assert_eq!(row("h-2").1, "blocked");
    // Ids follow the file's order within a record, whatever order the rows were written in.
    assert!(row("t-1").0 < row("t-2").0 && row("t-2").0 < newest.0);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn skip_invalid_ingests_the_good_rows_and_writes_rejects() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "mixed.csv",
        format!(
            "{HEADER}k-1,clearbit,update,contacts,{id},title,CTO,,,,,\nk-2,clearbit,update,contacts,{id},emial,a@b.co,,,,,\nk-3,clearbit,verify,contacts,{id},,valid,,,,,\n"
        ),
    );
    let rejects = env.path("rejects.csv");
    env.cmd(&[
        "propose",
        f.to_str().unwrap(),
        "--skip-invalid",
        "--rejects",
        rejects.to_str().unwrap(),
    ])
    .assert()
    .code(3);
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 2);
    let mut rdr = csv::Reader::from_path(&rejects).unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][1], "3");
    assert!(
        rows[0][2].contains("did you mean \"email\""),
        "{:?}",
        &rows[0]
    );
    assert_eq!(&rows[0][3], "k-2");
}

#[test]
fn skip_invalid_needs_a_rejects_file() {
    let env = Env::with_crm();
    env.cmd(&["propose", "x.csv", "--skip-invalid"])
        .assert()
        .code(2);
}

#[test]
fn json_ids_are_kept_exactly_and_stdin_works() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let line = format!(
        "{{\"id\": 12345678901234567890123, \"source\": \"hubspot-ai\", \"kind\": \"lifecycle\", \"object\": \"contacts\", \"record\": \"{id}\", \"value\": \"mql\", \"trigger\": \"form_submitted\", \"confidence\": 0.93}}\n"
    );
    env.cmd(&["propose", "-", "--format", "jsonl"])
        .write_stdin(line)
        .assert()
        .success();
    let v = json_of(&mut env.cmd(&["show", "hubspot-ai:12345678901234567890123", "--json"]));
    assert_eq!(v["proposal"]["ext_id"], "12345678901234567890123");
    assert_eq!(v["proposal"]["field"], "lifecycle_stage");
    assert_eq!(v["proposal"]["file"], "<stdin>");
}

#[test]
fn json_arrays_report_the_line_of_the_bad_object() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "p.json",
        format!(
            "[\n  {{\"id\": \"j-1\", \"source\": \"s\", \"kind\": \"owner\", \"object\": \"contacts\",\n   \"record\": \"{id}\", \"value\": \"mia\"}},\n  {{\n    \"id\": \"j-2\", \"source\": \"s\", \"kind\": \"owner\", \"object\": \"contacts\",\n    \"record\": \"{id}\", \"value\": \"mia\", \"value\": \"li\"\n  }}\n]\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "p.json:4: duplicate key \"value\"",
        ));
}

#[test]
fn several_files_are_all_or_nothing() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let good = env.write(
        "good.csv",
        format!("{HEADER}g-1,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    let before = env.dump();
    env.cmd(&[
        "propose",
        good.to_str().unwrap(),
        &fixture("bad/unknown-field.csv"),
    ])
    .assert()
    .code(1);
    assert_eq!(env.dump(), before, "the good file is not ingested either");
}

// ---------------------------------------------------------------- status, list, show

#[test]
fn status_list_and_show_speak_json() {
    let env = Env::with_crm();
    env.cmd(&["propose", &fixture("proposals/generated.csv")])
        .assert()
        .success();
    let status = json_of(&mut env.cmd(&["status", "--json"]));
    let pending = status["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "pending")
        .unwrap()["count"]
        .as_i64()
        .unwrap();
    assert_eq!(
        pending,
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'pending'")
    );

    let list = json_of(&mut env.cmd(&["list", "--json", "--kind", "merge", "--limit", "0"]));
    let merges = list.as_array().unwrap();
    assert_eq!(
        merges.len() as i64,
        env.count("SELECT count(*) FROM crmgate_proposals WHERE kind = 'merge'")
    );
    assert!(
        merges
            .iter()
            .all(|m| m["kind"] == "merge" && m["merge_into"].is_string())
    );
    let ids: Vec<i64> = merges.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    let limited = json_of(&mut env.cmd(&["list", "--json", "--limit", "5", "--state", "pending"]));
    assert_eq!(limited.as_array().unwrap().len(), 5);

    let shown = json_of(&mut env.cmd(&["show", &ids[0].to_string(), "--json"]));
    assert_eq!(shown["proposal"]["id"], ids[0]);
    assert!(shown["record"].is_object());
    assert!(shown["merge_into_record"].is_object());
    assert_eq!(shown["ingest"]["action"], "ingest");
}

#[test]
fn show_refuses_unknown_ids_clearly() {
    let env = Env::with_crm();
    env.cmd(&["show", "999"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("proposal not found: 999"));
    env.cmd(&["show", "nonsense"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("SOURCE:ID"));
}

#[test]
fn escape_sequences_in_values_never_reach_the_terminal_raw() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "evil.jsonl",
        format!(
            "{{\"id\": \"e-1\", \"source\": \"sdr-agent\", \"kind\": \"update\", \"object\": \"contacts\", \"record\": \"{id}\", \"field\": \"title\", \"value\": \"VP\\u001b[2J\\u001b]0;pwned\\u0007 Sales\\u202e\", \"reason\": \"\\u001b[31mtrust me\"}}\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    for args in [vec!["list"], vec!["show", "1"]] {
        let out = env.cmd(&args).output().unwrap();
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !all.contains(&0x1b),
            "raw ESC in `{}` output",
            args.join(" ")
        );
        assert!(
            !all.contains(&0x07),
            "raw BEL in `{}` output",
            args.join(" ")
        );
        let text = String::from_utf8(all).unwrap();
        assert!(
            !text.contains('\u{202e}'),
            "raw bidi override in `{}`",
            args.join(" ")
        );
        assert!(
            text.contains("\\u{1b}"),
            "escape shown visibly in `{}`",
            args.join(" ")
        );
    }
}

// ---------------------------------------------------------------- demo, help

#[test]
fn demo_walks_the_pipeline_and_can_run_again() {
    let env = Env::new();
    let mut c = Command::cargo_bin("crmgate").unwrap();
    c.current_dir(env.dir.path())
        .env_remove("CRMGATE_DB")
        .env("NO_COLOR", "1")
        .arg("demo");
    c.assert()
        .success()
        .stdout(predicate::str::contains("==> 1."))
        .stdout(predicate::str::contains("does not exist on contacts"))
        .stdout(predicate::str::contains("Try it yourself"))
        .stdout(predicate::str::contains("--as alice review"));
    let demo = Env { dir: env.dir };
    std::fs::rename(demo.path("crmgate-demo.db"), demo.db()).unwrap();
    assert!(demo.count("SELECT count(*) FROM crmgate_proposals") > 0);
    assert_eq!(demo.count("SELECT count(*) FROM contacts"), 1000);
    std::fs::rename(demo.db(), demo.path("crmgate-demo.db")).unwrap();
    let mut again = Command::cargo_bin("crmgate").unwrap();
    again
        .current_dir(demo.dir.path())
        .env_remove("CRMGATE_DB")
        .arg("demo");
    again.assert().success();
}

#[test]
fn demo_will_not_overwrite_a_real_store() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let before = env.dump();
    env.cmd(&["demo"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not a demo store"));
    assert_eq!(env.dump(), before);
}

#[test]
fn every_command_has_help_with_an_example_and_completions_work() {
    let env = Env::new();
    for cmd in [
        "init",
        "demo",
        "import",
        "export",
        "propose",
        "status",
        "list",
        "show",
        "policy",
        "pause",
        "resume",
        "sources",
        "approve",
        "reject",
        "audit",
        "log",
        "apply",
        "revert",
        "completions",
    ] {
        env.cmd(&[cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    for sub in ["audit verify", "audit checkpoint", "audit export"] {
        let args: Vec<&str> = sub.split(' ').chain(["--help"]).collect();
        env.cmd(&args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    for sub in ["show", "set", "check", "test"] {
        env.cmd(&["policy", sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    env.cmd(&["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("crmgate"));
    env.cmd(&["frobnicate"]).assert().code(2);
}

// ---------------------------------------------------------------- every bad-input class (SPEC §3)

/// One fixture per class of bad input (fixtures/bad/README.md): the file, the line of its one bad
/// row, and what the message must say.
const BAD_INPUTS: &[(&str, u64, &str)] = &[
    ("unknown-object.csv", 3, "unknown object \"nope\""),
    (
        "unknown-field.csv",
        4,
        "field \"emial\" does not exist on contacts (did you mean \"email\"?)",
    ),
    ("missing-column.csv", 1, "missing required column \"kind\""),
    ("bad-kind.csv", 4, "bad kind \"upsert\""),
    (
        "bad-email.csv",
        3,
        "\"not-an-email\" is not a valid email address",
    ),
    (
        "bad-lifecycle.csv",
        5,
        "\"hot-lead\" is not a lifecycle stage",
    ),
    (
        "bad-integer.csv",
        2,
        "employees: \"lots\" is not a whole number",
    ),
    (
        "missing-record.csv",
        4,
        "record contacts/c-99999999 does not exist",
    ),
    ("bad-confidence.csv", 3, "confidence 1.5 is outside 0..1"),
    ("update-without-field.csv", 4, "update needs a \"field\""),
    ("merge-without-into.csv", 3, "a merge needs \"merge_into\""),
    ("unterminated-quote.csv", 5, "malformed CSV"),
    (
        "wrong-field-count.csv",
        3,
        "this row has 13 fields, the header has 12",
    ),
    ("bad-utf8.csv", 4, "\"value\" is not valid UTF-8"),
    ("malformed.json", 4, "malformed JSON"),
    ("duplicate-key.json", 3, "duplicate key \"value\""),
    (
        "nested-value.json",
        4,
        "\"value\" must be a single value, not an object or array",
    ),
    ("malformed.jsonl", 3, "malformed JSON"),
];

#[test]
fn every_bad_input_class_is_refused_with_file_and_line_and_changes_nothing() {
    let env = Env::with_crm();
    // Something already queued, so "unchanged" covers the queue too, not just empty tables.
    env.cmd(&["propose", &fixture("proposals/clearbit.csv")])
        .assert()
        .success();
    let before = env.dump();
    for (file, line, message) in BAD_INPUTS {
        let path = fixture(&format!("bad/{file}"));
        let out = env.cmd(&["propose", &path]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: exit code; stderr:\n{stderr}"
        );
        let expected = format!("{path}:{line}: ");
        let hit = stderr
            .lines()
            .find(|l| l.contains(&expected))
            .unwrap_or_else(|| panic!("{file}: no `{expected}` line in:\n{stderr}"));
        assert!(
            hit.contains(message),
            "{file}: expected `{message}` in `{hit}`"
        );
        assert_eq!(env.dump(), before, "{file}: the store changed");
    }
}

#[test]
fn skip_invalid_keeps_the_good_rows_of_each_bad_file() {
    // Files whose bad row is one row (not the header or the file's syntax) can be half-used.
    let skippable = [
        "unknown-object.csv",
        "unknown-field.csv",
        "bad-kind.csv",
        "bad-email.csv",
        "bad-integer.csv",
        "missing-record.csv",
        "bad-confidence.csv",
        "wrong-field-count.csv",
        "bad-utf8.csv",
        "duplicate-key.json",
        "nested-value.json",
        "malformed.jsonl",
    ];
    for file in skippable {
        let env = Env::with_crm();
        let path = fixture(&format!("bad/{file}"));
        let rejects = env.path("rejects.csv");
        env.cmd(&[
            "propose",
            &path,
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
        ])
        .assert()
        .code(3);
        let line = BAD_INPUTS.iter().find(|b| b.0 == file).unwrap().1;
        let mut rdr = csv::Reader::from_path(&rejects).unwrap();
        let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1, "{file}: one reject");
        assert_eq!(
            rows[0][1].parse::<u64>().unwrap(),
            line,
            "{file}: reject line"
        );
        assert!(
            env.count("SELECT count(*) FROM crmgate_proposals") >= 1,
            "{file}: good rows in"
        );
    }
}

#[test]
fn a_file_that_cannot_be_read_to_the_end_is_refused_even_with_skip_invalid() {
    let env = Env::with_crm();
    let before = env.dump();
    let rejects = env.path("rejects.csv");
    for file in [
        "missing-column.csv",
        "unterminated-quote.csv",
        "malformed.json",
    ] {
        env.cmd(&[
            "propose",
            &fixture(&format!("bad/{file}")),
            "--skip-invalid",
            "--rejects",
            rejects.to_str().unwrap(),
        ])
        .assert()
        .code(1);
        assert_eq!(env.dump(), before, "{file}");
        assert!(
            !rejects.exists(),
            "{file}: no rejects file from a refused run"
        );
    }
}

#[test]
fn a_value_cannot_forge_a_problem_line() {
    let env = Env::with_crm();
    let f = env.write(
        "forge.jsonl",
        "{\"id\": \"f-1\", \"source\": \"s\", \"kind\": \"update\", \"object\": \"contacts\", \"record\": \"c-1001\", \"field\": \"email\", \"value\": \"x\\nother.csv:1: looks fine\\u001b[0m\"}\n",
    );
    let out = env.cmd(&["propose", f.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.lines().any(|l| l.starts_with("other.csv")),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(
        stderr.contains("x\\u{a}other.csv:1: looks fine"),
        "{stderr}"
    );
}

#[test]
fn init_demo_loads_the_bundled_data_once() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    assert_eq!(env.count("SELECT count(*) FROM contacts"), 1000);
    let queued = env.count("SELECT count(*) FROM crmgate_proposals");
    assert!(queued >= 30, "{queued} demo proposals");
    let before = env.dump();
    env.cmd(&["init", "--demo"]).assert().success();
    assert_eq!(env.dump(), before, "a second init --demo changes nothing");
}

#[test]
fn an_id_reused_within_one_file_is_refused_and_an_exact_repeat_is_skipped() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "twice.csv",
        format!(
            "{HEADER}r-1,clearbit,update,contacts,{id},title,CTO,,,,,\nr-1,clearbit,update,contacts,{id},title,CTO,,,,,\nr-1,clearbit,update,contacts,{id},title,CFO,,,,,\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "twice.csv:4: clearbit:r-1 was already ingested on line 2 of this run with different content",
        ));
    let g = env.write(
        "repeat.csv",
        format!("{HEADER}r-2,clearbit,update,contacts,{id},title,CTO,,,,,\nr-2,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    env.cmd(&["propose", g.to_str().unwrap(), "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"duplicates\": 1"));
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 1);
    // The earlier line wins even when the later one's record sorts first (rows are queued
    // sorted by record).
    let later = contact_where(&env, &format!("id > '{id}'"));
    let h = env.write(
        "swapped.csv",
        format!("{HEADER}r-3,clearbit,update,contacts,{later},title,CTO,,,,,\nr-3,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    env.cmd(&["propose", h.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "swapped.csv:3: clearbit:r-3 was already ingested on line 2 of this run with different content",
        ));
}

/// The queue and the supersede events, without event sequence numbers (the two paths log in a
/// different order).
fn queue_state(env: &Env) -> String {
    let conn = env.conn();
    // The indexes a bulk load drops come back exactly as they were.
    let mut out: String = conn
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'crmgate_proposals%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|s| s.unwrap() + "\n")
        .collect();
    assert_eq!(out.matches("CREATE").count(), 2, "{out}");
    let mut stmt = conn
        .prepare(
            "SELECT id, ingest_id, line, source, ext_id, kind, object, record, field, value, merge_into,
                    stated_confidence, expected, trigger, reason, baseline, baseline_fp, state, superseded_by
             FROM crmgate_proposals ORDER BY id",
        )
        .unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let cells: Vec<String> = (0..n)
            .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
            .collect();
        out.push_str(&cells.join("|"));
        out.push('\n');
    }
    let mut stmt = conn
        .prepare("SELECT proposal_id, detail FROM crmgate_events WHERE action = 'supersede' ORDER BY proposal_id")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let (p, d): (i64, String) = (r.get(0).unwrap(), r.get(1).unwrap());
        out.push_str(&format!("supersede {p} {d}\n"));
    }
    out
}

#[test]
fn the_bulk_path_queues_exactly_what_the_row_by_row_path_does() {
    // Two runs: the generated file, then a second file that repeats some of it, supersedes some
    // of it, and adds new rows, so both fresh and existing twins and duplicates are exercised.
    let first = fixture("proposals/generated.csv");
    let text = std::fs::read_to_string(&first).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut second = String::from(header);
    second.push('\n');
    let mut tail = String::new();
    for (i, l) in lines.iter().enumerate() {
        let (_, rest) = l.split_once(',').unwrap();
        if i % 3 == 0 {
            second.push_str(l); // an exact repeat: a duplicate
            second.push('\n');
        } else if i % 3 == 1 {
            // the same target under a new id: supersedes the first run's proposal
            second.push_str(&format!("again-{i},{rest}\n"));
        } else {
            // twins within the file, far apart: the later one supersedes the earlier, and an
            // exact repeat of the earlier one near the end is a duplicate of it
            second.push_str(&format!("twin-a-{i},{rest}\n"));
            tail.push_str(&format!("twin-b-{i},{rest}\ntwin-a-{i},{rest}\n"));
        }
    }
    second.push_str(&tail);
    let run = |bulk_min: &str| -> (String, String) {
        let env = Env::with_crm();
        let second_path = env.write("second.csv", &second);
        for f in [first.as_str(), second_path.to_str().unwrap()] {
            env.cmd(&["propose", f, "--json"])
                .env("CRMGATE_BULK_MIN_ROWS", bulk_min)
                .assert()
                .success();
        }
        let mut status = json_of(&mut env.cmd(&["status", "--json"]));
        status["store"] = serde_json::Value::Null;
        for i in status["recent_ingests"].as_array_mut().unwrap() {
            i["file"] = serde_json::Value::Null;
        }
        (queue_state(&env), status.to_string())
    };
    let (bulk, bulk_status) = run("1");
    let (row_by_row, row_status) = run("1000000000");
    assert!(bulk.contains("superseded"), "the runs supersede something");
    assert!(bulk.lines().filter(|l| l.starts_with("supersede")).count() > 100);
    assert_eq!(bulk, row_by_row);
    assert_eq!(bulk_status, row_status);
}

// ---------------------------------------------------------------- policy decisions (SPEC §5)

/// What the demo policy decides for each bundled proposal (fixtures/proposals/README.md).
const DEMO_DECISIONS: &[(&str, &str, &str)] = &[
    ("clearbit:cb-101", "auto", "fill-empty-fields"),
    ("clearbit:cb-102", "auto", "fill-empty-fields"),
    ("clearbit:cb-103", "auto", "fill-empty-fields"),
    ("clearbit:cb-104", "auto", "fill-empty-fields"),
    ("clearbit:cb-105", "auto", "fill-empty-fields"),
    ("clearbit:cb-106", "review", "no rule matched"),
    ("clearbit:cb-107", "review", "no rule matched"),
    ("clearbit:cb-108", "review", "no rule matched"),
    ("clearbit:cb-110", "review", "no rule matched"),
    ("clearbit:cb-111", "auto", "email-verified"),
    ("clearbit:cb-112", "review", "no rule matched"),
    ("clearbit:cb-113", "review", "sensitive-contacts"),
    ("clearbit:cb-114", "block", "legal-hold"),
    ("clearbit:cb-115", "review", "high-value-accounts"),
    ("clearbit:cb-116", "block", "legal-hold"),
    ("apollo:ap-1", "review", "source apollo is supervised"),
    ("dedupe-bot:dd-201", "review", "merges-need-human"),
    ("dedupe-bot:dd-205", "review", "sensitive-contacts"),
    ("dedupe-bot:dd-206", "review", "merges-need-human"),
    (
        "sdr-agent:sdr-301",
        "suggest",
        "source sdr-agent is assistive",
    ),
    ("sdr-agent:sdr-303", "review", "no rule matched"),
    ("sdr-agent:sdr-304", "review", "owner-needs-human"),
    ("sdr-agent:sdr-307", "block", "legal-hold"),
    (
        "hubspot-ai:hs-402",
        "review",
        "source hubspot-ai is supervised",
    ),
    ("hubspot-ai:hs-404", "review", "big-deals"),
    (
        "hubspot-ai:hs-405",
        "review",
        "source hubspot-ai is supervised",
    ),
];

#[test]
fn the_demo_policy_decides_each_bundled_proposal_as_documented() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    for (id, action, why) in DEMO_DECISIONS {
        let v = json_of(&mut env.cmd(&["show", id, "--json"]));
        let p = &v["proposal"];
        assert_eq!(p["decision"], *action, "{id}: {}", p["rules"]);
        let state = match *action {
            "auto" => "approved",
            "suggest" => "suggested",
            "block" => "blocked",
            _ => "pending",
        };
        assert_eq!(p["state"], state, "{id}");
        let reasons = v["why"].to_string();
        assert!(reasons.contains(why), "{id}: `{why}` not in {reasons}");
        assert_eq!(p["policy_version"], 1, "{id}");
        assert!(p["confidence"].is_number(), "{id}: scored");
    }
    let approvers = |id: &str| {
        json_of(&mut env.cmd(&["show", id, "--json"]))["proposal"]["rules"]["approvers"].clone()
    };
    assert_eq!(approvers("clearbit:cb-115"), serde_json::json!(["manager"]));
    assert_eq!(
        approvers("hubspot-ai:hs-404"),
        serde_json::json!(["manager"])
    );
    assert_eq!(
        approvers("sdr-agent:sdr-304"),
        serde_json::json!(["ops", "manager"])
    );
    assert_eq!(approvers("dedupe-bot:dd-201"), serde_json::json!(["ops"]));
}

#[test]
fn a_source_past_its_auto_limit_waits_for_review_with_the_limit_named() {
    let env = Env::with_crm();
    let demo = std::fs::read_to_string(fixture("policy/demo.toml")).unwrap();
    let tight = demo.replace("max_auto_per_run = 1000", "max_auto_per_run = 3");
    let policy = env.write("tight.toml", tight);
    env.cmd(&["policy", "set", policy.to_str().unwrap()])
        .assert()
        .success();
    let ids: Vec<String> = {
        let conn = env.conn();
        let mut stmt = conn
            .prepare("SELECT id FROM contacts WHERE title IS NULL AND sensitive = 0 AND legal_hold = 0 ORDER BY id LIMIT 5")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(ids.len(), 5);
    let rows: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!("lim-{i},clearbit,update,contacts,{id},title,Head of Data,,0.95,,,\n")
        })
        .collect();
    let f = env.write("five.csv", format!("{HEADER}{rows}"));
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "3 approved by the policy, 2 wait for review",
        ));
    let over = env.count(
        "SELECT count(*) FROM crmgate_proposals p WHERE state = 'pending' AND p.rules LIKE '%max_auto_per_run%'",
    );
    assert_eq!(over, 2);
}

#[test]
fn policies_are_checked_versioned_and_changed_only_by_an_admin() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let merge_auto = env.write(
        "auto-merge.toml",
        "[[rule]]\nname = \"yolo\"\nkind = [\"merge\"]\naction = \"auto\"\n",
    );
    let before = env.dump();
    for cmd in ["check", "set"] {
        env.cmd(&["--as", "alice", "policy", cmd, merge_auto.to_str().unwrap()])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(
                "auto-merge.toml:3: rule \"yolo\": merges are never auto",
            ));
    }
    let typo = env.write(
        "typo.toml",
        "[[rule]]\nname = \"t\"\nobject = [\"contacts\"]\nfield = [\"emial\"]\naction = \"review\"\n",
    );
    env.cmd(&["policy", "check", typo.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("typo.toml:4:"))
        .stderr(predicate::str::contains("did you mean \"email\""));
    assert_eq!(env.dump(), before, "refused policies change nothing");

    let default = fixture("policy/default.toml");
    env.cmd(&["--as", "bob", "policy", "set", &default])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bob may not change the policy"));
    env.cmd(&["--as", "alice", "policy", "set", &default])
        .assert()
        .success()
        .stderr(predicate::str::contains("policy version 2 is now in force"));
    env.cmd(&["--as", "alice", "policy", "set", &default])
        .assert()
        .success()
        .stderr(predicate::str::contains("unchanged"));
    assert_eq!(env.count("SELECT count(*) FROM crmgate_policies"), 2);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action = 'policy'"),
        2
    );
    let shown = json_of(&mut env.cmd(&["policy", "show", "1", "--json"]));
    assert_eq!(
        shown["text"],
        std::fs::read_to_string(fixture("policy/demo.toml")).unwrap()
    );
    // Versions are append-only.
    let err = env
        .conn()
        .execute(
            "UPDATE crmgate_policies SET text = 'x' WHERE version = 1",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[test]
fn a_paused_source_or_store_gets_nothing_through_on_its_own() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    // Fills of empty titles from an autonomous source: auto unless something is paused.
    let ids: Vec<String> = {
        let conn = env.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id FROM contacts WHERE title IS NULL AND sensitive = 0 AND legal_hold = 0
                 AND id NOT IN (SELECT record FROM crmgate_proposals) ORDER BY id LIMIT 3",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let file = |n: usize, tag: &str| {
        env.write(
            &format!("{tag}.csv"),
            format!(
                "{HEADER}{tag},clearbit,update,contacts,{},title,Head of Data,,0.95,,,\n",
                ids[n]
            ),
        )
    };
    let decision = |tag: &str| -> (String, String) {
        let v = json_of(&mut env.cmd(&["show", &format!("clearbit:{tag}"), "--json"]));
        (
            v["proposal"]["decision"].as_str().unwrap().to_string(),
            v["why"].to_string(),
        )
    };

    env.cmd(&[
        "--as", "bob", "pause", "--source", "clearbit", "--reason", "x",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains("bob may not pause"));
    env.cmd(&[
        "--as",
        "alice",
        "pause",
        "--source",
        "clearbit",
        "--reason",
        "bad batch",
    ])
    .assert()
    .success();
    env.cmd(&["status"])
        .assert()
        .stdout(predicate::str::contains("PAUSED: source clearbit"))
        .stdout(predicate::str::contains("bad batch"));
    env.cmd(&["propose", file(0, "p1").to_str().unwrap()])
        .assert()
        .success();
    let (d, why) = decision("p1");
    assert_eq!(d, "review");
    assert!(why.contains("source clearbit is paused"), "{why}");

    env.cmd(&["--as", "alice", "resume", "--source", "clearbit"])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "pause", "--reason", "migration tonight"])
        .assert()
        .success();
    env.cmd(&["propose", file(1, "p2").to_str().unwrap()])
        .assert()
        .success();
    let (d, why) = decision("p2");
    assert_eq!(d, "review");
    assert!(why.contains("the store is paused"), "{why}");

    env.cmd(&["--as", "alice", "resume"]).assert().success();
    env.cmd(&["propose", file(2, "p3").to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(decision("p3").0, "auto");
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action IN ('pause', 'resume')"),
        4
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_pauses"), 0);
}

#[test]
fn policy_test_shows_which_decisions_a_new_policy_would_change_and_changes_nothing() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let before = env.dump();
    env.cmd(&["policy", "test", &fixture("policy/demo.toml")])
        .assert()
        .success()
        .stderr(predicate::str::contains("no decision would change"));
    let demo = std::fs::read_to_string(fixture("policy/demo.toml")).unwrap();
    let trusting = env.write(
        "trust.toml",
        demo.replace(
            "[sources.sdr-agent]",
            "[sources.hubspot-ai]\nautonomy = \"autonomous\"\n\n[sources.sdr-agent]",
        ),
    );
    let v = json_of(&mut env.cmd(&["policy", "test", trusting.to_str().unwrap(), "--json"]));
    let mut changed: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}→{}",
                c["proposal"].as_str().unwrap(),
                c["from"].as_str().unwrap(),
                c["to"].as_str().unwrap()
            )
        })
        .collect();
    changed.sort();
    assert_eq!(
        changed,
        vec![
            "hubspot-ai:hs-402 review→auto",
            "hubspot-ai:hs-405 review→auto"
        ]
    );
    assert_eq!(v["replayed"], 35);
    assert_eq!(env.dump(), before, "policy test changes nothing");
}

#[test]
fn sources_reports_volume_decisions_and_a_recommendation_per_source() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let v = json_of(&mut env.cmd(&["sources", "--json"]));
    let rows = v.as_array().unwrap();
    assert_eq!(
        rows.len() as i64,
        env.count("SELECT count(DISTINCT source) FROM crmgate_proposals")
    );
    for row in rows {
        let source = row["stats"]["source"].as_str().unwrap();
        let q = |cond: &str| {
            env.count(&format!(
                "SELECT count(*) FROM crmgate_proposals WHERE source = '{source}' {cond}"
            ))
        };
        assert_eq!(row["stats"]["proposals"], q(""), "{source}");
        assert_eq!(row["stats"]["auto"], q("AND decision = 'auto'"), "{source}");
        assert_eq!(
            row["stats"]["block"],
            q("AND decision = 'block'"),
            "{source}"
        );
        assert_eq!(
            row["recommendation"]["verdict"], "keep",
            "{source}: no human decisions yet"
        );
    }
    let autonomy =
        |s: &str| rows.iter().find(|r| r["stats"]["source"] == s).unwrap()["autonomy"].clone();
    assert_eq!(autonomy("clearbit"), "autonomous");
    assert_eq!(autonomy("sdr-agent"), "assistive");
    assert_eq!(autonomy("apollo"), "supervised");
}

// ---------------------------------------------------------------- human decisions

#[test]
fn only_a_holder_of_an_approver_role_may_approve() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let state =
        |id: &str| json_of(&mut env.cmd(&["show", id, "--json"]))["proposal"]["state"].clone();
    // An owner change needs ops or manager; bob is an sdr.
    env.cmd(&["--as", "bob", "approve", "sdr-agent:sdr-304"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "bob may not approve it: that takes the role ops or manager",
        ));
    assert_eq!(state("sdr-agent:sdr-304"), "pending");
    env.cmd(&[
        "--as",
        "alice",
        "approve",
        "sdr-agent:sdr-304",
        "--note",
        "agreed with sales",
    ])
    .assert()
    .success();
    assert_eq!(state("sdr-agent:sdr-304"), "approved");
    // An enterprise account needs a manager: alice (ops, admin) may not, mia may.
    env.cmd(&["--as", "alice", "approve", "clearbit:cb-115"])
        .assert()
        .code(1);
    env.cmd(&["--as", "mia", "approve", "clearbit:cb-115"])
        .assert()
        .success();
    assert_eq!(state("clearbit:cb-115"), "approved");
    let (actor, approver, action): (String, String, String) = env
        .conn()
        .query_row(
            "SELECT actor, approver, action FROM crmgate_events WHERE proposal_id =
               (SELECT id FROM crmgate_proposals WHERE ext_id = 'cb-115') ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (actor.as_str(), approver.as_str(), action.as_str()),
        ("mia", "mia", "approve")
    );
}

#[test]
fn review_without_a_terminal_lists_the_queue_and_returns_at_once() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let before = env.dump();
    let open =
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state IN ('pending', 'suggested')");
    assert!(open > 0);
    // stdin is not a terminal here: nothing may wait for a key.
    env.cmd(&["review"])
        .timeout(std::time::Duration::from_secs(20))
        .write_stdin("y\ny\ny\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("sdr-agent"))
        .stderr(predicate::str::contains(format!(
            "{open} proposals wait for review"
        )))
        .stderr(predicate::str::contains("crmgate approve ID..."))
        .stderr(predicate::str::contains(
            "crmgate reject ID... --reason TEXT",
        ));
    let listed = json_of(&mut env.cmd(&["review", "--json"]));
    assert_eq!(listed["open"], open);
    assert!(!listed["first"].as_array().unwrap().is_empty());
    assert_eq!(
        env.dump(),
        before,
        "a review without a terminal decides nothing"
    );
}

#[test]
fn each_failing_item_is_reported_and_the_rest_proceed() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    // cb-107 overwrites a title; change the record under it so it is stale.
    let id: String = env
        .conn()
        .query_row(
            "SELECT record FROM crmgate_proposals WHERE ext_id = 'cb-107'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let f = env.write("moved.csv", format!("id,title\n{id},Chief Executive\n"));
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&[
        "--as",
        "alice",
        "approve",
        "clearbit:cb-101",
        "clearbit:cb-107",
        "apollo:ap-1",
        "nope:1",
    ])
    .assert()
    .code(3)
    .stderr(predicate::str::contains(
        "clearbit:cb-101: not approved: already approved",
    ))
    .stderr(predicate::str::contains(
        "clearbit:cb-107: not approved: stale: title is now \"Chief Executive\"",
    ))
    .stderr(predicate::str::contains(
        "nope:1: not approved: no such proposal",
    ))
    .stderr(predicate::str::contains("1 approved, 3 not"));
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'ap-1' AND state = 'approved'"
        ),
        1
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'cb-107' AND state = 'pending'"
        ),
        1
    );
}

#[test]
fn a_filter_wide_decision_states_the_count_and_needs_yes() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let before = env.dump();
    env.cmd(&[
        "--as",
        "alice",
        "reject",
        "--source",
        "hubspot-ai",
        "--reason",
        "noisy",
    ])
    .assert()
    .code(1)
    .stderr(predicate::str::contains(
        "5 pending proposals match; nothing was rejected",
    ))
    .stderr(predicate::str::contains("--yes"));
    assert_eq!(env.dump(), before);
    // The big deal needs a manager: alice's filter-wide rejection skips it and says so.
    env.cmd(&[
        "--as",
        "alice",
        "reject",
        "--source",
        "hubspot-ai",
        "--reason",
        "noisy",
        "--yes",
    ])
    .assert()
    .code(3)
    .stderr(predicate::str::contains("4 rejected, 1 not"));
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals WHERE source = 'hubspot-ai' AND state = 'rejected'"), 4);
    env.cmd(&["--as", "alice", "approve", "1", "--source", "x"])
        .assert()
        .code(1);
}

#[test]
fn a_source_with_20_rejections_in_its_last_50_decisions_is_paused_by_the_breaker() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let ids: Vec<String> = {
        let conn = env.conn();
        let mut stmt = conn
            .prepare("SELECT id FROM contacts WHERE sensitive = 0 AND legal_hold = 0 ORDER BY id LIMIT 50")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let rows: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("b-{i},badbot,update,contacts,{id},title,Wizard {i},,0.9,,,\n"))
        .collect();
    let f = env.write("bad.csv", format!("{HEADER}{rows}"));
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    let ok: Vec<String> = (0..30).map(|i| format!("badbot:b-{i}")).collect();
    let mut approve = vec!["--as", "alice", "approve"];
    approve.extend(ok.iter().map(String::as_str));
    env.cmd(&approve).assert().success();
    let no: Vec<String> = (30..45).map(|i| format!("badbot:b-{i}")).collect();
    let mut reject = vec!["--as", "alice", "reject", "--reason", "nonsense titles"];
    reject.extend(no.iter().map(String::as_str));
    env.cmd(&reject).assert().success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_pauses"),
        0,
        "15 of 50 is within 30%"
    );
    let more: Vec<String> = (45..50).map(|i| format!("badbot:b-{i}")).collect();
    let mut reject = vec!["--as", "alice", "reject", "--reason", "nonsense titles"];
    reject.extend(more.iter().map(String::as_str));
    env.cmd(&reject)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "paused source badbot: circuit breaker: 20 of the last 50",
        ));
    let reason: String = env
        .conn()
        .query_row(
            "SELECT reason FROM crmgate_pauses WHERE scope = 'badbot'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.contains("more than 30% of 50"), "{reason}");
    // The track record now shapes crmgate's confidence in the next proposal of this kind and
    // field: 0.9 stated, blended with 31/52 (smoothed) at weight 50/70.
    let next: String = env
        .conn()
        .query_row("SELECT id FROM contacts WHERE sensitive = 0 AND legal_hold = 0 ORDER BY id LIMIT 1 OFFSET 60", [], |r| r.get(0))
        .unwrap();
    let f = env.write(
        "next.csv",
        format!("{HEADER}b-next,badbot,update,contacts,{next},title,Sorcerer,,0.9,,,\n"),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    let v = json_of(&mut env.cmd(&["show", "badbot:b-next", "--json"]));
    let confidence = v["proposal"]["confidence"].as_f64().unwrap();
    let expected = 0.9 * (20.0 / 70.0) + (31.0 / 52.0) * (50.0 / 70.0);
    assert!(
        (confidence - expected).abs() < 1e-9,
        "{confidence} vs {expected}"
    );
    assert!(
        v["signals"]
            .to_string()
            .contains("humans approved 30 of 50"),
        "{}",
        v["signals"]
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action = 'pause' AND actor_kind = 'system' AND source = 'badbot'"),
        1
    );
}

#[test]
fn a_merge_is_scored_by_how_well_the_two_records_match() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let confidence = |id: &str| {
        json_of(&mut env.cmd(&["show", id, "--json"]))["proposal"]["confidence"]
            .as_f64()
            .unwrap()
    };
    // A true duplicate with a typo and no stated confidence still gets a meaningful score.
    assert!(confidence("dedupe-bot:dd-206") >= 0.8);
    // Two strangers proposed as duplicates, however confident the proposer says it is.
    let (a, b): (String, String) = env
        .conn()
        .query_row(
            "SELECT a.id, b.id FROM contacts a, contacts b
             WHERE a.last_name <> b.last_name AND a.company_id <> b.company_id
               AND a.email IS NOT NULL AND b.email IS NOT NULL AND a.sensitive = 0 AND b.sensitive = 0
             ORDER BY a.id, b.id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let f = env.write(
        "m.csv",
        format!("{HEADER}m-1,dedupe-bot,merge,contacts,{a},,,{b},0.99,,,\n"),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    let c = confidence("dedupe-bot:m-1");
    assert!(c < 0.5, "strangers scored {c}");
    let v = json_of(&mut env.cmd(&["show", "dedupe-bot:m-1", "--json"]));
    assert!(
        v["signals"]
            .to_string()
            .contains("the two records match at"),
        "{}",
        v["signals"]
    );
}

#[test]
fn a_lifecycle_move_on_a_listed_event_from_an_autonomous_source_goes_through() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let id: String = env
        .conn()
        .query_row(
            "SELECT id FROM contacts WHERE sensitive = 0 AND legal_hold = 0 AND lifecycle_stage = 'lead'
             ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let f = env.write(
        "life.csv",
        format!(
            "{HEADER}lc-1,clearbit,lifecycle,contacts,{id},,mql,,0.95,,form_submitted,\nlc-2,clearbit,lifecycle,contacts,{id},,sql,,0.95,,ai_score,\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    let decision = |tag: &str| {
        json_of(&mut env.cmd(&["show", &format!("clearbit:{tag}"), "--json"]))["proposal"]["decision"].clone()
    };
    assert_eq!(decision("lc-1"), "auto");
    assert_eq!(decision("lc-2"), "review");
}

#[test]
fn the_1001st_auto_proposal_of_a_run_waits_for_review_with_the_limit_named() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let id: String = env
        .conn()
        .query_row(
            "SELECT id FROM contacts WHERE phone IS NULL AND sensitive = 0 AND legal_hold = 0 ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let rows: String = (0..1001)
        .map(|i| {
            format!(
                "fill-{i:04},clearbit,update,contacts,{id},phone,+1 415 555 {:04},,0.95,,,\n",
                i
            )
        })
        .collect();
    let f = env.write("many.csv", format!("{HEADER}{rows}"));
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "1000 approved by the policy, 1 wait",
        ));
    let v = json_of(&mut env.cmd(&["show", "clearbit:fill-1000", "--json"]));
    assert_eq!(v["proposal"]["decision"], "review");
    assert!(
        v["why"]
            .to_string()
            .contains("used its limit of 1000 auto changes per run"),
        "{}",
        v["why"]
    );
    assert_eq!(
        json_of(&mut env.cmd(&["show", "clearbit:fill-0999", "--json"]))["proposal"]["decision"],
        "auto"
    );
}

// ---------------------------------------------------------------- the audit log

/// A store whose log has a few dozen events, and a checkpoint taken of it.
fn audited() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.cmd(&[
        "--as",
        "alice",
        "reject",
        "hubspot-ai:hs-401",
        "--reason",
        "no",
    ])
    .assert()
    .success();
    env.cmd(&[
        "--as",
        "alice",
        "pause",
        "--source",
        "sdr-agent",
        "--reason",
        "check",
    ])
    .assert()
    .success();
    let cp = env.path("head.json");
    let out = env.cmd(&["audit", "checkpoint"]).output().unwrap();
    std::fs::write(&cp, out.stdout).unwrap();
    env.cmd(&["audit", "verify", "--checkpoint", cp.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "the chain is unbroken and reaches the checkpoint",
        ));
    // Tampering needs the append-only triggers gone first.
    env.conn()
        .execute_batch(
            "DROP TRIGGER crmgate_events_append_only_update; DROP TRIGGER crmgate_events_append_only_delete;",
        )
        .unwrap();
    (env, cp)
}

#[test]
fn the_audit_log_refuses_updates_and_deletes() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let conn = env.conn();
    for sql in [
        "UPDATE crmgate_events SET actor = 'x'",
        "DELETE FROM crmgate_events",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn audit_verify_names_the_first_tampered_event() {
    // (tampering SQL, the event named, words in the message)
    let cases: &[(&str, i64, &str)] = &[
        ("UPDATE crmgate_events SET actor = 'mallory' WHERE seq = 4", 4, "altered"),
        ("UPDATE crmgate_events SET detail = '{}' WHERE seq = 6", 6, "altered"),
        ("DELETE FROM crmgate_events WHERE seq = 5", 6, "events 5..5 are missing"),
        (
            "UPDATE crmgate_events SET seq = -seq WHERE seq IN (4, 5);
             UPDATE crmgate_events SET seq = 5 WHERE seq = -4;
             UPDATE crmgate_events SET seq = 4 WHERE seq = -5;",
            4,
            "altered",
        ),
        (
            "INSERT INTO crmgate_events (seq, at, actor, actor_kind, action, prev_hash, hash)
             SELECT max(seq) + 1, '2026-01-01T00:00:00.000Z', 'mallory', 'human', 'approve', '00', '00' FROM crmgate_events",
            -1,
            "altered",
        ),
    ];
    for (sql, seq, words) in cases {
        let (env, _) = audited();
        let last = env.count("SELECT max(seq) FROM crmgate_events");
        env.conn().execute_batch(sql).unwrap();
        let named = if *seq < 0 { last + 1 } else { *seq };
        env.cmd(&["audit", "verify"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "broken at event {named}:"
            )))
            .stderr(predicate::str::contains(*words));
    }
}

#[test]
fn a_forged_event_with_a_correct_hash_still_breaks_the_chain() {
    let (env, _) = audited();
    // A forger who recomputes the event's own hash but cannot know to re-link what follows:
    // rewrite event 3 consistently, and event 4 no longer follows it.
    let conn = env.conn();
    let e: crmgate::audit::EventRow = {
        let mut out = Vec::new();
        let store =
            crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing).unwrap();
        store
            .for_each_event(None, |e| {
                if e.seq == 3 {
                    out.push(e.clone());
                }
                Ok(())
            })
            .unwrap();
        out.pop().unwrap()
    };
    let mut forged = e.clone();
    forged.actor = "mallory".into();
    forged.hash = forged.compute_hash();
    conn.execute(
        "UPDATE crmgate_events SET actor = ?1, hash = ?2 WHERE seq = 3",
        rusqlite::params![forged.actor, forged.hash],
    )
    .unwrap();
    env.cmd(&["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "broken at event 4: it does not follow the event before it",
        ));
}

#[test]
fn a_checkpoint_catches_a_tail_cut_off() {
    let (env, cp) = audited();
    env.conn()
        .execute(
            "DELETE FROM crmgate_events WHERE seq > (SELECT max(seq) - 2 FROM crmgate_events)",
            [],
        )
        .unwrap();
    env.cmd(&["audit", "verify"]).assert().success();
    env.cmd(&["audit", "verify", "--checkpoint", cp.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the tail was cut off"));
}

#[test]
fn the_csv_export_reads_back_exactly_and_is_safe_in_a_spreadsheet() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    for who in [
        "=HYPERLINK(\"http://x\")",
        "+cmd",
        "-2+3",
        "@SUM(A1)",
        "'quoted",
    ] {
        // `--as=VALUE`: a value that starts with '-' would read as a flag.
        let actor = format!("--as={who}");
        env.cmd(&[&actor, "pause", "--reason=\tleading tab"])
            .assert()
            .success();
        env.cmd(&[&actor, "resume"]).assert().success();
    }
    let csv_text = stdout_of(&mut env.cmd(&["audit", "export", "--format", "csv"]));
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let header = rdr.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len() as i64,
        env.count("SELECT count(*) FROM crmgate_events")
    );
    let conn = env.conn();
    for row in &rows {
        let seq: i64 = row[0].parse().unwrap();
        for (i, name) in header.iter().enumerate() {
            let cell = &row[i];
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "seq {seq} {name}: a spreadsheet would run {cell:?}"
            );
            let stored: Option<String> = conn
                .query_row(
                    &format!("SELECT CAST({name} AS TEXT) FROM crmgate_events WHERE seq = ?1"),
                    [seq],
                    |r| r.get(0),
                )
                .unwrap();
            let back = crmgate::ui::formula_unescape(cell);
            let stored = stored.unwrap_or_default();
            if name == "confidence" && !stored.is_empty() {
                assert_eq!(back.parse::<f64>().unwrap(), stored.parse::<f64>().unwrap());
            } else {
                assert_eq!(back, stored, "seq {seq} {name}");
            }
        }
    }
    let jsonl = stdout_of(&mut env.cmd(&["audit", "export", "--since", "2099-01-01"]));
    assert!(jsonl.is_empty(), "nothing after --since");
}

#[test]
fn log_shows_what_happened_newest_first_with_filters() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.cmd(&[
        "--as",
        "mia",
        "reject",
        "hubspot-ai:hs-401",
        "--reason",
        "not yet",
    ])
    .assert()
    .success();
    let all = json_of(&mut env.cmd(&["log", "--json", "--limit", "0"]));
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs.len() as i64,
        env.count("SELECT count(*) FROM crmgate_events")
    );
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    let by_mia = json_of(&mut env.cmd(&["log", "--json", "--actor", "mia"]));
    assert_eq!(by_mia.as_array().unwrap().len(), 1);
    assert_eq!(by_mia[0]["action"], "reject");
    let record: String = env
        .conn()
        .query_row(
            "SELECT record FROM crmgate_proposals WHERE ext_id = 'ap-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let on_record =
        json_of(&mut env.cmd(&["log", "--json", "--record", &format!("contacts/{record}")]));
    assert!(
        on_record
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["record"] == record.as_str())
    );
    assert_eq!(on_record[0]["action"], "approve");
    let from_source = json_of(&mut env.cmd(&["log", "--json", "--source", "hubspot-ai"]));
    assert!(
        from_source
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source"] == "hubspot-ai")
    );
    let later = json_of(&mut env.cmd(&["log", "--json", "--since", "2099-01-01"]));
    assert!(later.as_array().unwrap().is_empty());
    assert_eq!(
        json_of(&mut env.cmd(&["log", "--json", "--limit", "2"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.cmd(&["log", "--record", "c-1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("OBJECT/ID"));
}

// ---------------------------------------------------------------- apply and revert

fn sha256_of(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    crmgate::audit::sha256_hex(&buf)
}

/// The CRM tables only (not crmgate's own), row by row: what a revert must restore exactly.
fn crm_dump(env: &Env) -> String {
    env.dump()
        .split("== ")
        .filter(|t| !t.starts_with("crmgate_") && !t.starts_with("sqlite_"))
        .collect::<Vec<_>>()
        .join("== ")
}

/// A store of 800 contacts with a title and a phone proposed for each, all let through by the
/// policy: 1,600 approved proposals, more than apply reads ahead of itself at once.
fn long_queue() -> Env {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let policy = std::fs::read_to_string(fixture("policy/demo.toml"))
        .unwrap()
        .replace("max_auto_per_run = 1000 ", "max_auto_per_run = 100000 ");
    let p = env.write("policy.toml", policy);
    env.cmd(&["policy", "set", p.to_str().unwrap()])
        .assert()
        .success();
    let mut contacts = String::from("id,first_name\n");
    let mut proposals = String::from(HEADER);
    for i in 0..800 {
        contacts.push_str(&format!("k-{i:03},Kim\n"));
        proposals.push_str(&format!(
            "t-{i},clearbit,update,contacts,k-{i:03},title,Engineer {i},,0.95,,,\n\
             p-{i},clearbit,update,contacts,k-{i:03},phone,+1 415 555 {i:04},,0.95,,,\n"
        ));
    }
    let c = env.write("contacts.csv", contacts);
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    let p = env.write("proposals.csv", proposals);
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"),
        1600
    );
    env
}

#[test]
fn a_chunk_read_ahead_applies_and_reverts_the_same_as_one_read_row_by_row() {
    let ahead = long_queue();
    let original = crm_dump(&ahead);
    ahead
        .cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 1600 applied"));
    // Chunks of 100 are short enough to be read by the writer alone.
    let alone = long_queue();
    alone
        .cmd(&["apply"])
        .env("CRMGATE_APPLY_CHUNK", "100")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 1600 applied"));
    assert_eq!(crm_dump(&ahead), crm_dump(&alone));
    let changes = "SELECT group_concat(proposal_id || record || field || quote(after)) FROM
        (SELECT * FROM crmgate_changes ORDER BY id)";
    let text = |env: &Env| -> String { env.conn().query_row(changes, [], |r| r.get(0)).unwrap() };
    assert_eq!(text(&ahead), text(&alone));
    assert_eq!(
        ahead.count("SELECT count(*) FROM contacts WHERE title IS NULL OR phone IS NULL"),
        0
    );
    // Over a chunk, a run is reverted a chunk at a time: 1,000 changes read ahead, then 600.
    for (env, chunk) in [(&ahead, "1000"), (&alone, "100")] {
        env.cmd(&["revert", "--run", "1"])
            .env("CRMGATE_APPLY_CHUNK", chunk)
            .assert()
            .success()
            .stderr(predicate::str::contains("run 2: 1600 changes reverted"));
        assert_eq!(crm_dump(env), original);
    }
    assert_eq!(text(&ahead), text(&alone));
    ahead.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_record_written_earlier_in_the_chunk_is_judged_as_it_is_now_not_as_read_ahead() {
    let env = long_queue();
    // A second autonomous source proposes every title again, from the same empty field.
    let policy = std::fs::read_to_string(fixture("policy/demo.toml"))
        .unwrap()
        .replace("max_auto_per_run = 1000 ", "max_auto_per_run = 100000 ")
        .replace(
            "[sources.sdr-agent]",
            "[sources.apollo]\nautonomy = \"autonomous\"\n\n[sources.sdr-agent]",
        );
    let p = env.write("policy2.toml", policy);
    env.cmd(&["--as", "alice", "policy", "set", p.to_str().unwrap()])
        .assert()
        .success();
    let mut again = String::from(HEADER);
    for i in 0..800 {
        again.push_str(&format!(
            "a-{i},apollo,update,contacts,k-{i:03},title,Manager {i},,0.95,,,\n"
        ));
    }
    let p = env.write("again.csv", again);
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    // One chunk: clearbit's titles are written first, so apollo's find the field no longer
    // empty, and the policy that let them through as fills sends them to a person instead.
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("1600 applied, 800 held"));
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE title LIKE 'Engineer %'"),
        800
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE source = 'apollo' AND state = 'pending'"
        ),
        800
    );
}

#[test]
fn after_a_merge_in_the_chunk_no_record_read_ahead_is_trusted() {
    let env = long_queue();
    let c = env.write(
        "more.csv",
        "id,first_name,last_name,email\n\
         m-1,Ada,Byron,ada@example.com\n\
         m-2,Ada,Byron,ada@example.com\n",
    );
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    let d = env.write("deals.csv", "id,name,contact_id\nd-1,Renewal,m-1\n");
    env.cmd(&["import", "deals", d.to_str().unwrap()])
        .assert()
        .success();
    let merge = env.write(
        "merge.csv",
        format!("{HEADER}mg-1,dedupe-bot,merge,contacts,m-1,,,m-2,0.99,,,\n"),
    );
    env.cmd(&["propose", merge.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    // Queued after the merge: a fill of the duplicate the merge removes, and a change to a deal
    // of the duplicate's, which the merge re-points to the survivor without naming it.
    let fill = env.write(
        "fill.csv",
        format!(
            "{HEADER}f-1,clearbit,update,contacts,m-1,title,Engineer,,0.95,,,\n\
             f-2,clearbit,update,deals,d-1,contact_id,m-2,,0.95,,,\n"
        ),
    );
    env.cmd(&["propose", fill.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "approve", "clearbit:f-2"])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"),
        1603
    );
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'm-1'"),
        0
    );
    // Judged on the store as the merge left it: the record is gone, a conflict (not a write
    // that failed on a record read before the merge).
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id IN ('f-1', 'f-2') AND state = 'conflict'"
        ),
        2
    );
}

#[test]
fn a_revert_in_chunks_reads_a_record_again_once_the_chunk_has_written_it() {
    let env = long_queue();
    let c = env.write("more.csv", "id,first_name,title\nm-1,Ada,Lead\n");
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    title_proposed_twice(&env, "m-1", "Lead", "Chief");
    let original = crm_dump(&env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 1602 applied"));
    // The newest thousand changes, both of m-1's among them, are the first chunk: undoing the
    // newer one leaves "Lead", which the older one then finds, though "Chief" was read ahead.
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "1000")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 2: 1602 changes reverted"));
    assert_eq!(crm_dump(&env), original);
}

#[test]
fn what_a_trigger_does_to_a_later_proposal_is_seen_when_its_turn_comes() {
    let env = long_queue();
    // Someone's rule in the store: once a contact has a title, its phone is not to be filled.
    env.conn()
        .execute_batch(
            "CREATE TRIGGER no_phone_once_titled AFTER UPDATE OF title ON contacts
             BEGIN
               UPDATE crmgate_proposals SET state = 'rejected'
               WHERE state = 'approved' AND object = 'contacts' AND record = NEW.id
                 AND field = 'phone';
             END;",
        )
        .unwrap();
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 800 applied"));
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE field = 'phone'"),
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE phone IS NOT NULL"),
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'rejected'"),
        800
    );
}

#[test]
fn a_dry_run_goes_through_every_check_and_changes_nothing() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let before = sha256_of(&env.db());
    env.cmd(&["apply", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would apply"))
        .stderr(predicate::str::contains(
            "dry run: 6 applied; nothing was changed",
        ));
    assert_eq!(
        sha256_of(&env.db()),
        before,
        "the store file is unchanged byte for byte"
    );
}

/// The demo store after alice approves apollo:ap-1 and sdr-agent:sdr-304, which wait for a
/// human: eight proposals then stand approved. Returns the CRM dump from before any apply.
fn demo_with_human_approvals(env: &Env) -> String {
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&[
        "--as",
        "alice",
        "approve",
        "apollo:ap-1",
        "sdr-agent:sdr-304",
    ])
    .assert()
    .success();
    crm_dump(env)
}

#[test]
fn apply_then_revert_restores_the_crm_exactly_and_a_revert_can_be_reverted() {
    let env = Env::new();
    let original = demo_with_human_approvals(&env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 8 applied"));
    let applied = crm_dump(&env);
    assert_ne!(applied, original);
    let phone: Option<String> = env
        .conn()
        .query_row("SELECT phone FROM contacts WHERE id = 'c-1001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        phone.as_deref(),
        Some("+1 415 555 0142"),
        "clearbit:cb-101 was applied"
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_changes"), 8);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'"),
        8
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(
        crm_dump(&env),
        original,
        "reverting the run restores every record exactly"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"),
        8
    );
    env.cmd(&["revert", "--run", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("was already reverted by change"));
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert_eq!(
        crm_dump(&env),
        applied,
        "reverting the revert applies again"
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_run_in_chunks_is_one_run_and_reverts_as_one() {
    let env = Env::new();
    let original = demo_with_human_approvals(&env);
    // Three proposals per transaction: eight proposals take three chunks.
    env.cmd(&["apply"])
        .env("CRMGATE_APPLY_CHUNK", "3")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 8 applied"));
    assert_eq!(
        env.count("SELECT count(DISTINCT run_id) FROM crmgate_changes"),
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_changes"), 8);
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(crm_dump(&env), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn show_of_a_change_tells_its_story_from_ingest_to_revert() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "sdr-agent:sdr-304"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    let id: i64 = env
        .conn()
        .query_row(
            "SELECT c.id FROM crmgate_changes c JOIN crmgate_proposals p ON p.id = c.proposal_id
             WHERE p.ext_id = 'sdr-304'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    env.cmd(&["revert", &id.to_string()]).assert().success();
    let shown = json_of(&mut env.cmd(&["show", &format!("change:{id}"), "--json"]));
    let c = &shown["change"];
    assert_eq!(c["id"], id);
    assert_eq!(c["field"], "owner");
    assert_eq!(c["after"], "priya");
    assert_eq!(c["approved_by"], "alice");
    assert!(c["reverted_by"].is_i64(), "{c}");
    assert_eq!(shown["proposal"]["ext_id"], "sdr-304");
    let actions: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ingest", "approve", "apply", "revert"]);
    env.cmd(&["show", &format!("change:{id}")])
        .assert()
        .success()
        .stdout(predicate::str::contains("Its story, from ingest"))
        .stdout(predicate::str::contains("reverted by"));
    env.cmd(&["show", "change:999999"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("999999"));
}

#[test]
fn a_revert_after_a_later_edit_is_refused_unless_an_admin_forces_it() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["apply"]).assert().success();
    let change: i64 =
        env.count("SELECT id FROM crmgate_changes WHERE record = 'c-1001' AND field = 'phone'");
    let f = env.write("later.csv", "id,phone\nc-1001,+1 415 555 0199\n");
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    let before = env.dump();
    env.cmd(&["revert", &change.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "c-1001 phone is now \"+1 415 555 0199\"",
        ));
    env.cmd(&["--as", "bob", "revert", &change.to_string(), "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bob may not force a revert"));
    assert_eq!(env.dump(), before);
    env.cmd(&["--as", "alice", "revert", &change.to_string(), "--force"])
        .assert()
        .success();
    let phone: Option<String> = env
        .conn()
        .query_row("SELECT phone FROM contacts WHERE id = 'c-1001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(phone, None, "back to what it was before the change");
}

#[test]
fn apply_rechecks_the_record_as_it_is_now() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let record = |ext: &str| -> String {
        env.conn()
            .query_row(
                "SELECT record FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| r.get(0),
            )
            .unwrap()
    };
    // cb-101 was approved by the policy; a legal hold is set on its record afterwards.
    let held = record("cb-101");
    // cb-102 was approved by the policy; its field is filled by someone else before apply, so the
    // policy would no longer let it through on its own.
    let moved = record("cb-102");
    let f = env.write(
        "later.csv",
        format!("id,legal_hold,title\n{held},1,\n{moved},0,Head of Growth\n"),
    );
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    // And a source is paused.
    env.cmd(&[
        "--as", "alice", "pause", "--source", "clearbit", "--reason", "audit",
    ])
    .assert()
    .success();
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("paused"));
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes"),
        0,
        "nothing from a paused source"
    );
    env.cmd(&["--as", "alice", "resume", "--source", "clearbit"])
        .assert()
        .success();
    // ap-1 is approved by a human, then its field is filled before apply: a conflict.
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    let stale = record("ap-1");
    let f = env.write("later2.csv", format!("id,title\n{stale},Head of Sales\n"));
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("legal-hold"))
        .stdout(predicate::str::contains("sent to review now"))
        .stdout(predicate::str::contains("conflict"));
    let state = |ext: &str| -> String {
        env.conn()
            .query_row(
                "SELECT state FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(
        state("cb-101"),
        "blocked",
        "a legal hold set after approval still stops it"
    );
    assert_eq!(
        state("cb-102"),
        "pending",
        "no longer one the policy lets through on its own"
    );
    assert_eq!(
        state("ap-1"),
        "conflict",
        "the record moved on since the proposal"
    );
    let title: Option<String> = env
        .conn()
        .query_row("SELECT title FROM contacts WHERE id = ?1", [&moved], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        title.as_deref(),
        Some("Head of Growth"),
        "the newer value stands"
    );
}

#[test]
fn a_merge_applies_and_reverts_exactly_related_rows_included() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let (dup, survivor): (String, String) = env
        .conn()
        .query_row(
            "SELECT record, merge_into FROM crmgate_proposals WHERE ext_id = 'dd-202'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Give the duplicate related rows to re-point, and an activity of the survivor's for contrast.
    let related = env.count(&format!(
        "SELECT (SELECT count(*) FROM activities WHERE contact_id = '{dup}') + (SELECT count(*) FROM deals WHERE contact_id = '{dup}')"
    ));
    assert!(related > 0, "the fixture duplicate has related rows");
    let original = crm_dump(&env);
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:dd-202"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM contacts WHERE id = '{dup}'")),
        0,
        "the duplicate is gone"
    );
    assert_eq!(
        env.count(&format!(
            "SELECT (SELECT count(*) FROM activities WHERE contact_id = '{dup}') + (SELECT count(*) FROM deals WHERE contact_id = '{dup}')"
        )),
        0,
        "nothing points at the duplicate any more"
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM crmgate_changes WHERE field = 'contact_id' AND after = '{survivor}'")),
        related,
        "every related row was re-pointed, each a change"
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(
        crm_dump(&env),
        original,
        "the merge is undone byte for byte"
    );
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM contacts WHERE id = '{dup}'")),
        0,
        "and redone"
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_legal_hold_on_either_record_stops_a_merge_at_apply() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:dd-201"])
        .assert()
        .success();
    let survivor: String = env
        .conn()
        .query_row(
            "SELECT merge_into FROM crmgate_proposals WHERE ext_id = 'dd-201'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let f = env.write("hold.csv", format!("id,legal_hold\n{survivor},1\n"));
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    let before = crm_dump(&env);
    env.cmd(&["apply", "--source", "dedupe-bot"])
        .assert()
        .code(3);
    assert_eq!(crm_dump(&env), before);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'dd-201' AND state = 'blocked'"
        ),
        1
    );
}

/// Applies one exported `apply` or `revert` event to a store: the field takes `new_value`; a
/// whole record (`*`) is deleted (`null`) or re-created from its snapshot.
fn replay_event(conn: &rusqlite::Connection, e: &serde_json::Value) {
    let object = e["object"].as_str().unwrap();
    let record = e["record"].as_str().unwrap();
    let field = e["field"].as_str().unwrap();
    let new: serde_json::Value = serde_json::from_str(e["new_value"].as_str().unwrap()).unwrap();
    let sql_value = |v: &serde_json::Value| -> rusqlite::types::Value {
        match v {
            serde_json::Value::Null => rusqlite::types::Value::Null,
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => rusqlite::types::Value::Integer(i),
                None => rusqlite::types::Value::Real(n.as_f64().unwrap()),
            },
            serde_json::Value::String(s) => rusqlite::types::Value::Text(s.clone()),
            other => panic!("unexpected value {other}"),
        }
    };
    if field == "*" {
        match &new {
            serde_json::Value::Null => {
                conn.execute(&format!("DELETE FROM \"{object}\" WHERE id = ?1"), [record])
                    .unwrap();
            }
            serde_json::Value::String(snapshot) => {
                let row: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(snapshot).unwrap();
                let cols: Vec<String> = row.keys().map(|k| format!("\"{k}\"")).collect();
                let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
                let values: Vec<rusqlite::types::Value> = row.values().map(sql_value).collect();
                conn.execute(
                    &format!(
                        "INSERT INTO \"{object}\" ({}) VALUES ({})",
                        cols.join(", "),
                        marks.join(", ")
                    ),
                    rusqlite::params_from_iter(values.iter()),
                )
                .unwrap();
            }
            other => panic!("unexpected snapshot {other}"),
        }
    } else {
        conn.execute(
            &format!("UPDATE \"{object}\" SET \"{field}\" = ?1 WHERE id = ?2"),
            rusqlite::params![sql_value(&new), record],
        )
        .unwrap();
    }
}

#[test]
fn replaying_the_exported_events_of_a_random_session_reproduces_the_crm() {
    use rand::{Rng, SeedableRng};
    let mut merged = false;
    for seed in [1u64, 2, 3] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let env = Env::new();
        env.cmd(&["init", "--demo"]).assert().success();
        // A session: humans decide a random share of the queue, apply, revert something, again.
        for round in 0..2 {
            let pending: Vec<i64> = {
                let conn = env.conn();
                let mut stmt = conn
                    .prepare("SELECT id FROM crmgate_proposals WHERE state IN ('pending', 'suggested') ORDER BY id")
                    .unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            };
            for id in pending {
                let id = id.to_string();
                match rng.random_range(0..3) {
                    0 => {
                        env.cmd(&["--as", "alice", "approve", &id])
                            .output()
                            .unwrap();
                    }
                    1 => {
                        env.cmd(&["--as", "alice", "reject", &id, "--reason", "no"])
                            .output()
                            .unwrap();
                    }
                    _ => {}
                }
            }
            env.cmd(&["apply"]).output().unwrap();
            let changes = env.count("SELECT count(*) FROM crmgate_changes");
            if changes > 0 {
                let pick = rng.random_range(1..=changes).to_string();
                env.cmd(&["revert", &pick]).output().unwrap();
            }
            if round == 1 {
                let runs = env.count("SELECT max(id) FROM crmgate_runs");
                env.cmd(&["revert", "--run", &runs.to_string()])
                    .output()
                    .unwrap();
            }
        }
        assert!(
            env.count("SELECT count(*) FROM crmgate_changes") > 0,
            "seed {seed}: the session changed things"
        );
        merged |= env.count("SELECT count(*) FROM crmgate_changes WHERE field = '*'") > 0;
        let session = crm_dump(&env);
        // Replay: the same starting CRM, then every apply and revert from the exported log.
        let fresh = Env::new();
        fresh.cmd(&["init", "--demo"]).assert().success();
        let export = stdout_of(&mut env.cmd(&["audit", "export", "--format", "jsonl"]));
        let conn = fresh.conn();
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for line in export.lines() {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            if matches!(e["action"].as_str(), Some("apply" | "revert")) {
                replay_event(&conn, &e);
            }
        }
        drop(conn);
        assert_eq!(
            crm_dump(&fresh),
            session,
            "seed {seed}: the log replays to the same CRM"
        );
    }
    assert!(
        merged,
        "some session applied a merge, so the replay covers merges too"
    );
}

#[test]
fn apply_on_a_locked_store_exits_75_and_changes_nothing() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    // Change 1 exists, so the revert below has something to do.
    env.cmd(&["apply", "--limit", "1"]).assert().success();
    let before = env.dump();
    let holder = env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for args in [
        vec!["apply"],
        vec!["--as", "alice", "approve", "apollo:ap-1"],
        vec!["revert", "1"],
    ] {
        env.cmd(&args)
            .assert()
            .code(75)
            .stderr(predicate::str::contains("locked"));
    }
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(env.dump(), before);
}

#[test]
fn reading_commands_work_while_another_process_holds_the_write_lock() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let holder = env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for args in [
        vec!["status"],
        vec!["list"],
        vec!["show", "clearbit:cb-101"],
        vec!["log"],
        vec!["sources"],
        vec!["audit", "verify"],
        vec!["apply", "--dry-run"],
    ] {
        let out = env.cmd(&args).output().unwrap();
        let code = out.status.code();
        if args[0] == "apply" {
            // A dry run takes the write lock like a real run, and says so when it cannot.
            assert_eq!(code, Some(75), "{args:?}");
        } else {
            assert_eq!(
                code,
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_saved_plan_applies_exactly_what_was_seen_and_a_stale_plan_is_refused() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let plan = env.path("plan.json");
    env.cmd(&["apply", "--dry-run", "--plan-out", plan.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("plan of 6 changes saved"));
    // Something approved after the plan was made is not in it.
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.cmd(&["apply", "--plan", plan.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes"),
        6,
        "exactly the plan"
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'ap-1' AND state = 'approved'"
        ),
        1,
        "not in the plan, not applied"
    );
    // A plan whose records moved on is refused whole, naming the proposals.
    let other = Env::new();
    other.cmd(&["init", "--demo"]).assert().success();
    let plan2 = other.path("plan.json");
    other
        .cmd(&["apply", "--dry-run", "--plan-out", plan2.to_str().unwrap()])
        .assert()
        .success();
    let f = other.write("moved.csv", "id,phone\nc-1001,+1 415 555 0177\n");
    other
        .cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .success();
    let before = other.dump();
    other
        .cmd(&["apply", "--plan", plan2.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the plan was not applied"))
        .stderr(predicate::str::contains("contacts/c-1001"));
    assert_eq!(other.dump(), before);
}

/// A run of eight field writes approved by a human and applied; returns the CRM dump from
/// before the apply.
fn applied_run_of_field_writes(env: &Env) -> String {
    let mut rows = String::from(HEADER);
    for (i, id) in (1001..=1008).enumerate() {
        rows.push_str(&format!(
            "t{i},bot,update,contacts,c-{id},title,Title {i},,,,,\n"
        ));
    }
    let p = env.write("fields.csv", rows);
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    let mut approve = vec!["approve".to_string()];
    approve.extend((0..8).map(|i| format!("bot:t{i}")));
    let approve: Vec<&str> = approve.iter().map(String::as_str).collect();
    env.cmd(&approve).assert().success();
    let original = crm_dump(env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 8 applied"));
    original
}

#[test]
fn a_large_run_is_reverted_in_chunks_as_one_revert_run() {
    let env = Env::with_crm();
    let original = applied_run_of_field_writes(&env);
    // Eight changes, three per transaction.
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "3")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 2: 8 changes reverted"));
    assert_eq!(crm_dump(&env), original, "every record is back");
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 2 AND reverts IS NOT NULL"),
        8
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_runs"), 2);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"),
        8
    );
    // Each apply and revert event names the change it wrote, and that change's run.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events e JOIN crmgate_changes c ON c.id = e.change_id
             WHERE e.action IN ('apply', 'revert') AND e.run_id = c.run_id
               AND e.proposal_id IS c.proposal_id AND e.field = c.field"
        ),
        16
    );
    let reverted_by = env.count("SELECT max(id) FROM crmgate_changes WHERE run_id = 2");
    env.cmd(&["log", "--limit", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "run 2, change {reverted_by}"
        )));
    env.cmd(&["audit", "verify"]).assert().success();
}

/// Two sources propose `record`'s title, both approved: the first rewrites what it `holds`, so
/// the second still finds the record as it was proposed against, and one apply run writes the
/// field twice.
fn title_proposed_twice(env: &Env, record: &str, holds: &str, value: &str) {
    let p = env.write(
        "twice.csv",
        format!(
            "{HEADER}s1,bot,update,contacts,{record},title,{holds},,,,,\n\
             s2,crawler,update,contacts,{record},title,{value},,,,,\n"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["approve", "bot:s1", "crawler:s2"])
        .assert()
        .success();
}

#[test]
fn a_run_that_wrote_a_field_twice_is_still_reverted_in_chunks() {
    let env = Env::with_crm();
    title_proposed_twice(&env, "c-1001", "General Counsel", "Chief Legal Officer");
    let original = crm_dump(&env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 2 applied"));
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_changes WHERE run_id = 1 AND record = 'c-1001' AND field = 'title'"
        ),
        2
    );
    // The older change's `after` is not what the record holds, but the newer one's is: the
    // run can be undone, and so a chunk at a time.
    let revertible = |force| {
        crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing)
            .unwrap()
            .run_revertible_in_chunks(1, force)
            .unwrap()
    };
    assert!(revertible(false));
    env.conn()
        .execute(
            "UPDATE contacts SET title = 'Edited since' WHERE id = 'c-1001'",
            [],
        )
        .unwrap();
    assert!(!revertible(false), "the newest change no longer holds");
    assert!(revertible(true));
    env.conn()
        .execute(
            "UPDATE contacts SET title = 'Chief Legal Officer' WHERE id = 'c-1001'",
            [],
        )
        .unwrap();
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "1")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 2: 2 changes reverted"));
    assert_eq!(crm_dump(&env), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_run_partly_undone_or_holding_a_merge_is_not_reverted_in_chunks() {
    let revertible = |env: &Env, run| {
        crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing)
            .unwrap()
            .run_revertible_in_chunks(run, true)
            .unwrap()
    };
    let env = Env::with_crm();
    applied_run_of_field_writes(&env);
    assert!(revertible(&env, 1));
    // One change of the run undone alone: the run as a whole can no longer be.
    env.cmd(&["revert", "5"]).assert().success();
    assert!(!revertible(&env, 1));
    // A later run's change undone does not count against run 1's.
    let env = Env::with_crm();
    applied_run_of_field_writes(&env);
    let p = env.write(
        "later.csv",
        format!(
            "{HEADER}t9,bot,update,contacts,c-1009,title,Later,,,,,
"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["approve", "bot:t9"]).assert().success();
    env.cmd(&["apply"]).assert().success();
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert!(revertible(&env, 1));
    // A merge deletes a whole record, which only a revert in one transaction restores.
    let env = Env::with_crm();
    let c = env.write(
        "more.csv",
        "id,first_name,last_name,email\n\
         m-1,Ada,Byron,ada@example.com\n\
         m-2,Ada,Byron,ada@example.com\n",
    );
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    let merge = env.write(
        "merge.csv",
        format!("{HEADER}mg-1,dedupe-bot,merge,contacts,m-1,,,m-2,0.99,,,\n"),
    );
    env.cmd(&["propose", merge.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 1 AND field = '*'"),
        1
    );
    assert!(!revertible(&env, 1));
}

#[test]
fn a_large_run_with_a_record_moved_on_is_refused_whole_as_before() {
    // The oldest change, reverted last (in the last chunk), or the newest, which the first
    // chunk meets itself while the check of the whole run is still under way.
    for record in ["c-1001", "c-1008"] {
        let env = Env::with_crm();
        applied_run_of_field_writes(&env);
        env.conn()
            .execute(
                "UPDATE contacts SET title = 'Edited since' WHERE id = ?1",
                [record],
            )
            .unwrap();
        let before = env.dump();
        env.cmd(&["revert", "--run", "1"])
            .env("CRMGATE_APPLY_CHUNK", "3")
            .assert()
            .code(1)
            .stderr(predicate::str::contains("nothing was reverted"))
            .stderr(predicate::str::contains(format!(
                "{record} title is now \"Edited since\""
            )));
        assert_eq!(
            env.dump(),
            before,
            "nothing changed, not even a first chunk"
        );
    }
}
