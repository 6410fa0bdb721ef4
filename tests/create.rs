//! `create` proposals: a new record, checked as an imported row is, decided by the policy,
//! applied as an insert logged with the record's snapshot, and reverted by deleting it.

mod common;

use common::{Env, crm_dump, json_of, ok, refused};

const HEADER: &str = "id,source,kind,object,record,value,confidence,evidence\n";

/// A CSV cell holding `json`, quoted.
fn cell(json: &str) -> String {
    format!("\"{}\"", json.replace('"', "\"\""))
}

/// A proposal row creating activity `id` of contact `contact`.
fn activity(ext: &str, id: &str, contact: &str) -> String {
    let json = format!(
        r#"{{"contact_id": "{contact}", "kind": "call", "body": "Called about the pilot", "at": "2026-01-01T10:00:00Z"}}"#
    );
    format!("{ext},agent,create,activities,{id},{},0.95,\n", cell(&json))
}

/// Proposes `rows`, approves every pending proposal, applies; returns the apply's run.
fn propose_approve_apply(env: &Env, name: &str, rows: &str) -> i64 {
    let f = env.write(name, format!("{HEADER}{rows}"));
    env.cmd(&["propose", &f]).assert().success();
    env.cmd(&["approve", "--kind", "create", "--yes"])
        .assert()
        .success();
    let out = json_of(&mut env.cmd(&["--json", "apply"]));
    assert_eq!(out["counts"]["applied"], rows.lines().count(), "{out}");
    out["run"].as_i64().unwrap()
}

