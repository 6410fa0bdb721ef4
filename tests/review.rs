//! The interactive review, driven through a pseudo-terminal like a person at the keyboard:
//! the real binary, `TERM` fixed, colours off; the store is checked after every key.

mod common;

use std::process::Command;

use rexpect::session::{PtySession, spawn_command};

use common::{Env, PTY_TIMEOUT_MS as TIMEOUT_MS, expect, fixture};

const POLICY: &str = r#"
[defaults]
autonomy = "supervised"

[[rule]]
name = "owner-needs-manager"
kind = ["owner"]
action = "review"
approvers = ["manager"]

[[rule]]
name = "merges-need-ops"
kind = ["merge"]
action = "review"
approvers = ["ops"]

[roles]
alice = ["ops", "admin"]
mia = ["manager"]
"#;

/// Two proposals for c-1001, one each for c-1002 to c-1004, and a merge of c-1376 into c-1345.
const PROPOSALS: &str = "\
id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason
p1,vendor,update,contacts,c-1001,title,Chief Legal Officer,,0.7,,,Title from the company site
p2,vendor,update,contacts,c-1001,phone,+1 415 555 0100,,0.6,,,Switchboard number
p3,vendor,update,contacts,c-1002,email,max.meyer@swift-devices.net,,0.8,,,New address pattern
p4,vendor,update,contacts,c-1003,title,COO,,0.7,,,Promoted
p5,vendor,owner,contacts,c-1004,owner,mia,,0.9,,,Territory change
";

struct Store {
    env: Env,
}

impl Store {
    fn cmd(&self, actor: &str) -> Command {
        self.env.terminal(actor)
    }

    fn run(&self, actor: &str, args: &[&str]) -> String {
        let out = self.cmd(actor).args(args).output().expect("run crmgate");
        assert!(
            out.status.success(),
            "crmgate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn conn(&self) -> rusqlite::Connection {
        self.env.conn()
    }

    /// (state, value, proposed_value) of the proposal the source calls `ext_id`.
    fn proposal(&self, ext_id: &str) -> (String, Option<String>, Option<String>) {
        self.conn()
            .query_row(
                "SELECT state, CAST(value AS TEXT), CAST(proposed_value AS TEXT)
                 FROM crmgate_proposals WHERE ext_id = ?1",
                [ext_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("proposal")
    }

    fn state(&self, ext_id: &str) -> String {
        self.proposal(ext_id).0
    }

    /// The actions of the human events on a proposal, oldest first, with their detail.
    fn events(&self, ext_id: &str) -> Vec<(String, String, String)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT e.action, e.actor, coalesce(e.detail, '') FROM crmgate_events e
                 JOIN crmgate_proposals p ON p.id = e.proposal_id
                 WHERE p.ext_id = ?1 AND e.actor_kind = 'human' ORDER BY e.seq",
            )
            .unwrap();
        stmt.query_map([ext_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn contact(&self, id: &str, column: &str) -> Option<String> {
        self.conn()
            .query_row(
                &format!("SELECT CAST({column} AS TEXT) FROM contacts WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
            .expect("contact")
    }
}

/// The bundled CRM, the policy above, and the proposals above, all pending.
fn store(proposals: &str) -> Store {
    let s = Store { env: Env::new() };
    s.run("alice", &["init"]);
    for t in ["companies", "contacts", "deals", "activities"] {
        s.run("alice", &["import", t, &fixture(&format!("crm/{t}.csv"))]);
    }
    let policy = s.env.path("policy.toml");
    std::fs::write(&policy, common::with_test_admins(POLICY)).unwrap();
    s.run("tester", &["policy", "set", policy.to_str().unwrap()]);
    // A record value carrying terminal escapes: it must be shown, not obeyed.
    s.conn()
        .execute(
            "UPDATE contacts SET first_name = 'Evil' || char(27) || '[31mRed' || char(7)
             WHERE id = 'c-1003'",
            [],
        )
        .unwrap();
    let file = s.env.path("proposals.csv");
    std::fs::write(&file, proposals).unwrap();
    s.run("alice", &["propose", file.to_str().unwrap()]);
    s
}

fn review(s: &Store, actor: &str, args: &[&str]) -> PtySession {
    let mut c = s.cmd(actor);
    c.arg("review").args(args);
    spawn_command(c, Some(TIMEOUT_MS)).expect("spawn review in a pty")
}

fn key(p: &mut PtySession, c: char) {
    p.send(&c.to_string()).expect("send key");
    p.flush().expect("flush");
}

fn line(p: &mut PtySession, text: &str) {
    p.send(text).expect("send text");
    p.send("\r").expect("send enter");
    p.flush().expect("flush");
}

#[test]
fn approve_reject_edit_undo_skip_and_quit_each_land_in_the_store() {
    let s = store(PROPOSALS);
    let mut p = review(&s, "alice", &[]);

    // c-1001 first: its two proposals together.
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("1 of 5"), "{screen}");
    assert!(
        screen.contains("proposal 1 of 2 for this record"),
        "{screen}"
    );
    assert!(screen.contains("contacts/c-1001"), "{screen}");
    assert!(screen.contains("Change to title"), "{screen}");
    assert!(
        screen.contains("[-General Counsel-]{+Chief Legal Officer+}"),
        "the word diff: {screen}"
    );
    assert!(screen.contains("Title from the company site"), "{screen}");
    key(&mut p, 'y');

    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("approved #"), "{screen}");
    assert!(
        screen.contains("proposal 2 of 2 for this record"),
        "{screen}"
    );
    assert_eq!(s.state("p1"), "approved");
    assert_eq!(s.events("p1")[0].0, "approve");
    assert_eq!(s.events("p1")[0].1, "alice");

    // Reject asks a reason, and the reason is on the record.
    key(&mut p, 'n');
    expect(&mut p, "Reason for rejecting");
    line(&mut p, "wrong number");
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("rejected #"), "{screen}");
    assert!(screen.contains("contacts/c-1002"), "{screen}");
    assert_eq!(s.state("p2"), "rejected");
    let (action, _, detail) = &s.events("p2")[0];
    assert_eq!(action, "reject");
    assert!(detail.contains("wrong number"), "{detail}");

    // Edit: an invalid value is refused and asked again; the valid one is approved, and the
    // store keeps both the proposed and the edited value.
    key(&mut p, 'e');
    expect(&mut p, "New email");
    line(&mut p, "not-an-email");
    expect(&mut p, "not valid");
    assert_eq!(s.state("p3"), "pending");
    line(&mut p, "mm@swift-devices.net");
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("edited and approved #"), "{screen}");
    assert!(screen.contains("contacts/c-1003"), "{screen}");
    let (state, value, proposed) = s.proposal("p3");
    assert_eq!(state, "approved");
    assert_eq!(value.as_deref(), Some("mm@swift-devices.net"));
    assert_eq!(proposed.as_deref(), Some("max.meyer@swift-devices.net"));
    let (action, who, detail) = &s.events("p3")[0];
    assert_eq!((action.as_str(), who.as_str()), ("edit", "alice"));
    assert!(
        detail.contains("max.meyer@swift-devices.net") && detail.contains("mm@swift-devices.net"),
        "{detail}"
    );

    // The record's escapes are shown, not obeyed.
    assert!(screen.contains("Evil\\u{1b}[31mRed\\u{7}"), "{screen}");
    assert!(
        !screen.contains("\x1b[31mRed"),
        "a raw escape reached the terminal"
    );
    assert!(!screen.contains('\x07'), "a raw BEL reached the terminal");

    // Undo takes the edit back and shows that proposal again.
    key(&mut p, 'u');
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("undid: edited #"), "{screen}");
    assert!(screen.contains("contacts/c-1002"), "{screen}");
    let (state, value, proposed) = s.proposal("p3");
    assert_eq!(state, "pending");
    assert_eq!(value.as_deref(), Some("max.meyer@swift-devices.net"));
    assert_eq!(proposed, None);
    assert_eq!(s.events("p3").last().unwrap().0, "undo");

    // Skip leaves it pending and moves on.
    key(&mut p, 's');
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("skipped #"), "{screen}");
    assert!(screen.contains("contacts/c-1003"), "{screen}");
    assert_eq!(s.state("p3"), "pending");
    key(&mut p, 's');

