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

/// The header of a proposals CSV with evidence.
const EVIDENCE_HEADER: &str = "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason,evidence\n";

#[test]
fn evidence_goes_from_a_csv_to_show_and_the_audit_export() {
    let env = Env::with_crm();
    let c = contact_where(&env, "title IS NULL");
    let evidence = "https://example.com/team says \"CTO\"\nsecond line";
    let f = env.write(
        "p.csv",
        format!(
            "{EVIDENCE_HEADER}ev-1,clearbit,update,contacts,{c},title,CTO,,0.9,,,,\"{}\"\n",
            evidence.replace('"', "\"\"")
        ),
    );
    env.cmd(&["propose", &f]).assert().success();
    let shown = json_of(&mut env.cmd(&["--json", "show", "clearbit:ev-1"]));
    assert_eq!(shown["proposal"]["evidence"], evidence, "{shown}");
    let (text, _) = common::ok(env.cmd(&["show", "clearbit:ev-1"]));
    assert!(
        text.contains("https://example.com/team says \"CTO\""),
        "{text}"
    );
    assert!(text.contains("second line"), "{text}");
    env.cmd(&["approve", "clearbit:ev-1"]).assert().success();
    env.cmd(&["apply"]).assert().success();
    let (csv_text, _) = common::ok(env.cmd(&["audit", "export", "--format", "csv"]));
    let mut rows = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let at = headers
        .iter()
        .position(|h| h == "evidence")
        .expect("an evidence column");
    let action = headers.iter().position(|h| h == "action").unwrap();
    let with: Vec<String> = rows
        .records()
        .map(Result::unwrap)
        .filter(|r| &r[at] == evidence)
        .map(|r| r[action].to_string())
        .collect();
    assert_eq!(with, ["approve", "apply"]);
    let (lines, _) = common::ok(env.cmd(&["audit", "export"]));
    let applied: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["action"] == "apply")
        .collect();
    let detail: serde_json::Value =
        serde_json::from_str(applied[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["evidence"], evidence);
    // Redacted, the evidence is its SHA-256 wherever an event keeps it.
    let (redacted, _) =
        common::ok(env.cmd(&["audit", "export", "--format", "csv", "--redact", "evidence"]));
    assert!(!redacted.contains(evidence), "{redacted}");
    let digest = crmgate::audit::sha256_hex(evidence.as_bytes());
    let mut rows = csv::Reader::from_reader(redacted.as_bytes());
    let hashed = rows
        .records()
        .map(Result::unwrap)
        .filter(|r| r[at] == digest)
        .count();
    assert_eq!(hashed, 2, "{redacted}");
}

#[test]
fn evidence_comes_from_json_input_too() {
    let env = Env::with_crm();
    let c = contact_where(&env, "title IS NULL");
    let f = env.write(
        "p.json",
        format!(
            r#"[{{"id": "j-1", "source": "agent", "kind": "update", "object": "contacts",
                 "record": "{c}", "field": "title", "value": "CTO",
                 "evidence": "the signature of an email of 2026-01-01"}}]"#
        ),
    );
    env.cmd(&["propose", &f]).assert().success();
    let shown = json_of(&mut env.cmd(&["--json", "show", "agent:j-1"]));
    assert_eq!(
        shown["proposal"]["evidence"],
        "the signature of an email of 2026-01-01"
    );
}

#[test]
fn evidence_over_4_kb_is_refused_with_its_file_and_line() {
    let env = Env::with_crm();
    let c = contact_where(&env, "title IS NULL");
    let f = env.write(
        "p.csv",
        format!(
            "{EVIDENCE_HEADER}ok,clearbit,update,contacts,{c},title,CTO,,,,,,{}\nbig,clearbit,update,contacts,{c},phone,+1 415 555 0100,,,,,,{}\n",
            "x".repeat(4096),
            "x".repeat(4097)
        ),
    );
    let before = env.dump();
    let err = common::refused(env.cmd(&["propose", &f]));
    assert!(
        err.contains("p.csv:3: evidence is 4097 bytes; the limit is 4096"),
        "{err}"
    );
    assert!(!err.contains("p.csv:2"), "{err}");
    assert_eq!(env.dump(), before);
}

#[test]
fn the_review_screen_shows_a_proposals_evidence() {
    use rexpect::session::spawn_command;
    let env = Env::with_crm();
    let c = contact_where(&env, "title IS NULL");
    let f = env.write(
        "p.csv",
        format!(
            "{EVIDENCE_HEADER}ev-1,clearbit,update,contacts,{c},title,CTO,,0.9,,,,https://example.com/about-us\n"
        ),
    );
    env.cmd(&["propose", &f]).assert().success();
    let mut t = env.terminal(common::os_user());
    t.arg("review");
    let mut p = spawn_command(t, Some(common::PTY_TIMEOUT_MS)).unwrap();
    let screen = common::expect(&mut p, "Decide #");
    assert!(
        screen.contains("Evidence: https://example.com/about-us"),
        "{screen}"
    );
    p.send("q").unwrap();
    p.flush().unwrap();
    common::expect(&mut p, "Review done");
    p.exp_eof().unwrap();
}