#[test]
fn a_create_is_refused_with_file_and_line_for_an_unknown_field_a_bad_value_a_dangling_key_a_taken_id_and_a_missing_required_field()
 {
    let env = Env::with_crm();
    let rows = [
        activity("ok", "a-9001", "c-1001"),
        format!(
            "bad-field,agent,create,activities,a-9002,{},,\n",
            cell(r#"{"contact_id": "c-1001", "bdy": "x"}"#)
        ),
        format!(
            "bad-value,agent,create,activities,a-9003,{},,\n",
            cell(r#"{"contact_id": "c-1001", "at": "yesterday"}"#)
        ),
        activity("dangling", "a-9004", "c-nope"),
        activity("taken", "a-1001", "c-1001"),
        format!(
            "no-name,agent,create,companies,co-9001,{},,\n",
            cell(r#"{"domain": "new.example"}"#)
        ),
    ];
    let f = env.write("c.csv", format!("{HEADER}{}", rows.concat()));
    let before = env.dump();
    let err = refused(env.cmd(&["propose", &f]));
    for expected in [
        "c.csv:3: field \"bdy\" does not exist on activities (did you mean \"body\"?)",
        "c.csv:4: at: ",
        "c.csv:5: contact_id: \"c-nope\" does not exist in contacts",
        "c.csv:6: record activities/a-1001 already exists",
        "c.csv:7: name: missing; the column is NOT NULL and has no default",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    assert!(!err.contains("c.csv:2"), "{err}");
    assert_eq!(env.dump(), before, "nothing was ingested");
}

#[test]
fn a_create_is_applied_shown_and_reverted_exactly() {
    let env = Env::with_crm();
    let before = crm_dump(&env);
    let run = propose_approve_apply(&env, "c.csv", &activity("cr-1", "a-9001", "c-1001"));
    let body: String = env.one("SELECT body FROM activities WHERE id = 'a-9001'");
    assert_eq!(body, "Called about the pilot");
    assert_eq!(env.changes(run).len(), 1);
    assert!(env.changes(run)[0].starts_with("activities/a-9001 * NULL '{"));
    let shown = json_of(&mut env.cmd(&["--json", "show", "agent:cr-1"]));
    assert_eq!(shown["proposal"]["kind"], "create");
    assert_eq!(
        shown["proposal"]["value"]["contact_id"], "c-1001",
        "{shown}"
    );
    assert_eq!(shown["proposal"]["state"], "applied");
    let (text, _) = ok(env.cmd(&["show", "agent:cr-1"]));
    assert!(text.contains("New record activities/a-9001:"), "{text}");
    assert!(text.contains("Called about the pilot"), "{text}");
    env.cmd(&["revert", "--run", &run.to_string()])
        .assert()
        .success();
    assert_eq!(crm_dump(&env), before, "the CRM is as it was");
    assert_eq!(env.state("agent:cr-1"), "reverted");
}

#[test]
fn a_created_records_revert_is_refused_while_another_record_references_it_even_forced() {
    let env = Env::with_crm();
    let contact =
        cell(r#"{"first_name": "Ada", "last_name": "Byron", "email": "ada@example.com"}"#);
    let created = propose_approve_apply(
        &env,
        "contact.csv",
        &format!("ct-1,agent,create,contacts,c-9001,{contact},0.9,\n"),
    );
    let referencing =
        propose_approve_apply(&env, "activity.csv", &activity("cr-1", "a-9001", "c-9001"));
    for force in [false, true] {
        let mut args = vec!["revert".to_string(), "--run".into(), created.to_string()];
        if force {
            args.push("--force".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = refused(env.cmd(&args));
        assert!(
            err.contains("contacts/c-9001 is referenced by activities/a-9001 (contact_id)"),
            "{err}"
        );
    }
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'c-9001'"),
        1
    );
    env.cmd(&["revert", "--run", &referencing.to_string()])
        .assert()
        .success();
    env.cmd(&["revert", "--run", &created.to_string()])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'c-9001'"),
        0
    );
}

#[test]
fn a_created_records_revert_is_refused_once_it_changed_unless_forced() {
    let env = Env::with_crm();
    let before = crm_dump(&env);
    let run = propose_approve_apply(&env, "c.csv", &activity("cr-1", "a-9001", "c-1001"));
    let f = env.write(
        "u.csv",
        "id,source,kind,object,record,field,value\nu-1,agent,update,activities,a-9001,body,Rescheduled\n",
    );
    env.cmd(&["propose", &f]).assert().success();
    env.cmd(&["approve", "agent:u-1"]).assert().success();
    env.cmd(&["apply"]).assert().success();
    let change = env.one::<i64>(&format!(
        "SELECT id FROM crmgate_changes WHERE run_id = {run}"
    ));
    let err = refused(env.cmd(&["revert", &change.to_string()]));
    assert!(err.contains("another change came after"), "{err}");
    assert_eq!(
        env.count("SELECT count(*) FROM activities WHERE id = 'a-9001'"),
        1
    );
    env.cmd(&["revert", &change.to_string(), "--force"])
        .assert()
        .success();
    assert_eq!(
        crm_dump(&env),
        before,
        "the forced revert deleted it as it was"
    );
}

#[test]
fn a_create_comes_from_json_with_its_value_an_object() {
    let env = Env::with_crm();
    let f = env.write(
        "c.jsonl",
        r#"{"id": "j-1", "source": "agent", "kind": "create", "object": "activities", "record": "a-9001", "value": {"contact_id": "c-1001", "kind": "note", "body": "Met at the fair"}}
{"id": "j-2", "source": "agent", "kind": "update", "object": "activities", "record": "a-1001", "field": "body", "value": {"nested": true}}
"#,
    );
    let err = refused(env.cmd(&["propose", &f]));
    assert!(
        err.contains("c.jsonl:2: \"value\" must be a single value, not an object"),
        "{err}"
    );
    assert!(!err.contains("c.jsonl:1"), "{err}");
    let one = env.write(
        "one.jsonl",
        std::fs::read_to_string(&f).unwrap().lines().next().unwrap(),
    );
    env.cmd(&["propose", &one]).assert().success();
    let shown = json_of(&mut env.cmd(&["--json", "show", "agent:j-1"]));
    assert_eq!(
        shown["proposal"]["value"]["body"], "Met at the fair",
        "{shown}"
    );
}

#[test]
fn the_demo_policy_lets_an_autonomous_source_log_activities_and_sends_other_creates_to_review() {
    let env = Env::with_crm();
    let p = env.fixture_policy("demo.toml");
    env.cmd(&["policy", "set", &p]).assert().success();
    let contact = cell(r#"{"first_name": "Ada", "last_name": "Byron"}"#);
    let f = env.write(
        "c.csv",
        format!(
            "{HEADER}{}ct-1,activity-logger,create,contacts,c-9001,{contact},0.99,\n",
            activity("cr-1", "a-9001", "c-1001").replace(",agent,", ",activity-logger,")
        ),
    );
    let out = json_of(&mut env.cmd(&["--json", "propose", "--apply", &f]));
    assert_eq!(out["apply"]["counts"]["applied"], 1, "{out}");
    assert_eq!(env.state("activity-logger:cr-1"), "applied");
    assert_eq!(env.state("activity-logger:ct-1"), "pending");
    assert_eq!(
        env.count("SELECT count(*) FROM activities WHERE id = 'a-9001'"),
        1
    );
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'c-9001'"),
        0
    );
}

#[test]
fn the_review_screen_shows_the_new_record_as_a_table() {
    use rexpect::session::spawn_command;
    let env = Env::with_crm();
    let f = env.write(
        "c.csv",
        format!("{HEADER}{}", activity("cr-1", "a-9001", "c-1001")),
    );
    env.cmd(&["propose", &f]).assert().success();
    let mut t = env.terminal(common::os_user());
    t.arg("review");
    let mut p = spawn_command(t, Some(common::PTY_TIMEOUT_MS)).unwrap();
    let screen = common::expect(&mut p, "Decide #");
    assert!(screen.contains("New record activities/a-9001:"), "{screen}");
    let body = screen
        .lines()
        .find(|l| l.contains("body"))
        .unwrap_or_default();
    assert!(body.contains("Called about the pilot"), "{screen}");
    p.send("y").unwrap();
    p.flush().unwrap();
    common::expect(&mut p, "Review done");
    p.exp_eof().unwrap();
    assert_eq!(env.state("agent:cr-1"), "approved");
}
