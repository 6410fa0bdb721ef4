//! The tables apply and revert act on are checked against the audit log: a policy text, a
//! change or a proposal edited with SQL (the append-only triggers dropped first) is named by
//! `audit verify` and refused by apply and revert; an emptied or shortened log is noticed.

mod common;

use predicates::prelude::*;

use common::Env;

/// A demo store whose approved proposals were applied.
fn applied() -> Env {
    let env = Env::demo();
    env.cmd(&["apply"]).assert().success();
    env
}

fn drop_triggers(env: &Env, table: &str) {
    env.conn()
        .execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {table}_append_only_update;
             DROP TRIGGER IF EXISTS {table}_append_only_delete;"
        ))
        .unwrap();
}

fn verify_names(env: &Env, words: &str) {
    env.cmd(&["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(words));
}

#[test]
fn a_policy_text_edited_in_the_store_is_named_by_verify_and_refused_by_apply_and_revert() {
    let env = applied();
    drop_triggers(&env, "crmgate_policies");
    let version = env.count("SELECT max(version) FROM crmgate_policies");
    env.conn()
        .execute_batch(
            "UPDATE crmgate_policies SET text = text || char(10) || '# mallory = [\"admin\"]'
             WHERE version = (SELECT max(version) FROM crmgate_policies)",
        )
        .unwrap();
    verify_names(&env, &format!("policy version {version} does not match it"));
    let before = common::crm_dump(&env);
    for args in [&["apply"][..], &["revert", "1"][..]] {
        env.cmd(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("does not match the audit log"))
            .stderr(predicate::str::contains("hint:"));
    }
    assert_eq!(common::crm_dump(&env), before, "nothing was written");
}

#[test]
fn a_change_whose_before_was_edited_is_named_by_verify_and_not_reverted() {
    let env = applied();
    drop_triggers(&env, "crmgate_changes");
    env.cmd(&["audit", "verify"]).assert().success();
    env.conn()
        .execute_batch("UPDATE crmgate_changes SET before = 'PWNED' WHERE id = 1")
        .unwrap();
    verify_names(&env, "change 1 does not match it: before differ");
    let before = common::crm_dump(&env);
    env.cmd(&["revert", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "change 1 does not match the audit log",
        ));
    assert_eq!(common::crm_dump(&env), before, "nothing was written");
    assert!(!before.contains("PWNED"));
}

/// The id of a pending proposal of the demo.
fn a_pending(env: &Env) -> i64 {
    env.count("SELECT min(id) FROM crmgate_proposals WHERE state = 'pending' AND field IS NOT NULL")
}

#[test]
fn a_proposal_approved_and_edited_with_sql_is_named_by_verify_and_failed_by_apply() {
    let env = Env::demo();
    let id = a_pending(&env);
    env.conn()
        .execute(
            "UPDATE crmgate_proposals SET state = 'approved', value = 'PWNED' WHERE id = ?1",
            [id],
        )
        .unwrap();
    verify_names(&env, &format!("proposal {id} does not match it"));
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(
        env.text(&format!(
            "SELECT state FROM crmgate_proposals WHERE id = {id}"
        )),
        "failed"
    );
    let why = env.text(&format!(
        "SELECT json_extract(detail, '$.why') FROM crmgate_events
         WHERE proposal_id = {id} AND action = 'failed'"
    ));
    assert!(why.contains("does not match the audit log"), "{why}");
    assert!(!common::crm_dump(&env).contains("PWNED"));
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM crmgate_changes WHERE proposal_id = {id}"
        )),
        0
    );
}

/// A pending proposal's row given `set` with SQL: `audit verify` names it with `verify_says`,
/// and apply fails it rather than applying it.
fn set_with_sql_then_failed_by_apply(set: &str, verify_says: &str) {
    let env = Env::demo();
    let id = a_pending(&env);
    env.conn()
        .execute(
            &format!("UPDATE crmgate_proposals SET {set} WHERE id = ?1"),
            [id],
        )
        .unwrap();
    verify_names(&env, verify_says);
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(
        env.text(&format!(
            "SELECT state FROM crmgate_proposals WHERE id = {id}"
        )),
        "failed"
    );
}

#[test]
fn a_proposal_moved_to_approved_with_sql_alone_is_still_refused() {
    // The content is left alone: only the state moves, with no approve event.
    set_with_sql_then_failed_by_apply("state = 'approved'", "no event since moved it");
}

