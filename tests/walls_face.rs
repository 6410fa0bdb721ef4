//! The dead ends an operator met at the policy, the actor and the terminal, each driven through
//! the real binary with a controlled environment and checked in the store.

use assert_cmd::Command;

mod common;

use common::{Env, demo_policy, ok, refused};

/// The demo policy's rule that sends contacts and deals of enterprise accounts to review.
const ENTERPRISE_PEOPLE: &str = "[[rule]]
name = \"enterprise-accounts-people-and-deals\"
object = [\"contacts\", \"deals\"]
related = { companies = { tier = \"enterprise\" } }   # the company the record references
action = \"review\"
";

/// The demo policy with hubspot-ai trusted on its own (and people and deals of enterprise
/// accounts no longer sent to review: hs-405 is a contact of one).
fn trusting_hubspot() -> String {
    demo_policy().replace(ENTERPRISE_PEOPLE, "").replace(
        "[sources.sdr-agent]",
        "[sources.hubspot-ai]\nautonomy = \"autonomous\"\n\n[sources.sdr-agent]",
    )
}

#[test]
fn policy_set_decides_again_what_no_person_decided_and_logs_each_move() {
    let env = Env::demo();
    let file = env.write("trusting.toml", trusting_hubspot());
    // A person approves one of the proposals the new policy would let through on its own; two
    // more (hs-405, and clearbit:cb-111, both at enterprise accounts) move.
    ok(env.cmd(&["approve", "hubspot-ai:hs-402"]));
    let (_, tested) = ok(env.cmd(&["policy", "test", &file]));
    assert!(
        tested.contains("2 decisions would change (2 review → auto)"),
        "{tested}"
    );
    let (table, said) = ok(env.cmd(&["policy", "set", &file]));
    assert!(
        said.contains("2 decisions changed (2 review → auto)"),
        "{said}"
    );
    assert!(table.contains("hubspot-ai:hs-405"), "{table}");
    assert_eq!(env.state("hubspot-ai:hs-405"), "approved");
    let (decision, version): (String, i64) = env
        .conn()
        .query_row(
            "SELECT decision, policy_version FROM crmgate_proposals WHERE ext_id = 'hs-405'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((decision.as_str(), version), ("auto", 2));
    // The person's approval stands as it was decided: under version 1, by review.
    let human: (String, String, i64) = env
        .conn()
        .query_row(
            "SELECT state, decision, policy_version FROM crmgate_proposals WHERE ext_id = 'hs-402'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(human, ("approved".into(), "review".into(), 1));
    // One event per changed proposal, with the old and new decision and the new version.
    let ev: (i64, i64, String) = env
        .conn()
        .query_row(
            "SELECT count(*), max(policy_version), max(detail) FROM crmgate_events
             WHERE action = 'redecide'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((ev.0, ev.1), (2, 2));
    assert!(ev.2.contains(r#""from":"review""#) && ev.2.contains(r#""to":"auto""#));
    ok(env.cmd(&["audit", "verify"]));
}

#[test]
fn a_policy_that_cannot_be_installed_leaves_every_decision_as_it_was() {
    let env = Env::demo();
    let file = env.write("trusting.toml", trusting_hubspot());
    refused(env.cmd(&["--as", "bob", "policy", "set", &file]));
    assert_eq!(env.state("hubspot-ai:hs-405"), "pending");
    let events: i64 = env.one("SELECT count(*) FROM crmgate_events WHERE action = 'redecide'");
    assert_eq!(events, 0);
}

#[test]
fn policy_check_reports_every_problem_in_the_file_each_with_its_line() {
    let env = Env::demo();
    let file = env.write(
        "typos.toml",
        "[defaults]\nautonomi = \"supervised\"\n\n[[rule]]\nname = \"a\"\nkind = [\"update\"]\n\
         min_confidence = 2\naction = \"auto\"\n\n[[rule]]\nnme = \"b\"\naction = \"reviw\"\n",
    );
    let e = refused(env.cmd(&["policy", "check", &file]));
    for (line, words) in [
        (2, "unknown field `autonomi` (did you mean \"autonomy\"?)"),
        (7, "min_confidence 2 is outside 0..1"),
        (10, "has no name"),
        (11, "unknown field `nme` (did you mean \"name\"?)"),
        (12, "action \"reviw\" is not one of"),
    ] {
        assert!(
            e.contains(&format!("typos.toml:{line}: ")),
            "line {line}:\n{e}"
        );
        assert!(e.contains(words), "{words}:\n{e}");
    }
}

#[test]
fn a_dropped_column_leaves_the_gate_usable_and_sends_what_its_rule_could_match_to_review() {
    let env = Env::demo();
    env.conn()
        .execute_batch("ALTER TABLE companies DROP COLUMN tier")
        .unwrap();
    let fix = "crmgate policy set FIXED.toml";
    let (status, _) = ok(env.cmd(&["status"]));
    assert!(
        status.contains("rule \"high-value-accounts\" names companies.tier")
            && status.contains(fix),
        "{status}"
    );
    let (_, shown) = ok(env.cmd(&["policy", "show"]));
    assert!(
        shown.contains("companies.tier") && shown.contains(fix),
        "{shown}"
    );

    // co-1001's employees are empty: filling them from clearbit would be auto, but the
    // high-value rule could match it and cannot be evaluated.
    let p = env.write(
        "p.csv",
        "id,source,kind,object,record,field,value,confidence\n\
         z1,clearbit,update,companies,co-1001,employees,5000,0.99\n",
    );
    ok(env.cmd(&["propose", &p]));
    assert_eq!(env.state("clearbit:z1"), "pending");
    let (show, _) = ok(env.cmd(&["show", "clearbit:z1"]));
    assert!(
        show.contains("names companies.tier, which the store no longer has"),
        "{show}"
    );
    ok(env.cmd(&["--as", "mia", "approve", "clearbit:z1"]));
    let applied = env.cmd(&["apply"]).output().unwrap();
    assert!(matches!(applied.status.code(), Some(0 | 3)), "{applied:?}");
    assert_eq!(env.state("clearbit:z1"), "applied");

    // A new policy must still fit the store; one that does is always accepted.
    let demo = env.write("demo.toml", demo_policy());
    let e = refused(env.cmd(&["policy", "set", &demo]));
    assert!(e.contains("\"tier\""), "{e}");
    let fixed = demo_policy()
        .replace("record = { tier = \"enterprise\" }\n", "")
        .replace(ENTERPRISE_PEOPLE, "");
    let fixed = env.write("fixed.toml", fixed);
    ok(env.cmd(&["policy", "set", &fixed]));
    let (status, _) = ok(env.cmd(&["status"]));
    assert!(!status.contains("no longer has"), "{status}");
}

/// The OS user's name as the password database knows it.
fn passwd_user() -> String {
    let uid = unsafe { libc::geteuid() };
    let pw = unsafe { libc::getpwuid(uid) };
    assert!(
        !pw.is_null(),
        "the test runs as a user the password database knows"
    );
    unsafe { std::ffi::CStr::from_ptr((*pw).pw_name) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn with_no_user_in_the_environment_the_actor_is_the_os_user_not_unknown() {
    let env = Env::new();
    env.cmd(&["init"]).assert().success();
    let mut c = env.cmd(&["pause", "--reason", "maintenance"]);
    c.env_remove("CRMGATE_USER")
        .env_remove("USER")
        .env_remove("LOGNAME");
    ok(c);
    let actor: String = env.one("SELECT actor FROM crmgate_events WHERE action = 'pause'");
    assert_eq!(actor, passwd_user());
}

#[test]
fn a_store_in_a_missing_directory_names_the_directory_and_a_cause_is_said_once() {
    let env = Env::new();
    let missing = env.dir.path().join("no-such-dir").join("crm.db");
    for args in [["init"], ["status"]] {
        let out = Command::cargo_bin("crmgate")
            .unwrap()
            .arg("--db")
            .arg(&missing)
            .args(args)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{e}");
        assert!(
            e.contains("no-such-dir does not exist") && e.contains("mkdir -p"),
            "{e}"
        );
    }
    let e = refused(env.cmd(&["policy", "check", "nowhere.toml"]));
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
}

#[test]
fn piped_tables_fit_columns_else_80() {
    let env = Env::demo();
    let widest = |c: &mut Command| {
        let (out, _) = ok(c);
        out.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    };
    for id in ["3", "34"] {
        let mut narrow = env.cmd(&["show", id]);
        narrow.env("COLUMNS", "80");
        assert!(widest(&mut narrow) <= 80, "show {id} under COLUMNS=80");
        let mut unset = env.cmd(&["show", id]);
        unset.env_remove("COLUMNS");
        assert!(widest(&mut unset) <= 80, "show {id} piped, COLUMNS unset");
    }
    let mut list = env.cmd(&["list"]);
    list.env("COLUMNS", "100");
    assert!(widest(&mut list) <= 100);
}

#[test]
fn counts_read_in_the_singular_for_one() {
    let env = Env::demo();
    let (_, said) = ok(env.cmd(&["reject", "hubspot-ai:hs-405", "--reason", "wrong"]));
    assert!(said.contains("1 proposal rejected"), "{said}");
    assert!(!said.contains("0 not"), "{said}");
    let p = env.write(
        "one.csv",
        "id,source,kind,object,record,field,value\nq1,apollo,update,contacts,c-1001,title,CTO\n",
    );
    ok(env.cmd(&["propose", &p]));
    let (shown, _) = ok(env.cmd(&["show", "apollo:q1"]));
    assert!(shown.contains("1 row from"), "{shown}");
}

#[test]
fn a_proposers_id_without_its_source_suggests_the_source() {
    let env = Env::demo();
    let out = env.cmd(&["approve", "hs-405"]).output().expect("run");
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(e.contains("did you mean hubspot-ai:hs-405?"), "{e}");
    assert_eq!(env.state("hubspot-ai:hs-405"), "pending");
    let e = refused(env.cmd(&["show", "hs-405"]));
    assert!(e.contains("did you mean hubspot-ai:hs-405?"), "{e}");
}

#[test]
fn sources_shows_which_sources_are_paused() {
    let env = Env::demo();
    ok(env.cmd(&["pause", "--source", "apollo", "--reason", "bad batch"]));
    ok(env.cmd(&["pause", "--source", "newbot", "--reason", "not yet vetted"]));
    let (table, _) = ok(env.cmd(&["sources"]));
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .to_string()
    };
    assert!(table.contains("paused"), "{table}");
    assert!(row("apollo").contains("bad batch"), "{table}");
    assert!(row("newbot").contains("not yet vetted"), "{table}");
    assert!(!row("clearbit").contains("since"), "{table}");
    let mut json = env.cmd(&["sources", "--json"]);
    let (out, _) = ok(&mut json);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let apollo = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stats"]["source"] == "apollo")
        .unwrap();
    assert_eq!(apollo["paused"]["reason"], "bad batch");
}

#[test]
fn export_and_audit_export_take_the_same_three_formats() {
    let env = Env::demo();
    let out = |args: &[&str]| ok(env.cmd(args)).0;
    let lines = out(&["audit", "export"]);
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("the default stays JSON Lines"))
        .collect();
    let array: Vec<serde_json::Value> =
        serde_json::from_str(&out(&["audit", "export", "--format", "json"])).unwrap();
    assert_eq!(array, events);
    let csv = out(&["audit", "export", "--format", "csv"]);
    assert_eq!(csv.lines().count(), events.len() + 1);

    let records = out(&["export", "companies"]);
    assert!(records.starts_with("id,name,"), "the default stays CSV");
    let array: Vec<serde_json::Value> =
        serde_json::from_str(&out(&["export", "companies", "--format", "json"])).unwrap();
    let jsonl = out(&["export", "companies", "--format", "jsonl"]);
    assert_eq!(jsonl.lines().count(), array.len());
    assert_eq!(records.lines().count(), array.len() + 1);
}

#[test]
fn a_merges_whole_record_change_is_shown_field_by_field() {
    let env = Env::demo();
    ok(env.cmd(&["approve", "dedupe-bot:dd-201"]));
    let applied = env.cmd(&["apply"]).output().unwrap();
    assert!(matches!(applied.status.code(), Some(0 | 3)), "{applied:?}");
    let id: i64 = env.one("SELECT id FROM crmgate_changes WHERE field = '*'");
    let (shown, _) = ok(env.cmd(&["show", &format!("change:{id}")]));
    assert!(shown.contains("The record, field by field:"), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.contains(" first_name "))
        .unwrap_or_else(|| panic!("no first_name row:\n{shown}"));
    assert!(
        line.contains("\"Linh\"") && line.contains("(none)"),
        "{line}"
    );
    assert!(!shown.contains("{\"company_id\""), "{shown}");
}
