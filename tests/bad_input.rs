//! Every bad-input class: each is refused with its `FILE:LINE` and leaves the store as it was.

mod common;

use predicates::prelude::*;

use common::{Env, HEADER, contact_where, fixture, json_of};

/// One fixture per class of bad input (fixtures/bad/README.md): the file, the line of its one bad
/// row, and what the message must say.
const BAD_INPUTS: &[(&str, u64, &str)] = &[
    ("unknown-object.csv", 3, "unknown object \"nope\""),
    (
        "unknown-field.csv",
        4,
        "field \"emial\" does not exist on contacts (did you mean \"email\"?)",
    ),
    ("missing-column.csv", 1, "missing required column \"kind\""),
    ("bad-kind.csv", 4, "bad kind \"upsert\""),
    (
        "bad-email.csv",
        3,
        "\"not-an-email\" is not a valid email address",
    ),
    (
        "bad-lifecycle.csv",
        5,
        "\"hot-lead\" is not a lifecycle stage",
    ),
    (
        "bad-integer.csv",
        2,
        "employees: \"lots\" is not a whole number",
    ),
    (
        "missing-record.csv",
        4,
        "record contacts/c-99999999 does not exist",
    ),
    ("bad-confidence.csv", 3, "confidence 1.5 is outside 0..1"),
    ("update-without-field.csv", 4, "update needs a \"field\""),
    ("merge-without-into.csv", 3, "a merge needs \"merge_into\""),
    ("unterminated-quote.csv", 5, "malformed CSV"),
    (
        "wrong-field-count.csv",
        3,
        "this row has 13 fields, the header has 12",
    ),
    ("bad-utf8.csv", 4, "\"value\" is not valid UTF-8"),
    ("malformed.json", 4, "malformed JSON"),
    ("duplicate-key.json", 3, "duplicate key \"value\""),
    (
        "nested-value.json",
        4,
        "\"value\" must be a single value, not an object or array",
    ),
    ("malformed.jsonl", 3, "malformed JSON"),
];

#[test]
fn every_bad_input_class_is_refused_with_file_and_line_and_changes_nothing() {
    let env = Env::with_crm();
    // Something already queued, so "unchanged" covers the queue too, not just empty tables.
    env.cmd(&["propose", &fixture("proposals/clearbit.csv")])
        .assert()
        .success();
    let before = env.dump();
    for (file, line, message) in BAD_INPUTS {
        let path = fixture(&format!("bad/{file}"));
        let out = env.cmd(&["propose", &path]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: exit code; stderr:\n{stderr}"
        );
        let expected = format!("{path}:{line}: ");
        let hit = stderr
            .lines()
            .find(|l| l.contains(&expected))
            .unwrap_or_else(|| panic!("{file}: no `{expected}` line in:\n{stderr}"));
        assert!(
            hit.contains(message),
            "{file}: expected `{message}` in `{hit}`"
        );
        assert_eq!(env.dump(), before, "{file}: the store changed");
    }
}

#[test]
fn skip_invalid_keeps_the_good_rows_of_each_bad_file() {
    // Files whose bad row is one row (not the header or the file's syntax) can be half-used.
    let skippable = [
        "unknown-object.csv",
        "unknown-field.csv",
        "bad-kind.csv",
        "bad-email.csv",
        "bad-integer.csv",
        "missing-record.csv",
        "bad-confidence.csv",
        "wrong-field-count.csv",
        "bad-utf8.csv",
        "duplicate-key.json",
        "nested-value.json",
        "malformed.jsonl",
    ];
    for file in skippable {
        let env = Env::with_crm();
        let path = fixture(&format!("bad/{file}"));
        let rows = env.propose_skipping(&path);
        let line = BAD_INPUTS.iter().find(|b| b.0 == file).unwrap().1;
        assert_eq!(rows.len(), 1, "{file}: one reject");
        assert_eq!(
            rows[0][1].parse::<u64>().unwrap(),
            line,
            "{file}: reject line"
        );
        assert!(
            env.count("SELECT count(*) FROM crmgate_proposals") >= 1,
            "{file}: good rows in"
        );
    }
}

