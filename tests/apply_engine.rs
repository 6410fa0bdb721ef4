//! Apply and revert, checked in the store: the change log's before and after, the proposals'
//! states, and that reverting the run puts the CRM tables back exactly. First where a write
//! reaches records it does not name (foreign-key actions, user triggers), through the binary;
//! then through the library (`apply::run`, `apply::run_revert`), as a program embedding crmgate
//! would call it, on a store the binary set up.

use crmgate::apply::{self, ApplyRequest, Ending, Options, Progress, RevertRequest, RevertTarget};
use crmgate::store::Store;

mod common;

use common::{Env, HEADER};

/// Every update goes through on the policy's word; a merge needs alice, of ops.
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

[[rule]]
name = "merges"
kind = ["merge"]
action = "review"
approvers = ["ops"]

[roles]
alice = ["ops", "admin"]
"#;

/// A store holding the CRM tables `schema` creates, filled by `rows`, under [`POLICY`].
fn crm_of(schema: &str, rows: &str) -> Env {
    let env = Env::new();
    let conn = env.conn();
    conn.execute_batch(schema).expect("schema");
    conn.execute_batch(rows).expect("rows");
    drop(conn);
    env.cmd(&["init"]).assert().success();
    let p = env.policy("policy.toml", POLICY);
    env.cmd(&["policy", "set", &p]).assert().success();
    env
}

impl Env {
    fn propose(&self, rows: &str) {
        let p = self.write("proposals.csv", format!("{HEADER}{rows}"));
        self.cmd(&["propose", &p]).assert().success();
    }
}

const TEAMS: &str = "
CREATE TABLE teams (id TEXT PRIMARY KEY, code TEXT UNIQUE);
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    team_code TEXT REFERENCES teams(code) ON UPDATE CASCADE,
    title TEXT
);";

/// Teams A and C; `people` people in team A, with no title.
fn teams(people: usize) -> Env {
    let mut rows =
        String::from("INSERT INTO teams VALUES ('t1', 'A'); INSERT INTO teams VALUES ('t2', 'C');");
    for i in 0..people {
        rows.push_str(&format!(
            "INSERT INTO people VALUES ('p-{i:03}', 'A', NULL);"
        ));
    }
    crm_of(TEAMS, &rows)
}

