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
