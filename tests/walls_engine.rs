//! Reverts that go forward from wherever the store stands: a run partly undone (by hand, or by
//! a revert killed part way) is finished by the same command, and a forced revert writes over
//! whatever a later change left.

mod common;

use std::time::{Duration, Instant};

use predicates::prelude::*;

use common::{Env, crm_dump};

/// The demo's store: run 1 applied, its change 1 reverted alone by change 6 (run 2); the demo applies five changes in run 1.
fn demo() -> Env {
    let env = Env::new();
    env.cmd(&["demo"]).assert().success();
    assert_eq!(
        env.count("SELECT reverts FROM crmgate_changes WHERE id = 6"),
        1,
        "the demo reverts change 1 by change 6"
    );
    env
}

/// The CRM as the demo found it: its records before anything was applied.
fn demo_crm_before_apply() -> String {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    crm_dump(&env)
}

#[test]
fn a_run_with_a_change_already_reverted_reverts_the_rest_and_names_what_it_skipped() {
    for force in [false, true] {
        let env = demo();
        let mut args = vec!["--as", "alice", "revert", "--run", "1"];
        if force {
            args.push("--force");
        }
        env.cmd(&args)
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "change 1 skipped: already undone by change 6",
            ))
            .stderr(predicate::str::contains("1 change already undone, skipped"));
        assert_eq!(crm_dump(&env), demo_crm_before_apply(), "--force {force}");
        assert_eq!(
            env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'"),
            0
        );
        // Nothing is left: the same command says so and changes nothing.
        let before = env.dump();
        env.cmd(&["revert", "--run", "1"])
            .assert()
            .success()
            .stderr(predicate::str::contains("nothing left to revert"));
        assert_eq!(env.dump(), before);
        env.cmd(&["audit", "verify"]).assert().success();
    }
}

#[test]
fn a_change_reverted_and_put_back_is_undone_again_by_its_runs_revert() {
    let env = demo();
    let proposal = env.count("SELECT proposal_id FROM crmgate_changes WHERE id = 1");
    // Reverting the revert puts change 1 back: it is in effect again.
    env.cmd(&["revert", "6"]).assert().success();
    let state = |env: &Env| {
        env.conn()
            .query_row(
                "SELECT state FROM crmgate_proposals WHERE id = ?1",
                [proposal],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
    };
    assert_eq!(state(&env), "applied");
    env.cmd(&["revert", "--run", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("change 1 undone by change"));
    assert_eq!(crm_dump(&env), demo_crm_before_apply());
    assert_eq!(state(&env), "reverted");
    // The undo names the last link of the chain: change 1, its revert 6, the revert of that.
    let put_back = env.count("SELECT id FROM crmgate_changes WHERE reverts = 6");
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM crmgate_changes WHERE reverts = {put_back}"
        )),
        1
    );
    // A change already undone, reverted on its own, is refused with the way to put it back.
    env.cmd(&["revert", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("change 1 is already undone"))
        .stderr(predicate::str::contains("`crmgate revert"));
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_change_a_later_change_overwrote_is_refused_until_an_admin_forces_it_and_then_it_is() {
    let env = demo();
    let change = env.count(
        "SELECT id FROM crmgate_changes WHERE run_id = 1 AND record = 'c-1001' AND field = 'phone'",
    );
    let f = env.write("later.csv", "id,phone\nc-1001,+1 415 555 0199\n");
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    let before = env.dump();
    env.cmd(&["revert", "--run", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("change {change}:")))
        .stderr(predicate::str::contains("`crmgate revert --run 1 --force`"));
    env.cmd(&["--as", "bob", "revert", "--run", "1", "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "`crmgate --as ADMIN revert --run 1 --force`",
        ));
    assert_eq!(env.dump(), before);
    env.cmd(&["--as", "alice", "revert", "--run", "1", "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "change {change} undone by change"
        )))
        .stdout(predicate::str::contains("phone, forced)"));
    let phone: Option<String> = env
        .conn()
        .query_row("SELECT phone FROM contacts WHERE id = 'c-1001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        phone, None,
        "the value before the change, over the later one"
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events WHERE action = 'revert'
             AND json_extract(detail, '$.forced') = 1 AND record = 'c-1001'"
        ),
        1,
        "recorded as a forced revert"
    );
}

