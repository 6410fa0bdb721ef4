//! `crmgate propose FILE...`

use std::path::PathBuf;

use indicatif::ProgressBar;

use super::{Ctx, Outcome, print_json};
use crate::error::{Error, Result};
use crate::ingest::proposals::{self, Report, Request};
use crate::ingest::{Format, Input};
use crate::model::Action;
use crate::ui::count;

#[derive(Debug, clap::Args)]
pub struct ProposeArgs {
    /// Proposal files: .csv, .json (an array of objects) or .jsonl; `-` reads stdin; a
    /// directory, its proposal files in name order.
    #[arg(required = true, value_name = "FILE|DIR")]
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
    /// Once the ingest commits, move every file read into DIR (files set aside whole into
    /// DIR/failed/), so the next run does not read them again.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Once the ingest commits, apply the proposals the policy approved in it (with every
    /// check `crmgate apply` makes); proposals approved earlier stay queued. Exit 3 when any
    /// was not applied.
    #[arg(long)]
    pub apply: bool,
}

pub fn run(args: ProposeArgs, ctx: &Ctx) -> Result<Outcome> {
    let format = args.format.as_deref().and_then(Format::parse);
    let mut inputs = Vec::new();
    for f in &args.files {
        inputs.extend(Input::expand(f, format)?);
    }
    let stdin = inputs.iter().filter(|i| i.arg == "-").count();
    if stdin > 1 {
        return Err(Error::refused("stdin (-) can be read only once"));
    }
    if stdin > 0 && args.archive.is_some() {
        return Err(Error::refused_with_hint(
            "--archive moves the files read, and stdin (-) is not a file",
            "drop --archive, or save the input to a file and propose that",
        ));
    }
    if inputs.is_empty() {
        ctx.ui
            .note("nothing to do: no .csv, .json or .jsonl files to propose");
        return Ok(Outcome::Done);
    }
    let mut store = ctx.open()?;
    let apply = args.apply;
    // With --json, the apply's items are written as each chunk commits, the ingest after them.
    let mut watch = super::apply::Bar::new(ctx, "applying");
    watch.stream = (apply && ctx.ui.json)
        .then(|| super::apply::ItemStream::opening("{\n  \"apply\": {\n  \"items\": [".into()));
    let (report, applied) = ingest(&mut store, &inputs, args, &mut watch, ctx)?;
    let ingest_outcome = if report.rejected > 0 || !report.not_archived.is_empty() {
        Outcome::Partial
    } else {
        Outcome::Done
    };
    let Some(applied) = applied.filter(|_| apply) else {
        print_report(&report, ctx)?;
        return Ok(ingest_outcome);
    };
    match watch.stream.take() {
        Some(stream) => {
            print_not_archived(&report, ctx);
            let run = serde_json::json!(applied.report.run);
            let counts = serde_json::json!(applied.report.counts);
            let ingest = serde_json::to_string_pretty(&report).expect("JSON serializes");
            stream.close(&format!(
                ",\n  \"run\": {run},\n  \"counts\": {counts}\n  }},\n  \"ingest\": {ingest}\n}}"
            ))?;
        }
        None => {
            print_report(&report, ctx)?;
            super::apply::print_report(&applied.report, false, ctx)?;
        }
    }
    if let Some(e) = &applied.stopped {
        ctx.ui.error(
            &format!(
                "the ingest committed; its apply stopped after {} proposals were committed: {e}",
                applied.report.total()
            ),
            &[],
            Some("what was committed stays; `crmgate apply` applies the rest"),
        );
        return Ok(Outcome::Partial);
    }
    Ok(match super::apply::outcome(&applied.report) {
        Outcome::Done => ingest_outcome,
        other => other,
    })
}

/// Ingests `inputs` in one transaction, with a progress bar on a terminal, then archives them
/// when asked, and applies what the policy approved in it with `--apply`.
fn ingest(
    store: &mut crate::store::Store,
    inputs: &[Input],
    args: ProposeArgs,
    watch: &mut super::apply::Bar<'_>,
    ctx: &Ctx,
) -> Result<(Report, Option<crate::apply::Applied>)> {
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
        source: args.source,
        skip_invalid: args.skip_invalid,
        rejects: args.rejects,
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
    let archive = args.archive.as_deref();
    let done = if args.apply {
        let then = proposals::ThenApply {
            clock: super::now,
            chunk: crate::apply::chunk_size(),
            progress: watch,
        };
        proposals::propose_and_apply(store, &request, archive, then).map(|(r, a)| (r, Some(a)))
    } else {
        proposals::propose_and_archive(store, &request, archive).map(|r| (r, None))
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    done
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

fn print_not_archived(report: &Report, ctx: &Ctx) {
    for why in &report.not_archived {
        ctx.ui.error(
            &format!("not archived, left in place: {why}"),
            &[],
            Some(
                "proposing it again changes nothing; move it by hand once the archive directory is writable",
            ),
        );
    }
}

fn print_report(report: &Report, ctx: &Ctx) -> Result<()> {
    print_not_archived(report, ctx);
    if ctx.ui.json {
        return print_json(report);
    }
    if ctx.ui.quiet {
        return Ok(());
    }
    print_table(report, &ctx.ui)?;
    for note in notes(report) {
        ctx.ui.note(note);
    }
    Ok(())
}

fn print_table(report: &Report, ui: &crate::ui::Ui) -> Result<()> {
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
    super::print_out(t)
}

/// What the run did, a sentence a line, for stderr.
fn notes(report: &Report) -> Vec<String> {
    let mut notes = Vec::new();
    if report.ingested == 0 && report.rejected == 0 {
        notes.push("nothing new: every proposal was already queued; the store is unchanged".into());
    }
    if report.ingested > 0 {
        let kinds: Vec<String> = report
            .by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        notes.push(format!(
            "queued {} ({})",
            count(report.ingested, "proposal", "proposals"),
            kinds.join(", ")
        ));
        let decisions: Vec<String> = report
            .by_decision
            .iter()
            .map(|(d, n)| match Action::parse(d) {
                Some(Action::Auto) => format!("{n} approved by the policy"),
                Some(Action::Review) => count(*n, "waits for review", "wait for review"),
                Some(Action::Suggest) => format!("{n} suggested"),
                Some(Action::Block) | None => format!("{n} blocked"),
            })
            .collect();
        notes.push(format!("decisions: {}", decisions.join(", ")));
    }
    if report.superseded > 0 {
        notes.push(format!(
            "{} superseded by newer ones for the same field",
            count(
                report.superseded,
                "older undecided proposal was",
                "older undecided proposals were"
            )
        ));
    }
    if report.stale > 0 {
        notes.push(format!(
            "{} a value the record no longer holds; they will conflict at apply",
            count(report.stale, "proposal expects", "proposals expect")
        ));
    }
    for f in report.files.iter().filter(|f| f.set_aside.is_some()) {
        notes.push(format!(
            "{} could not be read to its end ({}); nothing from it was queued",
            crate::ui::safe(&f.file),
            crate::ui::safe(f.set_aside.as_deref().unwrap_or_default())
        ));
    }
    let rows = report.rejected - report.set_aside;
    if rows > 0 {
        notes.push(format!(
            "{} skipped; see the rejects file",
            count(rows, "row was", "rows were")
        ));
    }
    let archived = report
        .files
        .iter()
        .filter(|f| f.archived_to.is_some())
        .count() as u64;
    if archived > 0 {
        notes.push(format!(
            "moved {} to the archive",
            count(archived, "file", "files")
        ));
    }
    notes
}
