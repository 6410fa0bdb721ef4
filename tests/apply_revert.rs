//! `apply` and `revert`: approved proposals become changes, and any change can be undone.

mod common;

use std::path::Path;

use predicates::prelude::*;

use common::{Env, HEADER, crm_dump, json_of, stdout_of};

fn sha256_of(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    crmgate::audit::sha256_hex(&buf)
}

/// A store of 800 contacts and `proposals.csv`, a title and a phone proposed for each, all let
/// through by the policy: 1,600 proposals, more than a report keeps items of and than a chunk of
/// 1,000.
fn long_queue_unproposed() -> Env {
    let policy =
        common::demo_policy().replace("max_auto_per_run = 1000 ", "max_auto_per_run = 100000 ");
    Env::with_contacts_and_fills(800, "0.95", &policy)
}

/// [`long_queue_unproposed`], its proposals queued: 1,600 approved.
fn long_queue() -> Env {
    let env = long_queue_unproposed();
    env.cmd(&["propose", "proposals.csv"]).assert().success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"),
        1600
    );
    env
}

#[test]
fn chunks_of_any_size_apply_and_revert_the_same() {
    let ahead = long_queue();
    let original = crm_dump(&ahead);
    ahead
        .cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 1600 applied"));
    let alone = long_queue();
    alone
        .cmd(&["apply"])
        .env("CRMGATE_APPLY_CHUNK", "100")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 1600 applied"));
    assert_eq!(crm_dump(&ahead), crm_dump(&alone));
    let changes = "SELECT group_concat(proposal_id || record || field || quote(after)) FROM
        (SELECT * FROM crmgate_changes ORDER BY id)";
    let text = |env: &Env| -> String { env.conn().query_row(changes, [], |r| r.get(0)).unwrap() };
    assert_eq!(text(&ahead), text(&alone));
    assert_eq!(
        ahead.count("SELECT count(*) FROM contacts WHERE title IS NULL OR phone IS NULL"),
        0
    );
    // Over a chunk, a run is reverted a chunk at a time: 1,000 changes, then 600.
    for (env, chunk) in [(&ahead, "1000"), (&alone, "100")] {
        env.cmd(&["revert", "--run", "1"])
            .env("CRMGATE_APPLY_CHUNK", chunk)
            .assert()
            .success()
            .stderr(predicate::str::contains("run 2: 1600 changes reverted"));
        assert_eq!(crm_dump(env), original);
    }
    assert_eq!(text(&ahead), text(&alone));
    ahead.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_record_written_earlier_in_the_chunk_is_judged_as_it_is_now() {
    let env = long_queue();
    // A second autonomous source proposes every title again, from the same empty field.
    let policy = common::demo_policy()
        .replace("max_auto_per_run = 1000 ", "max_auto_per_run = 100000 ")
        .replace(
            "[sources.sdr-agent]",
            "[sources.apollo]\nautonomy = \"autonomous\"\n\n[sources.sdr-agent]",
        );
    let p = env.write("policy2.toml", common::with_test_admins(&policy));
    env.cmd(&["--as", "alice", "policy", "set", p.to_str().unwrap()])
        .assert()
        .success();
    let mut again = String::from(HEADER);
    for i in 0..800 {
        again.push_str(&format!(
            "a-{i},apollo,update,contacts,k-{i:03},title,Manager {i},,0.95,,,\n"
        ));
    }
    let p = env.write("again.csv", again);
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    // One chunk: clearbit's titles are written first, so apollo's find the field no longer
    // empty, and the policy that let them through as fills sends them to a person instead.
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("1600 applied, 800 held"));
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE title LIKE 'Engineer %'"),
        800
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE source = 'apollo' AND state = 'pending'"
        ),
        800
    );
}

