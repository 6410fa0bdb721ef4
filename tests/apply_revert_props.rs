//! Property: applying any set of approved updates and merges to any small CRM and reverting the
//! run restores the CRM tables exactly; and reverting after a later edit is refused and changes
//! nothing. Drives the real binary.

mod common;

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use common::crm_dump_of;

fn crmgate(db: &Path) -> Command {
    let mut c = common::crmgate();
    c.env("CRMGATE_USER", "alice")
        .arg("--db")
        .arg(db)
        .arg("--quiet");
    c
}

fn code(c: &mut Command) -> Option<i32> {
    c.output().expect("run crmgate").status.code()
}

#[derive(Debug, Clone)]
enum Op {
    /// Set a contact's field (title or phone) to a value, or clear it.
    Update {
        contact: usize,
        phone: bool,
        value: Option<u16>,
    },
    /// Merge one contact into another.
    Merge { duplicate: usize, into: usize },
}

fn op(contacts: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..contacts, any::<bool>(), proptest::option::of(0u16..50))
            .prop_map(|(contact, phone, value)| Op::Update { contact, phone, value }),
        1 => (0..contacts, 0..contacts)
            .prop_filter("two different records", |(a, b)| a != b)
            .prop_map(|(duplicate, into)| Op::Merge { duplicate, into }),
    ]
}

/// A small CRM: contacts with some fields set, activities and deals pointing at them.
fn store(dir: &Path, contacts: usize, filled: &[bool]) -> std::path::PathBuf {
    let db = dir.join("p.db");
    assert_eq!(code(crmgate(&db).arg("init")), Some(0));
    let mut c = String::from("id,name\nco-1,Acme\n");
    std::fs::write(dir.join("co.csv"), &c).unwrap();
    assert_eq!(
        code(
            crmgate(&db)
                .args(["import", "companies"])
                .arg(dir.join("co.csv"))
        ),
        Some(0)
    );
    c = String::from("id,first_name,last_name,title,phone,company_id\n");
    let mut a = String::from("id,contact_id,kind\n");
    let mut d = String::from("id,name,company_id,contact_id\n");
    for i in 0..contacts {
        let title = if filled[i % filled.len()] {
            format!("Title {i}")
        } else {
            String::new()
        };
        c.push_str(&format!("c-{i},Ann,Lee,{title},,co-1\n"));
        a.push_str(&format!("a-{i},c-{i},call\n"));
        if i % 2 == 0 {
            d.push_str(&format!("d-{i},Deal {i},co-1,c-{i}\n"));
        }
    }
    for (t, body) in [("contacts", c), ("activities", a), ("deals", d)] {
        let f = dir.join(format!("{t}.csv"));
        std::fs::write(&f, body).unwrap();
        assert_eq!(code(crmgate(&db).args(["import", t]).arg(f)), Some(0));
    }
    db
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn apply_then_revert_is_the_identity(
        contacts in 3usize..7,
        filled in proptest::collection::vec(any::<bool>(), 1..4),
        ops in proptest::collection::vec(op(6), 1..10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = store(dir.path(), contacts, &filled);
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|o| match o {
                Op::Update { contact, .. } => *contact < contacts,
                Op::Merge { duplicate, into } => *duplicate < contacts && *into < contacts,
            })
            .collect();
        prop_assume!(!ops.is_empty());
        let mut rows = String::from("id,source,kind,object,record,field,value,merge_into\n");
        for (i, o) in ops.iter().enumerate() {
            match o {
                Op::Update { contact, phone, value } => {
                    let (field, v) = if *phone {
                        ("phone", value.map(|v| format!("+1 415 555 {:04}", v)).unwrap_or_default())
                    } else {
                        ("title", value.map(|v| format!("Role {v}")).unwrap_or_default())
                    };
                    rows.push_str(&format!("o-{i},bot,update,contacts,c-{contact},{field},{v},\n"));
                }
                Op::Merge { duplicate, into } => {
                    rows.push_str(&format!("o-{i},bot,merge,contacts,c-{duplicate},,,c-{into}\n"));
                }
            }
        }
        std::fs::write(dir.path().join("ops.csv"), rows).unwrap();
        prop_assert_eq!(code(crmgate(&db).arg("propose").arg(dir.path().join("ops.csv"))), Some(0));
        // Approve whatever is still undecided (superseded twins are not), then apply.
        let _ = code(crmgate(&db).args(["approve", "--source", "bot", "--yes"]));
        let before = crm_dump_of(&db);
        prop_assert!(matches!(code(crmgate(&db).arg("apply")), Some(0 | 3)));
        let changed = rusqlite::Connection::open(&db).unwrap()
            .query_row("SELECT count(*) FROM crmgate_changes", [], |r| r.get::<_, i64>(0)).unwrap();
        if std::env::var_os("CRMGATE_PROP_STATS").is_some() {
            let merges = rusqlite::Connection::open(&db).unwrap()
                .query_row("SELECT count(*) FROM crmgate_changes WHERE field = '*'", [], |r| r.get::<_, i64>(0)).unwrap();
            eprintln!("case: {} ops, {changed} changes, {merges} merges applied", ops.len());
        }
        if changed == 0 {
            return Ok(());
        }
        // A later edit of a changed field makes the revert a conflict, and nothing changes.
        let (rec, field, kind): (String, String, String) = rusqlite::Connection::open(&db).unwrap()
            .query_row(
                "SELECT c.record, c.field, c.object FROM crmgate_changes c
                 WHERE c.field IN ('title', 'phone') AND c.object = 'contacts'
                   AND EXISTS (SELECT 1 FROM contacts k WHERE k.id = c.record)
                 ORDER BY c.id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap_or_default();
        if !rec.is_empty() && kind == "contacts" {
            let later = rusqlite::Connection::open(&db).unwrap();
            let old: Option<String> = later
                .query_row(&format!("SELECT {field} FROM contacts WHERE id = ?1"), [&rec], |r| r.get(0))
                .unwrap();
            later.execute(&format!("UPDATE contacts SET {field} = 'Edited later' WHERE id = ?1"), [&rec]).unwrap();
            let edited = crm_dump_of(&db);
            prop_assert_eq!(code(crmgate(&db).args(["revert", "--run", "1"])), Some(1));
            prop_assert_eq!(crm_dump_of(&db), edited, "a refused revert changes nothing");
            later.execute(&format!("UPDATE contacts SET {field} = ?2 WHERE id = ?1"), rusqlite::params![rec, old]).unwrap();
        }
        prop_assert_eq!(code(crmgate(&db).args(["revert", "--run", "1"])), Some(0));
        prop_assert_eq!(crm_dump_of(&db), before);
    }
}
