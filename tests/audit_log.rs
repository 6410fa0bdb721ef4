//! The audit log: events, their hash chain, export and verification.

mod common;

use predicates::prelude::*;

use common::{Env, json_of, stdout_of};

/// A store whose log has a few dozen events, and a checkpoint taken of it.
fn audited() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.cmd(&[
        "--as",
        "alice",
        "reject",
        "hubspot-ai:hs-401",
        "--reason",
        "no",
    ])
    .assert()
    .success();
    env.cmd(&[
        "--as",
        "alice",
        "pause",
        "--source",
        "sdr-agent",
        "--reason",
        "check",
    ])
    .assert()
    .success();
    let cp = env.path("head.json");
    let out = env.cmd(&["audit", "checkpoint"]).output().unwrap();
    std::fs::write(&cp, out.stdout).unwrap();
    env.cmd(&["audit", "verify", "--checkpoint", cp.to_str().unwrap()])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "the chain is unbroken and reaches the checkpoint",
        ));
    // Tampering needs the append-only triggers gone first.
    env.conn()
        .execute_batch(
            "DROP TRIGGER crmgate_events_append_only_update; DROP TRIGGER crmgate_events_append_only_delete;",
        )
        .unwrap();
    (env, cp)
}

#[test]
fn the_audit_log_refuses_updates_and_deletes() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let conn = env.conn();
    for sql in [
        "UPDATE crmgate_events SET actor = 'x'",
        "DELETE FROM crmgate_events",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn audit_verify_names_the_first_tampered_event() {
    // (tampering SQL, the event named, words in the message)
    let cases: &[(&str, i64, &str)] = &[
        ("UPDATE crmgate_events SET actor = 'mallory' WHERE seq = 4", 4, "altered"),
        ("UPDATE crmgate_events SET detail = '{}' WHERE seq = 6", 6, "altered"),
        ("DELETE FROM crmgate_events WHERE seq = 5", 6, "events 5..5 are missing"),
        (
            "UPDATE crmgate_events SET seq = -seq WHERE seq IN (4, 5);
             UPDATE crmgate_events SET seq = 5 WHERE seq = -4;
             UPDATE crmgate_events SET seq = 4 WHERE seq = -5;",
            4,
            "altered",
        ),
        (
            "INSERT INTO crmgate_events (seq, at, actor, actor_kind, action, prev_hash, hash)
             SELECT max(seq) + 1, '2026-01-01T00:00:00.000Z', 'mallory', 'human', 'approve', '00', '00' FROM crmgate_events",
            -1,
            "altered",
        ),
    ];
    for (sql, seq, words) in cases {
        let (env, _) = audited();
        let last = env.count("SELECT max(seq) FROM crmgate_events");
        env.conn().execute_batch(sql).unwrap();
        let named = if *seq < 0 { last + 1 } else { *seq };
        env.cmd(&["audit", "verify"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "broken at event {named}:"
            )))
            .stderr(predicate::str::contains(*words));
    }
}

#[test]
fn a_forged_event_with_a_correct_hash_still_breaks_the_chain() {
    let (env, _) = audited();
    // A forger who recomputes the event's own hash but cannot know to re-link what follows:
    // rewrite event 3 consistently, and event 4 no longer follows it.
    let conn = env.conn();
    let e: crmgate::audit::EventRow = {
        let mut out = Vec::new();
        let store =
            crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing).unwrap();
        store
            .for_each_event(None, |e| {
                if e.seq == 3 {
                    out.push(e.clone());
                }
                Ok(())
            })
            .unwrap();
        out.pop().unwrap()
    };
    let mut forged = e.clone();
    forged.actor = "mallory".into();
    forged.hash = forged.compute_hash();
    conn.execute(
        "UPDATE crmgate_events SET actor = ?1, hash = ?2 WHERE seq = 3",
        rusqlite::params![forged.actor, forged.hash],
    )
    .unwrap();
    env.cmd(&["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "broken at event 4: it does not follow the event before it",
        ));
}

