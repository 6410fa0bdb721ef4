//! `propose`: proposal files become queued proposals, or are refused by `FILE:LINE`.

mod common;

use predicates::prelude::*;

use common::{Env, HEADER, contact_where, fixture, json_of};

#[test]
fn proposals_are_queued_pending_with_the_value_at_ingest() {
    let env = Env::with_crm();
    let empty = contact_where(&env, "phone IS NULL");
    let set = contact_where(&env, "title IS NOT NULL");
    let title: String = env
        .conn()
        .query_row("SELECT title FROM contacts WHERE id = ?1", [&set], |r| {
            r.get(0)
        })
        .unwrap();
    let p = env.write(
        "p.csv",
        format!(
            "{HEADER}p-1,clearbit,update,contacts,{empty},phone,+1 415 555 0100,,0.9,,,found\np-2,clearbit,update,contacts,{set},title,Chief Vibes Officer,,0.4,,,\n"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("queued 2 proposals (2 update)"))
        // The default policy has no sources: every source is supervised, so both wait.
        .stderr(predicate::str::contains("decisions: 2 wait for review"));
    let conn = env.conn();
    let (state, baseline): (String, Option<String>) = conn
        .query_row(
            "SELECT state, baseline FROM crmgate_proposals WHERE ext_id = 'p-2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "pending");
    assert_eq!(baseline.as_deref(), Some(title.as_str()));
    let baseline: Option<String> = conn
        .query_row(
            "SELECT baseline FROM crmgate_proposals WHERE ext_id = 'p-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(baseline, None);
    // The record itself is untouched: proposing is not applying.
    let phone: Option<String> = conn
        .query_row("SELECT phone FROM contacts WHERE id = ?1", [&empty], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(phone, None);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_events WHERE action = 'ingest'"),
        1
    );
}

#[test]
fn signals_and_rules_that_repeat_are_kept_in_each_row_and_read_back_the_same() {
    let env = Env::with_crm();
    let empty: Vec<String> = env
        .conn()
        .prepare("SELECT id FROM contacts WHERE phone IS NULL ORDER BY id LIMIT 3")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(empty.len(), 3);
    // Three fills of an empty field at the same stated confidence: the same signals each time.
    let rows: String = empty
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!("s-{i},clearbit,update,contacts,{id},phone,+1 415 555 010{i},,0.9,,,found\n")
        })
        .collect();
    let p = env.write("p.csv", format!("{HEADER}{rows}"));
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    // Each proposal keeps its own signals and rules, in its own row.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE signals IS NOT NULL AND rules IS NOT NULL"
        ),
        3
    );
    let shown = |id: &str| {
        let v = json_of(&mut env.cmd(&["show", id, "--json"]));
        (v["signals"].clone(), v["proposal"]["rules"].clone())
    };
    let inline = shown("clearbit:s-0");
    assert!(
        inline.0.to_string().contains("fills an empty field"),
        "{:?}",
        inline.0
    );
    assert!(
        inline.1.to_string().contains("supervised"),
        "{:?}",
        inline.1
    );
    assert_eq!(shown("clearbit:s-1"), inline);
    assert_eq!(shown("clearbit:s-2"), inline);
}

