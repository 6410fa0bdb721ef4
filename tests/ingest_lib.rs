//! Propose through the library, without the binary: a file into a temporary store, then the
//! queue, the decisions, the rejects and the audit log read back from the store.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use crmgate::error::Error;
use crmgate::fixtures::DEMO_POLICY;
use crmgate::ingest::Input;
use crmgate::ingest::proposals::{BULK_MIN_ROWS, Report, Request, propose};
use crmgate::policy::{Policy, parse};
use crmgate::store::{OpenMode, Store};

mod common;

use common::HEADER;

/// A store with the default tables, four contacts (two without a title) and the demo policy,
/// made through the library in the harness's scratch directory (whose count, dump and store
/// it answers with).
struct Env {
    scratch: common::Env,
    policy: Policy,
}

impl Deref for Env {
    type Target = common::Env;
    fn deref(&self) -> &common::Env {
        &self.scratch
    }
}

impl Env {
    fn new() -> Env {
        let scratch = common::Env::new();
        let mut store = Store::open(&scratch.db(), OpenMode::Create).unwrap();
        store.create_default_tables().unwrap();
        scratch
            .conn()
            .execute_batch(
                "INSERT INTO contacts (id, first_name, title) VALUES
                     ('c-1', 'Ada', NULL), ('c-2', 'Bo', NULL), ('c-3', 'Cy', 'CTO'),
                     ('c-4', 'Di', 'Analyst');",
            )
            .unwrap();
        let text = std::str::from_utf8(DEMO_POLICY.data).unwrap();
        let policy = parse(text, store.schema()).expect("the demo policy parses");
        Env { scratch, policy }
    }

    fn file(&self, name: &str, rows: &str) -> PathBuf {
        self.write(name, format!("{HEADER}{rows}"))
            .as_path()
            .to_path_buf()
    }

    fn propose(&self, file: &Path, skip_invalid: bool) -> Result<Report, Error> {
        let mut store = self.store();
        let inputs = [Input::from_arg(file.to_str().unwrap(), None).unwrap()];
        let request = Request {
            inputs: &inputs,
            source: None,
            skip_invalid,
            rejects: skip_invalid.then(|| self.path("rejects.csv")),
            actor: "ops".into(),
            now: "2026-12-01T09:00:00.000Z".into(),
            policy: &self.policy,
            policy_version: 1,
            bulk_min_rows: BULK_MIN_ROWS,
            progress: &|_, _| {},
        };
        propose(&mut store, &request)
    }

    /// (state, decision, baseline) of the proposal `source` calls `id`.
    fn queued(&self, source: &str, id: &str) -> (String, String, serde_json::Value) {
        let p = self
            .store()
            .proposal_by_source_id(source, id)
            .unwrap()
            .unwrap_or_else(|| panic!("{source}:{id} is queued"));
        (
            p.state.to_string(),
            p.decision.map(|d| d.to_string()).unwrap_or_default(),
            p.baseline,
        )
    }

    fn audit_verifies(&self) -> u64 {
        common::audit_checked(&self.store())
    }
}

const THREE: &str = "a-1,clearbit,update,contacts,c-1,title,Head of Data,,0.95,,,\n\
                     a-2,clearbit,update,contacts,c-3,title,CEO,,0.6,,,new job\n\
                     a-3,clearbit,update,contacts,c-2,title,VP Sales,,0.95,,,\n";

#[test]
fn a_small_file_queues_each_proposal_decided_by_the_policy_with_the_value_it_found() {
    let env = Env::new();
    let report = env.propose(&env.file("p.csv", THREE), false).unwrap();
    assert_eq!(
        (report.ingested, report.duplicates, report.rejected),
        (3, 0, 0)
    );
    assert_eq!(report.by_kind, vec![("update".to_string(), 3)]);
    assert_eq!(
        env.queued("clearbit", "a-1"),
        ("approved".into(), "auto".into(), serde_json::Value::Null)
    );
    let (state, decision, baseline) = env.queued("clearbit", "a-2");
    assert_eq!((state.as_str(), decision.as_str()), ("pending", "review"));
    assert_eq!(baseline, serde_json::json!("CTO"));
    let decided: u64 = report.by_decision.iter().map(|(_, n)| n).sum();
    assert_eq!(decided, 3);
    // One ingest, and its event at the head of a chain that verifies.
    assert_eq!(env.count("SELECT count(*) FROM crmgate_ingests"), 1);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action = 'ingest'"),
        1
    );
    assert_eq!(env.audit_verifies(), 1);
}