    // alice lacks the manager role: the screen says who has it, and approval is refused.
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("contacts/c-1004"), "{screen}");
    assert!(
        screen.contains("Approval takes the role manager (mia)"),
        "{screen}"
    );
    assert!(screen.contains("You (alice) may not approve"), "{screen}");
    key(&mut p, 'y');
    expect(&mut p, "not approved: alice may not approve it");
    assert_eq!(s.state("p5"), "pending");

    key(&mut p, 'q');
    let end = expect(&mut p, "Review done");
    let _ = end;
    p.exp_eof().expect("review exits after q");
    assert_eq!(s.state("p4"), "pending");

    // What the review approved applies, the edit with the reviewer's value (p3 was undone).
    s.cmd("alice").arg("apply").output().expect("apply");
    assert_eq!(
        s.contact("c-1001", "title").as_deref(),
        Some("Chief Legal Officer")
    );
    assert_eq!(
        s.contact("c-1002", "email").as_deref(),
        Some("maximilian.meyer@swift-devices.net")
    );
}

#[test]
fn an_edited_value_is_what_apply_writes() {
    let s = store(PROPOSALS);
    let mut p = review(&s, "alice", &["--limit", "3"]);
    expect(&mut p, "Decide #");
    key(&mut p, 's');
    expect(&mut p, "Decide #");
    key(&mut p, 's');
    expect(&mut p, "Decide #");
    key(&mut p, 'e');
    expect(&mut p, "New email");
    line(&mut p, "mm@swift-devices.net");
    // --limit 3: the review ends by itself after the third.
    expect(&mut p, "Review done: 0 approved, 1 edited and approved");
    p.exp_eof().expect("exit");
    let out = s.cmd("alice").arg("apply").output().expect("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.contact("c-1002", "email").as_deref(),
        Some("mm@swift-devices.net")
    );
    // The change log records the edited value as the after, the approver as who approved.
    let (after, by): (String, String) = s
        .conn()
        .query_row(
            "SELECT CAST(after AS TEXT), approved_by FROM crmgate_changes WHERE field = 'email'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (after.as_str(), by.as_str()),
        ("mm@swift-devices.net", "alice")
    );
}

