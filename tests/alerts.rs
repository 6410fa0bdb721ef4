//! Alerts: the policy's `[alerts]` command hears of a tripped breaker, a pause, an apply's
//! conflicts and a queue that waited too long, once each committed; a command that fails or
//! hangs costs crmgate nothing but an `alert_failed` event. And `audit export --redact`.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A script that appends each alert (one JSON object on stdin) as a line of `alerts.jsonl`.
fn recorder(env: &Env) -> String {
    let out = env.path("alerts.jsonl");
    let script = env.write(
        "record.sh",
        format!("cat >> '{}'\necho >> '{}'\n", out.display(), out.display()),
    );
    format!("/bin/sh {}", script.display())
}

/// The demo policy with `[alerts] command = COMMAND` and a breaker `window`/`rate`, in force.
fn alerting(env: &Env, command: &str, window: u32, rate: f64) {
    let text = demo_policy()
        .replace("window = 50", &format!("window = {window}"))
        .replace(
            "max_reject_rate = 0.30",
            &format!("max_reject_rate = {rate}"),
        )
        .replace(
            "[[rule]]\nname = \"fill-empty-fields\"",
            &format!("[alerts]\ncommand = \"{command}\"\n\n[[rule]]\nname = \"fill-empty-fields\""),
        );
    let file = env.policy("alerting.toml", &text);
    env.cmd(&["policy", "set", &file]).assert().success();
}

/// Every alert the recorder received, in order.
fn received(env: &Env) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.path("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("an alert is one JSON object"))
        .collect()
}

fn of_kind(env: &Env, kind: &str) -> Vec<serde_json::Value> {
    received(env)
        .into_iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

/// `n` pending title proposals from `badbot` on contacts no stop or review rule touches.
fn badbot_rows(env: &Env, n: usize) {
    let ids: Vec<String> = env.column(&format!(
                "SELECT id FROM contacts WHERE sensitive = 0 AND legal_hold = 0 AND coalesce(company_id, '')
                 NOT IN (SELECT id FROM companies WHERE legal_hold = 1 OR tier = 'enterprise') ORDER BY id LIMIT {n}"
            ));
    let rows: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("b-{i},badbot,update,contacts,{id},title,Wizard {i},,0.9,,,\n"))
        .collect();
    env.propose_rows("bad.csv", &rows);
}

fn alert_failed_events(env: &Env) -> Vec<serde_json::Value> {
    let conn = env.conn();
    let mut stmt = conn
        .prepare("SELECT detail FROM crmgate_events WHERE action = 'alert_failed' ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| serde_json::from_str(&d.unwrap()).unwrap())
        .collect()
}

#[test]
fn the_alert_command_hears_of_a_source_the_breaker_paused_once_the_pause_committed() {
    let env = Env::demo();
    alerting(&env, &recorder(&env), 3, 0.5);
    badbot_rows(&env, 3);
    env.cmd(&["reject", "badbot:b-0", "--reason", "nonsense"])
        .assert()
        .success();
    assert!(
        of_kind(&env, "circuit_breaker").is_empty(),
        "1 of 3 is within 50%"
    );
    env.cmd(&["reject", "badbot:b-1", "--reason", "nonsense"])
        .assert()
        .success();
    let trips = of_kind(&env, "circuit_breaker");
    assert_eq!(trips.len(), 1, "{trips:?}");
    let a = &trips[0];
    assert_eq!(a["source"], "badbot");
    assert_eq!(a["at"], "2026-01-02T03:04:05.000Z");
    assert!(
        a["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("2 of the last 2 human decisions"),
        "{a}"
    );
    for key in ["object", "record", "proposal"] {
        assert!(a.get(key).is_some(), "{key} is in every alert: {a}");
    }
    // The pause it reports is in the store.
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_pauses WHERE scope = 'badbot'"),
        1
    );
    assert!(alert_failed_events(&env).is_empty());
}

#[test]
fn an_apply_with_a_conflict_sends_one_conflict_alert_with_the_count() {
    let env = Env::demo();
    alerting(&env, &recorder(&env), 50, 0.3);
    badbot_rows(&env, 2);
    env.cmd(&["approve", "badbot:b-0", "badbot:b-1"])
        .assert()
        .success();
    let record: String =
        env.one("SELECT record FROM crmgate_proposals WHERE source = 'badbot' AND ext_id = 'b-0'");
    env.conn()
        .execute(
            "UPDATE contacts SET title = 'Moved on' WHERE id = ?1",
            [&record],
        )
        .unwrap();
    env.cmd(&["apply", "--source", "badbot"]).assert().code(3);
    let conflicts = of_kind(&env, "conflict");
    assert_eq!(conflicts.len(), 1, "one per run: {:?}", received(&env));
    let a = &conflicts[0];
    assert_eq!(a["detail"]["count"], 1, "{a}");
    assert_eq!(a["detail"]["at"], "apply");
    assert_eq!(a["source"], "badbot");
    let id: i64 =
        env.one("SELECT id FROM crmgate_proposals WHERE source = 'badbot' AND ext_id = 'b-0'");
    assert_eq!(a["detail"]["proposals"], serde_json::json!([id]));
    assert!(of_kind(&env, "failed").is_empty());
    assert_eq!(env.state("badbot:b-0"), "conflict");
    assert_eq!(env.state("badbot:b-1"), "applied");
}

#[test]
fn a_hanging_alert_command_is_killed_at_the_timeout_and_leaves_an_alert_failed_event() {
    let env = Env::demo();
    let script = env.write("hang.sh", "sleep 60\n");
    alerting(&env, &format!("/bin/sh {}", script.display()), 50, 0.3);
    let started = Instant::now();
    env.cmd(&["pause", "--source", "badbot", "--reason", "checking"])
        .assert()
        .success();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(10), "{took:?}");
    assert!(
        took < Duration::from_secs(20),
        "held past its timeout: {took:?}"
    );
    // The pause is kept, and the failure is an event that says what happened.
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_pauses WHERE scope = 'badbot'"),
        1
    );
    let failed = alert_failed_events(&env);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["kind"], "pause");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("still running after 10 s"),
        "{}",
        failed[0]
    );
    assert_eq!(failed[0]["alert"]["source"], "badbot");
}

