//! `cargo bench --bench propose`: how fast `crmgate propose` queues proposals, and how much
//! memory it needs, against the cheapest raw-SQL way to do comparable work.
//!
//! Size: env `CRMGATE_BENCH_ROWS` contacts and as many proposals (default 1,000,000).
//! Env `CRMGATE_BENCH_KEEP=1` keeps the temporary directory (every benchmark does).
//!
//! Phases, each printed as it runs:
//! 1. generate a deterministic dataset (`crmgate-gen`, in gen/) into a temporary directory;
//! 2. build a base store with the real binary (`init` + `import` of the four tables) — setup,
//!    not measured — and copy it, so every measured run starts from the same bytes;
//! 3. measured: `crmgate --quiet propose proposals.csv` on one copy;
//! 4. measured: one `sqlite3` process on another copy that imports the CSV into a staging
//!    table and, in the same transaction, joins every proposal to its record's current value
//!    into `raw_queue` — roughly the floor for "ingest and look up the record";
//! 5. reference: `sqlite3 .import` alone on a third copy;
//! 6. a summary with the ceilings (crmgate at most 1.5x raw SQL, peak RSS under 100 MB).
//!
//! Phases 3 to 5 run `CRMGATE_BENCH_TRIALS` times (default 3), alternating, each from a fresh
//! copy of the base store; the summary compares each contender's best run.
//!
//! Time is wall time of the whole child process; peak memory is the child's own `ru_maxrss`
//! from `wait4`; "wrote" is the file data it handed the OS (`/proc/PID/io` `wchar`). The process
//! exits non-zero only when something actually failed (a child exited non-zero, counts are
//! wrong); a missed target is printed as MISSED, not an error.

#[path = "support/measure.rs"]
mod measure;

use std::error::Error;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crmgate_gen::{
    COMPANY_COLUMNS, CONTACT_COLUMNS, DEAL_COLUMNS, GenConfig, PROPOSAL_COLUMNS, TABLES,
};
use measure::{Measured, run_ok};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const CRMGATE: &str = env!("CARGO_BIN_EXE_crmgate");
const TARGET_RATIO: f64 = 1.5;
const TARGET_PEAK_MB: f64 = 100.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("propose benchmark FAILED: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let rows = measure::size("CRMGATE_BENCH_ROWS")?;
    let work = measure::WorkDir::new("crmgate-bench-")?;
    let dir = work.path();
    println!(
        "propose benchmark: {rows} contacts, {rows} proposals, in {}",
        dir.display()
    );

    generate(dir, rows)?;
    let base = build_base_store(dir)?;
    let with_raw = match measure::sqlite3_available() {
        Ok(()) => true,
        Err(why) => {
            println!("[4/5] raw SQL: skipped: {why}");
            false
        }
    };
    // Each trial starts every contender from a fresh copy of base.db; they alternate, and
    // each one's best run is compared (one slow moment on a shared machine skews a single run).
    let trials = measure::trials(if rows >= 100_000 { 3 } else { 1 })?;
    let (mut crmgate, mut joined, mut plain) = (vec![], vec![], vec![]);
    for t in 1..=trials {
        println!("-- trial {t}/{trials}");
        crmgate.push(fresh(dir, &base, "a.db", |db| {
            bench_crmgate(dir, db, rows)
        })?);
        if with_raw {
            joined.push(fresh(dir, &base, "b.db", |db| {
                bench_raw_sql(dir, db, rows)
            })?);
            plain.push(fresh(dir, &base, "c.db", |db| bench_plain_import(dir, db))?);
        }
    }
    let crmgate = measure::best(&crmgate);
    let raw = with_raw.then(|| (measure::best(&joined), measure::best(&plain)));
    print_summary(rows, trials, &crmgate, raw.as_ref());
    Ok(())
}