/// A store with `n` contacts whose empty title run 1 filled, one change each, and the CRM
/// dump from before the apply.
fn applied_titles(n: usize) -> (Env, String) {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let policy = std::fs::read_to_string(common::fixture("policy/demo.toml"))
        .unwrap()
        .replace("max_auto_per_run = 1000 ", "max_auto_per_run = 1000000 ")
        .replace("max_auto_per_day = 10000", "max_auto_per_day = 1000000");
    let policy = env.policy("policy.toml", &policy);
    env.cmd(&["policy", "set", &policy]).assert().success();
    let mut contacts = String::from("id,first_name\n");
    let mut proposals = String::from("id,source,kind,object,record,field,value,confidence\n");
    for i in 0..n {
        contacts.push_str(&format!("k-{i:05},Kim\n"));
        proposals.push_str(&format!(
            "p-{i},clearbit,update,contacts,k-{i:05},title,Engineer {i},0.95\n"
        ));
    }
    let c = env.write("contacts.csv", contacts);
    let p = env.write("proposals.csv", proposals);
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    let before = crm_dump(&env);
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 1"),
        n as i64
    );
    (env, before)
}

#[test]
fn a_revert_killed_part_way_is_finished_by_running_it_again() {
    const N: usize = 4000;
    let (env, before_apply) = applied_titles(N);
    let saved = env.path("before-revert.db");
    std::fs::copy(env.db(), &saved).unwrap();
    let mut killed_part_way = false;
    for _ in 0..5 {
        std::fs::copy(&saved, env.db()).unwrap();
        for left in ["crm.db-wal", "crm.db-shm"] {
            let _ = std::fs::remove_file(env.path(left));
        }
        let mut child = common::crmgate()
            .env("CRMGATE_APPLY_CHUNK", "20")
            .arg("--db")
            .arg(env.db())
            .args(["--quiet", "revert", "--run", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once the first chunk committed: its revert changes are in the store.
        let conn = env.conn();
        let start = Instant::now();
        let undone = loop {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM crmgate_changes WHERE reverts IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            // A revert that ended on its own (finished, or refused) is not waited for.
            let ended = matches!(child.try_wait(), Ok(Some(_)));
            if n > 0 || ended || start.elapsed() > Duration::from_secs(60) {
                break n;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        child.kill().unwrap();
        child.wait().unwrap();
        let undone_now: i64 =
            env.count("SELECT count(*) FROM crmgate_changes WHERE reverts IS NOT NULL");
        if undone > 0 && undone_now < N as i64 {
            killed_part_way = true;
            break;
        }
    }
    assert!(killed_part_way, "the revert was never killed part way");
    // What committed is whole: every change undone or in effect, never half.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_changes c JOIN contacts k ON k.id = c.record
             WHERE c.run_id = 1 AND NOT (
               (EXISTS (SELECT 1 FROM crmgate_changes r WHERE r.reverts = c.id) AND k.title IS NULL)
               OR (NOT EXISTS (SELECT 1 FROM crmgate_changes r WHERE r.reverts = c.id)
                   AND k.title = c.after))"
        ),
        0
    );
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "20")
        .assert()
        .success()
        .stderr(predicate::str::contains("already undone, skipped"));
    assert_eq!(crm_dump(&env), before_apply);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"),
        N as i64
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

/// Two contacts, m-2 a duplicate of m-1 whose title is empty; dedupe-bot:mg-1 proposes merging
/// m-2 into m-1 (it waits for a person), then clearbit:t-1 fills m-1's title (the policy lets
/// it through).
fn merge_and_title() -> Env {
    let env = Env::with_crm();
    let policy = env.fixture_policy("demo.toml");
    env.cmd(&["policy", "set", &policy]).assert().success();
    env.ada_pair_merge_and_title();
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 't-1' AND state = 'approved'"
        ),
        1,
        "the title fill is let through by the policy"
    );
    env
}