#[test]
fn a_write_cascaded_to_a_record_earlier_in_the_run_makes_its_proposal_a_conflict() {
    let env = teams(600);
    let original = env.dump_of(&["teams", "people"]);
    // Two ingests, so that the team's proposal is queued (and applied) first.
    env.propose("r-t1,bot,update,teams,t1,code,B,,0.9,,,\n");
    let mut rows = String::from("r-team,bot,update,people,p-000,team_code,C,,0.9,,,\n");
    for i in 1..600 {
        rows.push_str(&format!(
            "r-{i},bot,update,people,p-{i:03},title,Title {i},,0.9,,,\n"
        ));
    }
    env.propose(&rows);
    assert_eq!(
        env.text("SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"),
        "601"
    );
    // One run, one chunk: the team's new code cascades to p-000 before its turn comes.
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(
        env.text("SELECT team_code FROM people WHERE id = 'p-000'"),
        "B"
    );
    assert_eq!(
        env.text("SELECT state FROM crmgate_proposals WHERE ext_id = 'r-team' AND source = 'bot'"),
        "conflict"
    );
    let changes = env.changes(1);
    assert_eq!(changes.len(), 600);
    assert_eq!(changes[0], "teams/t1 code 'A' 'B'");
    assert!(
        !changes
            .iter()
            .any(|c| c.starts_with("people/p-000 team_code")),
        "p-000 was written from a stale read: {changes:?}"
    );
    assert_eq!(changes[1], "people/p-001 title NULL 'Title 1'");
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(env.dump_of(&["teams", "people"]), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_merge_re_points_the_rows_an_on_delete_set_null_would_have_emptied_and_reverts_exactly() {
    let mut rows = String::from(
        "INSERT INTO teams VALUES ('t1', 'A', 'Alpha'); INSERT INTO teams VALUES ('t2', 'C', NULL);",
    );
    for i in 0..5 {
        rows.push_str(&format!(
            "INSERT INTO people VALUES ('p-{i:03}', 'A', NULL);"
        ));
    }
    let env = crm_of(
        "CREATE TABLE teams (id TEXT PRIMARY KEY, code TEXT UNIQUE, name TEXT);
         CREATE TABLE people (
             id TEXT PRIMARY KEY,
             team_code TEXT REFERENCES teams(code) ON DELETE SET NULL,
             title TEXT
         );",
        &rows,
    );
    let original = env.dump_of(&["teams", "people"]);
    env.propose("m-1,bot,merge,teams,t1,,,t2,0.9,,,\n");
    env.cmd(&["--as", "alice", "approve", "bot:m-1"])
        .assert()
        .success();
    // Queued after the merge, against the team code the merge moves: a run's field writes
    // come before its merges, so it is applied first and the merge re-points the other four.
    env.propose("r-1,bot,update,people,p-001,team_code,C,,0.9,,,\n");
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.changes(1),
        [
            "people/p-001 team_code 'A' 'C'",
            "people/p-000 team_code 'A' 'C'",
            "people/p-002 team_code 'A' 'C'",
            "people/p-003 team_code 'A' 'C'",
            "people/p-004 team_code 'A' 'C'",
            "teams/t1 * '{\"code\":\"A\",\"crmgate:rowid\":1,\"id\":\"t1\",\"name\":\"Alpha\"}' NULL",
            "teams/t2 name NULL 'Alpha'",
        ]
    );
    assert_eq!(
        env.text("SELECT count(*) FROM people WHERE team_code = 'C'"),
        "5"
    );
    assert_eq!(
        env.text("SELECT state FROM crmgate_proposals WHERE ext_id = 'r-1'"),
        "applied"
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(env.dump_of(&["teams", "people"]), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

/// Every CRM table row by row in rowid order, each row with its rowid, as `sqlite3 .dump`
/// writes them: two stores that differ here dump differently.
fn rowid_dump(env: &Env) -> String {
    let conn = env.conn();
    let mut out = String::new();
    for t in ["orgs", "staff"] {
        out.push_str(&format!("== {t}\n"));
        let sql = format!("SELECT rowid, * FROM {t} ORDER BY rowid");
        out.push_str(&common::rows_text(&conn, &sql));
    }
    out
}

#[test]
fn a_reverted_merge_re_creates_the_duplicate_at_its_rowid_so_the_crm_dumps_byte_for_byte_as_before()
{
    // A text primary key: the rowid is not the key, and the duplicate is not the last row.
    let env = crm_of(
        "CREATE TABLE orgs (code TEXT PRIMARY KEY, name TEXT, city TEXT);
         CREATE TABLE staff (id INTEGER PRIMARY KEY, org TEXT REFERENCES orgs(code), name TEXT);",
        "INSERT INTO orgs VALUES ('o-1', 'Acme', NULL), ('o-2', 'Acme', 'Paris'),
             ('o-3', 'Zeta', 'Oslo');
         INSERT INTO staff VALUES (1, 'o-2', 'Ann'), (2, 'o-1', 'Bo'), (3, 'o-2', 'Cy');",
    );
    let original = rowid_dump(&env);
    env.propose("m-1,bot,merge,orgs,o-2,,,o-1,0.9,,,\n");
    env.cmd(&["--as", "alice", "approve", "bot:m-1"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    assert_eq!(env.count("SELECT count(*) FROM orgs WHERE code = 'o-2'"), 0);
    assert_eq!(
        env.count("SELECT count(*) FROM staff WHERE org = 'o-1'"),
        3,
        "re-pointed"
    );
    assert_eq!(
        env.text("SELECT city FROM orgs WHERE code = 'o-1'"),
        "Paris"
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(rowid_dump(&env), original);
    // Reverting the revert merges again; reverting that puts the duplicate back where it was.
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert_eq!(env.count("SELECT count(*) FROM orgs WHERE code = 'o-2'"), 0);
    env.cmd(&["revert", "--run", "3"]).assert().success();
    assert_eq!(rowid_dump(&env), original);
    // `show` lists the record's fields, not where it goes back.
    let whole: i64 =
        env.one("SELECT id FROM crmgate_changes WHERE field = '*' ORDER BY id LIMIT 1");
    let (shown, _) = common::ok(env.cmd(&["show", &format!("change:{whole}")]));
    assert!(
        shown.contains("Paris") && !shown.contains("rowid"),
        "{shown}"
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_field_a_user_trigger_wrote_earlier_in_the_run_is_a_conflict_and_the_run_reverts_exactly() {
    let mut rows = String::from("INSERT INTO teams VALUES ('t1', 'A', 0);");
    for i in 0..600 {
        rows.push_str(&format!(
            "INSERT INTO people VALUES ('p-{i:03}', 'A', NULL);"
        ));
    }
    let env = crm_of(
        "CREATE TABLE teams (id TEXT PRIMARY KEY, code TEXT UNIQUE, titled INTEGER NOT NULL);
         CREATE TABLE people (id TEXT PRIMARY KEY, team_code TEXT REFERENCES teams(code),
             title TEXT);
         CREATE TRIGGER people_titled AFTER UPDATE OF title ON people BEGIN
             UPDATE teams SET titled = (SELECT count(*) FROM people p
                 WHERE p.team_code = teams.code AND p.title IS NOT NULL)
             WHERE code = new.team_code;
         END;",
        &rows,
    );
    let original = env.dump_of(&["teams", "people"]);
    let mut titles = String::new();
    for i in 0..600 {
        titles.push_str(&format!(
            "r-{i},bot,update,people,p-{i:03},title,Title {i},,0.9,,,\n"
        ));
    }
    env.propose(&titles);
    // Proposed when no one had a title; the titles written first move it on.
    env.propose("r-t1,bot,update,teams,t1,titled,42,,0.9,,,\n");
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(env.text("SELECT titled FROM teams"), "600");
    assert_eq!(
        env.text("SELECT state FROM crmgate_proposals WHERE ext_id = 'r-t1'"),
        "conflict"
    );
    let changes = env.changes(1);
    assert_eq!(changes.len(), 600);
    assert_eq!(changes[599], "people/p-599 title NULL 'Title 599'");
    // Chunks of 100 would split the run; a run whose writes reach further goes in one.
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "100")
        .assert()
        .success();
    assert_eq!(env.dump_of(&["teams", "people"]), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

const NOW: &str = "2026-01-02T03:04:05.000Z";

fn now() -> String {
    NOW.into()
}

/// A store of `n` contacts with no title, and a title proposed (and approved) for each.
fn store_with_titles(n: usize) -> Env {
    let env = crm_of("", "");
    let mut contacts = String::from("id,first_name\n");
    let mut proposals = String::new();
    for i in 0..n {
        contacts.push_str(&format!("k-{i:03},Kim\n"));
        proposals.push_str(&format!(
            "t-{i},bot,update,contacts,k-{i:03},title,Engineer {i},,0.9,,,\n"
        ));
    }
    let c = env.write("contacts.csv", &contacts);
    env.cmd(&["import", "contacts", &c]).assert().success();
    env.propose(&proposals);
    env
}

/// Every contact, in id order.
fn contacts(dir: &Env) -> Vec<String> {
    let conn = dir.conn();
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

/// The policy the store holds now.
fn policy_in_force(store: &Store) -> crmgate::policy::Policy {
    let v = store.current_policy().unwrap().unwrap();
    crmgate::policy::parse(&v.text, store.schema()).unwrap()
}

fn apply_with(
    store: &mut Store,
    chunk: usize,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> apply::Applied {
    let version = store.current_policy().unwrap().unwrap().version;
    let policy = policy_in_force(store);
    let req = ApplyRequest {
        policy: &policy,
        version,
        actor: "tester",
        opts: Options::default(),
        follow: None,
        make_plan: false,
        dry_run,
        clock: now,
        chunk,
    };
    apply::run(store, &req, progress).unwrap()
}

#[test]
fn applying_in_chunks_records_every_change_and_reverting_the_run_restores_the_contacts() {
    let dir = store_with_titles(25);
    let original = contacts(&dir);
    let mut store = dir.store();
    let applied = apply_with(&mut store, 7, false, &mut apply::NoProgress);
    assert!(applied.stopped.is_none());
    assert_eq!(applied.report.count(Ending::Applied), 25);
    assert_eq!(applied.report.run, Some(1));
    assert_eq!(
        dir.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'"),
        25
    );
    // One change and one apply event per proposal, all of run 1, each before = NULL.
    assert_eq!(
        dir.count(
            "SELECT count(*) FROM crmgate_changes WHERE run_id = 1 AND before IS NULL
             AND after = 'Engineer ' || CAST(substr(record, 3) AS INTEGER)"
        ),
        25
    );
    assert_eq!(
        dir.count("SELECT count(*) FROM crmgate_events WHERE action = 'apply' AND run_id = 1"),
        25
    );
    assert_eq!(
        dir.count("SELECT count(*) FROM contacts WHERE title IS NULL"),
        0
    );

    let mut progress = Counted::default();
    let req = RevertRequest {
        target: RevertTarget::Run(1),
        policy: &policy_in_force(&store),
        force: false,
        actor: "tester",
        clock: now,
        chunk: 4,
    };
    let reverted = apply::run_revert(&mut store, &req, &mut progress).unwrap();
    assert!(reverted.stopped.is_none());
    assert_eq!(
        (reverted.run, reverted.done.count, reverted.total),
        (Some(2), 25, 25)
    );
    assert_eq!(
        (progress.total, progress.done, progress.finished),
        (25, 25, 1)
    );
    assert_eq!(contacts(&dir), original);
    assert_eq!(
        dir.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"),
        25
    );
    assert_eq!(
        dir.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 2 AND reverts IS NOT NULL"),
        25
    );
}

#[test]
fn a_dry_run_through_the_library_changes_nothing_and_reports_what_it_would_apply() {
    let dir = store_with_titles(5);
    let before = (
        contacts(&dir),
        dir.count("SELECT count(*) FROM crmgate_events"),
    );
    let mut store = dir.store();
    let applied = apply_with(&mut store, 2, true, &mut apply::NoProgress);
    assert_eq!(applied.report.count(Ending::Applied), 5);
    let after = (
        contacts(&dir),
        dir.count("SELECT count(*) FROM crmgate_events"),
    );
    assert_eq!(after, before);
    assert_eq!(
        dir.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"),
        5
    );
}

#[test]
fn a_run_with_a_record_moved_on_is_refused_whole_and_nothing_is_reverted() {
    let dir = store_with_titles(12);
    let mut store = dir.store();
    apply_with(&mut store, 5, false, &mut apply::NoProgress);
    dir.conn()
        .execute(
            "UPDATE contacts SET title = 'Edited' WHERE id = 'k-003'",
            [],
        )
        .unwrap();
    let applied = contacts(&dir);
    let req = RevertRequest {
        target: RevertTarget::Run(1),
        policy: &policy_in_force(&store),
        force: false,
        actor: "tester",
        clock: now,
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
        dir.count("SELECT count(*) FROM crmgate_runs WHERE kind = 'revert'"),
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
    let mut store = dir.store();
    let mut progress = TriggerAfterFirstChunk {
        db: dir.db(),
        added: false,
    };
    let applied = apply_with(&mut store, 5, false, &mut progress);
    // The second chunk's writes read back upper-cased: each is undone, under a savepoint.
    assert_eq!(applied.report.count(Ending::Applied), 5);
    assert_eq!(applied.report.count(Ending::Failed), 5);
    assert_eq!(
        dir.count("SELECT count(*) FROM contacts WHERE title IS NULL"),
        5
    );
    assert_eq!(
        dir.count("SELECT count(*) FROM crmgate_changes WHERE after <> before OR before IS NULL"),
        5
    );
}
