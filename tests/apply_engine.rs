//! Apply and revert where a write reaches records it does not name: foreign-key actions
//! (`ON UPDATE CASCADE`, `ON DELETE SET NULL`) and user triggers. Each test drives the real
//! binary and checks the store: the change log's before and after, the proposals' states, and
//! that reverting the run puts the CRM tables back exactly.

use assert_cmd::Command;

const HEADER: &str =
    "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n";

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

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A store holding the CRM tables `schema` creates, filled by `rows`, under [`POLICY`].
    fn new(schema: &str, rows: &str) -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let conn = env.conn();
        conn.execute_batch(schema).expect("schema");
        conn.execute_batch(rows).expect("rows");
        drop(conn);
        env.cmd(&["init"]).assert().success();
        let p = env.write("policy.toml", POLICY);
        env.cmd(&["policy", "set", &p]).assert().success();
        env
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("crm.db")
    }

    fn write(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write");
        p.display().to_string()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("crmgate").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("CRMGATE_DB")
            .env_remove("CRMGATE_APPLY_CHUNK")
            .env("CRMGATE_USER", "tester")
            .env("CRMGATE_NOW", "2026-01-02T03:04:05Z")
            .env("NO_COLOR", "1")
            .arg("--db")
            .arg(self.db())
            .args(args);
        c
    }

    fn conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.db()).expect("open store");
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        conn
    }

    fn propose(&self, rows: &str) {
        let p = self.write("proposals.csv", &format!("{HEADER}{rows}"));
        self.cmd(&["propose", &p]).assert().success();
    }

    /// The one value `sql` selects, as text (`NULL` for none).
    fn text(&self, sql: &str) -> String {
        use rusqlite::types::Value;
        match self.conn().query_row(sql, [], |r| r.get(0)).expect(sql) {
            Value::Null => "NULL".into(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) => t,
            Value::Blob(b) => format!("{b:?}"),
        }
    }

    /// Every row of the given tables, in a stable order.
    fn dump(&self, tables: &[&str]) -> String {
        let conn = self.conn();
        let mut out = String::new();
        for t in tables {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {t} ORDER BY 1"))
                .unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(r) = rows.next().unwrap() {
                let cells: Vec<String> = (0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                out.push_str(&format!("{t}: {}\n", cells.join("|")));
            }
        }
        out
    }

    /// `record field before after` of every change of `run`, in order.
    fn changes(&self, run: i64) -> Vec<String> {
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
    Env::new(TEAMS, &rows)
}

#[test]
fn a_write_cascaded_to_a_record_earlier_in_the_run_makes_its_proposal_a_conflict() {
    let env = teams(600);
    let original = env.dump(&["teams", "people"]);
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
    assert_eq!(env.dump(&["teams", "people"]), original);
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
    let env = Env::new(
        "CREATE TABLE teams (id TEXT PRIMARY KEY, code TEXT UNIQUE, name TEXT);
         CREATE TABLE people (
             id TEXT PRIMARY KEY,
             team_code TEXT REFERENCES teams(code) ON DELETE SET NULL,
             title TEXT
         );",
        &rows,
    );
    let original = env.dump(&["teams", "people"]);
    env.propose("m-1,bot,merge,teams,t1,,,t2,0.9,,,\n");
    env.cmd(&["--as", "alice", "approve", "bot:m-1"])
        .assert()
        .success();
    // Queued after the merge, against the team code the merge moves.
    env.propose("r-1,bot,update,people,p-001,team_code,C,,0.9,,,\n");
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(
        env.changes(1),
        [
            "people/p-000 team_code 'A' 'C'",
            "people/p-001 team_code 'A' 'C'",
            "people/p-002 team_code 'A' 'C'",
            "people/p-003 team_code 'A' 'C'",
            "people/p-004 team_code 'A' 'C'",
            "teams/t1 * '{\"code\":\"A\",\"id\":\"t1\",\"name\":\"Alpha\"}' NULL",
            "teams/t2 name NULL 'Alpha'",
        ]
    );
    assert_eq!(
        env.text("SELECT count(*) FROM people WHERE team_code = 'C'"),
        "5"
    );
    assert_eq!(
        env.text("SELECT state FROM crmgate_proposals WHERE ext_id = 'r-1'"),
        "conflict"
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(env.dump(&["teams", "people"]), original);
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
    let env = Env::new(
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
    let original = env.dump(&["teams", "people"]);
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
    assert_eq!(env.dump(&["teams", "people"]), original);
    env.cmd(&["audit", "verify"]).assert().success();
}