#[test]
fn a_value_cannot_forge_a_problem_line() {
    let env = Env::with_crm();
    let f = env.write(
        "forge.jsonl",
        "{\"id\": \"f-1\", \"source\": \"s\", \"kind\": \"update\", \"object\": \"contacts\", \"record\": \"c-1001\", \"field\": \"email\", \"value\": \"x\\nother.csv:1: looks fine\\u001b[0m\"}\n",
    );
    let out = env.cmd(&["propose", f.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.lines().any(|l| l.starts_with("other.csv")),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(
        stderr.contains("x\\u{a}other.csv:1: looks fine"),
        "{stderr}"
    );
}

#[test]
fn init_demo_loads_the_bundled_data_once() {
    let env = Env::new();
    env.cmd(&["init", "--demo"]).assert().success();
    assert_eq!(env.count("SELECT count(*) FROM contacts"), 1000);
    let queued = env.count("SELECT count(*) FROM crmgate_proposals");
    assert!(queued >= 30, "{queued} demo proposals");
    let before = env.dump();
    env.cmd(&["init", "--demo"]).assert().success();
    assert_eq!(env.dump(), before, "a second init --demo changes nothing");
}

#[test]
fn an_id_reused_within_one_file_is_refused_and_an_exact_repeat_is_skipped() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "twice.csv",
        format!(
            "{HEADER}r-1,clearbit,update,contacts,{id},title,CTO,,,,,\nr-1,clearbit,update,contacts,{id},title,CTO,,,,,\nr-1,clearbit,update,contacts,{id},title,CFO,,,,,\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "twice.csv:4: clearbit:r-1 was already ingested on line 2 of this run with different content",
        ));
    let g = env.write(
        "repeat.csv",
        format!("{HEADER}r-2,clearbit,update,contacts,{id},title,CTO,,,,,\nr-2,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    env.cmd(&["propose", g.to_str().unwrap(), "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"duplicates\": 1"));
    assert_eq!(env.count("SELECT count(*) FROM crmgate_proposals"), 1);
    // The earlier line wins even when the later one's record sorts first (rows are queued
    // sorted by record).
    let later = contact_where(&env, &format!("id > '{id}'"));
    let h = env.write(
        "swapped.csv",
        format!("{HEADER}r-3,clearbit,update,contacts,{later},title,CTO,,,,,\nr-3,clearbit,update,contacts,{id},title,CTO,,,,,\n"),
    );
    env.cmd(&["propose", h.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "swapped.csv:3: clearbit:r-3 was already ingested on line 2 of this run with different content",
        ));
}

/// The queue and the supersede events, without event sequence numbers (the two paths log in a
/// different order).
fn queue_state(env: &Env) -> String {
    let conn = env.conn();
    // The indexes a bulk load drops come back exactly as they were.
    let mut out: String = conn
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'crmgate_proposals%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|s| s.unwrap() + "\n")
        .collect();
    assert_eq!(out.matches("CREATE").count(), 2, "{out}");
    let mut stmt = conn
        .prepare(
            "SELECT id, ingest_id, line, source, ext_id, kind, object, record, field, value, merge_into,
                    stated_confidence, expected, trigger, reason, baseline, baseline_fp, state, superseded_by
             FROM crmgate_proposals ORDER BY id",
        )
        .unwrap();
    let n = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let cells: Vec<String> = (0..n)
            .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
            .collect();
        out.push_str(&cells.join("|"));
        out.push('\n');
    }
    let mut stmt = conn
        .prepare("SELECT proposal_id, detail FROM crmgate_events WHERE action = 'supersede' ORDER BY proposal_id")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let (p, d): (i64, String) = (r.get(0).unwrap(), r.get(1).unwrap());
        out.push_str(&format!("supersede {p} {d}\n"));
    }
    out
}