#[test]
fn a_merge_meets_its_records_as_the_runs_field_writes_left_them_and_reverts_exactly() {
    let env = long_queue();
    let c = env.write(
        "more.csv",
        "id,first_name,last_name,email\n\
         m-1,Ada,Byron,ada@example.com\n\
         m-2,Ada,Byron,ada@example.com\n",
    );
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    let d = env.write("deals.csv", "id,name,contact_id\nd-1,Renewal,m-1\n");
    env.cmd(&["import", "deals", d.to_str().unwrap()])
        .assert()
        .success();
    let merge = env.write(
        "merge.csv",
        format!("{HEADER}mg-1,dedupe-bot,merge,contacts,m-1,,,m-2,0.99,,,\n"),
    );
    env.cmd(&["propose", merge.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    // Queued after the merge: a fill of the duplicate the merge removes, and a change to a deal
    // of the duplicate's, which the merge re-points to the survivor without naming it.
    let fill = env.write(
        "fill.csv",
        format!(
            "{HEADER}f-1,clearbit,update,contacts,m-1,title,Engineer,,0.95,,,\n\
             f-2,clearbit,update,deals,d-1,contact_id,m-2,,0.95,,,\n"
        ),
    );
    env.cmd(&["propose", fill.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "approve", "clearbit:f-2"])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'"),
        1603
    );
    let before = crm_dump(&env);
    // The run's field writes come first, though queued after the merge: the merge then meets
    // the duplicate's title and the deal as they left them, its own run's approved changes.
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'm-1'"),
        0
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id IN ('f-1', 'f-2', 'mg-1') AND state = 'applied'"
        ),
        3
    );
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'm-2' AND title = 'Engineer'"),
        1,
        "the survivor's empty title is filled from the duplicate as the run left it"
    );
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert_eq!(crm_dump(&env), before);
}

#[test]
fn a_revert_in_chunks_reads_a_record_again_once_the_chunk_has_written_it() {
    let env = long_queue();
    let c = env.write("more.csv", "id,first_name,title\nm-1,Ada,Lead\n");
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    title_proposed_twice(&env, "m-1", "Lead", "Chief");
    let original = crm_dump(&env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 2: 1602 applied"));
    // The newest thousand changes, both of m-1's among them, are the first chunk: undoing the
    // newer one leaves "Lead", which the older one then finds, as it reads the record at its turn.
    env.cmd(&["revert", "--run", "2"])
        .env("CRMGATE_APPLY_CHUNK", "1000")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 3: 1602 changes reverted"));
    assert_eq!(crm_dump(&env), original);
}

#[test]
fn what_a_trigger_does_to_a_later_proposal_is_seen_when_its_turn_comes() {
    let env = long_queue();
    // Someone's rule in the store: once a contact has a title, its phone is not to be filled.
    env.conn()
        .execute_batch(
            "CREATE TRIGGER no_phone_once_titled AFTER UPDATE OF title ON contacts
             BEGIN
               UPDATE crmgate_proposals SET state = 'rejected'
               WHERE state = 'approved' AND object = 'contacts' AND record = NEW.id
                 AND field = 'phone';
             END;",
        )
        .unwrap();
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 800 applied"));
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE field = 'phone'"),
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE phone IS NOT NULL"),
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'rejected'"),
        800
    );
}

#[test]
fn a_dry_run_goes_through_every_check_and_changes_nothing() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let before = sha256_of(&env.db());
    env.cmd(&["apply", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would apply"))
        .stderr(predicate::str::contains(
            "dry run: 5 would apply; nothing was changed",
        ));
    assert_eq!(
        sha256_of(&env.db()),
        before,
        "the store file is unchanged byte for byte"
    );
}

/// The demo store after alice approves apollo:ap-1 and sdr-agent:sdr-304, which wait for a
/// human: seven proposals then stand approved. Returns the CRM dump from before any apply.
fn demo_with_human_approvals(env: &Env) -> String {
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&[
        "--as",
        "alice",
        "approve",
        "apollo:ap-1",
        "sdr-agent:sdr-304",
    ])
    .assert()
    .success();
    crm_dump(env)
}

