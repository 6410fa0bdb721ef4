//! Apply and revert through the library, as a program embedding crmgate would call them: a
//! small store in a temp dir (set up with the binary), then `apply::run` and
//! `apply::run_revert` on it, checked against the store.

use assert_cmd::Command;
use crmgate::apply::{self, ApplyRequest, Ending, Options, Progress, RevertRequest, RevertTarget};
use crmgate::store::{OpenMode, Store};

const HEADER: &str =
    "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n";

const POLICY: &str = r#"
[defaults]
autonomy = "autonomous"
auto_min_confidence = 0.5
max_auto_per_run = 1000000
max_auto_per_day = 1000000

[[rule]]
name = "everything"
kind = ["update"]
action = "auto"
"#;

const NOW: &str = "2026-01-02T03:04:05.000Z";

fn now() -> String {
    NOW.into()
}

/// A store of `n` contacts with no title, and a title proposed (and approved) for each.
fn store_with_titles(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        Command::cargo_bin("crmgate")
            .unwrap()
            .current_dir(dir.path())
            .env_remove("CRMGATE_DB")
            .env("CRMGATE_USER", "tester")
            .env("CRMGATE_NOW", NOW)
            .arg("--db")
            .arg(dir.path().join("crm.db"))
            .args(args)
            .assert()
            .success();
    };
    cmd(&["init"]);
    std::fs::write(dir.path().join("policy.toml"), POLICY).unwrap();
    cmd(&["policy", "set", "policy.toml"]);
    let mut contacts = String::from("id,first_name\n");
    let mut proposals = String::from(HEADER);
    for i in 0..n {
        contacts.push_str(&format!("k-{i:03},Kim\n"));
        proposals.push_str(&format!(
            "t-{i},bot,update,contacts,k-{i:03},title,Engineer {i},,0.9,,,\n"
        ));
    }
    std::fs::write(dir.path().join("contacts.csv"), contacts).unwrap();
    std::fs::write(dir.path().join("proposals.csv"), proposals).unwrap();
    cmd(&["import", "contacts", "contacts.csv"]);
    cmd(&["propose", "proposals.csv"]);
    dir
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("crm.db"), OpenMode::Existing).unwrap()
}

fn conn(dir: &tempfile::TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.path().join("crm.db")).unwrap()
}

fn count(dir: &tempfile::TempDir, sql: &str) -> i64 {
    conn(dir).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Every contact, in id order.
fn contacts(dir: &tempfile::TempDir) -> Vec<String> {
    let conn = conn(dir);
    let mut stmt = conn
        .prepare("SELECT id || '|' || coalesce(title, 'NULL') FROM contacts ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Records what a run reported, and that it was finished once.
#[derive(Default)]
struct Counted {
    total: u64,
    done: u64,
    finished: u32,
}

impl Progress for Counted {
    fn shown(&self) -> bool {
        true
    }
    fn start(&mut self, total: u64) {
        self.total = total;
    }
    fn advance(&mut self, done: u64) {
        self.done += done;
    }
    fn finish(&mut self) {
        self.finished += 1;
    }
}

fn apply_with(store: &mut Store, chunk: usize, dry_run: bool) -> apply::Applied {
    let v = store.current_policy().unwrap().unwrap();
    let policy = crmgate::policy::parse(&v.text, store.schema()).unwrap();
    let req = ApplyRequest {
        policy: &policy,
        version: v.version,
        actor: "tester",
        opts: Options::default(),
        follow: None,
        make_plan: false,
        dry_run,
        now,
        chunk,
    };
    apply::run(store, &req, &mut apply::NoProgress).unwrap()
}

#[test]
fn applying_in_chunks_records_every_change_and_reverting_the_run_restores_the_contacts() {
    let dir = store_with_titles(25);
    let original = contacts(&dir);
    let mut store = open(&dir);
    let applied = apply_with(&mut store, 7, false);
    assert!(applied.stopped.is_none());
    assert_eq!(applied.report.count(Ending::Applied), 25);
    assert_eq!(applied.report.run, Some(1));
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'"
        ),
        25
    );
    // One change and one apply event per proposal, all of run 1, each before = NULL.
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_changes WHERE run_id = 1 AND before IS NULL
             AND after = 'Engineer ' || CAST(substr(record, 3) AS INTEGER)"
        ),
        25
    );
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_events WHERE action = 'apply' AND run_id = 1"
        ),
        25
    );
    assert_eq!(
        count(&dir, "SELECT count(*) FROM contacts WHERE title IS NULL"),
        0
    );

    let mut progress = Counted::default();
    let req = RevertRequest {
        target: RevertTarget::Run(1),
        force: false,
        actor: "tester",
        now,
        chunk: 4,
    };
    let reverted = apply::run_revert(&mut store, &req, &mut progress).unwrap();
    assert!(reverted.stopped.is_none());
    assert_eq!(
        (reverted.run, reverted.done.count, reverted.total),
        (2, 25, 25)
    );
    assert_eq!(
        (progress.total, progress.done, progress.finished),
        (25, 25, 1)
    );
    assert_eq!(contacts(&dir), original);
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"
        ),
        25
    );
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_changes WHERE run_id = 2 AND reverts IS NOT NULL"
        ),
        25
    );
}