#[test]
fn the_bulk_path_queues_exactly_what_the_row_by_row_path_does() {
    // Two runs: the generated file, then a second file that repeats some of it, supersedes some
    // of it, and adds new rows, so both fresh and existing twins and duplicates are exercised.
    let first = fixture("proposals/generated.csv");
    let text = std::fs::read_to_string(&first).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut second = String::from(header);
    second.push('\n');
    let mut tail = String::new();
    for (i, l) in lines.iter().enumerate() {
        let (_, rest) = l.split_once(',').unwrap();
        if i % 3 == 0 {
            second.push_str(l); // an exact repeat: a duplicate
            second.push('\n');
        } else if i % 3 == 1 {
            // the same target under a new id: supersedes the first run's proposal
            second.push_str(&format!("again-{i},{rest}\n"));
        } else {
            // twins within the file, far apart: the later one supersedes the earlier, and an
            // exact repeat of the earlier one near the end is a duplicate of it
            second.push_str(&format!("twin-a-{i},{rest}\n"));
            tail.push_str(&format!("twin-b-{i},{rest}\ntwin-a-{i},{rest}\n"));
        }
    }
    second.push_str(&tail);
    let run = |bulk_min: &str| -> (String, String) {
        let env = Env::with_crm();
        let second_path = env.write("second.csv", &second);
        for f in [first.as_str(), second_path.to_str().unwrap()] {
            env.cmd(&["propose", f, "--json"])
                .env("CRMGATE_BULK_MIN_ROWS", bulk_min)
                .assert()
                .success();
        }
        let mut status = json_of(&mut env.cmd(&["status", "--json"]));
        status["store"] = serde_json::Value::Null;
        for i in status["recent_ingests"].as_array_mut().unwrap() {
            i["file"] = serde_json::Value::Null;
        }
        (queue_state(&env), status.to_string())
    };
    let (bulk, bulk_status) = run("1");
    let (row_by_row, row_status) = run("1000000000");
    assert!(bulk.contains("superseded"), "the runs supersede something");
    assert!(bulk.lines().filter(|l| l.starts_with("supersede")).count() > 100);
    assert_eq!(bulk, row_by_row);
    assert_eq!(bulk_status, row_status);
}

/// Proposal rows whose second data row (line 3) has a bad email, lines ended by `eol`.
fn third_line_bad(eol: &str) -> String {
    let rows = [
        HEADER.trim_end(),
        "e-1,s,update,contacts,c-1001,title,CTO,,,,,",
        "e-2,s,update,contacts,c-1001,email,not-an-email,,,,,",
        "e-3,s,update,contacts,c-1002,title,CFO,,,,,",
    ];
    rows.join(eol) + eol
}

#[test]
fn a_bad_row_is_reported_at_its_own_line_whatever_ends_the_lines() {
    for (name, eol) in [("crlf.csv", "\r\n"), ("cr.csv", "\r"), ("lf.csv", "\n")] {
        let env = Env::with_crm();
        let f = env.write(name, third_line_bad(eol));
        let stderr = common::refused(env.cmd(&["propose", f.to_str().unwrap()]));
        assert!(
            stderr.contains(&format!("{}:3: ", f.display())),
            "{name}: {stderr}"
        );
        let rows = env.propose_skipping(f.to_str().unwrap());
        assert_eq!(rows.len(), 1, "{name}: one reject");
        assert_eq!(&rows[0][1], "3", "{name}: the reject's line");
    }
}

#[test]
fn a_row_after_a_quoted_line_break_is_reported_at_its_physical_line() {
    let env = Env::with_crm();
    let text = format!(
        "{}e-1,s,update,contacts,c-1001,title,\"two\r\nlines\",,,,,\r\ne-2,s,update,contacts,c-1001,email,not-an-email,,,,,\r\n",
        HEADER.trim_end().to_string() + "\r\n"
    );
    let f = env.write("quoted.csv", text);
    let stderr = common::refused(env.cmd(&["propose", f.to_str().unwrap()]));
    assert!(stderr.contains(&format!("{}:4: ", f.display())), "{stderr}");
}

#[test]
fn the_rejects_file_is_spreadsheet_safe_and_holds_no_raw_control_characters() {
    let env = Env::with_crm();
    let f = env.write(
        "evil.csv",
        format!(
            "{HEADER}\u{ff1d}1+1,s,update,contacts,c-1001,email,\"=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",,,, =1+1,\"\u{1b}[2Jgone\0\"\n"
        ),
    );
    env.propose_skipping(f.to_str().unwrap());
    let rejects = env.path("rejects.csv");
    let bytes = std::fs::read(&rejects).unwrap();
    assert!(!bytes.contains(&0x1b), "raw ESC in the rejects file");
    assert!(!bytes.contains(&0), "raw NUL in the rejects file");
    let mut rdr = csv::Reader::from_path(&rejects).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let row = rdr.records().next().unwrap().unwrap();
    let cell = |name: &str| {
        let i = headers.iter().position(|h| h == name).unwrap();
        row[i].to_string()
    };
    assert_eq!(cell("id"), "'\u{ff1d}1+1");
    assert_eq!(cell("value"), "'=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(cell("trigger"), "' =1+1");
    assert_eq!(cell("reason"), "\\u{1b}[2Jgone\\u{0}");
}