#[test]
fn apply_then_revert_restores_the_crm_exactly_and_a_revert_can_be_reverted() {
    let env = Env::new();
    let original = demo_with_human_approvals(&env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 7 applied"));
    let applied = crm_dump(&env);
    assert_ne!(applied, original);
    let phone: Option<String> = env
        .conn()
        .query_row("SELECT phone FROM contacts WHERE id = 'c-1001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        phone.as_deref(),
        Some("+1 415 555 0142"),
        "clearbit:cb-101 was applied"
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_changes"), 7);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'"),
        7
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(
        crm_dump(&env),
        original,
        "reverting the run restores every record exactly"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"),
        7
    );
    // Again: every change is already undone, and said to be; nothing changes.
    env.cmd(&["revert", "--run", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "skipped: already undone by change",
        ))
        .stderr(predicate::str::contains(
            "nothing left to revert: 7 changes already undone",
        ));
    assert_eq!(crm_dump(&env), original);
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert_eq!(
        crm_dump(&env),
        applied,
        "reverting the revert applies again"
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_run_in_chunks_is_one_run_and_reverts_as_one() {
    let env = Env::new();
    let original = demo_with_human_approvals(&env);
    // Three proposals per transaction: seven proposals take three chunks.
    env.cmd(&["apply"])
        .env("CRMGATE_APPLY_CHUNK", "3")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 7 applied"));
    assert_eq!(
        env.count("SELECT count(DISTINCT run_id) FROM crmgate_changes"),
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_changes"), 7);
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(crm_dump(&env), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn show_of_a_change_tells_its_story_from_ingest_to_revert() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "sdr-agent:sdr-304"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    let id: i64 = env
        .conn()
        .query_row(
            "SELECT c.id FROM crmgate_changes c JOIN crmgate_proposals p ON p.id = c.proposal_id
             WHERE p.ext_id = 'sdr-304'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    env.cmd(&["revert", &id.to_string()]).assert().success();
    let shown = json_of(&mut env.cmd(&["show", &format!("change:{id}"), "--json"]));
    let c = &shown["change"];
    assert_eq!(c["id"], id);
    assert_eq!(c["field"], "owner");
    assert_eq!(c["after"], "priya");
    assert_eq!(c["approved_by"], "alice");
    assert!(c["reverted_by"].is_i64(), "{c}");
    assert_eq!(shown["proposal"]["ext_id"], "sdr-304");
    let actions: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ingest", "approve", "apply", "revert"]);
    env.cmd(&["show", &format!("change:{id}")])
        .assert()
        .success()
        .stdout(predicate::str::contains("Its story, from ingest"))
        .stdout(predicate::str::contains("reverted by"));
    env.cmd(&["show", "change:999999"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("999999"));
}

#[test]
fn a_revert_after_a_later_edit_is_refused_unless_an_admin_forces_it() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["apply"]).assert().success();
    let change: i64 =
        env.count("SELECT id FROM crmgate_changes WHERE record = 'c-1001' AND field = 'phone'");
    let f = env.write("later.csv", "id,phone\nc-1001,+1 415 555 0199\n");
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    let before = env.dump();
    env.cmd(&["revert", &change.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "c-1001 phone is now \"+1 415 555 0199\"",
        ));
    env.cmd(&["--as", "bob", "revert", &change.to_string(), "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bob may not force a revert"));
    assert_eq!(env.dump(), before);
    env.cmd(&["--as", "alice", "revert", &change.to_string(), "--force"])
        .assert()
        .success();
    let phone: Option<String> = env
        .conn()
        .query_row("SELECT phone FROM contacts WHERE id = 'c-1001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(phone, None, "back to what it was before the change");
}

#[test]
fn apply_rechecks_the_record_as_it_is_now() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let record = |ext: &str| -> String {
        env.conn()
            .query_row(
                "SELECT record FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| r.get(0),
            )
            .unwrap()
    };
    // cb-101 was approved by the policy; a legal hold is set on its record afterwards.
    let held = record("cb-101");
    // cb-102 was approved by the policy; its field is filled by someone else before apply, so the
    // policy would no longer let it through on its own.
    let moved = record("cb-102");
    let f = env.write(
        "later.csv",
        format!("id,legal_hold,title\n{held},1,\n{moved},0,Head of Growth\n"),
    );
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    // And a source is paused.
    env.cmd(&[
        "--as", "alice", "pause", "--source", "clearbit", "--reason", "audit",
    ])
    .assert()
    .success();
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("paused"));
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id > 1"),
        0,
        "nothing from a paused source"
    );
    env.cmd(&["--as", "alice", "resume", "--source", "clearbit"])
        .assert()
        .success();
    // ap-1 is approved by a human, then its field is filled before apply: a conflict.
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    let stale = record("ap-1");
    let f = env.write("later2.csv", format!("id,title\n{stale},Head of Sales\n"));
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    env.cmd(&["apply"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("legal-hold"))
        .stdout(predicate::str::contains("sent to review now"))
        .stdout(predicate::str::contains("conflict"));
    let state = |ext: &str| -> String {
        env.conn()
            .query_row(
                "SELECT state FROM crmgate_proposals WHERE ext_id = ?1",
                [ext],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(
        state("cb-101"),
        "blocked",
        "a legal hold set after approval still stops it"
    );
    assert_eq!(
        state("cb-102"),
        "pending",
        "no longer one the policy lets through on its own"
    );
    assert_eq!(
        state("ap-1"),
        "conflict",
        "the record moved on since the proposal"
    );
    let title: Option<String> = env
        .conn()
        .query_row("SELECT title FROM contacts WHERE id = ?1", [&moved], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        title.as_deref(),
        Some("Head of Growth"),
        "the newer value stands"
    );
}

#[test]
fn a_merge_applies_and_reverts_exactly_related_rows_included() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let (dup, survivor): (String, String) = env
        .conn()
        .query_row(
            "SELECT record, merge_into FROM crmgate_proposals WHERE ext_id = 'dd-202'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Give the duplicate related rows to re-point, and an activity of the survivor's for contrast.
    let related = env.count(&format!(
        "SELECT (SELECT count(*) FROM activities WHERE contact_id = '{dup}') + (SELECT count(*) FROM deals WHERE contact_id = '{dup}')"
    ));
    assert!(related > 0, "the fixture duplicate has related rows");
    let original = crm_dump(&env);
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:dd-202"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM contacts WHERE id = '{dup}'")),
        0,
        "the duplicate is gone"
    );
    assert_eq!(
        env.count(&format!(
            "SELECT (SELECT count(*) FROM activities WHERE contact_id = '{dup}') + (SELECT count(*) FROM deals WHERE contact_id = '{dup}')"
        )),
        0,
        "nothing points at the duplicate any more"
    );
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM crmgate_changes WHERE field = 'contact_id' AND after = '{survivor}'")),
        related,
        "every related row was re-pointed, each a change"
    );
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(
        crm_dump(&env),
        original,
        "the merge is undone byte for byte"
    );
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert_eq!(
        env.count(&format!("SELECT count(*) FROM contacts WHERE id = '{dup}'")),
        0,
        "and redone"
    );
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_legal_hold_on_either_record_stops_a_merge_at_apply() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:dd-201"])
        .assert()
        .success();
    let survivor: String = env
        .conn()
        .query_row(
            "SELECT merge_into FROM crmgate_proposals WHERE ext_id = 'dd-201'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let f = env.write("hold.csv", format!("id,legal_hold\n{survivor},1\n"));
    env.cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    let before = crm_dump(&env);
    env.cmd(&["apply", "--source", "dedupe-bot"])
        .assert()
        .code(3);
    assert_eq!(crm_dump(&env), before);
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'dd-201' AND state = 'blocked'"
        ),
        1
    );
}

/// Applies one exported `apply` or `revert` event to a store: the field takes `new_value`; a
/// whole record (`*`) is deleted (`null`) or re-created from its snapshot.
fn replay_event(conn: &rusqlite::Connection, e: &serde_json::Value) {
    let object = e["object"].as_str().unwrap();
    let record = e["record"].as_str().unwrap();
    let field = e["field"].as_str().unwrap();
    let new: serde_json::Value = serde_json::from_str(e["new_value"].as_str().unwrap()).unwrap();
    let sql_value = |v: &serde_json::Value| -> rusqlite::types::Value {
        match v {
            serde_json::Value::Null => rusqlite::types::Value::Null,
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => rusqlite::types::Value::Integer(i),
                None => rusqlite::types::Value::Real(n.as_f64().unwrap()),
            },
            serde_json::Value::String(s) => rusqlite::types::Value::Text(s.clone()),
            other => panic!("unexpected value {other}"),
        }
    };
    if field == "*" {
        match &new {
            serde_json::Value::Null => {
                conn.execute(&format!("DELETE FROM \"{object}\" WHERE id = ?1"), [record])
                    .unwrap();
            }
            serde_json::Value::String(snapshot) => {
                let row: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(snapshot).unwrap();
                // A merge's snapshot keeps the duplicate's rowid: it goes back where it was.
                let cols: Vec<String> = row
                    .keys()
                    .map(|k| match k.as_str() {
                        "crmgate:rowid" => "rowid".to_string(),
                        k => format!("\"{k}\""),
                    })
                    .collect();
                let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
                let values: Vec<rusqlite::types::Value> = row.values().map(sql_value).collect();
                conn.execute(
                    &format!(
                        "INSERT INTO \"{object}\" ({}) VALUES ({})",
                        cols.join(", "),
                        marks.join(", ")
                    ),
                    rusqlite::params_from_iter(values.iter()),
                )
                .unwrap();
            }
            other => panic!("unexpected snapshot {other}"),
        }
    } else {
        conn.execute(
            &format!("UPDATE \"{object}\" SET \"{field}\" = ?1 WHERE id = ?2"),
            rusqlite::params![sql_value(&new), record],
        )
        .unwrap();
    }
}