#[test]
fn a_dry_run_through_the_library_changes_nothing_and_reports_what_it_would_apply() {
    let dir = store_with_titles(5);
    let before = (
        contacts(&dir),
        count(&dir, "SELECT count(*) FROM crmgate_events"),
    );
    let mut store = open(&dir);
    let applied = apply_with(&mut store, 2, true);
    assert_eq!(applied.report.count(Ending::Applied), 5);
    let after = (
        contacts(&dir),
        count(&dir, "SELECT count(*) FROM crmgate_events"),
    );
    assert_eq!(after, before);
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"
        ),
        5
    );
}

#[test]
fn a_run_with_a_record_moved_on_is_refused_whole_and_nothing_is_reverted() {
    let dir = store_with_titles(12);
    let mut store = open(&dir);
    apply_with(&mut store, 5, false);
    conn(&dir)
        .execute(
            "UPDATE contacts SET title = 'Edited' WHERE id = 'k-003'",
            [],
        )
        .unwrap();
    let applied = contacts(&dir);
    let req = RevertRequest {
        target: RevertTarget::Run(1),
        force: false,
        actor: "tester",
        now,
        chunk: 5,
    };
    let e = match apply::run_revert(&mut store, &req, &mut apply::NoProgress) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a moved-on record must refuse the revert"),
    };
    assert!(e.contains("nothing was reverted"), "{e}");
    assert!(e.contains("k-003"), "{e}");
    assert_eq!(contacts(&dir), applied);
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_runs WHERE kind = 'revert'"
        ),
        0
    );
}

/// Adds a trigger that rewrites every title written, once the first chunk has committed.
struct TriggerAfterFirstChunk {
    db: std::path::PathBuf,
    added: bool,
}

impl Progress for TriggerAfterFirstChunk {
    fn advance(&mut self, _done: u64) {
        if !self.added {
            self.added = true;
            rusqlite::Connection::open(&self.db)
                .unwrap()
                .execute_batch(
                    "CREATE TRIGGER shout AFTER UPDATE OF title ON contacts BEGIN
                         UPDATE contacts SET title = upper(new.title) WHERE id = new.id;
                     END;",
                )
                .unwrap();
        }
    }
}

#[test]
fn a_trigger_added_between_two_chunks_is_seen_by_the_next_one() {
    let dir = store_with_titles(10);
    let mut store = open(&dir);
    let v = store.current_policy().unwrap().unwrap();
    let policy = crmgate::policy::parse(&v.text, store.schema()).unwrap();
    let req = ApplyRequest {
        policy: &policy,
        version: v.version,
        actor: "tester",
        opts: Options::default(),
        follow: None,
        make_plan: false,
        dry_run: false,
        now,
        chunk: 5,
    };
    let mut progress = TriggerAfterFirstChunk {
        db: dir.path().join("crm.db"),
        added: false,
    };
    let applied = apply::run(&mut store, &req, &mut progress).unwrap();
    // The second chunk's writes read back upper-cased: each is undone, under a savepoint.
    assert_eq!(applied.report.count(Ending::Applied), 5);
    assert_eq!(applied.report.count(Ending::Failed), 5);
    assert_eq!(
        count(&dir, "SELECT count(*) FROM contacts WHERE title IS NULL"),
        5
    );
    assert_eq!(
        count(
            &dir,
            "SELECT count(*) FROM crmgate_changes WHERE after <> before OR before IS NULL"
        ),
        5
    );
}
