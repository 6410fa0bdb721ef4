//! `cargo bench --bench apply`: how fast `crmgate apply` writes approved changes, and
//! `crmgate revert --run` undoes them, against raw SQL doing the same writes.
//!
//! Builds a store of `CRMGATE_BENCH_ROWS` contacts (default 1,000,000) and as many approved
//! field updates, then times `crmgate apply` and `crmgate revert --run 1`. In the same run the
//! raw-SQL equivalent goes through the sqlite3 CLI: one transaction of an `UPDATE` plus one
//! audit `INSERT` per change, for the apply and again for the revert. Ceilings: both at most
//! 1.6x raw SQL, peak memory under 100 MB. Each contender runs `CRMGATE_BENCH_TRIALS` times
//! (default 3), alternating, each time from a fresh copy of the store; each one's best run is
//! compared. Without `--bench` (as `cargo test --all-targets` runs it) it is a 1,000-row smoke
//! run. benches/README.md has the history of its figures.

#[path = "support/measure.rs"]
mod measure;

use std::error::Error;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const CRMGATE: &str = env!("CARGO_BIN_EXE_crmgate");
const TARGET_RATIO: f64 = 1.6;
const TARGET_PEAK_MB: f64 = 100.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("apply benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn crmgate(db: &Path) -> Command {
    let mut c = Command::new(CRMGATE);
    c.env_remove("CRMGATE_DB")
        .env_remove("CRMGATE_USER")
        .arg("--db")
        .arg(db)
        .arg("--quiet");
    c
}

fn setup(dir: &Path, n: usize) -> Result<std::path::PathBuf> {
    let db = dir.join("base.db");
    let log = dir.join("setup");
    measure::run_ok(crmgate(&db).arg("init"), &log, "init")?;
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/policy/demo.toml"
    ))?
    .replace("max_auto_per_run = 1000 ", "max_auto_per_run = 100000000 ")
    .replace("max_auto_per_day = 10000", "max_auto_per_day = 100000000")
    // The OS user running the benchmark reverts the run: an admin may.
    .replace(
        "[roles]",
        &format!("[roles]\n\"{}\" = [\"admin\"]", crmgate::actor::os_user()),
    );
    std::fs::write(dir.join("policy.toml"), policy)?;
    measure::run_ok(
        crmgate(&db)
            .args(["policy", "set"])
            .arg(dir.join("policy.toml")),
        &log,
        "policy set",
    )?;
    // Written as they are made: a child's peak memory as the kernel reports it includes this
    // process's own peak, so the benchmark must never hold a million rows itself.
    let mut contacts = create(&dir.join("contacts.csv"))?;
    let mut proposals = create(&dir.join("proposals.csv"))?;
    writeln!(contacts, "id,first_name")?;
    writeln!(
        proposals,
        "id,source,kind,object,record,field,value,confidence"
    )?;
    for i in 0..n {
        writeln!(contacts, "k-{i},Kim")?;
        writeln!(
            proposals,
            "p-{i},clearbit,update,contacts,k-{i},title,Engineer {i},0.95"
        )?;
    }
    contacts.flush()?;
    proposals.flush()?;
    drop((contacts, proposals));
    let m = measure::run_ok(
        crmgate(&db)
            .args(["import", "contacts"])
            .arg(dir.join("contacts.csv")),
        &log,
        "import",
    )?;
    println!("  setup: import {n} contacts {:.2} s", m.secs);
    let m = measure::run_ok(
        crmgate(&db).arg("propose").arg(dir.join("proposals.csv")),
        &log,
        "propose",
    )?;
    println!(
        "  setup: propose {n} fills, all approved by the policy {:.2} s",
        m.secs
    );
    Ok(db)
}

/// The raw-SQL equivalent: one transaction, an UPDATE and an audit INSERT per change.
fn raw_script(dir: &Path, n: usize, revert: bool) -> Result<std::path::PathBuf> {
    let path = dir.join(if revert { "revert.sql" } else { "apply.sql" });
    let mut s = create(&path)?;
    writeln!(
        s,
        "PRAGMA synchronous = NORMAL;\nCREATE TABLE IF NOT EXISTS raw_audit (seq INTEGER PRIMARY KEY, at TEXT, object TEXT, record TEXT, field TEXT, before, after);\nBEGIN;"
    )?;
    for i in 0..n {
        let (before, after) = if revert {
            (format!("'Engineer {i}'"), "NULL".to_string())
        } else {
            ("NULL".to_string(), format!("'Engineer {i}'"))
        };
        writeln!(
            s,
            "UPDATE contacts SET title = {after} WHERE id = 'k-{i}';\nINSERT INTO raw_audit (at, object, record, field, before, after) VALUES (datetime('now'), 'contacts', 'k-{i}', 'title', {before}, {after});"
        )?;
    }
    writeln!(s, "COMMIT;")?;
    s.flush()?;
    Ok(path)
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    Ok(std::io::BufWriter::new(std::fs::File::create(path)?))
}

