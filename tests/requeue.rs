//! `requeue`: a conflicted or failed proposal proposed again against the record as it is now,
//! decided again, the old one superseded with a link to the new; and the refusals that name
//! what to do instead.

mod scratch;

use predicates::prelude::*;
use scratch::{Env, HEADER};

/// What these tests add to the scratch store.
trait Requeue {
    fn exec(&self, sql: &str);
    fn propose(&self, name: &str, rows: &str);
    fn two_conflicts(&self);
    fn states(&self) -> String;
    fn dump(&self) -> Vec<String>;
}

impl Requeue for Env {
    fn exec(&self, sql: &str) {
        self.conn().execute_batch(sql).unwrap();
    }

    /// Proposes `rows` from `name`.
    fn propose(&self, name: &str, rows: &str) {
        self.write(name, &format!("{HEADER}{rows}"));
        self.cmd(&["propose", name]).assert().success();
    }

    /// vendor:p-1 (c-1001's title, expecting "General Counsel") and vendor:p-2 (c-1002's
    /// title), approved, then both titles changed behind crmgate's back and applied: both
    /// conflict.
    fn two_conflicts(&self) {
        self.propose(
            "a.csv",
            "p-1,vendor,update,contacts,c-1001,title,CFO,,0.9,General Counsel,,\n\
             p-2,vendor,update,contacts,c-1002,title,CEO,,0.9,,,\n",
        );
        self.cmd(&["approve", "1", "2"]).assert().success();
        self.exec("UPDATE contacts SET title = 'Counsel' WHERE id IN ('c-1001', 'c-1002')");
        self.cmd(&["apply"]).assert().code(3);
        assert_eq!(self.states(), "1 conflict, 2 conflict");
    }

    /// Every proposal's id and state, in id order.
    fn states(&self) -> String {
        self.query("SELECT id || ' ' || state FROM crmgate_proposals ORDER BY id")
            .join(", ")
    }

    /// crmgate's own tables, row by row.
    fn dump(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in ["crmgate_ingests", "crmgate_proposals", "crmgate_events"] {
            out.extend(self.query(&format!("SELECT * FROM {t} ORDER BY 1")));
        }
        out
    }
}

