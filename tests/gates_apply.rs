//! Apply and revert answer to the policy in force: an approval it no longer permits is sent
//! back to review, a revert takes a role that could approve what it undoes, a revert counts
//! against its source's track record, and a large run's report streams.

mod common;
use common::{Env, demo_policy, ok, refused};

/// The demo policy with every update waiting for a manager.
fn updates_need_a_manager() -> String {
    let rule = "\n[[rule]]\nname = \"updates-need-manager\"\nkind = [\"update\"]\naction = \"review\"\napprovers = [\"manager\"]\n";
    let text = demo_policy();
    let at = text.find("\n[roles]").expect("the demo policy has roles");
    format!("{}{rule}{}", &text[..at], &text[at..])
}

#[test]
fn an_approval_the_policy_in_force_no_longer_permits_is_held_until_one_who_may_approves_it() {
    let env = Env::demo();
    // cb-108 sets a contact's phone: no rule names approvers, so bob (sdr) may approve it.
    ok(env.cmd(&["--as", "bob", "approve", "clearbit:cb-108"]));
    let stricter = env.policy("stricter.toml", &updates_need_a_manager());
    ok(env.cmd(&["policy", "set", &stricter]));
    // Exit 3: something approved was not applied.
    let out = env.cmd(&["apply", "--json"]).output().expect("run");
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let item = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["record"].as_str().unwrap().ends_with("c-1006"))
        .expect("cb-108 is in the report")
        .clone();
    assert_eq!(item["result"], "held", "{item}");
    assert!(item["why"].as_str().unwrap().contains("manager"), "{item}");
    assert_eq!(env.state("clearbit:cb-108"), "pending");
    let id: i64 = env.one("SELECT id FROM crmgate_proposals WHERE ext_id = 'cb-108'");
    let event = env.text(&format!(
        "SELECT actor_kind || ' ' || json_extract(detail, '$.approver') || ' ' || policy_version \
         FROM crmgate_events WHERE action = 'unapprove' AND proposal_id = {id}"
    ));
    let version: i64 = env.one("SELECT max(version) FROM crmgate_policies");
    assert_eq!(event, format!("policy bob {version}"));
    let changes = format!("SELECT count(*) FROM crmgate_changes WHERE proposal_id = {id}");
    assert_eq!(env.count(&changes), 0);
    ok(env.cmd(&["--as", "mia", "approve", "clearbit:cb-108"]));
    ok(env.cmd(&["apply"]));
    assert_eq!(env.state("clearbit:cb-108"), "applied");
}

#[test]
fn a_revert_of_a_run_is_refused_whole_to_one_without_a_role_that_could_approve_all_of_it() {
    let env = Env::demo();
    // dd-203 is a merge (ops approves it), hs-404 a big deal's amount (a manager approves it).
    ok(env.cmd(&["approve", "dedupe-bot:dd-203"]));
    ok(env.cmd(&["--as", "mia", "approve", "hubspot-ai:hs-404"]));
    ok(env.cmd(&["apply"]));
    let before = env.dump();
    let e = refused(env.cmd(&["--as", "bob", "revert", "--run", "1"]));
    assert!(e.contains("nothing was reverted"), "{e}");
    assert!(e.contains("takes the role ops, or admin"), "{e}");
    assert!(e.contains("takes the role manager, or admin"), "{e}");
    assert!(e.contains("crmgate --as NAME revert --run 1"), "{e}");
    assert_eq!(env.dump(), before, "a refused revert writes nothing");
    ok(env.cmd(&["--as", "alice", "revert", "--run", "1"]));
    assert_eq!(env.state("dedupe-bot:dd-203"), "reverted");
    assert_eq!(env.state("hubspot-ai:hs-404"), "reverted");
}

#[test]
fn a_revert_that_pushes_a_source_over_its_reject_rate_pauses_it_at_once() {
    let env = Env::demo();
    // A window of two: two reverts of its proposals are more than half.
    let text = demo_policy()
        .replace("window = 50", "window = 2")
        .replace("max_reject_rate = 0.30", "max_reject_rate = 0.50");
    let small = env.policy("small-window.toml", &text);
    ok(env.cmd(&["policy", "set", &small]));
    ok(env.cmd(&["apply"]));
    let from_clearbit = "SELECT count(*) FROM crmgate_changes c \
         JOIN crmgate_proposals p ON p.id = c.proposal_id WHERE c.run_id = 1 AND p.source = 'clearbit'";
    assert!(
        env.count(from_clearbit) >= 2,
        "the demo's run 1 applies clearbit's fills"
    );
    let paused =
        "SELECT count(*) FROM crmgate_events WHERE action = 'pause' AND source = 'clearbit'";
    assert_eq!(env.count(paused), 0);
    let (_, said) = ok(env.cmd(&["revert", "--run", "1"]));
    assert_eq!(env.count(paused), 1, "paused by the revert itself");
    assert!(
        said.contains("source clearbit paused: circuit breaker"),
        "{said}"
    );
    assert!(said.contains("crmgate resume --source clearbit"), "{said}");
    let pauses = "SELECT count(*) FROM crmgate_pauses WHERE scope = 'clearbit'";
    assert_eq!(env.count(pauses), 1);
}
