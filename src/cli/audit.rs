//! `crmgate audit verify|checkpoint|export`.

use std::io::Write;
use std::path::PathBuf;

use super::{Ctx, Outcome, print_json, print_out};
use crate::audit::{Checkpoint, EventRow, Verifier};
use crate::error::{Error, Result};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 naming the first event that was altered,
    /// removed, inserted or reordered.
    #[command(
        after_help = "Example:\n  crmgate audit verify\n  crmgate audit verify --checkpoint /secure/crm-head.json"
    )]
    Verify {
        /// A checkpoint from `audit checkpoint`: also catches a tail cut off after it.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Print the chain's head (sequence and hash) to keep where the store's writers cannot reach.
    #[command(after_help = "Example:\n  crmgate audit checkpoint > /secure/crm-head.json")]
    Checkpoint,
    /// Write every event to stdout, for a SIEM or a warehouse.
    #[command(
        after_help = "Example:\n  crmgate audit export --format jsonl --since 2026-11-01 > events.jsonl\n  crmgate audit export --format csv > events.csv"
    )]
    Export {
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// Only events at or after this time (RFC 3339, or a date).
        #[arg(long, value_name = "T")]
        since: Option<String>,
    },
}

pub fn run(cmd: AuditCommand, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        AuditCommand::Verify { checkpoint } => verify(checkpoint, ctx),
        AuditCommand::Checkpoint => checkpoint(ctx),
        AuditCommand::Export { format, since } => export(&format, since.as_deref(), ctx),
    }
}

/// `T` as the events' own time format, so times compare as text.
pub fn since(t: &str) -> Result<String> {
    let ts = t
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            t.parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .ok_or_else(|| {
            Error::refused(format!(
                "--since {}: not an RFC 3339 time (2026-11-21T09:00:00Z) or a date (2026-11-21)",
                crate::ui::safe(t)
            ))
        })?;
    Ok(ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn verify(checkpoint: Option<PathBuf>, ctx: &Ctx) -> Result<Outcome> {
    let cp: Option<Checkpoint> = match &checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            Some(serde_json::from_str(&text).map_err(|e| {
                Error::refused(format!(
                    "{}: not a checkpoint from `crmgate audit checkpoint`: {e}",
                    path.display()
                ))
            })?)
        }
        None => None,
    };
    let store = ctx.open()?;
    let mut v = Verifier::default();
    let mut at_checkpoint: Option<String> = None;
    let mut broken = None;
    store.for_each_event(None, |e| {
        if broken.is_none() {
            if let Err(b) = v.check(e) {
                broken = Some(b);
            } else if cp.as_ref().is_some_and(|c| c.seq == e.seq) {
                at_checkpoint = Some(e.hash.clone());
            }
        }
        Ok(())
    })?;
    let result = match broken {
        Some(b) => Err(b),
        None => v.finish(cp.as_ref(), at_checkpoint.as_deref()),
    };
    match result {
        Ok(()) => {
            if ctx.ui.json {
                print_json(&serde_json::json!({ "ok": true, "events": v.checked }))?;
            } else {
                ctx.ui.note(format!(
                    "ok: {} events, the chain is unbroken{}",
                    v.checked,
                    if cp.is_some() {
                        " and reaches the checkpoint"
                    } else {
                        ""
                    }
                ));
            }
            Ok(Outcome::Done)
        }
        Err(b) => {
            if ctx.ui.json {
                print_json(&serde_json::json!({ "ok": false, "event": b.seq, "problem": b.what }))?;
            }
            Err(Error::refused_with_hint(
                format!("the audit log is broken at event {}: {}", b.seq, b.what),
                "compare with a backup or an export; events before it verify",
            ))
        }
    }
}

fn checkpoint(ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let (seq, hash) = store
        .chain_head()?
        .ok_or_else(|| Error::refused("the audit log is empty"))?;
    print_out(serde_json::to_string(&Checkpoint { seq, hash }).expect("serializes"))?;
    Ok(Outcome::Done)
}

/// The export's columns: the events' own, documented in the README.
const COLUMNS: [&str; 21] = [
    "seq",
    "at",
    "actor",
    "actor_kind",
    "action",
    "proposal_id",
    "change_id",
    "run_id",
    "object",
    "record",
    "field",
    "prev_value",
    "new_value",
    "source",
    "confidence",
    "rules",
    "policy_version",
    "approver",
    "detail",
    "prev_hash",
    "hash",
];

fn cells(e: &EventRow) -> [String; 21] {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    [
        e.seq.to_string(),
        e.at.clone(),
        e.actor.clone(),
        e.actor_kind.clone(),
        e.action.clone(),
        n(e.proposal_id),
        n(e.change_id),
        n(e.run_id),
        o(&e.object),
        o(&e.record),
        o(&e.field),
        o(&e.prev_value),
        o(&e.new_value),
        o(&e.source),
        e.confidence.map(|c| c.to_string()).unwrap_or_default(),
        o(&e.rules),
        n(e.policy_version),
        o(&e.approver),
        o(&e.detail),
        e.prev_hash.clone(),
        e.hash.clone(),
    ]
}

fn export(format: &str, since_arg: Option<&str>, ctx: &Ctx) -> Result<Outcome> {
    let since = since_arg.map(since).transpose()?;
    let store = ctx.open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    let mut n = 0u64;
    if format == "csv" {
        let mut w = csv::Writer::from_writer(&mut out);
        let csv_err = |e: csv::Error| match e.into_kind() {
            csv::ErrorKind::Io(e) => Error::io("<stdout>", e),
            other => Error::Store(format!("{other:?}")),
        };
        w.write_record(COLUMNS).map_err(csv_err)?;
        store.for_each_event(since.as_deref(), |e| {
            n += 1;
            let row = cells(e);
            w.write_record(row.iter().map(|c| crate::ui::formula_safe(c).into_owned()))
                .map_err(csv_err)
        })?;
        w.flush().map_err(io)?;
    } else {
        store.for_each_event(since.as_deref(), |e| {
            n += 1;
            serde_json::to_writer(&mut out, e).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)
        })?;
    }
    out.flush().map_err(io)?;
    ctx.ui.note(format!("exported {n} events"));
    Ok(Outcome::Done)
}
