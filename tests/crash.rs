//! Kills `crmgate apply` with SIGKILL at random moments and checks that every proposal is either
//! applied with its change row or untouched, that the file is intact, and that a re-run finishes
//! the rest. `CRMGATE_CRASH_CHANGES` (default 1,000) and `CRMGATE_CRASH_TRIALS` (default 20) set
//! the size; the full run is 10,000 changes over 50 trials. An apply commits in chunks
//! (`CRMGATE_APPLY_CHUNK`, here a quarter of the run unless `CRMGATE_CRASH_CHUNK` says), so a
//! kill may leave whole chunks committed, never part of one.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn chunk() -> usize {
    env_or(
        "CRMGATE_CRASH_CHUNK",
        (env_or("CRMGATE_CRASH_CHANGES", 1_000) / 4).max(1),
    )
}

fn crmgate(db: &Path) -> Command {
    let mut c = common::crmgate();
    c.env("CRMGATE_APPLY_CHUNK", chunk().to_string())
        .env("CRMGATE_USER", "cron")
        .arg("--db")
        .arg(db)
        .arg("--quiet");
    c
}

fn run_ok(c: &mut Command) {
    let out = c.output().expect("run crmgate");
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A store with `n` approved proposals: fills of an empty title, let through by a policy whose
/// limits allow them all.
fn base_store(dir: &Path, n: usize) -> std::path::PathBuf {
    let db = dir.join("base.db");
    run_ok(crmgate(&db).args(["init"]));
    let policy = common::demo_policy()
        .replace("max_auto_per_run = 1000 ", "max_auto_per_run = 1000000 ")
        .replace("max_auto_per_day = 10000", "max_auto_per_day = 1000000");
    std::fs::write(dir.join("policy.toml"), common::with_test_admins(&policy)).unwrap();
    run_ok(
        crmgate(&db)
            .args(["policy", "set"])
            .arg(dir.join("policy.toml")),
    );
    let mut contacts = String::from("id,first_name\n");
    let mut proposals = String::from("id,source,kind,object,record,field,value,confidence\n");
    for i in 0..n {
        contacts.push_str(&format!("k-{i},Kim\n"));
        proposals.push_str(&format!(
            "p-{i},clearbit,update,contacts,k-{i},title,Engineer {i},0.95\n"
        ));
    }
    std::fs::write(dir.join("contacts.csv"), contacts).unwrap();
    std::fs::write(dir.join("proposals.csv"), proposals).unwrap();
    run_ok(
        crmgate(&db)
            .args(["import", "contacts"])
            .arg(dir.join("contacts.csv")),
    );
    run_ok(
        crmgate(&db)
            .args(["propose"])
            .arg(dir.join("proposals.csv")),
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let approved: i64 = conn
        .query_row(
            "SELECT count(*) FROM crmgate_proposals WHERE state = 'approved'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        approved as usize, n,
        "every proposal approved by the policy"
    );
    db
}

/// Every proposal is applied with exactly one change that wrote its value, or untouched.
fn check_consistent(db: &Path, n: usize) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let bad: i64 = conn
        .query_row(
            "SELECT count(*) FROM crmgate_proposals p JOIN contacts c ON c.id = p.record
             WHERE NOT (
               (p.state = 'applied' AND c.title = p.value
                AND (SELECT count(*) FROM crmgate_changes x WHERE x.proposal_id = p.id) = 1)
               OR (p.state = 'approved' AND c.title IS NULL
                AND (SELECT count(*) FROM crmgate_changes x WHERE x.proposal_id = p.id) = 0))",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 0, "proposals half applied");
    let applied: i64 = conn
        .query_row(
            "SELECT count(*) FROM crmgate_proposals WHERE state = 'applied'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let events: i64 = conn
        .query_row(
            "SELECT count(*) FROM crmgate_events WHERE action = 'apply'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        events, applied,
        "an apply event for every applied proposal, and only for those"
    );
    assert!(applied as usize <= n);
    applied as usize
}

#[test]
fn apply_killed_at_random_moments_leaves_every_proposal_applied_or_untouched() {
    let n = env_or("CRMGATE_CRASH_CHANGES", 1_000);
    let trials = env_or("CRMGATE_CRASH_TRIALS", 20);
    let dir = tempfile::tempdir().unwrap();
    let base = base_store(dir.path(), n);
    // How long a whole apply takes here, to spread the kills over it.
    let timing = dir.path().join("timing.db");
    std::fs::copy(&base, &timing).unwrap();
    let started = Instant::now();
    run_ok(crmgate(&timing).arg("apply"));
    let full = started.elapsed();
    assert_eq!(check_consistent(&timing, n), n);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let (mut none, mut all, mut some) = (0, 0, 0);
    for trial in 0..trials {
        let db = dir.path().join(format!("trial-{trial}.db"));
        std::fs::copy(&base, &db).unwrap();
        let mut child = crmgate(&db)
            .arg("apply")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = full.mul_f64(rng.random_range(0.0..1.1));
        std::thread::sleep(wait.min(Duration::from_secs(30)));
        let _ = child.kill(); // SIGKILL; it may have finished already
        let _ = child.wait();
        match check_consistent(&db, n) {
            0 => none += 1,
            x if x == n => all += 1,
            x if x % chunk() == 0 => some += 1,
            x => panic!(
                "trial {trial}: {x} of {n} applied: each chunk of {} must be all or nothing",
                chunk()
            ),
        }
        // A re-run finishes the rest.
        run_ok(crmgate(&db).arg("apply"));
        assert_eq!(
            check_consistent(&db, n),
            n,
            "trial {trial}: the re-run applied the rest"
        );
        std::fs::remove_file(&db).ok();
    }
    eprintln!(
        "{trials} kills over a {:.2} s apply of {n} changes in chunks of {}: {none} before the first commit, {some} between chunks, {all} after the last",
        full.as_secs_f64(),
        chunk()
    );
}
