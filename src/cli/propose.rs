//! `crmgate propose FILE...`

use std::path::PathBuf;

use indicatif::ProgressBar;

use super::{Ctx, Outcome, print_json};
use crate::error::{Error, Result};
use crate::ingest::proposals::{self, Report, Request};
use crate::ingest::{Format, Input};

#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    /// Proposal files: .csv, .json (an array of objects) or .jsonl; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// The source of rows that do not name one.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Read every file as this format instead of going by the extension.
    #[arg(long, value_parser = ["csv", "json", "jsonl"])]
    pub format: Option<String>,
    /// Ingest the good rows and write the bad ones to --rejects (exit 3).
    #[arg(long, requires = "rejects")]
    pub skip_invalid: bool,
    /// Where --skip-invalid writes the bad rows, with their line and reason (CSV).
    #[arg(long, value_name = "FILE", requires = "skip_invalid")]
    pub rejects: Option<PathBuf>,
}

pub fn run(args: ProposeArgs, ctx: &Ctx) -> Result<Outcome> {
    let format = args.format.as_deref().and_then(Format::parse);
    let inputs = args
        .files
        .iter()
        .map(|f| Input::from_arg(f, format))
        .collect::<Result<Vec<_>>>()?;
    if inputs.iter().filter(|i| i.arg == "-").count() > 1 {
        return Err(Error::refused("stdin (-) can be read only once"));
    }
    let mut store = ctx.open()?;
    let report = ingest(
        &mut store,
        &inputs,
        args.source,
        args.skip_invalid,
        args.rejects,
        ctx,
    )?;
    print_report(&report, ctx)?;
    Ok(if report.rejected > 0 {
        Outcome::Partial
    } else {
        Outcome::Done
    })
}

/// Ingests `inputs` in one transaction, with a progress bar on a terminal. Shared with the demo.
pub fn ingest(
    store: &mut crate::store::Store,
    inputs: &[Input],
    source: Option<String>,
    skip_invalid: bool,
    rejects: Option<PathBuf>,
    ctx: &Ctx,
) -> Result<Report> {
    let bar = progress_bar(ctx, inputs);
    let progress = |input: &Input, bytes: u64| {
        if let Some(b) = &bar {
            if let Some(len) = input.size() {
                b.set_length(len);
            }
            b.set_message(input.display_name());
            b.set_position(bytes);
        }
    };
    let (policy_version, policy) = super::policy::load(store)?;
    let request = Request {
        inputs,
        source,
        skip_invalid,
        rejects,
        actor: ctx.actor.clone(),
        now: ctx.now.clone(),
        policy: &policy,
        policy_version,
        bulk_min_rows: std::env::var("CRMGATE_BULK_MIN_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(proposals::BULK_MIN_ROWS),
        progress: &progress,
    };
    let report = proposals::propose(store, &request);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    report
}

fn progress_bar(ctx: &Ctx, inputs: &[Input]) -> Option<ProgressBar> {
    let total: u64 = inputs.iter().filter_map(Input::size).sum();
    // Small files finish before a bar would be seen.
    if total < 4 * 1024 * 1024 {
        return None;
    }
    ctx.ui
        .progress(total, "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
}

fn print_report(report: &Report, ctx: &Ctx) -> Result<()> {
    if ctx.ui.json {
        return print_json(report);
    }
    let ui = &ctx.ui;
    let mut t = ui.table();
    t.set_header([
        "file",
        "rows",
        "new",
        "already queued",
        "superseded",
        "rejected",
    ]);
    for f in &report.files {
        t.add_row([
            crate::ui::safe(&f.file).into_owned(),
            f.rows.to_string(),
            f.ingested.to_string(),
            f.duplicates.to_string(),
            f.superseded.to_string(),
            f.rejected.to_string(),
        ]);
    }
    super::print_out(t)?;
    if report.ingested == 0 && report.rejected == 0 {
        ui.note("nothing new: every proposal was already queued; the store is unchanged");
    } else {
        let kinds: Vec<String> = report
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        if !kinds.is_empty() {
            ui.note(format!(
                "queued {} proposals ({})",
                report.ingested,
                kinds.join(", ")
            ));
            let decisions: Vec<String> = report
                .by_decision
                .iter()
                .map(|(d, n)| match d.as_str() {
                    "auto" => format!("{n} approved by the policy"),
                    "review" => format!("{n} wait for review"),
                    "suggest" => format!("{n} suggested"),
                    _ => format!("{n} blocked"),
                })
                .collect();
            ui.note(format!("decisions: {}", decisions.join(", ")));
        }
        if report.superseded > 0 {
            ui.note(format!(
                "{} older undecided proposals were superseded by newer ones for the same field",
                report.superseded
            ));
        }
        if report.stale > 0 {
            ui.note(format!(
                "{} proposals expect a value the record no longer holds; they will conflict at apply",
                report.stale
            ));
        }
        if report.rejected > 0 {
            ui.note(format!(
                "{} rows were skipped; see the rejects file",
                report.rejected
            ));
        }
    }
    Ok(())
}