#[test]
fn a_checkpoint_catches_a_tail_cut_off() {
    let (env, cp) = audited();
    // The last event (a pause) cut, with the store's own record of the head moved back too:
    // the pause it made still stands, and no event leaves it paused.
    env.conn()
        .execute_batch(
            "DELETE FROM crmgate_events WHERE seq = (SELECT max(seq) FROM crmgate_events);
             UPDATE crmgate_chain_head SET (seq, hash) =
                 (SELECT seq, hash FROM crmgate_events ORDER BY seq DESC LIMIT 1);",
        )
        .unwrap();
    env.cmd(&["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the pause of source sdr-agent does not match it: no pause event leaves it paused",
        ));
    // The pause removed as well, so that the store agrees with the shortened log: only the
    // checkpoint knows.
    env.conn()
        .execute_batch("DELETE FROM crmgate_pauses WHERE scope = 'sdr-agent'")
        .unwrap();
    env.cmd(&["audit", "verify"]).assert().success();
    env.cmd(&["audit", "verify", "--checkpoint", cp.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the tail was cut off"));
}

#[test]
fn the_csv_export_reads_back_exactly_and_is_safe_in_a_spreadsheet() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    for who in [
        "=HYPERLINK(\"http://x\")",
        "+cmd",
        "-2+3",
        "@SUM(A1)",
        "'quoted",
    ] {
        // `--as=VALUE`: a value that starts with '-' would read as a flag.
        let actor = format!("--as={who}");
        env.cmd(&[&actor, "pause", "--reason=\tleading tab"])
            .assert()
            .success();
        env.cmd(&[&actor, "resume"]).assert().success();
    }
    let csv_text = stdout_of(&mut env.cmd(&["audit", "export", "--format", "csv"]));
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let header = rdr.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len() as i64,
        env.count("SELECT count(*) FROM crmgate_events")
    );
    let conn = env.conn();
    for row in &rows {
        let seq: i64 = row[0].parse().unwrap();
        for (i, name) in header.iter().enumerate() {
            let cell = &row[i];
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "seq {seq} {name}: a spreadsheet would run {cell:?}"
            );
            // The evidence column is the one the event's detail keeps.
            let column = match name {
                "evidence" => "json_extract(detail, '$.evidence')".to_string(),
                other => format!("CAST({other} AS TEXT)"),
            };
            let stored: Option<String> = conn
                .query_row(
                    &format!("SELECT {column} FROM crmgate_events WHERE seq = ?1"),
                    [seq],
                    |r| r.get(0),
                )
                .unwrap();
            let back = crmgate::ui::formula_unescape(cell);
            let stored = stored.unwrap_or_default();
            if name == "confidence" && !stored.is_empty() {
                assert_eq!(back.parse::<f64>().unwrap(), stored.parse::<f64>().unwrap());
            } else {
                assert_eq!(back, stored, "seq {seq} {name}");
            }
        }
    }
    let jsonl = stdout_of(&mut env.cmd(&["audit", "export", "--since", "2099-01-01"]));
    assert!(jsonl.is_empty(), "nothing after --since");
}

#[test]
fn log_shows_what_happened_newest_first_with_filters() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    env.cmd(&["--as", "alice", "approve", "apollo:ap-1"])
        .assert()
        .success();
    env.cmd(&[
        "--as",
        "mia",
        "reject",
        "hubspot-ai:hs-401",
        "--reason",
        "not yet",
    ])
    .assert()
    .success();
    let all = json_of(&mut env.cmd(&["log", "--json", "--limit", "0"]));
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs.len() as i64,
        env.count("SELECT count(*) FROM crmgate_events")
    );
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
    let by_mia = json_of(&mut env.cmd(&["log", "--json", "--actor", "mia"]));
    assert_eq!(by_mia.as_array().unwrap().len(), 1);
    assert_eq!(by_mia[0]["action"], "reject");
    let record: String = env
        .conn()
        .query_row(
            "SELECT record FROM crmgate_proposals WHERE ext_id = 'ap-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let on_record =
        json_of(&mut env.cmd(&["log", "--json", "--record", &format!("contacts/{record}")]));
    assert!(
        on_record
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["record"] == record.as_str())
    );
    assert_eq!(on_record[0]["action"], "approve");
    let from_source = json_of(&mut env.cmd(&["log", "--json", "--source", "hubspot-ai"]));
    assert!(
        from_source
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source"] == "hubspot-ai")
    );
    let later = json_of(&mut env.cmd(&["log", "--json", "--since", "2099-01-01"]));
    assert!(later.as_array().unwrap().is_empty());
    assert_eq!(
        json_of(&mut env.cmd(&["log", "--json", "--limit", "2"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    env.cmd(&["log", "--record", "c-1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("OBJECT/ID"));
}
