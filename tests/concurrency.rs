//! Two processes on one store, as in production: a cron job applying in a loop while a person
//! approves proposals one by one. For `CRMGATE_RACE_SECS` seconds (default 30): no decision is
//! lost, no change is applied twice, and no raw SQLITE_BUSY reaches either of them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn crmgate(db: &Path, actor: &str) -> Command {
    let mut c = common::crmgate();
    c.arg("--db").arg(db).arg("--as").arg(actor);
    c
}

/// What a run of one command looked like: its exit code and whether SQLite's own words leaked.
fn run(c: &mut Command) -> (Option<i32>, String) {
    let out = c.output().expect("run crmgate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn leaked(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("database is locked")
        || s.contains("sqlite_busy")
        || s.contains("database table is locked")
}

/// `c.csv` with contacts `r-0`… and `p.csv` with one title proposal from `source` for each.
fn write_inputs(dir: &Path, n: usize, source: &str, confidence: &str) {
    let mut contacts = String::from("id,first_name\n");
    let mut proposals = String::from("id,source,kind,object,record,field,value,confidence\n");
    for i in 0..n {
        contacts.push_str(&format!("r-{i},Ray\n"));
        proposals.push_str(&format!(
            "q-{i},{source},update,contacts,r-{i},title,Analyst {i},{confidence}\n"
        ));
    }
    std::fs::write(dir.join("c.csv"), contacts).unwrap();
    std::fs::write(dir.join("p.csv"), proposals).unwrap();
}

fn setup(dir: &Path, n: usize) -> PathBuf {
    let db = dir.join("race.db");
    assert_eq!(run(crmgate(&db, "admin").arg("init")).0, Some(0));
    // An unlisted source is supervised: every proposal waits for a human.
    write_inputs(dir, n, "zoominfo", "0.9");
    assert_eq!(
        run(crmgate(&db, "admin")
            .args(["import", "contacts"])
            .arg(dir.join("c.csv")))
        .0,
        Some(0)
    );
    assert_eq!(
        run(crmgate(&db, "admin").arg("propose").arg(dir.join("p.csv"))).0,
        Some(0)
    );
    db
}

#[test]
fn a_cron_apply_loop_and_a_person_approving_never_lose_or_double_anything() {
    let secs: u64 = std::env::var("CRMGATE_RACE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // Enough that the person is still approving when the time is up: both race throughout.
    let n = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path(), n);
    let deadline = Instant::now() + Duration::from_secs(secs);

    let cron_db = db.clone();
    let cron = std::thread::spawn(move || {
        let mut runs = 0;
        while Instant::now() < deadline {
            let (code, err) = run(crmgate(&cron_db, "cron").args(["--quiet", "apply"]));
            assert!(matches!(code, Some(0 | 3)), "apply exited {code:?}: {err}");
            assert!(!leaked(&err), "apply leaked: {err}");
            runs += 1;
        }
        runs
    });

    let mut approved = Vec::new();
    for i in 0..n {
        if Instant::now() >= deadline {
            break;
        }
        let (code, err) =
            run(crmgate(&db, "alice").args(["--quiet", "approve", &format!("zoominfo:q-{i}")]));
        assert_eq!(code, Some(0), "approve q-{i}: {err}");
        assert!(!leaked(&err), "approve leaked: {err}");
        approved.push(i);
    }
    let cron_runs = cron.join().expect("the cron loop");
    // One last run applies what the loop did not get to.
    assert!(matches!(
        run(crmgate(&db, "cron").arg("apply")).0,
        Some(0 | 3)
    ));

    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert!(
        approved.len() > 10,
        "the race ran ({} approvals, {cron_runs} applies)",
        approved.len()
    );
    // No lost decision: every approval is an event, and every approved proposal was applied.
    assert_eq!(
        count("SELECT count(*) FROM crmgate_events WHERE action = 'approve'") as usize,
        approved.len()
    );
    assert_eq!(
        count("SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'") as usize,
        approved.len()
    );
    // Nothing applied twice.
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT proposal_id FROM crmgate_changes GROUP BY proposal_id HAVING count(*) > 1)"
        ),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM crmgate_changes") as usize,
        approved.len()
    );
    // The records hold exactly what was approved.
    assert_eq!(
        count(
            "SELECT count(*) FROM contacts c JOIN crmgate_proposals p ON p.record = c.id WHERE p.state = 'applied' AND c.title = p.value"
        ) as usize,
        approved.len()
    );
    assert_eq!(
        run(crmgate(&db, "audit").args(["audit", "verify"])).0,
        Some(0)
    );
    eprintln!(
        "{secs} s: {} approvals and {cron_runs} apply runs, no loss, no double apply",
        approved.len()
    );
}

/// Two `apply` runs started at once on a long queue (a cron job overlapping the last one), each
/// in chunks long enough that it reads its proposals ahead on a second connection: every
/// proposal is applied once, by one of them.
#[test]
fn two_apply_runs_at_once_apply_each_proposal_once() {
    // Under the policy's 10,000 a day, and long enough that the two runs overlap: fifteen
    // chunks each, taken in turns.
    let n = 9_000;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = dir.join("race.db");
    assert_eq!(run(crmgate(&db, "admin").arg("init")).0, Some(0));
    let policy =
        common::demo_policy().replace("max_auto_per_run = 1000 ", "max_auto_per_run = 100000 ");
    std::fs::write(dir.join("policy.toml"), common::with_test_admins(&policy)).unwrap();
    assert_eq!(
        run(crmgate(&db, "admin")
            .args(["policy", "set"])
            .arg(dir.join("policy.toml")))
        .0,
        Some(0)
    );
    // An autonomous source filling an empty field: the policy approves it.
    write_inputs(dir, n, "clearbit", "0.95");
    for (args, file) in [
        (["import", "contacts"].as_slice(), "c.csv"),
        (&["propose"], "p.csv"),
    ] {
        let (code, err) = run(crmgate(&db, "admin").args(args).arg(dir.join(file)));
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    let racers: Vec<_> = ["cron-a", "cron-b"]
        .into_iter()
        .map(|actor| {
            let db = db.clone();
            std::thread::spawn(move || {
                run(crmgate(&db, actor)
                    .env("CRMGATE_APPLY_CHUNK", "600")
                    .args(["--quiet", "apply"]))
            })
        })
        .collect();
    for racer in racers {
        let (code, err) = racer.join().unwrap();
        assert!(matches!(code, Some(0 | 3)), "apply exited {code:?}: {err}");
        assert!(!leaked(&err), "apply leaked: {err}");
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'"),
        n as i64
    );
    assert_eq!(count("SELECT count(*) FROM crmgate_changes"), n as i64);
    assert_eq!(
        count("SELECT count(DISTINCT proposal_id) FROM crmgate_changes"),
        n as i64
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM contacts c JOIN crmgate_proposals p ON p.record = c.id
             WHERE c.title IS p.value"
        ),
        n as i64
    );
    assert_eq!(
        run(crmgate(&db, "audit").args(["audit", "verify"])).0,
        Some(0)
    );
}