#[test]
fn reingesting_the_same_file_or_a_shuffled_copy_changes_nothing() {
    let env = Env::with_crm();
    let file = fixture("proposals/generated.csv");
    env.cmd(&["propose", &file]).assert().success();
    let before = env.dump();
    env.cmd(&["propose", &file])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing new"));
    assert_eq!(env.dump(), before, "same file");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    lines.reverse();
    let third = lines.len() / 3;
    lines.rotate_left(third);
    let shuffled = env.write("shuffled.csv", format!("{header}\n{}\n", lines.join("\n")));
    env.cmd(&["propose", shuffled.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing new"));
    assert_eq!(env.dump(), before, "shuffled copy");
}

#[test]
fn rows_without_an_id_are_idempotent_by_content() {
    let env = Env::with_crm();
    let id = contact_where(&env, "title IS NOT NULL");
    let body = format!("{HEADER},zoominfo,update,contacts,{id},title,Head of Ops,,0.7,,,\n");
    let f = env.write("noid.csv", &body);
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    let before = env.dump();
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("nothing new"));
    assert_eq!(env.dump(), before);
}

#[test]
fn a_reused_id_with_different_content_is_refused() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let a = env.write(
        "a.csv",
        format!("{HEADER}x-1,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    let b = env.write(
        "b.csv",
        format!("{HEADER}x-1,clearbit,update,contacts,{id},title,CFO,,,,,\n"),
    );
    env.cmd(&["propose", a.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["propose", b.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "b.csv:2: clearbit:x-1 was already ingested as proposal 1 with different content",
        ));
}

#[test]
fn a_newer_proposal_supersedes_an_undecided_one_for_the_same_field() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let a = env.write(
        "a.csv",
        format!("{HEADER}s-1,clearbit,update,contacts,{id},title,CTO,,,,,\ns-2,zoominfo,update,contacts,{id},title,CIO,,,,,\n"),
    );
    let b = env.write(
        "b.csv",
        format!("{HEADER}s-3,clearbit,update,contacts,{id},title,CEO,,,,,\n"),
    );
    env.cmd(&["propose", a.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["propose", b.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "1 older undecided proposal was superseded",
        ));
    let state = |ext: &str| -> (String, Option<i64>) {
        env.conn()
            .query_row(
                "SELECT state, superseded_by FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(state("s-1"), ("superseded".into(), Some(3)));
    assert_eq!(
        state("s-2").0,
        "pending",
        "another source's proposal stands"
    );
    assert_eq!(state("s-3").0, "pending");
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events WHERE action = 'supersede' AND proposal_id = 1"
        ),
        1
    );
}

#[test]
fn within_one_file_the_newest_twin_supersedes_the_older_undecided_ones() {
    let env = Env::with_crm();
    let open = contact_where(
        &env,
        "title IS NOT NULL AND sensitive = 0 AND legal_hold = 0",
    );
    env.conn()
        .execute(
            "UPDATE contacts SET legal_hold = 1 WHERE id = (SELECT id FROM contacts WHERE id <> ?1 ORDER BY id LIMIT 1)",
            [&open],
        )
        .unwrap();
    let held = contact_where(&env, "legal_hold = 1");
    let f = env.write(
        "twins.csv",
        format!(
            "{HEADER}t-1,clearbit,update,contacts,{open},title,CTO,,,,,\n\
             h-1,clearbit,update,contacts,{held},title,CTO,,,,,\n\
             t-2,clearbit,update,contacts,{open},title,CIO,,,,,\n\
             h-2,clearbit,update,contacts,{held},title,CIO,,,,,\n\
             t-3,clearbit,update,contacts,{open},title,CEO,,,,,\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "2 older undecided proposals were superseded",
        ));
    let row = |ext: &str| -> (i64, String, Option<i64>) {
        env.conn()
            .query_row(
                "SELECT id, state, superseded_by FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let newest = row("t-3");
    assert_eq!((newest.1.as_str(), newest.2), ("pending", None));
    for older in ["t-1", "t-2"] {
        let (id, state, by) = row(older);
        assert_eq!(
            (state.as_str(), by),
            ("superseded", Some(newest.0)),
            "{older}"
        );
        assert_eq!(
            env.count(&format!(
                "SELECT count(*) FROM crmgate_events WHERE action = 'supersede' AND proposal_id = {id}"
            )),
            1,
            "{older}"
        );
    }
    // Blocked proposals are decided: a newer twin leaves them as they are.
    assert_eq!(row("h-1").1, "blocked");
    assert_eq!(row("h-2").1, "blocked");
    // Ids follow the file's order within a record, whatever order the rows were written in.
    assert!(row("t-1").0 < row("t-2").0 && row("t-2").0 < newest.0);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn skip_invalid_ingests_the_good_rows_and_writes_rejects() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "mixed.csv",
        format!(
            "{HEADER}k-1,clearbit,update,contacts,{id},title,CTO,,,,,\nk-2,clearbit,update,contacts,{id},emial,a@b.co,,,,,\nk-3,clearbit,verify,contacts,{id},,valid,,,,,\n"
        ),
    );
    let rows = env.propose_skipping(f.to_str().unwrap());
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 2);
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][1], "3");
    assert!(
        rows[0][2].contains("did you mean \"email\""),
        "{:?}",
        &rows[0]
    );
    assert_eq!(&rows[0][3], "k-2");
}

#[test]
fn skip_invalid_needs_a_rejects_file() {
    let env = Env::with_crm();
    env.cmd(&["propose", "x.csv", "--skip-invalid"])
        .assert()
        .code(2);
}