#[test]
fn a_conflicted_proposal_is_requeued_against_the_record_as_it_is_now() {
    let env = Env::new();
    env.two_conflicts();
    env.cmd(&["approve", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already conflict"));

    env.cmd(&["requeue", "vendor:p-1"]).assert().success();
    assert_eq!(env.states(), "1 superseded, 2 conflict, 3 pending");
    let new = env.query(
        "SELECT json_array(ext_id, baseline, has_expected, superseded_by, dedupe_key <> \
         (SELECT dedupe_key FROM crmgate_proposals WHERE id = 1), decision, policy_version) \
         FROM crmgate_proposals WHERE id = 3",
    );
    assert_eq!(new, [r#"["p-1","Counsel",0,null,1,"review",1]"#]);
    assert_eq!(
        env.query("SELECT superseded_by FROM crmgate_proposals WHERE id = 1"),
        ["3"]
    );
    assert_eq!(
        env.query(
            "SELECT action || ' ' || proposal_id || ' ' || \
             json_remove(detail, '$.test_clock', '$.proposals') FROM crmgate_events \
             WHERE action IN ('supersede', 'requeue') ORDER BY seq"
        ),
        [
            r#"supersede 1 {"requeued":true,"superseded_by":3,"was":"conflict"}"#,
            r#"requeue 3 {"decision":"review","dropped_expected":"General Counsel","ingest_id":2,"replaces":1,"was":"conflict"}"#,
        ]
    );

    // The source's id now names the new proposal, which goes forward; the file ingested again
    // is still a no-op.
    env.cmd(&["approve", "vendor:p-1"]).assert().success();
    env.cmd(&["apply"]).assert().code(0);
    assert_eq!(
        env.query("SELECT title FROM contacts WHERE id = 'c-1001'"),
        ["CFO"]
    );
    let before = env.dump();
    env.cmd(&["propose", "a.csv"]).assert().success();
    assert_eq!(env.dump(), before);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn requeue_by_state_prints_the_count_and_needs_yes() {
    let env = Env::new();
    env.two_conflicts();
    env.propose(
        "b.csv",
        "p-3,vendor,update,contacts,c-1003,title,COO,,0.9,,,\n",
    );
    let before = env.dump();
    env.cmd(&["requeue", "--state", "conflict"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("2 conflict proposals match"))
        .stderr(predicate::str::contains("--yes"));
    assert_eq!(env.dump(), before);

    env.cmd(&[
        "requeue", "--state", "conflict", "--source", "other", "--yes",
    ])
    .assert()
    .code(0);
    assert_eq!(
        env.dump(),
        before,
        "a filter that matches none is nothing to do"
    );

    env.cmd(&["requeue", "--state", "conflict", "--yes"])
        .assert()
        .code(0);
    assert_eq!(
        env.states(),
        "1 superseded, 2 superseded, 3 pending, 4 pending, 5 pending"
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_failed_proposal_is_requeued_and_decided_again() {
    let env = Env::new();
    env.exec(
        "CREATE TABLE plain (id TEXT PRIMARY KEY, revenue NUMERIC);
         INSERT INTO plain VALUES ('a', 7);",
    );
    env.cmd(&["init"]).assert().success();
    env.propose("p.csv", "r1,bot,update,plain,a,revenue,2.0,,,,,\n");
    env.cmd(&["approve", "bot:r1"]).assert().success();
    env.cmd(&["apply"]).assert().code(3);
    env.exec("UPDATE plain SET revenue = 8");
    env.cmd(&["requeue", "--state", "failed", "--yes"])
        .assert()
        .success();
    assert_eq!(
        env.query(
            "SELECT state || ' ' || coalesce(superseded_by, '-') || ' ' || baseline \
             FROM crmgate_proposals ORDER BY id"
        ),
        ["superseded 2 7", "pending - 8"]
    );
}

#[test]
fn an_undecided_proposal_whose_record_moved_is_requeued_and_one_that_did_not_is_refused() {
    let env = Env::new();
    env.propose(
        "a.csv",
        "p-1,vendor,update,contacts,c-1001,title,CFO,,0.9,,,\n\
         p-2,vendor,update,contacts,c-1002,title,CEO,,0.9,,,\n",
    );
    env.exec("UPDATE contacts SET title = 'Counsel' WHERE id = 'c-1001'");
    env.cmd(&["approve", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("stale"));
    let before = env.dump();
    env.cmd(&["requeue", "2"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "its record has not moved since it was proposed: decide it with `crmgate approve 2`",
        ));
    assert_eq!(env.dump(), before);
    env.cmd(&["requeue", "1", "2"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("1 requeued, 1 not"));
    assert_eq!(env.states(), "1 superseded, 2 pending, 3 pending");
    env.cmd(&["approve", "3"]).assert().success();
}

#[test]
fn requeue_refuses_what_cannot_go_forward_and_names_what_can() {
    let env = Env::new();
    env.two_conflicts();
    env.cmd(&["requeue", "1"]).assert().success();
    let before = env.dump();
    env.cmd(&["requeue", "1", "99", "nobody:x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "1: not requeued: it is superseded by 3: see `crmgate show 3`",
        ))
        .stderr(predicate::str::contains(
            "99: not requeued: no such proposal",
        ));
    env.cmd(&["requeue", "--state", "pending"]).assert().code(2);
    assert_eq!(env.dump(), before);
}

#[test]
fn a_requeued_proposal_is_decided_by_the_policy_in_force_on_the_record_as_it_is_now() {
    let env = Env::new();
    env.two_conflicts();
    // The record is now on legal hold, and the policy has changed since the proposal.
    env.exec("UPDATE contacts SET legal_hold = 1 WHERE id = 'c-1001'");
    let policy = env.cmd(&["policy", "show"]).output().unwrap().stdout;
    let policy = String::from_utf8(policy).unwrap();
    let policy = policy.replace("max_auto_per_day = 10000", "max_auto_per_day = 5000");
    std::fs::write(env.dir.path().join("policy.toml"), policy).unwrap();
    env.cmd(&["policy", "set", "policy.toml"])
        .assert()
        .success();
    env.cmd(&["requeue", "1"]).assert().success();
    assert_eq!(
        env.query(
            "SELECT state || ' ' || decision || ' ' || policy_version || ' ' || json_extract(rules, '$.rules') \
             FROM crmgate_proposals WHERE id = 3"
        ),
        [r#"blocked block 2 ["legal-hold"]"#]
    );
}

#[test]
fn a_proposal_whose_record_is_gone_is_not_requeued_and_says_it_stays() {
    let env = Env::new();
    env.two_conflicts();
    env.exec("DELETE FROM contacts WHERE id = 'c-1001'");
    let before = env.dump();
    env.cmd(&["requeue", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "record contacts/c-1001 does not exist, so there is nothing to propose it against; it stays conflict",
        ));
    assert_eq!(env.dump(), before);
}
