//! `crmgate audit verify|checkpoint|export`.

use std::path::PathBuf;

use super::{Ctx, FormatArg, Outcome, print_json, print_out};
use crate::admin::audit::{self, Verified};
use crate::audit::Checkpoint;
use crate::error::{Error, Result};
use crate::ingest::Format;
use crate::ui::count;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain, then the policy text, changes and proposals against
    /// the events that bind them; exit 1 naming the first event altered, removed, inserted or
    /// reordered, or the first row that does not match its event.
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
        after_help = "Example:\n  crmgate audit export --format jsonl --since 2026-11-01 > events.jsonl\n  crmgate audit export --format csv > events.csv\n  crmgate audit export --redact email,phone > events.jsonl"
    )]
    Export {
        /// jsonl (the default: one event a line), json (one array) or csv.
        #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
        format: FormatArg,
        /// Only events at or after this time (RFC 3339, or a date).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Replace the values of these fields (e.g. email,phone) by their SHA-256.
        #[arg(long, value_name = "FIELD,...", value_delimiter = ',')]
        redact: Vec<String>,
    },
}

pub fn run(cmd: AuditCommand, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        AuditCommand::Verify { checkpoint } => verify(checkpoint, ctx),
        AuditCommand::Checkpoint => checkpoint(ctx),
        AuditCommand::Export {
            format,
            since,
            redact,
        } => export(format.into(), since.as_deref(), redact, ctx),
    }
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
    match audit::verify(&store, cp.as_ref())? {
        Verified::Intact { events, warnings } => {
            if ctx.ui.json {
                print_json(&serde_json::json!({
                    "ok": true,
                    "events": events,
                    "checkpoint": cp.is_some(),
                    "warnings": warnings,
                }))?;
            } else {
                ctx.ui.note(format!(
                    "ok: {}, the chain is unbroken{}, and the policies, changes and proposals match it",
                    count(events, "event", "events"),
                    if cp.is_some() {
                        " and reaches the checkpoint"
                    } else {
                        " (without a checkpoint: a log rewritten whole, or cut short with the store's record of its head, is not caught)"
                    }
                ));
                for w in &warnings {
                    ctx.ui.note(format!("warning: {}", crate::ui::safe(w)));
                }
            }
            Ok(Outcome::Done)
        }
        Verified::Broken(b) => {
            if ctx.ui.json {
                print_json(&serde_json::json!({ "ok": false, "event": b.seq, "problem": b.what }))?;
            }
            Err(Error::refused_with_hint(
                format!("the audit log is broken at event {}: {}", b.seq, b.what),
                "compare with a backup or an export; events before it verify",
            ))
        }
        Verified::Unbound { events, row, what } => {
            if ctx.ui.json {
                print_json(&serde_json::json!({
                    "ok": false,
                    "events": events,
                    "row": row,
                    "problem": what,
                }))?;
            }
            Err(Error::refused_with_hint(
                format!(
                    "the chain of {} holds, but {} does not match it: {}",
                    count(events, "event", "events"),
                    crate::ui::safe(&row),
                    crate::ui::safe(&what)
                ),
                "the store was edited outside crmgate; compare with a backup or an export, and restore it",
            ))
        }
    }
}

fn checkpoint(ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let cp = audit::checkpoint(&store)?;
    print_out(serde_json::to_string(&cp).expect("serializes"))?;
    Ok(Outcome::Done)
}

fn export(format: Format, since: Option<&str>, redact: Vec<String>, ctx: &Ctx) -> Result<Outcome> {
    let since = since.map(audit::since).transpose()?;
    let store = ctx.open()?;
    let redact = audit::Redact::new(store.schema(), redact)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = audit::export(&store, format, since.as_deref(), &redact, &mut out)?;
    ctx.ui
        .note(format!("exported {}", count(n, "event", "events")));
    Ok(Outcome::Done)
}
