//! `status`, `list` and `show`: what the queue holds, read back as JSON and as text.

mod common;

use predicates::prelude::*;

use common::{Env, contact_where, fixture, json_of};

#[test]
fn status_list_and_show_speak_json() {
    let env = Env::with_crm();
    env.cmd(&["propose", &fixture("proposals/generated.csv")])
        .assert()
        .success();
    let status = json_of(&mut env.cmd(&["status", "--json"]));
    let pending = status["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "pending")
        .unwrap()["count"]
        .as_i64()
        .unwrap();
    assert_eq!(
        pending,
        env.count("SELECT count(*) FROM crmgate_proposals WHERE state = 'pending'")
    );

    let list = json_of(&mut env.cmd(&["list", "--json", "--kind", "merge", "--limit", "0"]));
    let merges = list.as_array().unwrap();
    assert_eq!(
        merges.len() as i64,
        env.count("SELECT count(*) FROM crmgate_proposals WHERE kind = 'merge'")
    );
    assert!(
        merges
            .iter()
            .all(|m| m["kind"] == "merge" && m["merge_into"].is_string())
    );
    let ids: Vec<i64> = merges.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    let limited = json_of(&mut env.cmd(&["list", "--json", "--limit", "5", "--state", "pending"]));
    assert_eq!(limited.as_array().unwrap().len(), 5);

    let shown = json_of(&mut env.cmd(&["show", &ids[0].to_string(), "--json"]));
    assert_eq!(shown["proposal"]["id"], ids[0]);
    assert!(shown["record"].is_object());
    assert!(shown["merge_into_record"].is_object());
    assert_eq!(shown["ingest"]["action"], "ingest");
}

#[test]
fn show_refuses_unknown_ids_clearly() {
    let env = Env::with_crm();
    env.cmd(&["show", "999"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("proposal not found: 999"));
    env.cmd(&["show", "nonsense"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("SOURCE:ID"));
}

#[test]
fn escape_sequences_in_values_never_reach_the_terminal_raw() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let f = env.write(
        "evil.jsonl",
        format!(
            "{{\"id\": \"e-1\", \"source\": \"sdr-agent\", \"kind\": \"update\", \"object\": \"contacts\", \"record\": \"{id}\", \"field\": \"title\", \"value\": \"VP\\u001b[2J\\u001b]0;pwned\\u0007 Sales\\u202e\", \"reason\": \"\\u001b[31mtrust me\"}}\n"
        ),
    );
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    for args in [vec!["list"], vec!["show", "1"]] {
        let out = env.cmd(&args).output().unwrap();
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !all.contains(&0x1b),
            "raw ESC in `{}` output",
            args.join(" ")
        );
        assert!(
            !all.contains(&0x07),
            "raw BEL in `{}` output",
            args.join(" ")
        );
        let text = String::from_utf8(all).unwrap();
        assert!(
            !text.contains('\u{202e}'),
            "raw bidi override in `{}`",
            args.join(" ")
        );
        assert!(
            text.contains("\\u{1b}"),
            "escape shown visibly in `{}`",
            args.join(" ")
        );
    }
}

#[test]
fn a_state_the_store_should_not_hold_is_named_not_guessed() {
    let env = Env::with_crm();
    env.cmd(&["propose", &fixture("proposals/clearbit.csv")])
        .assert()
        .success();
    // States, kinds and decisions are read as the model's enums: a word edited into the file
    // is refused by name, with its escapes neutralised, never taken for another state.
    env.conn()
        .execute(
            "UPDATE crmgate_proposals SET state = 'approved\u{1b}[2J' WHERE id = 1",
            [],
        )
        .unwrap();
    env.cmd(&["show", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown proposal state"))
        .stderr(predicate::str::contains("\u{1b}").not());
}

/// Characters a terminal draws as nothing or that break or reorder what follows, besides ESC.
const INVISIBLE: &[char] = &[
    '\u{61c}',
    '\u{2028}',
    '\u{2029}',
    '\u{e0000}',
    '\u{e0001}',
    '\u{e0041}',
    '\u{e007f}',
    '\u{3164}',
    '\u{115f}',
    '\u{180e}',
];

/// `out` (stdout and stderr of `what`) holds no raw ESC and none of [`INVISIBLE`], and shows
/// each of `shown` as `\u{..}`.
fn assert_neutral(what: &str, out: &std::process::Output, shown: &[char]) {
    let text =
        String::from_utf8_lossy(&[out.stdout.clone(), out.stderr.clone()].concat()).into_owned();
    assert!(!text.contains('\u{1b}'), "raw ESC in `{what}`:\n{text}");
    for &c in INVISIBLE {
        assert!(
            !text.contains(c),
            "raw U+{:04X} in `{what}`:\n{text}",
            c as u32
        );
    }
    for &c in shown {
        let escaped = format!("\\u{{{:x}}}", c as u32);
        assert!(
            text.contains(&escaped),
            "{escaped} not shown in `{what}`:\n{text}"
        );
    }
}

#[test]
fn invisible_and_line_breaking_characters_in_values_are_shown_escaped_in_list_show_and_review() {
    let env = Env::with_crm();
    let id = contact_where(&env, "1");
    let value: String = INVISIBLE.iter().flat_map(|&c| ['x', c]).collect();
    let row = serde_json::json!({
        "id": "i-1", "source": "sdr-agent", "kind": "update", "object": "contacts",
        "record": id, "field": "title", "value": value, "reason": value,
    });
    let f = env.write("invisible.jsonl", format!("{row}\n"));
    env.cmd(&["propose", f.to_str().unwrap()])
        .assert()
        .success();
    for args in [vec!["list"], vec!["show", "1"], vec!["review"]] {
        let out = env.cmd(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_neutral(&args.join(" "), &out, INVISIBLE);
    }
}

#[test]
fn the_actor_who_set_the_policy_and_the_admins_a_hint_names_are_shown_escaped() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let odd = "ev\u{1b}[31m\u{2028}il\u{e0041}";
    let policy = env.policy(
        "p.toml",
        &format!(
            "# roles\n[roles]\n\"{}\" = [\"admin\"]\n",
            odd.replace('\u{1b}', "\\u001b")
        ),
    );
    env.cmd(&["--as", odd, "policy", "set", &policy])
        .assert()
        .success();
    let out = env.cmd(&["policy", "show"]).output().unwrap();
    assert!(out.status.success());
    assert_neutral("policy show", &out, &['\u{1b}', '\u{2028}', '\u{e0041}']);
    // bob holds no role: the refusal's hint names the admins who could give him one.
    let out = env.cmd(&["--as", "bob", "approve", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: ask an admin"));
    assert_neutral("approve as bob", &out, &['\u{1b}', '\u{2028}', '\u{e0041}']);
}

#[test]
fn a_store_path_with_escapes_is_shown_escaped_in_the_error_and_its_hint() {
    let env = Env::new();
    let db = env.path("no\u{1b}[2J\u{2028}where\u{3164}").join("crm.db");
    let out = common::crmgate()
        .args(["--db", db.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\nhint: create it with `mkdir -p"),
        "{stderr}"
    );
    assert_neutral("list --db", &out, &['\u{1b}', '\u{2028}', '\u{3164}']);
}
