//! Importing CRM records and exporting them.

mod common;

use predicates::prelude::*;

use common::{Env, contact_where, fixture, stdout_of};

#[test]
fn import_then_export_round_trips() {
    let env = Env::with_crm();
    let csv = stdout_of(&mut env.cmd(&["export", "contacts"]));
    let original = std::fs::read_to_string(fixture("crm/contacts.csv")).unwrap();
    assert_eq!(csv.lines().count(), original.lines().count());
    // Re-importing the export changes nothing.
    let before = env.dump();
    let out = env.write("contacts.csv", &csv);
    env.cmd(&["import", "contacts", out.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "0 created, 1000 unchanged, 0 queued",
        ));
    assert_eq!(env.dump(), before);
    // JSON export into a fresh store reproduces the table.
    let fresh = Env::new();
    fresh.cmd(&["init"]).assert().success();
    for t in ["companies", "contacts"] {
        let json = stdout_of(&mut env.cmd(&["export", t, "--format", "json"]));
        let f = fresh.write(&format!("{t}.json"), json);
        fresh
            .cmd(&["import", t, f.to_str().unwrap()])
            .assert()
            .success();
    }
    let rows = |e: &Env| {
        let mut s = e.dump();
        s = s
            .split("== contacts\n")
            .nth(1)
            .unwrap()
            .split("== ")
            .next()
            .unwrap()
            .to_string();
        s
    };
    assert_eq!(rows(&fresh), rows(&env));
}

#[test]
fn import_refuses_a_bad_row_and_writes_nothing() {
    let env = Env::with_crm();
    let before = env.dump();
    let f = env.write(
        "c.csv",
        "id,first_name,email,company_id\nn-1,Ann,ann@acme.com,\nn-2,Ben,ben@,\nn-3,Cy,cy@acme.com,co-nope\n",
    );
    env.cmd(&["import", "contacts", f.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "c.csv:3: email: \"ben@\" is not a valid email address",
        ))
        .stderr(predicate::str::contains(
            "c.csv:4: company_id: \"co-nope\" does not exist in companies",
        ));
    assert_eq!(env.dump(), before);
}

#[test]
fn export_can_neutralise_formulas_for_spreadsheets() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "c.csv",
        format!("id,title\n{id},=HYPERLINK(\"http://x\")\n"),
    );
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    let raw = stdout_of(&mut env.cmd(&["export", "contacts"]));
    assert!(
        raw.contains(",\"=HYPERLINK(\"\"http://x\"\")\","),
        "exact by default"
    );
    let safe = stdout_of(&mut env.cmd(&["export", "contacts", "--spreadsheet-safe"]));
    assert!(
        safe.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","),
        "neutralised when asked"
    );
}

/// A store whose own table declares DATE, DATETIME and BOOLEAN columns (NUMERIC to SQLite).
fn events_store() -> Env {
    let env = Env::new();
    env.conn()
        .execute_batch(
            "CREATE TABLE events (id TEXT PRIMARY KEY, held_on DATE, starts DATETIME, done BOOLEAN)",
        )
        .unwrap();
    env.cmd(&["init"]).assert().success();
    env
}

#[test]
fn columns_are_checked_by_their_declared_type_as_written() {
    let env = events_store();
    let f = env.write(
        "e.csv",
        "id,held_on,starts,done\ne-1,2025-01-01,2025-01-01T09:00:00Z,true\n",
    );
    env.cmd(&["import", "events", f.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        env.text("SELECT held_on || ' ' || starts || ' ' || done FROM events"),
        "2025-01-01 2025-01-01T09:00:00Z 1"
    );
    let p = env.write(
        "p.csv",
        "id,source,kind,object,record,field,value\n\
         p-1,s,update,events,e-1,held_on,2025-02-03\n\
         p-2,s,update,events,e-1,held_on,20250203\n",
    );
    let stderr = common::refused(env.cmd(&["propose", p.to_str().unwrap()]));
    assert!(
        stderr.contains(":3: held_on: \"20250203\" is not a date (YYYY-MM-DD)"),
        "{stderr}"
    );
    assert!(!stderr.contains(":2: "), "{stderr}");
}

#[test]
fn a_record_id_with_spaces_around_it_is_refused_at_import_as_it_could_never_be_targeted() {
    let env = events_store();
    let before = env.dump();
    let f = env.write("e.csv", "id,held_on\n e-1 ,2025-01-01\ne-2,\n");
    let stderr = common::refused(env.cmd(&["import", "events", f.to_str().unwrap()]));
    assert!(
        stderr.contains(":2: id: \" e-1 \" has spaces around it"),
        "{stderr}"
    );
    assert_eq!(env.dump(), before);
    let j = env.write("e.json", r#"[{"id": "", "held_on": null}]"#);
    let stderr = common::refused(env.cmd(&["import", "events", j.to_str().unwrap()]));
    assert!(
        stderr.contains("missing \"id\" (the record's id)"),
        "{stderr}"
    );
}