#[test]
fn replaying_the_exported_events_of_a_random_session_reproduces_the_crm() {
    use rand::{Rng, SeedableRng};
    let mut merged = false;
    for seed in [1u64, 2, 3] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let env = Env::new();
        env.cmd(&["init", "--demo"]).assert().success();
        // A session: humans decide a random share of the queue, apply, revert something, again.
        for round in 0..2 {
            let pending: Vec<i64> = env.column("SELECT id FROM crmgate_proposals WHERE state IN ('pending', 'suggested') ORDER BY id");
            for id in pending {
                let id = id.to_string();
                match rng.random_range(0..3) {
                    0 => {
                        env.cmd(&["--as", "alice", "approve", &id])
                            .output()
                            .unwrap();
                    }
                    1 => {
                        env.cmd(&["--as", "alice", "reject", &id, "--reason", "no"])
                            .output()
                            .unwrap();
                    }
                    _ => {}
                }
            }
            env.cmd(&["apply"]).output().unwrap();
            let changes = env.count("SELECT count(*) FROM crmgate_changes");
            if changes > 0 {
                let pick = rng.random_range(1..=changes).to_string();
                env.cmd(&["revert", &pick]).output().unwrap();
            }
            if round == 1 {
                let runs = env.count("SELECT max(id) FROM crmgate_runs");
                env.cmd(&["revert", "--run", &runs.to_string()])
                    .output()
                    .unwrap();
            }
        }
        assert!(
            env.count("SELECT count(*) FROM crmgate_changes") > 0,
            "seed {seed}: the session changed things"
        );
        merged |= env.count("SELECT count(*) FROM crmgate_changes WHERE field = '*'") > 0;
        let session = crm_dump(&env);
        // Replay: the same starting CRM, then every apply and revert from the exported log.
        let fresh = Env::new();
        fresh.cmd(&["init", "--demo"]).assert().success();
        let export = stdout_of(&mut env.cmd(&["audit", "export", "--format", "jsonl"]));
        let conn = fresh.conn();
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for line in export.lines() {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            if matches!(e["action"].as_str(), Some("apply" | "revert")) {
                replay_event(&conn, &e);
            }
        }
        drop(conn);
        assert_eq!(
            crm_dump(&fresh),
            session,
            "seed {seed}: the log replays to the same CRM"
        );
    }
    assert!(
        merged,
        "some session applied a merge, so the replay covers merges too"
    );
}

