//! No dead ends on the way to a decision: a merge shows what changed in its records since it
//! was proposed (in `show` and on the review screen), and an approval that cannot go ahead
//! names the command that does.

mod common;

use predicates::prelude::*;
use rexpect::session::spawn_command;

use common::{Env, HEADER, PTY_TIMEOUT_MS, expect, json_of, refused};

/// Everything waits for a person; alice decides.
const POLICY: &str = r#"
[defaults]
autonomy = "supervised"

[roles]
alice = ["ops", "admin"]
"#;

/// Two contacts, m-2 a duplicate of m-1 whose title is empty; dedupe-bot:mg-1 proposes merging
/// m-2 into m-1, then clearbit:t-1 fills m-1's title with CTO, approved and applied.
fn merge_then_title() -> Env {
    let env = Env::with_crm();
    let policy = env.policy("policy.toml", POLICY);
    env.cmd(&["policy", "set", &policy]).assert().success();
    env.ada_pair_merge_and_title();
    env.cmd(&["--as", "alice", "approve", "clearbit:t-1"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    env
}

#[test]
fn show_of_a_merge_marks_what_changed_in_its_records_since_it_was_proposed() {
    let env = merge_then_title();
    env.cmd(&["show", "dedupe-bot:mg-1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "changed since proposed: m-1 title (empty) → CTO",
        ))
        .stdout(predicate::str::contains("CTO ◀ changed"))
        .stdout(predicate::str::contains("outside crmgate").not());
    let v = json_of(&mut env.cmd(&["--json", "show", "dedupe-bot:mg-1"]));
    assert_eq!(
        v["changed_since_proposed"],
        serde_json::json!([{ "record": "m-1", "field": "title", "then": null, "now": "CTO" }]),
        "{v}"
    );
    assert_eq!(v["changed_since_proposed_complete"], true, "{v}");
}

#[test]
fn show_of_a_merge_says_when_its_records_changed_outside_crmgate_and_sanitises_values() {
    let env = merge_then_title();
    env.conn()
        .execute(
            "UPDATE contacts SET last_name = 'By\x1b[31mron' WHERE id = 'm-1'",
            [],
        )
        .unwrap();
    let (out, _) = common::ok(env.cmd(&["show", "dedupe-bot:mg-1"]));
    assert!(out.contains("changed outside crmgate"), "{out}");
    assert!(!out.contains('\x1b'), "{out:?}");
    let v = json_of(&mut env.cmd(&["--json", "show", "dedupe-bot:mg-1"]));
    assert_eq!(v["changed_since_proposed_complete"], false, "{v}");
}

#[test]
fn the_review_screen_of_a_merge_marks_what_changed_since_it_was_proposed() {
    let env = merge_then_title();
    let mut c = env.terminal("alice");
    c.arg("review");
    let mut p = spawn_command(c, Some(PTY_TIMEOUT_MS)).unwrap();
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("Merge m-2 into m-1"), "{screen}");
    assert!(
        screen.contains("changed since proposed: m-1 title (empty) → CTO"),
        "{screen}"
    );
    assert!(screen.contains("title *"), "{screen}");
    p.send("q").unwrap();
    p.flush().unwrap();
    expect(&mut p, "Review done");
    p.exp_eof().unwrap();
}

/// clearbit:t-1 proposes CTO for m-1's empty title; then something else writes CEO there.
fn moved_update() -> Env {
    let env = Env::with_crm();
    let policy = env.policy("policy.toml", POLICY);
    env.cmd(&["policy", "set", &policy]).assert().success();
    let c = env.write("one.csv", "id,first_name,last_name\nm-1,Ada,Byron\n");
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    env.propose_rows(
        "title.csv",
        "t-1,clearbit,update,contacts,m-1,title,CTO,,0.95,,,\n",
    );
    env.conn()
        .execute("UPDATE contacts SET title = 'CEO' WHERE id = 'm-1'", [])
        .unwrap();
    env
}

#[test]
fn approving_an_update_whose_field_moved_is_refused_naming_requeue() {
    let env = moved_update();
    let err = refused(env.cmd(&["--as", "alice", "approve", "clearbit:t-1"]));
    assert!(err.contains("crmgate requeue 1"), "{err}");
    assert_eq!(env.state("clearbit:t-1"), "pending");
    // The hint goes forward: requeue proposes it again against CEO.
    env.cmd(&["requeue", "1"]).assert().success();
}

#[test]
fn approving_a_conflict_proposal_says_already_conflict_and_names_requeue() {
    let env = moved_update();
    env.conn()
        .execute("UPDATE crmgate_proposals SET state = 'conflict'", [])
        .unwrap();
    let err = refused(env.cmd(&["--as", "alice", "approve", "clearbit:t-1"]));
    assert!(err.contains("already conflict"), "{err}");
    assert!(err.contains("crmgate requeue 1"), "{err}");
}

#[test]
fn the_review_screen_of_a_moved_update_names_requeue() {
    let env = moved_update();
    let mut c = env.terminal("alice");
    c.arg("review");
    let mut p = spawn_command(c, Some(PTY_TIMEOUT_MS)).unwrap();
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("STALE"), "{screen}");
    assert!(screen.contains("crmgate requeue 1"), "{screen}");
    p.send("q").unwrap();
    p.flush().unwrap();
    expect(&mut p, "Review done");
    p.exp_eof().unwrap();
}

#[test]
fn log_source_has_help_text() {
    let env = Env::new();
    env.cmd(&["log", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"--source <NAME>\s+Only what this source").unwrap());
}

#[test]
fn propose_of_one_proposal_says_proposal() {
    let env = Env::with_crm();
    let policy = env.policy("policy.toml", POLICY);
    env.cmd(&["policy", "set", &policy]).assert().success();
    let f = env.write(
        "one.csv",
        format!("{HEADER}t-1,clearbit,update,contacts,c-1001,title,CTO,,0.95,,,\n"),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("queued 1 proposal (1 update)"))
        .stderr(predicate::str::contains("1 proposals").not())
        .stderr(predicate::str::contains("1 waits for review"));
}
