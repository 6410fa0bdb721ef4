//! Human decisions and the limits around them: approver roles, filter-wide decisions, the
//! circuit breaker, per-run auto limits, review without a terminal, and how a merge and a
//! lifecycle move are judged.

mod common;

use predicates::prelude::*;

use common::{Env, HEADER, json_of};

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
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
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
    let ids: Vec<String> = env.column("SELECT id FROM contacts WHERE sensitive = 0 AND legal_hold = 0 AND coalesce(company_id, '')
                 NOT IN (SELECT id FROM companies WHERE legal_hold = 1) ORDER BY id LIMIT 50",);
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