/// Runs `f` on a fresh copy of `base` named `name`, removed afterwards.
fn fresh(
    dir: &Path,
    base: &Path,
    name: &str,
    f: impl FnOnce(&str) -> Result<Measured>,
) -> Result<Measured> {
    let db = dir.join(name);
    fs::copy(base, &db)?;
    let m = f(name)?;
    fs::remove_file(&db)?;
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Running a child and measuring it
// ---------------------------------------------------------------------------------------

fn crmgate(dir: &Path, db: &str) -> Command {
    let mut cmd = Command::new(CRMGATE);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .args(["--db", db, "--color", "never"]);
    cmd
}

/// `sqlite3 DB` reading SCRIPT on stdin: `-bail` makes the first error fail the process
/// (non-zero exit) instead of carrying on; `-init /dev/null` keeps a ~/.sqliterc out of it.
fn sqlite3(dir: &Path, db: &str, script: &Path) -> Result<Command> {
    let mut cmd = Command::new("sqlite3");
    cmd.current_dir(dir)
        .args(["-batch", "-bail", "-init", "/dev/null", db])
        .stdin(File::open(script)?);
    Ok(cmd)
}

// ---------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------

/// Phase 1: the dataset.
fn generate(dir: &Path, rows: usize) -> Result<()> {
    let start = Instant::now();
    let summary = crmgate_gen::write_dataset(dir, &GenConfig::scaled(rows, rows))?;
    println!(
        "[1/5] generated {:.1} MB in {:.2} s",
        summary.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    for (name, count) in [
        ("companies", summary.companies),
        ("contacts", summary.contacts),
        ("deals", summary.deals),
        ("activities", summary.activities),
        ("proposals", summary.proposals),
    ] {
        let len = fs::metadata(dir.join(format!("{name}.csv")))?.len();
        println!(
            "      {name:<11}{count:>10} rows {:>9.1} MB",
            len as f64 / 1e6
        );
    }
    Ok(())
}

/// Phase 2: base.db through crmgate itself, so the measured runs see exactly the store a
/// user would have after `init` and `import`.
fn build_base_store(dir: &Path) -> Result<PathBuf> {
    println!("[2/5] base store (setup, not measured)");
    let m = run_ok(
        crmgate(dir, "base.db").arg("init"),
        &dir.join("init"),
        "crmgate init",
    )?;
    println!("      init                 {:>8.2} s", m.secs);
    for table in TABLES {
        let file = format!("{table}.csv");
        let m = run_ok(
            crmgate(dir, "base.db").args(["--quiet", "import", table, &file]),
            &dir.join(format!("import-{table}")),
            &format!("crmgate import {table}"),
        )?;
        println!("      import {table:<13} {:>8.2} s", m.secs);
    }
    // The copies below take only base.db: that is the whole store only if the last
    // connection checkpointed the WAL into it on close.
    let wal = dir.join("base.db-wal");
    if wal.exists() {
        return Err(format!("{} still exists after crmgate exited", wal.display()).into());
    }
    let base = dir.join("base.db");
    println!(
        "      base.db {:.1} MB, no -wal file",
        fs::metadata(&base)?.len() as f64 / 1e6
    );
    Ok(base)
}

/// Phase 3: the measured figure.
fn bench_crmgate(dir: &Path, db: &str, rows: usize) -> Result<Measured> {
    println!("[3/5] crmgate --quiet propose proposals.csv ({db})");
    let m = run_ok(
        crmgate(dir, db).args(["--quiet", "propose", "proposals.csv"]),
        &dir.join("propose"),
        "crmgate propose",
    )?;
    println!(
        "      {:.2} s, peak RSS {:.1} MB{}",
        m.secs,
        m.peak_mb(),
        m.wrote()
    );

    // Prove the time bought real work: every proposal is in the queue, with a state.
    let db = rusqlite::Connection::open(dir.join(db))?;
    let total: i64 = db.query_row("SELECT count(*) FROM crmgate_proposals", [], |r| r.get(0))?;
    println!("      crmgate_proposals: {total} rows");
    let mut by_state =
        db.prepare("SELECT state, count(*) FROM crmgate_proposals GROUP BY state ORDER BY 2 DESC")?;
    let states = by_state.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for state in states {
        let (state, n) = state?;
        println!("        {state:<11}{n:>10}");
    }
    if total != rows as i64 {
        return Err(format!("crmgate_proposals holds {total} rows, expected {rows}").into());
    }
    Ok(m)
}

/// Phase 4: the raw-SQL equivalent, one sqlite3 process, one transaction.
fn bench_raw_sql(dir: &Path, db: &str, rows: usize) -> Result<Measured> {
    println!("[4/5] sqlite3: .import + INSERT INTO raw_queue SELECT ... JOIN ({db})");
    let script = dir.join("raw.sql");
    fs::write(&script, raw_sql_script())?;
    let m = run_ok(
        &mut sqlite3(dir, db, &script)?,
        &dir.join("raw"),
        "sqlite3 raw SQL",
    )?;
    println!(
        "      {:.2} s, peak RSS {:.1} MB{}",
        m.secs,
        m.peak_mb(),
        m.wrote()
    );

    let db = rusqlite::Connection::open(dir.join(db))?;
    let (total, with_current): (i64, i64) =
        db.query_row("SELECT count(*), count(current) FROM raw_queue", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    println!("      raw_queue: {total} rows, {with_current} with a current value");
    if total != rows as i64 {
        return Err(format!("raw_queue holds {total} rows, expected {rows}").into());
    }
    Ok(m)
}

/// Phase 5: what just getting the CSV into a table costs, for reference.
fn bench_plain_import(dir: &Path, db: &str) -> Result<Measured> {
    println!("[5/5] sqlite3: .import alone ({db})");
    let script = dir.join("import.sql");
    fs::write(&script, ".mode csv\n.import --csv proposals.csv staging\n")?;
    let m = run_ok(
        &mut sqlite3(dir, db, &script)?,
        &dir.join("import"),
        "sqlite3 .import",
    )?;
    println!(
        "      {:.2} s, peak RSS {:.1} MB{}",
        m.secs,
        m.peak_mb(),
        m.wrote()
    );
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// The raw SQL
// ---------------------------------------------------------------------------------------

/// The sqlite3 script of phase 4. `raw_queue` is created first with the staging columns
/// plus `current`; `.import` into the missing table `staging` creates it from the header
/// (all TEXT, empty cells as ''). sqlite3's `.import` only opens its own transaction when
/// none is open, so everything lands in the one BEGIN ... COMMIT.
fn raw_sql_script() -> String {
    let columns = PROPOSAL_COLUMNS.map(quote).join(", ");
    let selected = PROPOSAL_COLUMNS
        .map(|c| {
            if c == "field" {
                "p.f".to_string()
            } else {
                format!("p.{}", quote(c))
            }
        })
        .join(", ");
    format!(
        "\
-- crmgate runs with synchronous = NORMAL; match it so only the work differs.
PRAGMA synchronous = NORMAL;
BEGIN;
CREATE TABLE raw_queue ({columns}, current);
.mode csv
.import --csv proposals.csv staging
INSERT INTO raw_queue
SELECT {selected}, {current}
FROM (
    SELECT *, CASE
        WHEN field <> '' THEN field
        WHEN kind = 'verify' THEN 'email_status'
        WHEN kind = 'lifecycle' THEN 'lifecycle_stage'
        WHEN kind = 'owner' THEN 'owner'
    END AS f
    FROM staging
) AS p
LEFT JOIN contacts AS ct ON p.object = 'contacts' AND ct.id = p.record
LEFT JOIN companies AS co ON p.object = 'companies' AND co.id = p.record
LEFT JOIN deals AS de ON p.object = 'deals' AND de.id = p.record;
COMMIT;
",
        current = current_value_case(),
    )
}

/// `CASE` picking the current value of the proposal's field `p.f` from the joined record:
/// one arm per object, one `WHEN` per column of that object.
fn current_value_case() -> String {
    let arm = |object: &str, alias: &str, columns: &[&str]| {
        let whens: String = columns
            .iter()
            .map(|c| format!(" WHEN '{c}' THEN {alias}.{}", quote(c)))
            .collect();
        format!("\n    WHEN p.object = '{object}' THEN CASE p.f{whens} END")
    };
    format!(
        "CASE{}{}{}\n  END",
        arm("contacts", "ct", &CONTACT_COLUMNS),
        arm("companies", "co", &COMPANY_COLUMNS),
        arm("deals", "de", &DEAL_COLUMNS),
    )
}

/// Column names come from the generator's constants; quoted because `trigger` is a keyword.
fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

fn print_summary(
    rows: usize,
    trials: usize,
    crmgate: &Measured,
    raw: Option<&(Measured, Measured)>,
) {
    let rate = |m: &Measured| rows as f64 / m.secs / 1e3;
    let verdict = |ok: bool| if ok { "" } else { "  MISSED" };
    println!();
    println!(
        "propose benchmark: {rows} proposals over {rows} contacts, best of {trials} runs each"
    );
    println!(
        "  crmgate propose       {:>6.2} s {:>6.0} k rows/s   peak RSS {:.0} MB{}",
        crmgate.secs,
        rate(crmgate),
        crmgate.peak_mb(),
        crmgate.wrote()
    );
    match raw {
        Some((joined, plain)) => {
            let ratio = crmgate.secs / joined.secs;
            println!(
                "  raw SQL (import+join) {:>6.2} s {:>6.0} k rows/s   peak RSS {:.0} MB{}",
                joined.secs,
                rate(joined),
                joined.peak_mb(),
                joined.wrote()
            );
            println!(
                "  ratio crmgate / raw   {ratio:>6.2}x   (target <= {TARGET_RATIO:.1}x){}",
                verdict(ratio <= TARGET_RATIO)
            );
            print_peak(crmgate, verdict);
            println!(
                "  plain .import alone   {:>6.2} s   (reference)",
                plain.secs
            );
        }
        None => {
            println!("  raw SQL (import+join) skipped (no sqlite3)");
            print_peak(crmgate, verdict);
        }
    }
}

fn print_peak(crmgate: &Measured, verdict: impl Fn(bool) -> &'static str) {
    let peak = crmgate.peak_mb();
    println!(
        "  peak memory           {peak:>6.0} MB  (target < {TARGET_PEAK_MB:.0} MB){}",
        verdict(peak < TARGET_PEAK_MB)
    );
}