#[test]
fn apply_on_a_locked_store_exits_75_and_changes_nothing() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    // Change 1 exists, so the revert below has something to do.
    env.cmd(&["apply", "--limit", "1"]).assert().success();
    let before = env.dump();
    let holder = env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for args in [
        vec!["apply"],
        vec!["--as", "alice", "approve", "apollo:ap-1"],
        vec!["revert", "1"],
    ] {
        env.cmd(&args)
            .assert()
            .code(75)
            .stderr(predicate::str::contains("locked"));
    }
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(env.dump(), before);
}

#[test]
fn reading_commands_work_while_another_process_holds_the_write_lock() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let holder = env.conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    for args in [
        vec!["status"],
        vec!["list"],
        vec!["show", "clearbit:cb-101"],
        vec!["log"],
        vec!["sources"],
        vec!["audit", "verify"],
        vec!["apply", "--dry-run"],
    ] {
        let out = env.cmd(&args).output().unwrap();
        let code = out.status.code();
        if args[0] == "apply" {
            // A dry run takes the write lock like a real run, and says so when it cannot.
            assert_eq!(code, Some(75), "{args:?}");
        } else {
            assert_eq!(
                code,
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_saved_plan_applies_exactly_what_was_seen_and_a_stale_plan_is_refused() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let plan = env.path("plan.json");
    env.cmd(&["apply", "--dry-run", "--plan-out", plan.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains("plan of 5 changes saved"));
    // Something approved after the plan was made is not in it.
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.cmd(&["apply", "--plan", plan.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes"),
        5,
        "exactly the plan"
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_proposals WHERE ext_id = 'ap-1' AND state = 'approved'"
        ),
        1,
        "not in the plan, not applied"
    );
    // A plan whose records moved on is refused whole, naming the proposals.
    let other = Env::new();
    other.cmd(&["init", "--demo"]).assert().success();
    let plan2 = other.path("plan.json");
    other
        .cmd(&["apply", "--dry-run", "--plan-out", plan2.to_str().unwrap()])
        .assert()
        .success();
    let f = other.write("moved.csv", "id,phone\nc-1001,+1 415 555 0177\n");
    other
        .cmd(&["import", "contacts", f.to_str().unwrap(), "--direct"])
        .assert()
        .success();
    let before = other.dump();
    other
        .cmd(&["apply", "--plan", plan2.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the plan was not applied"))
        .stderr(predicate::str::contains("contacts/c-1001"));
    assert_eq!(other.dump(), before);
}

#[test]
fn a_plan_whose_items_do_not_match_their_proposals_is_refused_whole_naming_the_first() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    let plan = env.path("plan.json");
    env.cmd(&["apply", "--dry-run", "--plan-out", plan.to_str().unwrap()])
        .assert()
        .success();
    let made: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let before = env.dump();
    // Each edit keeps proposal ids and values, and points one item elsewhere.
    let edits: [(&str, serde_json::Value); 2] = [
        ("record", serde_json::json!("companies/co-1001")),
        ("field", serde_json::json!("name")),
    ];
    for (key, to) in edits {
        let mut edited = made.clone();
        edited["items"][1][key] = to;
        let f = env.write("edited.json", serde_json::to_string(&edited).unwrap());
        let err = common::refused(env.cmd(&["apply", "--plan", &f]));
        assert!(
            err.contains("the plan was not applied: item 2 of the plan does not match proposal 2"),
            "{key}: {err}"
        );
        assert!(
            err.contains("hint:") && err.contains("crmgate apply --dry-run --plan-out FILE"),
            "{key}: {err}"
        );
        assert_eq!(
            env.dump(),
            before,
            "{key}: nothing applied, not even item 1"
        );
    }
    env.cmd(&["apply", "--plan", plan.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(env.count("SELECT count(*) FROM crmgate_changes"), 5);
}

/// A run of eight field writes approved by a human and applied; returns the CRM dump from
/// before the apply.
fn applied_run_of_field_writes(env: &Env) -> String {
    let mut rows = String::from(HEADER);
    for (i, id) in (1001..=1008).enumerate() {
        rows.push_str(&format!(
            "t{i},bot,update,contacts,c-{id},title,Title {i},,,,,\n"
        ));
    }
    let p = env.write("fields.csv", rows);
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    let mut approve = vec!["approve".to_string()];
    approve.extend((0..8).map(|i| format!("bot:t{i}")));
    let approve: Vec<&str> = approve.iter().map(String::as_str).collect();
    env.cmd(&approve).assert().success();
    let original = crm_dump(env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 8 applied"));
    original
}

#[test]
fn a_large_run_is_reverted_in_chunks_as_one_revert_run() {
    let env = Env::with_crm();
    let original = applied_run_of_field_writes(&env);
    // Eight changes, three per transaction.
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "3")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 2: 8 changes reverted"));
    assert_eq!(crm_dump(&env), original, "every record is back");
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 2 AND reverts IS NOT NULL"),
        8
    );
    assert_eq!(env.count("SELECT count(*) FROM crmgate_runs"), 2);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'reverted'"),
        8
    );
    // Each apply and revert event names the change it wrote, and that change's run.
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_events e JOIN crmgate_changes c ON c.id = e.change_id
             WHERE e.action IN ('apply', 'revert') AND e.run_id = c.run_id
               AND e.proposal_id IS c.proposal_id AND e.field = c.field"
        ),
        16
    );
    let reverted_by = env.count("SELECT max(id) FROM crmgate_changes WHERE run_id = 2");
    env.cmd(&["log", "--limit", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "run 2, change {reverted_by}"
        )));
    env.cmd(&["audit", "verify"]).assert().success();
}

/// Two sources propose `record`'s title, both approved: the first rewrites what it `holds`, so
/// the second still finds the record as it was proposed against, and one apply run writes the
/// field twice.
fn title_proposed_twice(env: &Env, record: &str, holds: &str, value: &str) {
    let p = env.write(
        "twice.csv",
        format!(
            "{HEADER}s1,bot,update,contacts,{record},title,{holds},,,,,\n\
             s2,crawler,update,contacts,{record},title,{value},,,,,\n"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["approve", "bot:s1", "crawler:s2"])
        .assert()
        .success();
}

#[test]
fn a_run_that_wrote_a_field_twice_is_still_reverted_in_chunks() {
    let env = Env::with_crm();
    title_proposed_twice(&env, "c-1001", "General Counsel", "Chief Legal Officer");
    let original = crm_dump(&env);
    env.cmd(&["apply"])
        .assert()
        .success()
        .stderr(predicate::str::contains("run 1: 2 applied"));
    assert_eq!(
        env.count(
            "SELECT count(*) FROM crmgate_changes WHERE run_id = 1 AND record = 'c-1001' AND field = 'title'"
        ),
        2
    );
    // The older change's `after` is not what the record holds, but the newer one's is: the
    // run can be undone, and so a chunk at a time.
    let revertible = |force| {
        crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing)
            .unwrap()
            .run_revertible_in_chunks(1, force)
            .unwrap()
    };
    assert!(revertible(false));
    env.conn()
        .execute(
            "UPDATE contacts SET title = 'Edited since' WHERE id = 'c-1001'",
            [],
        )
        .unwrap();
    assert!(!revertible(false), "the newest change no longer holds");
    assert!(revertible(true));
    env.conn()
        .execute(
            "UPDATE contacts SET title = 'Chief Legal Officer' WHERE id = 'c-1001'",
            [],
        )
        .unwrap();
    env.cmd(&["revert", "--run", "1"])
        .env("CRMGATE_APPLY_CHUNK", "1")
        .assert()
        .success()
        .stderr(predicate::str::contains("run 2: 2 changes reverted"));
    assert_eq!(crm_dump(&env), original);
    env.cmd(&["audit", "verify"]).assert().success();
}

#[test]
fn a_run_with_a_change_undone_and_put_back_or_holding_a_merge_is_not_reverted_in_chunks() {
    let revertible = |env: &Env, run| {
        crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing)
            .unwrap()
            .run_revertible_in_chunks(run, true)
            .unwrap()
    };
    let env = Env::with_crm();
    applied_run_of_field_writes(&env);
    assert!(revertible(&env, 1));
    // One change of the run undone alone: skipped at its turn, the rest still go in chunks.
    env.cmd(&["revert", "5"]).assert().success();
    assert!(revertible(&env, 1));
    // Undone and put back: the chain is followed at its turn, in one transaction.
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert!(!revertible(&env, 1));
    // A later run's change undone does not count against run 1's.
    let env = Env::with_crm();
    applied_run_of_field_writes(&env);
    let p = env.write(
        "later.csv",
        format!(
            "{HEADER}t9,bot,update,contacts,c-1009,title,Later,,,,,
"
        ),
    );
    env.cmd(&["propose", p.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["approve", "bot:t9"]).assert().success();
    env.cmd(&["apply"]).assert().success();
    env.cmd(&["revert", "--run", "2"]).assert().success();
    assert!(revertible(&env, 1));
    // A merge deletes a whole record, which only a revert in one transaction restores.
    let env = Env::with_crm();
    let c = env.write(
        "more.csv",
        "id,first_name,last_name,email\n\
         m-1,Ada,Byron,ada@example.com\n\
         m-2,Ada,Byron,ada@example.com\n",
    );
    env.cmd(&["import", "contacts", c.to_str().unwrap()])
        .assert()
        .success();
    let merge = env.write(
        "merge.csv",
        format!("{HEADER}mg-1,dedupe-bot,merge,contacts,m-1,,,m-2,0.99,,,\n"),
    );
    env.cmd(&["propose", merge.to_str().unwrap()])
        .assert()
        .success();
    env.cmd(&["--as", "alice", "approve", "dedupe-bot:mg-1"])
        .assert()
        .success();
    env.cmd(&["apply"]).assert().success();
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 2 AND field = '*'"),
        1
    );
    assert!(!revertible(&env, 2));
}

