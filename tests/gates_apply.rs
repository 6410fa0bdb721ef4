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

/// A store of `n` contacts with no title, and a title proposed for each, let through by the
/// policy on its own.
fn titles_to_fill(n: usize) -> Env {
    let env = Env::new();
    ok(env.cmd(&["init"]));
    let everything = "[defaults]\nautonomy = \"autonomous\"\nauto_min_confidence = 0.5\n\
         max_auto_per_run = 1000000\nmax_auto_per_day = 1000000\n\n\
         [[rule]]\nname = \"everything\"\nkind = [\"update\"]\naction = \"auto\"\n";
    let policy = env.policy("policy.toml", everything);
    ok(env.cmd(&["policy", "set", &policy]));
    let mut contacts = String::from("id,first_name,title\n");
    let mut proposals = String::from(common::HEADER);
    for i in 0..n {
        contacts.push_str(&format!("k-{i:04},Kim,\n"));
        proposals.push_str(&format!(
            "t-{i},bot,update,contacts,k-{i:04},title,Engineer {i},,0.9,,,\n"
        ));
    }
    let file = env.write("contacts.csv", contacts);
    ok(env.cmd(&["import", "contacts", file.display()]));
    let file = env.write("proposals.csv", proposals);
    ok(env.cmd(&["propose", file.display()]));
    env
}

#[test]
fn apply_json_lists_every_item_of_a_chunked_run_and_the_table_shows_the_first_rows_and_counts() {
    let env = titles_to_fill(2500);
    let mut apply = env.cmd(&["apply", "--json", "--dry-run"]);
    apply.env("CRMGATE_APPLY_CHUNK", "1000");
    let (out, _) = ok(apply);
    let dry: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        dry["items"].as_array().unwrap().len(),
        2500,
        "a dry run lists them all"
    );
    let mut apply = env.cmd(&["apply", "--json"]);
    apply.env("CRMGATE_APPLY_CHUNK", "1000");
    let (out, _) = ok(apply);
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 2500);
    assert!(items.iter().all(|i| i["result"] == "applied"));
    assert_eq!(report["run"], 1);
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["counts"]["applied"], 2500);
    let applied = "SELECT count(*) FROM crmgate_changes WHERE run_id = 1";
    assert_eq!(env.count(applied), 2500);

    let human = titles_to_fill(2500);
    let mut apply = human.cmd(&["apply"]);
    apply.env("CRMGATE_APPLY_CHUNK", "1000");
    let (table, said) = ok(apply);
    assert!(table.lines().count() < 1000, "a summary, not every row");
    assert!(said.contains("2500 applied"), "{said}");
    assert!(said.contains("the first 200 of 2500 proposals"), "{said}");
}