#[test]
fn ingesting_the_same_file_again_counts_duplicates_and_changes_nothing() {
    let env = Env::new();
    let file = env.file("p.csv", THREE);
    env.propose(&file, false).unwrap();
    let before = env.dump();
    let again = env.propose(&file, false).unwrap();
    assert_eq!((again.ingested, again.duplicates), (0, 3));
    assert_eq!(env.dump(), before);
}

#[test]
fn a_bad_row_anywhere_leaves_nothing_written() {
    let env = Env::new();
    env.propose(&env.file("first.csv", THREE), false).unwrap();
    let before = env.dump();
    let rows = format!(
        "{}b-2,clearbit,update,contacts,c-4,emial,x@y.z,,0.9,,,\n",
        THREE.replace("a-", "b-")
    );
    let err = env.propose(&env.file("bad.csv", &rows), false).unwrap_err();
    let Error::Invalid { problems, .. } = &err else {
        panic!("not a row problem: {err}");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, 5);
    assert!(problems[0].message.contains("\"emial\""), "{err}");
    assert_eq!(env.dump(), before);
}

#[test]
fn a_row_naming_a_missing_record_fails_the_run_after_the_lookups() {
    let env = Env::new();
    let rows = format!("{THREE}a-4,clearbit,update,contacts,c-404,title,CFO,,0.9,,,\n");
    let err = env.propose(&env.file("p.csv", &rows), false).unwrap_err();
    assert!(
        err.to_string().contains("contacts/c-404 does not exist"),
        "{err}"
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 0);
    assert_eq!(env.count("SELECT count(*) FROM crmgate_events"), 0);
}

#[test]
fn with_skip_invalid_the_good_rows_are_queued_and_the_bad_ones_go_to_the_rejects_file() {
    let env = Env::new();
    let rows = format!(
        "{THREE}a-4,clearbit,update,contacts,c-404,title,CFO,,0.9,,,\n\
         a-5,clearbit,update,contacts,c-4,title,CFO,,1.5,,,\n"
    );
    let report = env.propose(&env.file("p.csv", &rows), true).unwrap();
    assert_eq!((report.ingested, report.rejected), (3, 2));
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 3);
    let rejects = std::fs::read_to_string(env.dir.path().join("rejects.csv")).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines.len(), 3, "{rejects}");
    assert!(lines[0].starts_with("file,line,error,id,source"));
    assert!(
        rejects.contains(",6,confidence 1.5 is outside 0..1,a-5,"),
        "{rejects}"
    );
    assert!(
        rejects.contains(",5,record contacts/c-404 does not exist,a-4,"),
        "{rejects}"
    );
}

#[test]
fn twins_in_one_file_are_queued_once_and_an_id_reused_for_other_content_is_rejected() {
    let env = Env::new();
    let rows = format!(
        "{THREE}a-1,clearbit,update,contacts,c-1,title,Head of Data,,0.95,,,\n\
         a-2,clearbit,update,contacts,c-3,title,COO,,0.6,,,\n"
    );
    let err = env.propose(&env.file("p.csv", &rows), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("clearbit:a-2 was already ingested on line 3 of this run"),
        "{err}"
    );
    let report = env.propose(&env.file("p.csv", &rows), true).unwrap();
    assert_eq!(
        (report.ingested, report.duplicates, report.rejected),
        (3, 1, 1)
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 3);
}

#[test]
fn a_newer_proposal_for_the_same_field_supersedes_the_older_undecided_one() {
    let env = Env::new();
    env.propose(&env.file("p.csv", THREE), false).unwrap();
    let newer = "n-2,clearbit,update,contacts,c-3,title,CFO,,0.6,,,\n";
    let report = env.propose(&env.file("newer.csv", newer), false).unwrap();
    assert_eq!((report.ingested, report.superseded), (1, 1));
    assert_eq!(env.queued("clearbit", "a-2").0, "superseded");
    assert_eq!(env.queued("clearbit", "n-2").0, "pending");
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action = 'supersede'"),
        1
    );
    assert_eq!(env.audit_verifies(), 3);
}