#[test]
fn a_large_run_with_a_record_moved_on_is_refused_whole_as_before() {
    // The oldest change, reverted last (in the last chunk), or the newest, which the first
    // chunk meets itself while the check of the whole run is still under way.
    for record in ["c-1001", "c-1008"] {
        let env = Env::with_crm();
        applied_run_of_field_writes(&env);
        env.conn()
            .execute(
                "UPDATE contacts SET title = 'Edited since' WHERE id = ?1",
                [record],
            )
            .unwrap();
        let before = env.dump();
        env.cmd(&["revert", "--run", "1"])
            .env("CRMGATE_APPLY_CHUNK", "3")
            .assert()
            .code(1)
            .stderr(predicate::str::contains("nothing was reverted"))
            .stderr(predicate::str::contains(format!(
                "{record} title is now \"Edited since\""
            )));
        assert_eq!(
            env.dump(),
            before,
            "nothing changed, not even a first chunk"
        );
    }
}

#[test]
fn a_pause_of_the_store_or_of_the_import_source_refuses_an_import_naming_resume() {
    let env = Env::demo();
    // A new record and a differing field: an import would create the one and propose the other.
    let f = env.write(
        "more.csv",
        "id,first_name,last_name,email,phone\nc-9001,Nia,Obi,nia@example.com,\nc-1001,,,,+1 415 555 0100\n",
    );
    env.cmd(&["pause", "--reason", "CRM migration tonight"])
        .assert()
        .success();
    let before = env.dump();
    for direct in [false, true] {
        let mut args = vec!["import", "contacts", &f];
        if direct {
            args.push("--direct");
        }
        let err = common::refused(env.cmd(&args));
        assert!(
            err.contains("nothing was imported: the store is paused (CRM migration tonight"),
            "{err}"
        );
        assert!(
            err.contains("hint:") && err.contains("`crmgate resume`"),
            "{err}"
        );
        assert_eq!(env.dump(), before, "--direct {direct}");
    }
    env.cmd(&["resume"]).assert().success();
    env.cmd(&["pause", "--source", "import", "--reason", "bad feed"])
        .assert()
        .success();
    let before = env.dump();
    let err = common::refused(env.cmd(&["import", "contacts", &f]));
    assert!(err.contains("source import is paused (bad feed"), "{err}");
    assert!(err.contains("`crmgate resume --source import`"), "{err}");
    assert_eq!(env.dump(), before);
    // Under another source's name the import goes through.
    env.cmd(&["import", "contacts", &f, "--source", "crm-sync"])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT count(*) FROM contacts WHERE id = 'c-9001'"),
        1
    );
}

