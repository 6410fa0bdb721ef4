//! The interactive review's dead ends, driven through a pseudo-terminal: the first screen is
//! one the reviewer can decide, undo puts the counter back, `?` keeps its indent, and an edit
//! can clear a field.

mod common;

use rexpect::session::{PtySession, spawn_command};

use common::{Env, PTY_TIMEOUT_MS as TIMEOUT_MS, expect};

const POLICY: &str = r#"
[defaults]
autonomy = "supervised"

[[rule]]
name = "owner-needs-manager"
kind = ["owner"]
action = "review"
approvers = ["manager"]

[roles]
alice = ["ops", "admin"]
mia = ["manager"]
"#;

/// c-1001's owner move takes a manager; alice may decide the rest.
const PROPOSALS: &str = "\
id,source,kind,object,record,field,value,confidence
q0,vendor,owner,contacts,c-1001,owner,mia,0.9
q1,vendor,update,contacts,c-1002,title,CFO,0.7
q2,vendor,update,contacts,c-1003,phone,+1 415 555 0100,0.7
q3,vendor,update,contacts,c-1004,title,COO,0.7
";

/// The bundled CRM under the policy above, with the proposals above queued.
fn store() -> Env {
    let s = Env::with_crm();
    let policy = s.policy("policy.toml", POLICY);
    s.cmd(&["policy", "set", &policy]).assert().success();
    let file = s.write("p.csv", PROPOSALS);
    s.cmd(&["propose", &file]).assert().success();
    s
}

impl Env {
    /// (state, value) of the proposal the source calls `ext_id`.
    fn proposal(&self, ext_id: &str) -> (String, Option<String>) {
        self.conn()
            .query_row(
                "SELECT state, CAST(value AS TEXT) FROM crmgate_proposals WHERE ext_id = ?1",
                [ext_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }
}

fn send(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

#[test]
fn the_review_starts_with_what_the_reviewer_can_decide_and_undo_puts_the_counter_back() {
    let s = store();
    let mut c = s.terminal("alice");
    c.arg("review");
    let mut p = spawn_command(c, Some(TIMEOUT_MS)).unwrap();

    // c-1001's owner move takes a manager: alice starts at c-1002.
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("1 of 4"), "{screen}");
    assert!(screen.contains("contacts/c-1002"), "{screen}");
    send(&mut p, "y");
    let screen = expect(&mut p, "Decide #");
    assert!(
        screen.contains("2 of 4") && screen.contains("contacts/c-1003"),
        "{screen}"
    );
    send(&mut p, "u");
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("undid: approved"), "{screen}");
    assert!(
        screen.contains("1 of 4") && screen.contains("contacts/c-1002"),
        "{screen}"
    );
    assert_eq!(s.proposal("q1").0, "pending");

    // The help's first line keeps its indent, like the others.
    send(&mut p, "?");
    let help = expect(&mut p, "this help");
    assert!(help.contains("\n  y  approve this proposal"), "{help:?}");
    assert!(help.contains("- clears the field"), "{help}");
    expect(&mut p, "Decide #");
    send(&mut p, "y");

    // A lone - clears the field.
    let screen = expect(&mut p, "Decide #");
    assert!(
        screen.contains("2 of 4") && screen.contains("contacts/c-1003"),
        "{screen}"
    );
    send(&mut p, "e");
    expect(&mut p, "New phone");
    send(&mut p, "-\r");
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("edited and approved"), "{screen}");
    assert_eq!(s.proposal("q2"), ("approved".into(), None));

    // Then c-1004, and last the one alice may not decide, saying why it is shown.
    assert!(screen.contains("contacts/c-1004"), "{screen}");
    send(&mut p, "s");
    let screen = expect(&mut p, "Decide #");
    assert!(screen.contains("contacts/c-1001"), "{screen}");
    assert!(screen.contains("waits for someone else"), "{screen}");
    assert!(screen.contains("You (alice) may not approve"), "{screen}");
    send(&mut p, "q");
    expect(&mut p, "Review done");
    p.exp_eof().unwrap();
    assert_eq!(s.proposal("q0").0, "pending");
}