#[test]
fn a_whole_record_group_is_approved_or_rejected_with_one_key() {
    let s = store(PROPOSALS);
    let mut p = review(&s, "alice", &[]);
    expect(&mut p, "Decide #");
    key(&mut p, 'd');
    expect(&mut p, "Reason for rejecting these 2 proposals");
    line(&mut p, "not this person");
    let screen = expect(&mut p, "Decide #");
    assert!(
        screen.contains("2 rejected for contacts/c-1001"),
        "{screen}"
    );
    assert_eq!(s.state("p1"), "rejected");
    assert_eq!(s.state("p2"), "rejected");
    // Undo takes back the last of them only.
    key(&mut p, 'u');
    expect(&mut p, "undid: rejected #");
    expect(&mut p, "Decide #");
    assert_eq!(s.state("p1"), "rejected");
    assert_eq!(s.state("p2"), "pending");
    key(&mut p, 'a');
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("approved for contacts/c-1001"), "{screen}");
    assert_eq!(s.state("p2"), "approved");
    key(&mut p, 'q');
    p.exp_eof().expect("exit");
}

#[test]
fn a_merge_is_shown_side_by_side_with_the_rows_it_moves() {
    let s = store(
        "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n\
         m1,dedupe,merge,contacts,c-1376,,,c-1345,0.9,,,Same email and phone\n",
    );
    let mut p = review(&s, "alice", &["--kind", "merge"]);
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("Merge c-1376 into c-1345"), "{screen}");
    assert!(screen.contains("c-1376 (goes away)"), "{screen}");
    assert!(screen.contains("c-1345 (stays)"), "{screen}");
    assert!(screen.contains("last_name ≠"), "{screen}");
    assert!(
        screen.contains("1 related row re-pointed to c-1345: 1 activities.contact_id"),
        "{screen}"
    );
    key(&mut p, 'e');
    expect(&mut p, "a merge cannot be edited");
    key(&mut p, 'y');
    expect(&mut p, "Review done: 1 approved");
    p.exp_eof().expect("exit");
    assert_eq!(s.state("m1"), "approved");
}

#[test]
fn a_proposal_whose_record_changed_is_flagged_stale_and_not_approved() {
    let s = store(PROPOSALS);
    s.conn()
        .execute(
            "UPDATE contacts SET title = 'Deputy GC' WHERE id = 'c-1001'",
            [],
        )
        .unwrap();
    let mut p = review(&s, "alice", &[]);
    let screen = expect(&mut p, "Decide #");
    assert!(
        screen.contains("STALE: title is now \"Deputy GC\""),
        "{screen}"
    );
    key(&mut p, 'y');
    expect(&mut p, "not approved: stale");
    assert_eq!(s.state("p1"), "pending");
    key(&mut p, 'q');
    p.exp_eof().expect("exit");
}

#[test]
fn look_alike_characters_in_an_email_are_flagged() {
    // Ingest refuses such an address; one can still sit in the CRM, put there by another tool.
    let s = store(
        "id,source,kind,object,record,field,value,merge_into,confidence,expected,trigger,reason\n\
         x1,vendor,verify,contacts,c-1002,,valid,,0.9,,,Mailbox answers\n",
    );
    s.conn()
        .execute(
            "UPDATE contacts SET email = 'max@swift-d\u{435}vices.net' WHERE id = 'c-1002'",
            [],
        )
        .unwrap();
    let mut p = review(&s, "alice", &[]);
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("look-alike characters"), "{screen}");
    assert!(screen.contains("U+0435"), "{screen}");
    key(&mut p, 'q');
    p.exp_eof().expect("exit");
}

#[test]
fn invisible_and_line_breaking_characters_are_shown_escaped_on_the_review_screen() {
    let odd = [
        '\u{61c}',
        '\u{2028}',
        '\u{2029}',
        '\u{e0000}',
        '\u{e0041}',
        '\u{e007f}',
        '\u{3164}',
        '\u{115f}',
        '\u{180e}',
    ];
    let value: String = odd.iter().flat_map(|&c| ['x', c]).collect();
    let rows = format!(
        "id,source,kind,object,record,field,value,reason\n\
         p1,vendor,update,contacts,c-1001,title,{value},why{value}\n"
    );
    let s = store(&rows);
    let mut p = review(&s, "alice", &[]);
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("contacts/c-1001"), "{screen}");
    for c in odd {
        assert!(
            !screen.contains(c),
            "raw U+{:04X} on screen:\n{screen}",
            c as u32
        );
        let shown = format!("\\u{{{:x}}}", c as u32);
        assert!(screen.contains(&shown), "{shown} not on screen:\n{screen}");
    }
    key(&mut p, 'q');
}