fn sqlite3(db: &Path, script: &Path) -> Result<Command> {
    let mut c = Command::new("sqlite3");
    c.arg("-batch")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::from(std::fs::File::open(script)?));
    Ok(c)
}

fn run() -> Result<()> {
    let n = measure::size("CRMGATE_BENCH_ROWS")?;
    let dir = measure::WorkDir::new("crmgate-bench-apply-")?;
    println!(
        "apply benchmark: {n} approved field updates in {}",
        dir.path().display()
    );
    let base = setup(dir.path(), n)?;
    let log = dir.path().join("measured");
    let with_raw = match measure::sqlite3_available() {
        Ok(()) => true,
        Err(why) => {
            println!("  raw SQL skipped: {why}");
            false
        }
    };
    let scripts = if with_raw {
        Some((
            raw_script(dir.path(), n, false)?,
            raw_script(dir.path(), n, true)?,
        ))
    } else {
        None
    };
    // Each trial starts from a fresh copy of the same store; crmgate and raw SQL alternate.
    let trials = measure::trials(if n >= 100_000 { 3 } else { 1 })?;
    let (mut apply, mut revert, mut raw_apply, mut raw_revert) = (vec![], vec![], vec![], vec![]);
    for t in 1..=trials {
        let a = dir.path().join(format!("a{t}.db"));
        std::fs::copy(&base, &a)?;
        apply.push(measure::run_ok(
            crmgate(&a).arg("apply"),
            &log,
            "crmgate apply",
        )?);
        revert.push(measure::run_ok(
            crmgate(&a).args(["revert", "--run", "1"]),
            &log,
            "crmgate revert",
        )?);
        std::fs::remove_file(&a)?;
        if let Some((s1, s2)) = &scripts {
            let b = dir.path().join(format!("b{t}.db"));
            std::fs::copy(&base, &b)?;
            raw_apply.push(measure::run_ok(&mut sqlite3(&b, s1)?, &log, "raw apply")?);
            raw_revert.push(measure::run_ok(&mut sqlite3(&b, s2)?, &log, "raw revert")?);
            std::fs::remove_file(&b)?;
        }
        println!(
            "  trial {t}/{trials}: apply {:.2} s, revert {:.2} s{}",
            apply[t - 1].secs,
            revert[t - 1].secs,
            if with_raw {
                format!(
                    "; raw apply {:.2} s, raw revert {:.2} s",
                    raw_apply[t - 1].secs,
                    raw_revert[t - 1].secs
                )
            } else {
                String::new()
            }
        );
    }
    let raw = |runs: &[measure::Measured]| (!runs.is_empty()).then(|| measure::best(runs));
    let (raw_apply, raw_revert) = (raw(&raw_apply), raw(&raw_revert));
    let (apply, revert) = (measure::best(&apply), measure::best(&revert));
    let line = |what: &str, m: &measure::Measured, raw: &Option<measure::Measured>| {
        let ratio = raw.as_ref().map(|r| m.secs / r.secs);
        println!(
            "  {what:<22} {:>7.2} s  {:>6.0} k/s  peak RSS {:>4.0} MB{}{}   raw SQL {}   ratio {}",
            m.secs,
            n as f64 / m.secs / 1000.0,
            m.peak_mb(),
            if m.peak_mb() < TARGET_PEAK_MB {
                String::new()
            } else {
                format!(" (target < {TARGET_PEAK_MB:.0} MB: MISSED)")
            },
            m.wrote(),
            raw.as_ref()
                .map(|r| format!("{:.2} s{}", r.secs, r.wrote()))
                .unwrap_or_else(|| "–".into()),
            ratio
                .map(|x| format!(
                    "{x:.2}x (target <= {TARGET_RATIO}x){}",
                    if x > TARGET_RATIO { "  MISSED" } else { "" }
                ))
                .unwrap_or_else(|| "–".into())
        );
    };
    println!("apply benchmark: {n} changes, best of {trials} runs each");
    line("crmgate apply", &apply, &raw_apply);
    line("crmgate revert --run", &revert, &raw_revert);
    Ok(())
}