#[test]
fn json_ids_are_kept_exactly_and_stdin_works() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let line = format!(
        "{{\"id\": 12345678901234567890123, \"source\": \"hubspot-ai\", \"kind\": \"lifecycle\", \"object\": \"contacts\", \"record\": \"{id}\", \"value\": \"mql\", \"trigger\": \"form_submitted\", \"confidence\": 0.93}}\n"
    );
    env.cmd(&["propose", "-", "--format", "jsonl"])
        .write_stdin(line)
        .assert()
        .success();
    let v = json_of(&mut env.cmd(&["show", "hubspot-ai:12345678901234567890123", "--json"]));
    assert_eq!(v["proposal"]["ext_id"], "12345678901234567890123");
    assert_eq!(v["proposal"]["field"], "lifecycle_stage");
    assert_eq!(v["proposal"]["file"], "<stdin>");
}

#[test]
fn json_arrays_report_the_line_of_the_bad_object() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "p.json",
        format!(
            "[\n  {{\"id\": \"j-1\", \"source\": \"s\", \"kind\": \"owner\", \"object\": \"contacts\",\n   \"record\": \"{id}\", \"value\": \"mia\"}},\n  {{\n    \"id\": \"j-2\", \"source\": \"s\", \"kind\": \"owner\", \"object\": \"contacts\",\n    \"record\": \"{id}\", \"value\": \"mia\", \"value\": \"li\"\n  }}\n]\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "p.json:4: duplicate key \"value\"",
        ));
}

#[test]
fn several_files_are_all_or_nothing() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let good = env.write(
        "good.csv",
        format!("{HEADER}g-1,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    let before = env.dump();
    env.cmd(&[
        "propose",
        good.to_str().unwrap(),
        &fixture("bad/unknown-field.csv"),
    ])
    .assert()
    .code(1);
    assert_eq!(env.dump(), before, "the good file is not ingested either");
}

#[test]
fn json_empty_string_sets_the_empty_string_null_clears_and_a_bom_is_skipped_as_in_csv() {
    let env = Env::with_crm();
    let row = |id: &str, record: &str, value: serde_json::Value| {
        serde_json::json!({
            "id": id, "source": "s", "kind": "update", "object": "contacts",
            "record": record, "field": "title", "value": value,
        })
    };
    let array = serde_json::json!([
        row("j-1", "c-1001", "".into()),
        row("j-2", "c-1002", serde_json::Value::Null)
    ]);
    let json = env.write("bom.json", format!("\u{feff}{array}\n"));
    let jsonl = env.write(
        "bom.jsonl",
        format!("\u{feff}{}\n", row("j-3", "c-1003", "".into())),
    );
    for f in [&json, &jsonl] {
        env.cmd(&["propose", f.to_str().unwrap()])
            .assert()
            .success();
    }
    env.cmd(&["approve", "s:j-1", "s:j-2", "s:j-3"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    let title = |id: &str| {
        env.text(&format!(
            "SELECT typeof(title) || ':' || coalesce(title, '') FROM contacts WHERE id = '{id}'"
        ))
    };
    assert_eq!(title("c-1001"), "text:");
    assert_eq!(title("c-1002"), "null:");
    assert_eq!(title("c-1003"), "text:");
}

/// The parent a contact's email is checked against (for its domain) is read with only that
/// column; a write to the parent itself, judged later in the run, must still see every column
/// the policy's conditions read.
#[test]
fn a_parent_read_for_an_email_domain_does_not_blind_the_rules_on_a_later_write_to_that_parent() {
    let env = Env::new();
    env.conn()
        .execute_batch(
            "CREATE TABLE teams (id TEXT PRIMARY KEY, domain TEXT, legal_hold INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT, team_id TEXT REFERENCES teams(id));
             INSERT INTO teams VALUES ('t1', 'a.example', 1);
             INSERT INTO people VALUES ('p1', NULL, 't1');",
        )
        .expect("schema");
    env.cmd(&["init"]).assert().success();
    let policy = env.policy(
        "policy.toml",
        r#"
[defaults]
autonomy = "autonomous"
auto_min_confidence = 0.1

[[rule]]
name = "everything"
kind = ["update"]
action = "auto"

[[rule]]
name = "legal-hold"
record = { legal_hold = 1 }
action = "block"
"#,
    );
    env.cmd(&["policy", "set", &policy]).assert().success();
    // people sorts before teams: the email's domain check reads t1 first.
    env.propose_rows(
        "p.csv",
        "r1,bot,update,people,p1,email,x@a.example,,0.9,,,\n\
         r2,bot,update,teams,t1,domain,b.example,,0.9,,,\n",
    );
    assert_eq!(
        env.text("SELECT state FROM crmgate_proposals WHERE ext_id = 'r2'"),
        "blocked"
    );
}
