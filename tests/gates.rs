//! No side doors: who may decide is read from the policy in force, every actor is on the record
//! next to the OS user who ran the command, rules see the records a target references, and a
//! source is bound to who may submit for it. Each case drives the real binary and checks the
//! store.

use std::path::PathBuf;

use assert_cmd::Command;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A demo store: the demo data, its proposals, and the demo policy.
    fn demo() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        ok(env.cmd(&["init", "--demo"]));
        env
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("crm.db")
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write");
        p.display().to_string()
    }

    /// `crmgate --db <store> ARGS` as `alice` (an admin in the demo policy), at a fixed time.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("crmgate").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("CRMGATE_DB")
            .env("CRMGATE_USER", "alice")
            .env("CRMGATE_NOW", "2026-01-02T03:04:05Z")
            .env("CRMGATE_TEST_CLOCK", "1")
            .env("NO_COLOR", "1")
            .env("CRMGATE_BUSY_TIMEOUT_MS", "300")
            .env("COLUMNS", "400")
            .arg("--db")
            .arg(self.db())
            .args(args);
        c
    }

    fn conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open store")
    }

    fn one<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.conn().query_row(sql, [], |r| r.get(0)).expect(sql)
    }

    fn state(&self, source_id: &str) -> String {
        let (source, id) = source_id.split_once(':').unwrap();
        self.one(&format!(
            "SELECT state FROM crmgate_proposals WHERE source = '{source}' AND ext_id = '{id}'"
        ))
    }

    /// The policy in force, as installed.
    fn policy_text(&self) -> String {
        ok(self.cmd(&["policy", "show"])).0
    }
}

/// (stdout, stderr) of a command that must succeed.
fn ok(mut c: impl std::borrow::BorrowMut<Command>) -> (String, String) {
    let out = c.borrow_mut().output().expect("run");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "failed:\n{o}\n{e}");
    (o, e)
}

/// stderr of a command that must exit with `code`.
fn exits(mut c: impl std::borrow::BorrowMut<Command>, code: i32) -> (String, String) {
    let out = c.borrow_mut().output().expect("run");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(code), "exit:\n{o}\n{e}");
    (o, e)
}

/// The policy in force with one more rule: every update takes a manager.
fn updates_need_a_manager(env: &Env) -> String {
    format!(
        "{}\n[[rule]]\nname = \"updates-need-manager\"\nkind = [\"update\"]\naction = \"review\"\napprovers = [\"manager\"]\n",
        env.policy_text()
    )
}

#[test]
fn approvals_are_checked_against_the_policy_in_force_not_the_one_at_ingest() {
    let env = Env::demo();
    // Under the demo policy no rule names approvers for these two title and phone updates.
    ok(env.cmd(&["--as", "bob", "approve", "clearbit:cb-107"]));
    assert_eq!(env.state("clearbit:cb-107"), "approved");
    let stricter = env.write("stricter.toml", updates_need_a_manager(&env));
    let (table, said) = ok(env.cmd(&["policy", "test", &stricter]));
    assert!(
        table.contains("clearbit:cb-107") && table.contains("bob"),
        "{table}"
    );
    assert!(
        said.contains("would no longer permit 1 approval by a person"),
        "{said}"
    );
    let (table, said) = ok(env.cmd(&["policy", "set", &stricter]));
    assert!(table.contains("clearbit:cb-107"), "{table}");
    assert!(
        said.contains("no longer permits 1 approval by a person"),
        "{said}"
    );
    // bob is an sdr: the proposal stored no approvers at ingest, but the policy in force asks
    // for a manager.
    let (_, e) = exits(env.cmd(&["--as", "bob", "approve", "clearbit:cb-108"]), 1);
    assert!(e.contains("takes the role manager"), "{e}");
    assert_eq!(env.state("clearbit:cb-108"), "pending");
    let (_, e) = exits(
        env.cmd(&["--as", "bob", "reject", "clearbit:cb-108", "--reason", "no"]),
        1,
    );
    assert!(e.contains("takes the role manager"), "{e}");
    ok(env.cmd(&["--as", "mia", "approve", "clearbit:cb-108"]));
    assert_eq!(env.state("clearbit:cb-108"), "approved");
}