#[test]
fn a_policy_approved_proposal_whose_value_and_digest_were_both_rewritten_is_caught() {
    let env = Env::demo();
    let id = env.count(
        "SELECT min(id) FROM crmgate_proposals WHERE state = 'approved' AND field IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM crmgate_events e WHERE e.proposal_id = crmgate_proposals.id)",
    );
    // The forger recomputes the row's digest over the new value, as crmgate would.
    let store = env.store();
    let mut forged = None;
    store
        .for_each_bound_proposal(|p, _| {
            if p.id == id {
                let mut p = p.clone();
                p.value = serde_json::json!("PWNED");
                forged = Some(crmgate::audit::ProposalContent::of_stored(&p, "approved").digest());
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    env.conn()
        .execute(
            "UPDATE crmgate_proposals SET value = 'PWNED', digest = ?2 WHERE id = ?1",
            rusqlite::params![id, &forged.unwrap()[..]],
        )
        .unwrap();
    verify_names(&env, "its proposals' digests are not the ones event");
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(
        env.text(&format!(
            "SELECT state FROM crmgate_proposals WHERE id = {id}"
        )),
        "failed"
    );
    assert!(!common::crm_dump(&env).contains("PWNED"));
}

#[test]
fn an_emptied_audit_log_is_not_ok_and_stops_apply() {
    let env = applied();
    drop_triggers(&env, "crmgate_events");
    env.conn()
        .execute_batch("DELETE FROM crmgate_events; DELETE FROM crmgate_chain_head;")
        .unwrap();
    verify_names(&env, "the audit log is empty, but the store holds");
    env.cmd(&["apply"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not match the audit log"));
}

#[test]
fn a_log_cut_short_is_noticed_without_a_checkpoint() {
    let env = applied();
    drop_triggers(&env, "crmgate_events");
    env.conn()
        .execute_batch(
            "DELETE FROM crmgate_events WHERE seq > (SELECT max(seq) - 2 FROM crmgate_events)",
        )
        .unwrap();
    verify_names(&env, "the store recorded the chain's head at event");
}

#[test]
fn crmgate_now_without_the_test_switch_is_ignored_with_a_warning() {
    let env = Env::new();
    env.cmd(&["init"])
        .env_remove("CRMGATE_TEST_CLOCK")
        .assert()
        .success()
        .stderr(predicate::str::contains("CRMGATE_NOW is ignored"))
        .stderr(predicate::str::contains("hint:"));
    let at = env.text("SELECT min(at) FROM crmgate_events");
    assert!(!at.starts_with("2026-01-02T03:04:05"), "{at}");
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE json_extract(detail, '$.test_clock')"),
        0
    );
}

#[test]
fn events_written_under_the_test_clock_say_so_and_verify_warns_of_them() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    assert_eq!(
        env.text("SELECT min(at) FROM crmgate_events"),
        "2026-01-02T03:04:05.000Z"
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events WHERE NOT json_extract(detail, '$.test_clock')"
        ),
        0
    );
    env.cmd(&["audit", "verify"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "set by the test switch (CRMGATE_TEST_CLOCK)",
        ));
}

#[test]
fn audit_verify_warns_of_events_whose_time_goes_backwards() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    env.cmd(&["pause", "--reason", "late"])
        .env("CRMGATE_NOW", "2025-06-01T00:00:00Z")
        .assert()
        .success();
    env.cmd(&["audit", "verify"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "1 event is stamped before the event it follows",
        ));
}

#[test]
fn the_demo_on_the_system_clock_writes_its_events_in_time_order() {
    let env = Env::new();
    env.cmd(&["demo"])
        .env_remove("CRMGATE_NOW")
        .env_remove("CRMGATE_TEST_CLOCK")
        .assert()
        .success();
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events a JOIN crmgate_events b ON b.seq = a.seq + 1
             WHERE b.at < a.at"
        ),
        0
    );
    env.cmd(&["audit", "verify"])
        .assert()
        .success()
        .stderr(predicate::str::contains("stamped before").not());
}

#[test]
fn rewriting_the_state_a_proposal_was_queued_in_does_not_approve_it() {
    set_with_sql_then_failed_by_apply(
        "state = 'approved', queued = 'approved'",
        "its content is not what was queued",
    );
}

#[test]
fn a_pause_deleted_or_added_with_sql_is_named_by_verify() {
    let env = applied();
    env.cmd(&["pause", "--source", "clearbit", "--reason", "bad batch"])
        .assert()
        .success();
    env.cmd(&["pause", "--reason", "maintenance"])
        .assert()
        .success();
    env.cmd(&["resume"]).assert().success();
    env.cmd(&["audit", "verify"]).assert().success();
    // Deleted: the paused source would be let through, with nothing in the log to say so.
    env.conn()
        .execute_batch("DELETE FROM crmgate_pauses WHERE scope = 'clearbit'")
        .unwrap();
    verify_names(
        &env,
        "the pause of source clearbit does not match it: event",
    );
    env.cmd(&["audit", "verify"])
        .assert()
        .stderr(predicate::str::contains(
            "no resume event lifted it, but the store no longer holds it",
        ));
    // Put back by hand with another reason, or a pause no event made: named too.
    env.conn()
        .execute_batch(
            "INSERT INTO crmgate_pauses (scope, reason, actor, at)
             VALUES ('clearbit', 'other', 'mallory', '2026-01-01T00:00:00.000Z')",
        )
        .unwrap();
    verify_names(&env, "its reason, actor or time differ from event");
    env.conn()
        .execute_batch(
            "DELETE FROM crmgate_pauses WHERE scope = 'clearbit';
             INSERT INTO crmgate_pauses (scope, reason, actor, at)
             VALUES ('', 'sql', 'mallory', '2026-01-01T00:00:00.000Z')",
        )
        .unwrap();
    verify_names(&env, "the pause of the store does not match it");
}
