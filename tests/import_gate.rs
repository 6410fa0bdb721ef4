//! Import into a table with records goes through the gate: new records are a revertible run of
//! creates, differing fields are proposals the policy decides, identical records change
//! nothing, and `--direct` is an admin's revertible run of field writes.

mod common;

use common::{Env, crm_dump, json_of, ok, refused, stdout_of};

/// Every update waits for a person of `ops`; bob is one, and no admin.
const POLICY: &str = r#"
[defaults]
autonomy = "autonomous"
auto_min_confidence = 0.5
max_auto_per_run = 1000000
max_auto_per_day = 1000000

[[rule]]
name = "imports wait for ops"
kind = ["update"]
action = "review"
approvers = ["ops"]

[roles]
bob = ["ops"]
"#;

/// The demo CRM under [`POLICY`].
fn crm() -> Env {
    let env = Env::with_crm();
    let p = env.policy("policy.toml", POLICY);
    ok(env.cmd(&["policy", "set", &p]));
    env
}

/// The contacts export with `edits` (record, field, value) made and `extra` rows appended.
fn edited_export(env: &Env, edits: &[(&str, &str, &str)], extra: &[&str]) -> String {
    let csv = stdout_of(&mut env.cmd(&["export", "contacts"]));
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let header = r.headers().unwrap().clone();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).unwrap();
    for row in r.records() {
        let mut row: Vec<String> = row.unwrap().iter().map(str::to_string).collect();
        for (record, field, value) in edits {
            if row[0] == *record {
                let at = header.iter().position(|h| h == *field).unwrap();
                row[at] = value.to_string();
            }
        }
        w.write_record(&row).unwrap();
    }
    let mut out = String::from_utf8(w.into_inner().unwrap()).unwrap();
    for line in extra {
        out.push_str(line);
        out.push('\n');
    }
    out
}

const EDITS: [(&str, &str, &str); 3] = [
    ("c-1001", "owner", "priya"),
    ("c-1002", "title", "Head of Data"),
    ("c-1003", "phone", "+1 415 555 0142"),
];

const NEW: [&str; 2] = [
    "n-1,Ann,Ames,ann.ames@example.com,valid,,,,lead,bob,0,0,0,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z",
    "n-2,Ben,Bose,ben.bose@example.com,valid,,,,lead,bob,0,0,0,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z",
];

#[test]
fn a_reimported_export_queues_its_changed_fields_creates_its_new_records_and_the_run_reverts_them()
{
    let env = crm();
    let before = crm_dump(&env);
    let f = env.write("x.csv", edited_export(&env, &EDITS, &NEW));
    let report = json_of(&mut env.cmd(&["--json", "import", "contacts", f.to_str().unwrap()]));
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["queued"], 3, "{report}");
    assert_eq!(report["updated"], 0, "{report}");
    assert_eq!(report["unchanged"], 1000 - 3, "{report}");
    let run = report["run"].as_i64().expect("a run");
    // The three fields wait as proposals of the source import; no field was written.
    let queued = env.text(
        "SELECT group_concat(record || ' ' || field || ' ' || value || ' ' || state, '; ') \
         FROM (SELECT * FROM crmgate_proposals WHERE source = 'import' ORDER BY record)",
    );
    assert_eq!(
        queued,
        "c-1001 owner priya pending; c-1002 title Head of Data pending; \
         c-1003 phone +1 415 555 0142 pending"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id IN ('n-1', 'n-2')"),
        2
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM crmgate_changes WHERE run_id = {run} AND field = '*' \
             AND before IS NULL AND record IN ('n-1', 'n-2')"
        )),
        2
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM crmgate_events WHERE run_id = {run} AND action = 'import'"
        )),
        2
    );
    ok(env.cmd(&["revert", "--run", &run.to_string()]));
    assert_eq!(crm_dump(&env), before, "the revert removes exactly the two");
}

#[test]
fn an_identical_reimport_changes_nothing() {
    let env = crm();
    let before = env.dump();
    let f = env.write("x.csv", edited_export(&env, &[], &[]));
    let report = json_of(&mut env.cmd(&["--json", "import", "contacts", f.to_str().unwrap()]));
    assert_eq!(report["unchanged"], 1000, "{report}");
    assert_eq!(report["run"], serde_json::Value::Null, "{report}");
    assert_eq!(env.dump(), before);
}

#[test]
fn direct_import_is_refused_to_a_non_admin_under_roles_and_writes_nothing() {
    let env = crm();
    let before = env.dump();
    let f = env.write("x.csv", edited_export(&env, &EDITS, &NEW));
    let why = refused(env.cmd(&[
        "--as",
        "bob",
        "import",
        "contacts",
        f.to_str().unwrap(),
        "--direct",
    ]));
    assert!(why.contains("takes the admin role"), "{why}");
    assert!(why.contains("import without --direct"), "{why}");
    assert_eq!(env.dump(), before);
}

#[test]
fn direct_import_writes_each_field_as_a_logged_change_and_its_run_reverts_exactly() {
    let env = crm();
    let before = crm_dump(&env);
    let f = env.write("x.csv", edited_export(&env, &EDITS, &NEW));
    let args = [
        "--json",
        "import",
        "contacts",
        f.to_str().unwrap(),
        "--direct",
    ];
    let report = json_of(&mut env.cmd(&args));
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["updated"], 3, "{report}");
    assert_eq!(report["queued"], 0, "{report}");
    let run = report["run"].as_i64().expect("a run");
    assert_eq!(
        env.text("SELECT owner FROM contacts WHERE id = 'c-1001'"),
        "priya"
    );
    let logged = env.text(&format!(
        "SELECT group_concat(record || ' ' || field || ' ' || ifnull(before, 'NULL') || ' -> ' \
         || after, '; ') FROM (SELECT * FROM crmgate_changes WHERE run_id = {run} \
         AND field <> '*' ORDER BY record)"
    ));
    assert_eq!(
        logged,
        "c-1001 owner bob -> priya; c-1002 title NULL -> Head of Data; \
         c-1003 phone NULL -> +1 415 555 0142"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE source = 'import'"),
        0
    );
    ok(env.cmd(&["revert", "--run", &run.to_string()]));
    assert_eq!(crm_dump(&env), before);
}

#[test]
fn a_bad_row_refuses_the_whole_file_into_a_table_with_records() {
    let env = crm();
    let before = env.dump();
    let mut text = edited_export(&env, &EDITS, &NEW);
    text.push_str(
        "n-3,Cy,Cole,cy@,valid,,,,lead,bob,0,0,0,2026-01-01T00:00:00Z,2026-01-01T00:00:00Z\n",
    );
    let f = env.write("x.csv", text);
    let why = refused(env.cmd(&["import", "contacts", f.to_str().unwrap()]));
    assert!(why.contains("x.csv:1004: email"), "{why}");
    assert_eq!(env.dump(), before);
}

#[test]
fn importing_the_same_changes_again_queues_nothing_twice_and_says_so() {
    let env = crm();
    let f = env.write("x.csv", edited_export(&env, &EDITS, &[]));
    ok(env.cmd(&["import", "contacts", f.to_str().unwrap()]));
    let before = env.dump_of(&["crmgate_proposals", "contacts"]);
    let (_, said) = ok(env.cmd(&["import", "contacts", f.to_str().unwrap()]));
    assert!(
        said.contains("0 created, 997 unchanged, 0 queued (3 already queued)"),
        "{said}"
    );
    assert_eq!(env.dump_of(&["crmgate_proposals", "contacts"]), before);
}