#[test]
fn a_failing_alert_command_leaves_an_alert_failed_event_and_the_command_succeeds() {
    let env = Env::demo();
    let script = env.write(
        "fail.sh",
        "cat > /dev/null\necho 'pager is down' >&2\nexit 4\n",
    );
    alerting(&env, &format!("/bin/sh {}", script.display()), 50, 0.3);
    env.cmd(&["pause", "--reason", "migration"])
        .assert()
        .success();
    env.cmd(&["resume"]).assert().success();
    let failed = alert_failed_events(&env);
    let kinds: Vec<&str> = failed.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["pause", "resume"]);
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("exit status: 4") && error.contains("pager is down"),
        "{error}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM crmgate_pauses"),
        0,
        "the pause and the resume both committed"
    );
    // A command that is no program at all fails the same way.
    alerting(&env, "/no/such/notifier --team crm", 50, 0.3);
    env.cmd(&["pause", "--reason", "again"]).assert().success();
    let failed = alert_failed_events(&env);
    assert!(
        failed[2]["error"]
            .as_str()
            .unwrap()
            .contains("could not be started"),
        "{}",
        failed[2]
    );
}

#[test]
fn status_max_age_exits_3_and_alerts_when_an_undecided_proposal_is_older() {
    let env = Env::demo();
    alerting(&env, &recorder(&env), 50, 0.3);
    // The demo's pending proposals were proposed at NOW; a day and a half later:
    let later = "2026-01-03T15:04:05Z";
    env.cmd(&["status", "--max-age", "48h"])
        .env("CRMGATE_NOW", later)
        .assert()
        .success();
    assert!(of_kind(&env, "queue_age").is_empty());
    let out = env
        .cmd(&["status", "--max-age", "24h"])
        .env("CRMGATE_NOW", later)
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("OVERDUE:"), "{out}");
    let aged = of_kind(&env, "queue_age");
    assert_eq!(aged.len(), 1);
    let a = &aged[0];
    let undecided =
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state IN ('pending', 'suggested')");
    assert!(undecided > 0);
    assert_eq!(a["detail"]["count"], undecided, "{a}");
    let oldest: i64 =
        env.one("SELECT min(id) FROM crmgate_proposals WHERE state IN ('pending', 'suggested')");
    assert_eq!(a["proposal"], oldest, "{a}");
    assert!(a["record"].is_string() && a["source"].is_string(), "{a}");
    // A duration that is none is refused, naming the form.
    let e = refused(env.cmd(&["status", "--max-age", "soon"]));
    assert!(e.contains("24h"), "{e}");
}