/// The OS user running the tests, as the password database names it.
fn os_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The policy in force without the line that makes the OS user an admin.
fn without_os_admin(env: &Env) -> String {
    let me = format!("\"{}\" = ", os_user());
    env.policy_text()
        .lines()
        .filter(|l| !l.starts_with(&me))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn with_roles_set_an_actor_holding_no_role_decides_nothing_and_exports_take_admin_or_auditor() {
    let env = Env::demo();
    for args in [
        &["--as", "mallory", "approve", "clearbit:cb-108"][..],
        &[
            "--as",
            "mallory",
            "reject",
            "clearbit:cb-108",
            "--reason",
            "x",
        ],
        &["--as", "mallory", "pause", "--reason", "x"],
        &["--as", "mallory", "review"],
    ] {
        let (_, e) = exits(env.cmd(args), 1);
        assert!(e.contains("mallory holds no role"), "{args:?}: {e}");
        assert!(e.contains("crmgate policy set"), "{e}");
    }
    assert_eq!(env.state("clearbit:cb-108"), "pending");
    let paused: i64 = env.one("SELECT count(*) FROM crmgate_pauses");
    assert_eq!(paused, 0);
    for args in [
        &["--as", "bob", "export", "contacts"][..],
        &["--as", "bob", "audit", "export"],
    ] {
        let (out, e) = exits(env.cmd(args), 1);
        assert!(e.contains("takes the admin or auditor role"), "{e}");
        assert!(out.is_empty(), "{out}");
    }
    ok(env.cmd(&["export", "contacts"]));
    ok(env.cmd(&["audit", "export"]));
    // A single-user policy (no [roles]) lets anyone do anything.
    let single: String = env
        .policy_text()
        .split("[roles]")
        .next()
        .unwrap()
        .to_string();
    let single = env.write("single.toml", format!("{single}[roles]\n"));
    ok(env.cmd(&["policy", "set", &single]));
    ok(env.cmd(&["--as", "mallory", "approve", "clearbit:cb-108"]));
    assert_eq!(env.state("clearbit:cb-108"), "approved");
}

#[test]
fn acting_as_another_takes_an_os_user_holding_admin_and_every_event_names_both() {
    let env = Env::demo();
    let me = os_user();
    // The demo names the OS user who set it up an admin, so it may act as alice.
    ok(env.cmd(&["--as", "mia", "approve", "clearbit:cb-115"]));
    let (actor, os): (String, String) = env
        .conn()
        .query_row(
            "SELECT actor, os_user FROM crmgate_events WHERE action = 'approve'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((actor.as_str(), os.as_str()), ("mia", me.as_str()));
    let unnamed: i64 = env.one("SELECT count(*) FROM crmgate_events WHERE os_user IS NULL");
    assert_eq!(unnamed, 0, "every event names the OS user");
    ok(env.cmd(&["audit", "verify"]));
    let (csv, _) = ok(env.cmd(&["audit", "export", "--format", "csv"]));
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",hash,os_user,evidence"),
        "{csv}"
    );
    // The demo's first event is about no proposal: its evidence cell is empty.
    assert!(
        csv.lines().nth(1).unwrap().ends_with(&format!(",{me},")),
        "{csv}"
    );
    // Without the OS user among the admins, acting as alice is refused, even for alice's own
    // decisions, and nothing is written.
    let file = env.write("no-os-admin.toml", without_os_admin(&env));
    ok(env.cmd(&["policy", "set", &file]));
    let events: i64 = env.one("SELECT count(*) FROM crmgate_events");
    for args in [
        &["approve", "clearbit:cb-107"][..],
        &["propose", "whatever.csv"],
        &["export", "contacts"],
    ] {
        let (_, e) = exits(env.cmd(args), 1);
        assert!(
            e.contains(&format!("{me} may not act as alice")) && e.contains("admin"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM crmgate_events"),
        events
    );
    assert_eq!(env.state("clearbit:cb-107"), "pending");
}

#[test]
fn a_contact_of_a_company_on_legal_hold_is_blocked_at_propose_and_at_apply() {
    let env = Env::demo();
    // c-1040 works at co-1022, on legal hold; c-1003 at co-1095 (mid-market, not on hold);
    // c-1014 at co-1104, an enterprise account. All three have no phone yet.
    let file = env.write(
        "phones.csv",
        "id,source,kind,object,record,field,value,confidence\n\
         t-1,clearbit,update,contacts,c-1040,phone,+1 408 555 0101,0.97\n\
         t-2,clearbit,update,contacts,c-1003,phone,+1 408 555 0102,0.97\n\
         t-3,clearbit,update,contacts,c-1014,phone,+1 408 555 0103,0.97\n",
    );
    ok(env.cmd(&["propose", &file]));
    assert_eq!(env.state("clearbit:t-1"), "blocked");
    let rules: String = env.one("SELECT rules FROM crmgate_proposals WHERE ext_id = 't-1'");
    assert!(rules.contains("account-legal-hold"), "{rules}");
    assert_eq!(env.state("clearbit:t-2"), "approved");
    assert_eq!(env.state("clearbit:t-3"), "pending");
    let rules: String = env.one("SELECT rules FROM crmgate_proposals WHERE ext_id = 't-3'");
    assert!(
        rules.contains("enterprise-accounts-people-and-deals"),
        "{rules}"
    );
    // The account goes on hold after the approval: apply sees it and writes nothing.
    env.conn()
        .execute(
            "UPDATE companies SET legal_hold = 1 WHERE id = 'co-1095'",
            [],
        )
        .unwrap();
    exits(env.cmd(&["apply"]), 3);
    let phone: Option<String> = env.one("SELECT phone FROM contacts WHERE id = 'c-1003'");
    assert_eq!(phone, None);
    assert_ne!(env.state("clearbit:t-2"), "applied");
    let said: i64 = env.one(
        "SELECT count(*) FROM crmgate_events e JOIN crmgate_proposals p ON p.id = e.proposal_id
         WHERE p.ext_id = 't-2' AND e.detail LIKE '%account-legal-hold%'",
    );
    assert!(said > 0, "an event names the rule that stopped it");
}

#[test]
fn a_source_that_names_its_submitters_takes_files_only_from_them() {
    let env = Env::demo();
    let base = env.policy_text();
    let bound = |who: &str| {
        base.replace(
            "[sources.clearbit]\nautonomy = \"autonomous\"\n",
            &format!("[sources.clearbit]\nautonomy = \"autonomous\"\nsubmitters = [\"{who}\"]\n"),
        )
    };
    let file = env.write("svc.toml", bound("svc-clearbit"));
    ok(env.cmd(&["policy", "set", &file]));
    let rows = env.write(
        "rows.csv",
        "id,source,kind,object,record,field,value,confidence\n\
         s-1,apollo,update,contacts,c-1003,phone,+1 408 555 0102,0.9\n\
         s-2,clearbit,update,contacts,c-1004,phone,+1 408 555 0104,0.9\n",
    );
    let before: i64 = env.one("SELECT count(*) FROM crmgate_proposals");
    let (_, e) = exits(env.cmd(&["propose", &rows]), 1);
    assert!(
        e.contains("rows.csv:3:") && e.contains("svc-clearbit") && e.contains(&os_user()),
        "{e}"
    );
    assert_eq!(
        env.one::<i64>("SELECT count(*) FROM crmgate_proposals"),
        before
    );
    // Sources without submitters take anyone's rows.
    exits(
        env.cmd(&["propose", &rows, "--skip-invalid", "--rejects", "r.csv"]),
        3,
    );
    let rejects = std::fs::read_to_string(env.dir.path().join("r.csv")).unwrap();
    assert!(
        rejects.contains("s-2") && rejects.contains("svc-clearbit"),
        "{rejects}"
    );
    assert_eq!(env.state("apollo:s-1"), "pending");
    // Named, the OS user may submit.
    let file = env.write("me.toml", bound(&os_user()));
    ok(env.cmd(&["policy", "set", &file]));
    ok(env.cmd(&["propose", &rows]));
    assert_eq!(env.state("clearbit:s-2"), "approved");
}

#[test]
fn a_revert_counts_against_the_source_like_a_rejection() {
    let env = Env::demo();
    let short_window = env
        .policy_text()
        .replace("window = 50", "window = 3")
        .replace("max_reject_rate = 0.30", "max_reject_rate = 0.50");
    let file = env.write("short.toml", short_window);
    ok(env.cmd(&["policy", "set", &file]));
    ok(env.cmd(&["apply"]));
    let changes: Vec<i64> = {
        let conn = env.conn();
        let mut stmt = conn
            .prepare(
                "SELECT c.id FROM crmgate_changes c JOIN crmgate_proposals p ON p.id = c.proposal_id
                 WHERE p.source = 'clearbit' ORDER BY c.id LIMIT 2",
            )
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(changes.len(), 2);
    let mut said = String::new();
    for c in &changes {
        said = ok(env.cmd(&["revert", &c.to_string()])).1;
    }
    // Two reverts out of the last 3 decisions trip a breaker of 50%, at the second revert.
    assert!(
        said.contains("source clearbit paused: circuit breaker"),
        "{said}"
    );
    let (json, _) = ok(env.cmd(&["--json", "sources"]));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let clearbit = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stats"]["source"] == "clearbit")
        .unwrap();
    assert_eq!(clearbit["stats"]["reverted"], 2, "{clearbit}");
    assert_eq!(clearbit["acceptance"], 0.0, "{clearbit}");
    let (table, _) = ok(env.cmd(&["sources"]));
    assert!(table.contains("applied/reverted/conflict"), "{table}");
    let paused: i64 = env.one("SELECT count(*) FROM crmgate_pauses WHERE scope = 'clearbit'");
    assert_eq!(paused, 1);
}

#[test]
fn a_revert_takes_a_role_that_could_approve_the_change_or_admin() {
    let env = Env::demo();
    // cb-115 updates co-1013, an enterprise account: a manager approves it.
    ok(env.cmd(&["--as", "mia", "approve", "clearbit:cb-115"]));
    ok(env.cmd(&["apply"]));
    assert_eq!(env.state("clearbit:cb-115"), "applied");
    let store = crmgate::store::Store::open(&env.db(), crmgate::store::OpenMode::Existing).unwrap();
    let (_, policy) = crmgate::admin::policy::load(&store).unwrap();
    let id: i64 = env.one("SELECT id FROM crmgate_proposals WHERE ext_id = 'cb-115'");
    let p = store.proposal(id).unwrap().unwrap();
    let may = |who: &str| crmgate::admin::access::may_revert(&store, &policy, &p, who).unwrap();
    use crmgate::error::Holds;
    assert_eq!(may("mia"), Holds::Yes(()));
    assert_eq!(may("alice"), Holds::Yes(()), "an admin");
    let Holds::No(why) = may("bob") else {
        panic!("bob, no manager, may revert");
    };
    assert!(why.contains("takes the role manager, or admin"), "{why}");
}