fn merged(env: &Env) -> bool {
    env.count("SELECT count(*) FROM contacts WHERE id = 'm-2'") == 0
        && env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'mg-1' AND state = 'applied'",
        ) == 1
}

#[test]
fn a_merge_whose_record_an_applied_fill_changed_can_still_be_approved_and_applied() {
    let env = merge_and_title();
    env.cmd(&["apply"]).assert().success();
    let open = crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing).unwrap();
    let p = crmgate::queue::find(&open, "dedupe-bot:mg-1").unwrap();
    let since = crmgate::apply::merge_changes_since_proposed(&open, &p)
        .unwrap()
        .expect("both records are there");
    assert!(since.complete, "{since:?}");
    assert_eq!(
        since.fields,
        vec![crmgate::apply::FieldChanged {
            record: "m-1".into(),
            field: "title".into(),
            then: serde_json::Value::Null,
            now: "CTO".into(),
        }]
    );
    drop(open);
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events WHERE action = 'approve'
             AND json_extract(detail, '$.pinned') IS NOT NULL"
        ),
        1,
        "the approval pins both records"
    );
    env.cmd(&["apply"])
        .assert()
        .success()
        .stdout(predicate::str::contains("merge m-2 into m-1"));
    assert!(merged(&env));
}

#[test]
fn a_merge_approved_before_a_fill_of_the_same_run_is_applied_after_it_not_refused() {
    let env = merge_and_title();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    // The merge is the older proposal; the run writes the title first all the same.
    env.cmd(&["apply"]).assert().success();
    assert!(merged(&env));
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'conflict'"),
        0
    );
    let title_change =
        env.count("SELECT id FROM crmgate_changes WHERE record = 'm-1' AND field = 'title'");
    let merge_change =
        env.count("SELECT min(id) FROM crmgate_changes WHERE field = '*' AND after IS NULL");
    assert!(title_change < merge_change);
    // And in chunks of one proposal.
    let env = merge_and_title();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    env.cmd(&["apply"])
        .env("CRMGATE_APPLY_CHUNK", "1")
        .assert()
        .success();
    assert!(merged(&env));
}

#[test]
fn a_merge_whose_record_something_else_changed_after_approval_is_a_conflict_naming_requeue() {
    let env = merge_and_title();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    env.conn()
        .execute("UPDATE contacts SET phone = '+1 555' WHERE id = 'm-1'", [])
        .unwrap();
    let id = env.count("SELECT id FROM crmgate_proposals WHERE ext_id = 'mg-1'");
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains(
            "changed since the merge was approved",
        ))
        .stdout(predicate::str::contains(format!("`crmgate requeue {id}`")));
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'm-2'"),
        1
    );
}

#[test]
fn a_merge_approved_after_its_records_changed_follows_a_saved_plan() {
    let env = merge_and_title();
    env.cmd(&["apply"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    let plan = env.path("plan.json");
    env.cmd(&["apply", "--dry-run", "--plan-out", plan.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("would apply"))
        .stderr(predicate::str::contains("dry run: 1 would apply"));
    env.cmd(&["apply", "--plan", plan.to_str().unwrap()])
        .assert()
        .success();
    assert!(merged(&env));
}

#[test]
fn a_conflict_names_requeue() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.conn()
        .execute("UPDATE contacts SET title = 'CEO' WHERE id = 'c-1087'", [])
        .unwrap();
    let id = env.count("SELECT id FROM crmgate_proposals WHERE ext_id = 'ap-1'");
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("title is now \"CEO\""))
        .stdout(predicate::str::contains(format!("`crmgate requeue {id}`")));
}