#[test]
fn alerts_test_sends_a_sample_alert_and_says_when_it_cannot() {
    let env = Env::demo();
    let e = refused(env.cmd(&["alerts", "test"]));
    assert!(
        e.contains("no [alerts] command") && e.contains("hint:"),
        "{e}"
    );
    alerting(&env, &recorder(&env), 50, 0.3);
    env.cmd(&["alerts", "test"]).assert().success();
    let sent = received(&env);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["kind"], "test");
    assert_eq!(sent[0]["detail"]["by"], "alice");
    alerting(&env, "/bin/false", 50, 0.3);
    let e = refused(env.cmd(&["alerts", "test"]));
    assert!(e.contains("the alert command failed"), "{e}");
    assert_eq!(alert_failed_events(&env).len(), 1);
}

#[test]
fn the_alerts_section_refuses_unknown_keys_and_an_empty_command_by_line() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let file = env.write("bad.toml", "[alerts]\ncommand = \"notify\"\ntimeout = 5\n");
    let e = refused(env.cmd(&["policy", "check", &file]));
    assert!(
        e.contains("bad.toml:3:") && e.contains("unknown field `timeout`"),
        "{e}"
    );
    let file = env.write("empty.toml", "[alerts]\ncommand = \"  \"\n");
    let e = refused(env.cmd(&["policy", "check", &file]));
    assert!(e.contains("empty.toml:2:") && e.contains("empty"), "{e}");
    let file = env.write("quote.toml", "[alerts]\ncommand = \"notify 'unclosed\"\n");
    let e = refused(env.cmd(&["policy", "check", &file]));
    assert!(
        e.contains("quote.toml:2:") && e.contains("cannot be split"),
        "{e}"
    );
}

/// A value's SHA-256, hex.
fn sha256(s: &str) -> String {
    crmgate::audit::sha256_hex(s.as_bytes())
}

#[test]
fn audit_export_redact_email_replaces_email_values_with_their_sha256_and_leaves_other_fields() {
    let env = Env::demo();
    let before: String = env.one("SELECT email FROM contacts WHERE id = 'c-1002'");
    env.propose_rows(
        "email.csv",
        "e-1,badbot,update,contacts,c-1002,email,new.person@example.com,,0.9,,,\n\
         t-1,badbot,update,contacts,c-1002,title,Head of Data,,0.9,,,\n",
    );
    env.cmd(&["approve", "badbot:e-1", "badbot:t-1"])
        .assert()
        .success();
    env.cmd(&["apply", "--source", "badbot"]).assert().success();
    let plain = ok(env.cmd(&["audit", "export"])).0;
    assert!(plain.contains("new.person@example.com"));
    let (out, _) = ok(env.cmd(&["audit", "export", "--redact", "email"]));
    assert!(!out.contains("new.person@example.com"), "{out}");
    assert!(!out.contains(&before), "{out}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let email: Vec<&serde_json::Value> = events.iter().filter(|e| e["field"] == "email").collect();
    assert!(email.len() >= 2, "the approval and the apply");
    for e in &email {
        let new: serde_json::Value =
            serde_json::from_str(e["new_value"].as_str().unwrap()).unwrap();
        assert_eq!(new, sha256("new.person@example.com"), "{e}");
        let prev: serde_json::Value =
            serde_json::from_str(e["prev_value"].as_str().unwrap()).unwrap();
        assert_eq!(prev, sha256(&before), "{e}");
    }
    let title = events
        .iter()
        .find(|e| e["field"] == "title" && e["action"] == "apply")
        .unwrap();
    assert_eq!(title["new_value"], "\"Head of Data\"");
    // CSV too; and a field no object has is refused rather than leaving the data in.
    let (csv, _) = ok(env.cmd(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--redact",
        "email,phone",
    ]));
    assert!(!csv.contains("new.person@example.com") && csv.contains("Head of Data"));
    let e = refused(env.cmd(&["audit", "export", "--redact", "emial"]));
    assert!(e.contains("did you mean") || e.contains("email"), "{e}");
}

#[test]
fn an_ingest_a_stop_rule_blocks_proposals_of_sends_one_blocked_alert_with_the_count() {
    let env = Env::demo();
    alerting(&env, &recorder(&env), 50, 0.3);
    let held: Vec<String> =
        env.column("SELECT id FROM contacts WHERE legal_hold = 1 ORDER BY id LIMIT 2");
    assert_eq!(held.len(), 2);
    env.propose_rows(
        "held.csv",
        &format!(
            "h-1,badbot,update,contacts,{},title,CEO,,0.9,,,\n\
             h-2,badbot,update,contacts,{},title,CFO,,0.9,,,\n",
            held[0], held[1]
        ),
    );
    assert_eq!(env.state("badbot:h-1"), "blocked");
    let blocked = of_kind(&env, "blocked");
    assert_eq!(blocked.len(), 1, "one per ingest: {blocked:?}");
    assert_eq!(blocked[0]["detail"]["count"], 2);
    assert_eq!(blocked[0]["detail"]["at"], "ingest");
    // An ingest that blocks nothing alerts nothing.
    badbot_rows(&env, 1);
    assert_eq!(of_kind(&env, "blocked").len(), 1);
}

