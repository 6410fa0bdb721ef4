//! Autonomy end to end: `propose --apply`, a proposal's evidence, and `create` proposals.

mod common;

use common::{Env, contact_where, json_of};

/// A store with the demo CRM under the demo policy, in which clearbit is autonomous.
fn demo_policy_store() -> Env {
    let env = Env::with_crm();
    let p = env.fixture_policy("demo.toml");
    env.cmd(&["policy", "set", &p]).assert().success();
    env
}

const EV_HEADER: &str =
    "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n";

#[test]
fn propose_apply_applies_only_what_the_policy_approved_in_that_ingest() {
    let env = demo_policy_store();
    let phoneless: Vec<String> = {
        let conn = env.conn();
        let mut s = conn
            .prepare("SELECT id FROM contacts WHERE phone IS NULL AND sensitive = 0 AND legal_hold = 0 ORDER BY id LIMIT 10")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (a, b) = (&phoneless[0], &phoneless[1]);
    let earlier = env.write(
        "earlier.csv",
        format!("{EV_HEADER}e-1,clearbit,update,contacts,{a},phone,+1 415 555 0101,,0.95,,,\n"),
    );
    env.cmd(&["propose", &earlier]).assert().success();
    assert_eq!(env.state("clearbit:e-1"), "approved");
    let now = env.write(
        "now.csv",
        format!("{EV_HEADER}n-1,clearbit,update,contacts,{b},phone,+1 415 555 0102,,0.95,,,\n"),
    );
    let out = json_of(&mut env.cmd(&["--json", "propose", "--apply", &now]));
    assert_eq!(out["ingest"]["ingested"], 1, "{out}");
    assert_eq!(out["apply"]["counts"]["applied"], 1, "{out}");
    assert_eq!(out["apply"]["items"][0]["record"], format!("contacts/{b}"));
    assert_eq!(env.state("clearbit:n-1"), "applied");
    // The proposal approved by an earlier ingest waits for `crmgate apply`.
    assert_eq!(env.state("clearbit:e-1"), "approved");
    let phone: Option<String> = env.one(&format!("SELECT phone FROM contacts WHERE id = '{a}'"));
    assert_eq!(phone, None);
    let phone: String = env.one(&format!("SELECT phone FROM contacts WHERE id = '{b}'"));
    assert_eq!(phone, "+1 415 555 0102");
}

#[test]
fn propose_apply_exits_3_when_an_approved_proposal_was_not_applied() {
    let env = demo_policy_store();
    let c = contact_where(&env, "phone IS NULL AND sensitive = 0 AND legal_hold = 0");
    // The proposer saw a phone the record does not hold: approved, then a conflict at apply.
    let f = env.write(
        "stale.csv",
        format!(
            "{EV_HEADER}s-1,clearbit,update,contacts,{c},phone,+1 415 555 0103,,0.95,+1 000,,\n"
        ),
    );
    let out = env.cmd(&["propose", "--apply", &f]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(env.state("clearbit:s-1"), "conflict", "{err}");
}