#[test]
fn a_revert_still_runs_while_the_store_is_paused_as_pause_help_says() {
    let env = Env::demo();
    let original = crm_dump(&env);
    env.cmd(&["apply"]).assert().success();
    env.cmd(&["pause", "--reason", "incident"])
        .assert()
        .success();
    env.cmd(&["revert", "--run", "1"]).assert().success();
    assert_eq!(crm_dump(&env), original);
    // What a pause stops, and that revert is not among it, is what `pause --help` says.
    let (help, _) = common::ok(env.cmd(&["pause", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("stops `apply`"), "{help}");
    assert!(help.contains("`import`"), "{help}");
    assert!(help.contains("`revert` is not stopped"), "{help}");
}

#[test]
fn revert_json_lists_every_change_of_a_run_larger_than_a_report_keeps() {
    let env = long_queue();
    env.cmd(&["apply"]).assert().success();
    let reverted = json_of(
        env.cmd(&["revert", "--run", "1", "--json"])
            .env("CRMGATE_APPLY_CHUNK", "500"),
    );
    let items = reverted["items"].as_array().unwrap();
    assert_eq!(items.len(), 1600, "every change, not the first 1,000");
    assert!(
        items.iter().all(|i| i["result"] == "undone"),
        "{}",
        items[0]
    );
    let mut changes: Vec<i64> = items
        .iter()
        .map(|i| i["change"].as_i64().unwrap())
        .collect();
    changes.sort_unstable();
    changes.dedup();
    assert_eq!(changes.len(), 1600);
    assert_eq!(reverted["run"], 2);
    assert_eq!(reverted["reverted"], 1600);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 2 AND reverts IS NOT NULL"),
        1600
    );
    // Again: nothing left to undo, and every change is listed with the change that undid it.
    let again = json_of(&mut env.cmd(&["revert", "--run", "1", "--json"]));
    let items = again["items"].as_array().unwrap();
    assert_eq!(items.len(), 1600);
    assert!(
        items
            .iter()
            .all(|i| i["result"] == "skipped" && i["by"].is_i64())
    );
    assert_eq!(
        (again["run"].is_null(), again["skipped"].as_i64()),
        (true, Some(1600))
    );
    // Without --json the first changes are listed and the note says how to see every one.
    env.cmd(&["apply"]).assert().success();
    env.cmd(&["revert", "--run", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("undone by change").count(200))
        .stderr(predicate::str::contains(
            "with `--json` a revert lists every one",
        ));
}

#[test]
fn propose_apply_json_lists_every_item_applied_then_the_ingest() {
    let env = long_queue_unproposed();
    let out = json_of(
        env.cmd(&["propose", "--apply", "--json", "proposals.csv"])
            .env("CRMGATE_APPLY_CHUNK", "500"),
    );
    let items = out["apply"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1600, "every item, not the first 1,000");
    assert!(
        items.iter().all(|i| i["result"] == "applied"),
        "{}",
        items[0]
    );
    assert_eq!(out["apply"]["counts"]["applied"], 1600);
    assert_eq!(out["apply"]["run"], 1);
    assert_eq!(out["ingest"]["ingested"], 1600);
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_changes WHERE run_id = 1"),
        1600
    );
}