#[test]
fn a_revert_that_trips_the_breaker_sends_a_circuit_breaker_alert() {
    let env = Env::demo();
    alerting(&env, &recorder(&env), 3, 0.5);
    env.cmd(&["apply"]).assert().success();
    let changes: Vec<i64> = env.column(
        "SELECT c.id FROM crmgate_changes c JOIN crmgate_proposals p ON p.id = c.proposal_id
                 WHERE p.source = 'clearbit' ORDER BY c.id LIMIT 2",
    );
    for c in &changes {
        env.cmd(&["revert", &c.to_string()]).assert().success();
    }
    let trips = of_kind(&env, "circuit_breaker");
    assert_eq!(trips.len(), 1, "{:?}", received(&env));
    assert_eq!(trips[0]["source"], "clearbit");
}

#[test]
fn max_age_takes_hours_minutes_and_days_and_refuses_what_is_no_length_of_time() {
    use crmgate::queue::max_age;
    let secs = |s: &str| max_age(s).unwrap().as_secs();
    assert_eq!(secs("24h"), 86_400);
    assert_eq!(secs("90m"), 5_400);
    assert_eq!(secs("2d"), 172_800);
    assert_eq!(secs("1h 30m"), 5_400);
    assert_eq!(secs("PT24H"), 86_400);
    for bad in ["", "soon", "0h", "-1h", "1 month"] {
        assert!(max_age(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_requeue_or_a_policy_that_blocks_proposals_sends_one_blocked_alert_with_the_count() {
    let env = Env::demo();
    alerting(&env, &recorder(&env), 50, 0.3);
    // A fill approved against a phone the record does not hold: a conflict at apply.
    let c = contact_where(
        &env,
        "phone IS NULL AND sensitive = 0 AND legal_hold = 0
         AND id NOT IN (SELECT record FROM crmgate_proposals)",
    );
    env.propose_rows(
        "stale.csv",
        &format!("s-1,clearbit,update,contacts,{c},phone,+1 415 555 0103,,0.95,+1 000,,\n"),
    );
    env.cmd(&["apply"]).assert().code(3);
    assert_eq!(env.state("clearbit:s-1"), "conflict");
    // The record goes on legal hold; the retry is blocked, and the alert says so.
    env.conn()
        .execute("UPDATE contacts SET legal_hold = 1 WHERE id = ?1", [&c])
        .unwrap();
    env.cmd(&["requeue", "--state", "conflict", "--yes"])
        .assert()
        .success();
    let blocked = of_kind(&env, "blocked");
    let requeued: Vec<_> = blocked
        .iter()
        .filter(|a| a["detail"]["at"] == "requeue")
        .collect();
    assert_eq!(requeued.len(), 1, "{blocked:?}");
    assert_eq!(requeued[0]["detail"]["count"], 1);
    let new: i64 = env.one("SELECT max(id) FROM crmgate_proposals");
    assert_eq!(requeued[0]["detail"]["proposals"], serde_json::json!([new]));
    // A policy that blocks what was pending: one alert, with how many.
    let pending = env.count(
        "SELECT count(*) FROM crmgate_proposals WHERE state = 'pending' AND object = 'contacts'",
    );
    assert!(pending > 0);
    let text = std::fs::read_to_string(env.path("alerting.toml")).unwrap().replacen(
        "[[rule]]",
        "[[rule]]\nname = \"freeze-contacts\"\nobject = [\"contacts\"]\naction = \"block\"\n\n[[rule]]",
        1,
    );
    let frozen = env.write("frozen.toml", text);
    env.cmd(&["policy", "set", &frozen]).assert().success();
    let by_policy: Vec<_> = of_kind(&env, "blocked")
        .into_iter()
        .filter(|a| a["detail"]["at"] == "policy")
        .collect();
    assert_eq!(by_policy.len(), 1, "{by_policy:?}");
    assert!(by_policy[0]["detail"]["count"].as_i64().unwrap() >= pending);
}
