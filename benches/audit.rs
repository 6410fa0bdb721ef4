//! `cargo bench --bench audit`: how fast `crmgate audit verify` walks the hash chain.
//!
//! Builds a store whose audit log holds `CRMGATE_BENCH_EVENTS` events (default 1,000,000), appended
//! through the library exactly as crmgate appends them, then times `crmgate audit verify` on it
//! and reports its peak memory. Target: under 5 s for a million events.
//!
//! `cargo test --all-targets` also runs this binary, without `--bench`: a small smoke run.

#[path = "support/measure.rs"]
mod measure;

use std::error::Error;
use std::process::Command;
use std::time::Instant;

use crmgate::model::NewEvent;
use crmgate::store::{OpenMode, Store};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const CRMGATE: &str = env!("CARGO_BIN_EXE_crmgate");
const TARGET_SECS: f64 = 5.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("audit benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let n = measure::size("CRMGATE_BENCH_EVENTS")? as u64;
    let dir = measure::WorkDir::new("crmgate-bench-audit-")?;
    let db = dir.path().join("audit.db");
    println!("audit benchmark: {n} events in {}", dir.path().display());

    // Setup (not measured): a store and n events, the way crmgate appends them.
    let started = Instant::now();
    let status = Command::new(CRMGATE)
        .arg("--db")
        .arg(&db)
        .args(["--quiet", "init"])
        .status()?;
    if !status.success() {
        return Err("crmgate init failed".into());
    }
    let mut store = Store::open(&db, OpenMode::Existing)?;
    store.write("2026-01-01T00:00:00.000Z", |w| {
        for i in 0..n {
            w.append_event(NewEvent {
                actor: "bench".into(),
                actor_kind: if i % 3 == 0 { "human" } else { "policy" },
                action: if i % 2 == 0 { "approve" } else { "reject" },
                proposal_id: Some(i as i64),
                object: Some("contacts".into()),
                record: Some(format!("c-{}", 1_000_000 + i)),
                field: Some("title".into()),
                prev_value: Some(serde_json::json!("VP Sales")),
                new_value: Some(serde_json::json!("Chief Revenue Officer")),
                source: Some("clearbit".into()),
                confidence: Some(0.93),
                detail: serde_json::json!({ "note": "benchmark" }),
                ..NewEvent::default()
            })?;
        }
        Ok(())
    })?;
    drop(store);
    println!(
        "  setup: {n} events appended in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Measured: the real binary walking the whole chain.
    let mut cmd = Command::new(CRMGATE);
    cmd.arg("--db").arg(&db).args(["audit", "verify"]);
    let m = measure::run_ok(&mut cmd, &dir.path().join("verify"), "crmgate audit verify")?;
    let verdict = if m.secs < TARGET_SECS || n < 1_000_000 {
        ""
    } else {
        "  MISSED"
    };
    println!(
        "  crmgate audit verify  {:.2} s   {:.0} k events/s   peak RSS {:.0} MB   (target < {TARGET_SECS} s for 1M){verdict}",
        m.secs,
        n as f64 / m.secs / 1000.0,
        m.peak_mb()
    );
    Ok(())
}
