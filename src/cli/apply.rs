//! `crmgate apply` and `crmgate revert`.

use super::{Ctx, Outcome, print_out};
use crate::apply::{self, ApplyRequest, Ending, Options, Report, RevertRequest, RevertTarget};
use crate::error::{Error, Result};
use crate::ui::safe;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Go through every check and write, then roll it all back and print the plan.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this source's proposals.
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// At most this many proposals, oldest first (field writes, then merges).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Save what this run applies (or, with --dry-run, would apply) as a plan.
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<std::path::PathBuf>,
    /// Apply exactly a saved plan; refused whole if anything in it changed since.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["source", "limit"])]
    pub plan: Option<std::path::PathBuf>,
}

impl ApplyArgs {
    /// Every approved proposal, as a plain `apply` (or `apply --dry-run`).
    pub fn everything(dry_run: bool) -> Self {
        ApplyArgs {
            dry_run,
            source: None,
            limit: None,
            plan_out: None,
            plan: None,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RevertArgs {
    /// The change to undo (from `apply` or `log`).
    #[arg(
        value_name = "CHANGE_ID",
        required_unless_present = "run",
        conflicts_with = "run"
    )]
    pub change: Option<i64>,
    /// Undo every change of this run still in effect, newest first; those already undone are
    /// listed and skipped, so running it again after a crash finishes it. A run of field writes
    /// larger than one chunk (CRMGATE_APPLY_CHUNK) goes a chunk per transaction.
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<i64>,
    /// Revert even where the record moved on since (admin).
    #[arg(long)]
    pub force: bool,
}

pub fn apply(args: ApplyArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    store.set_bulk_cache()?;
    let (version, policy) = super::policy::load(&store)?;
    let follow = args.plan.as_deref().map(read_plan).transpose()?;
    let req = ApplyRequest {
        policy: &policy,
        version,
        actor: &ctx.actor,
        opts: Options {
            source: args.source,
            limit: args.limit,
            only: follow
                .as_ref()
                .map(|p| p.items.iter().map(|i| i.proposal).collect()),
            ingests: None,
        },
        follow,
        make_plan: args.plan_out.is_some(),
        dry_run: args.dry_run,
        clock: super::now,
        chunk: apply::chunk_size(),
    };
    let mut watch = Bar::new(ctx, "applying");
    // With --json, every item is written as its chunk commits: none is kept to the end.
    watch.stream = ctx
        .ui
        .json
        .then(|| ItemStream::new(&[("dry_run", serde_json::json!(args.dry_run))]));
    let applied = apply::run(&mut store, &req, &mut watch)?;
    let stream = watch.stream.take();
    if let (Some(path), Some(plan)) = (&args.plan_out, &applied.plan) {
        let text = serde_json::to_string_pretty(plan).expect("plans serialize");
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
        ctx.ui.note(format!(
            "plan of {} changes saved to {}",
            plan.items.len(),
            path.display()
        ));
    }
    let report = &applied.report;
    match stream {
        Some(stream) => stream.end(&[
            ("run", serde_json::json!(report.run)),
            ("counts", serde_json::json!(report.counts)),
        ])?,
        None => print_report(report, args.dry_run, ctx)?,
    }
    if let Some(e) = applied.stopped {
        ctx.ui.error(
            &format!(
                "the run stopped after {} proposals were committed: {e}",
                report.total()
            ),
            &[],
            Some(
                "what was committed stays, each proposal whole; run `crmgate apply` again for the rest",
            ),
        );
        return Ok(Outcome::Partial);
    }
    Ok(outcome(report))
}

fn read_plan(path: &std::path::Path) -> Result<apply::Plan> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::refused(format!(
            "{}: not a plan from `crmgate apply --plan-out`: {e}",
            path.display()
        ))
    })
}

/// A progress bar on a terminal, and the items streamed as JSON when asked for.
pub(super) struct Bar<'a> {
    ctx: &'a Ctx,
    verb: &'static str,
    bar: Option<indicatif::ProgressBar>,
    pub(super) stream: Option<ItemStream>,
}

impl<'a> Bar<'a> {
    pub(super) fn new(ctx: &'a Ctx, verb: &'static str) -> Self {
        Bar {
            ctx,
            verb,
            bar: None,
            stream: None,
        }
    }
}

/// A `--json` document written as the run goes: `open` (the document up to its items' `[`),
/// each item as its transaction commits, then `]` and what [`ItemStream::end`] is given.
/// Nothing is written until the first items come, so a run refused before it began prints no
/// fragment.
pub(super) struct ItemStream {
    open: String,
    begun: bool,
    first: bool,
    /// The first write that failed (a closed pipe, say): reported at the end.
    failed: Option<std::io::Error>,
}

impl ItemStream {
    /// A document whose items are the member `"items"` after `members`, at the top level.
    pub(super) fn new(members: &[(&str, serde_json::Value)]) -> Self {
        Self::opening(format!("{{\n{}  \"items\": [", listed(members)))
    }

    /// A document that begins `open`, which ends where the items' array begins.
    pub(super) fn opening(open: String) -> Self {
        ItemStream {
            open,
            begun: false,
            first: true,
            failed: None,
        }
    }

    /// Writes `items`, unless an earlier write failed.
    fn push<T: serde::Serialize>(&mut self, items: impl IntoIterator<Item = T>) {
        if self.failed.is_none() {
            self.failed = self.write(items).err();
        }
    }

    fn write<T: serde::Serialize>(
        &mut self,
        items: impl IntoIterator<Item = T>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if !self.begun {
            self.begun = true;
            out.write_all(self.open.as_bytes())?;
        }
        for item in items {
            let sep = if self.first { "\n    " } else { ",\n    " };
            self.first = false;
            out.write_all(sep.as_bytes())?;
            serde_json::to_writer(&mut out, &item)?;
        }
        out.flush()
    }

    /// Closes the items and the document with `members` after them.
    pub(super) fn end(self, members: &[(&str, serde_json::Value)]) -> Result<()> {
        let after: String = members
            .iter()
            .map(|(name, value)| format!(",\n  \"{name}\": {value}"))
            .collect();
        self.close(&format!("{after}\n}}"))
    }

    /// Closes the items, then writes `rest`, the end of the document.
    pub(super) fn close(mut self, rest: &str) -> Result<()> {
        use std::io::Write;
        // A run with no items still prints the whole document.
        self.push(std::iter::empty::<()>());
        if let Some(e) = self.failed {
            return Err(Error::io("<stdout>", e));
        }
        let close = if self.first { "]" } else { "\n  ]" };
        writeln!(std::io::stdout().lock(), "{close}{rest}").map_err(|e| Error::io("<stdout>", e))
    }
}

/// `members` as the lines of a JSON object before a last one: `  "name": value,` each.
fn listed(members: &[(&str, serde_json::Value)]) -> String {
    members
        .iter()
        .map(|(name, value)| format!("  \"{name}\": {value},\n"))
        .collect()
}

/// One item of `revert --json`: a change undone, or found undone already.
#[derive(serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum RevertItem<'a> {
    Undone(&'a apply::Reverted),
    Skipped(&'a apply::Skipped),
}

impl apply::Progress for Bar<'_> {
    fn shown(&self) -> bool {
        let ui = &self.ctx.ui;
        !ui.quiet && !ui.json && ui.interactive_err
    }
    fn wants_items(&self) -> bool {
        self.stream.is_some()
    }
    fn items(&mut self, items: &[apply::Item]) {
        if let Some(s) = &mut self.stream {
            s.push(items);
        }
    }
    fn reverted(&mut self, part: &apply::RevertSummary) {
        if let Some(s) = &mut self.stream {
            s.push(part.first.iter().map(RevertItem::Undone));
            s.push(part.first_skipped.iter().map(RevertItem::Skipped));
        }
    }
    fn start(&mut self, total: u64) {
        if total > 1 {
            self.bar = self.ctx.ui.progress(
                total,
                &format!(
                    "{} [{{bar:30}}] {{pos}}/{{len}} ({{per_sec}}, {{eta}})",
                    self.verb
                ),
            );
        }
    }
    fn advance(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.inc(done);
        }
    }
    fn finish(&mut self) {
        // Cleared before any message, whichever way the run ended.
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Exit 3 when any proposal was not applied.
pub(super) fn outcome(report: &Report) -> Outcome {
    if report.exceptions() > 0 {
        Outcome::Partial
    } else {
        Outcome::Done
    }
}

/// How a result reads: a dry run applied nothing, it would apply.
fn result_word(ending: Ending, dry_run: bool) -> &'static str {
    match ending {
        Ending::Applied if dry_run => "would apply",
        other => other.as_str(),
    }
}

/// `c-5` of `contacts/c-5`.
fn record_id(record: &str) -> &str {
    record.split_once('/').map_or(record, |(_, id)| id)
}

/// How many rows the table of a run shows; the counts cover them all.
const SHOWN: usize = 200;

pub(super) fn print_report(r: &Report, dry_run: bool, ctx: &Ctx) -> Result<()> {
    if r.items.is_empty() {
        ctx.ui.note("nothing approved to apply");
        return Ok(());
    }
    let shown = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "(empty)".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut t = ctx.ui.table();
    t.set_header([
        "proposal", "record", "field", "before", "after", "result", "change", "why",
    ]);
    for i in r.items.iter().take(SHOWN) {
        let (field, before, after) = match &i.merge_into {
            Some(into) => (
                "(merge)".to_string(),
                String::new(),
                format!("merge {} into {into}", record_id(&i.record)),
            ),
            None => (
                // Only a create names no field: it writes a whole new record.
                i.field.clone().unwrap_or_else(|| "(new record)".into()),
                shown(&i.before),
                shown(&i.after),
            ),
        };
        t.add_row([
            i.proposal.to_string(),
            safe(&i.record).into_owned(),
            field,
            safe(&crate::validate::short(&before)).into_owned(),
            safe(&crate::validate::short(&after)).into_owned(),
            result_word(i.result, dry_run).to_string(),
            i.change
                .filter(|_| !dry_run)
                .map(|c| c.to_string())
                .unwrap_or_default(),
            safe(i.why.as_deref().unwrap_or("")).into_owned(),
        ]);
    }
    print_out(t)?;
    if r.total() > SHOWN {
        ctx.ui.note(format!(
            "the first {SHOWN} of {} proposals; `crmgate apply --json` lists every one",
            r.total()
        ));
    }
    let counts = Ending::ALL
        .iter()
        .map(|&k| (k, r.count(k)))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{n} {}", result_word(k, dry_run)))
        .collect::<Vec<_>>()
        .join(", ");
    if dry_run {
        ctx.ui
            .note(format!("dry run: {counts}; nothing was changed"));
    } else {
        ctx.ui.note(format!(
            "run {}: {counts}{}",
            r.run.unwrap_or_default(),
            if r.count(Ending::Applied) > 0 {
                format!(
                    "; undo with `crmgate revert --run {}`",
                    r.run.unwrap_or_default()
                )
            } else {
                String::new()
            }
        ));
    }
    Ok(())
}

pub fn revert(args: RevertArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    let (_, policy) = super::policy::load(&store)?;
    if args.force && !policy.has_role(&ctx.actor, "admin") {
        let what = match (args.change, args.run) {
            (Some(c), _) => c.to_string(),
            (None, run) => format!("--run {}", run.unwrap_or_default()),
        };
        return Err(Error::refused_with_hint(
            format!(
                "{} may not force a revert: it takes the admin role",
                ctx.actor
            ),
            format!("an admin can: `crmgate --as ADMIN revert {what} --force`"),
        ));
    }
    let target = match (args.change, args.run) {
        (Some(c), _) => RevertTarget::Change(c),
        (None, Some(run)) => RevertTarget::Run(run),
        (None, None) => unreachable!("clap requires one"),
    };
    store.set_bulk_cache()?;
    let req = RevertRequest {
        target,
        policy: &policy,
        force: args.force,
        actor: &ctx.actor,
        clock: super::now,
        chunk: apply::chunk_size(),
    };
    let mut watch = Bar::new(ctx, "reverting");
    // With --json, every change is written as its transaction commits: none is kept to the end.
    watch.stream = ctx.ui.json.then(|| ItemStream::new(&[]));
    let reverted = apply::run_revert(&mut store, &req, &mut watch)?;
    let run = reverted.run;
    match watch.stream.take() {
        Some(stream) => stream.end(&[
            ("run", serde_json::json!(run)),
            ("reverted", serde_json::json!(reverted.done.count)),
            ("skipped", serde_json::json!(reverted.done.skipped)),
            (
                "paused",
                serde_json::json!(
                    reverted
                        .paused
                        .iter()
                        .map(|(source, reason)| {
                            serde_json::json!({"source": source, "reason": reason})
                        })
                        .collect::<Vec<_>>()
                ),
            ),
        ])?,
        None => print_reverted(run, &reverted.done, ctx)?,
    }
    for (source, reason) in &reverted.paused {
        ctx.ui.note(format!(
            "source {} paused: {}; an admin resumes it with `crmgate resume --source {}`",
            safe(source),
            safe(reason),
            safe(source)
        ));
    }
    if let (Some(e), Some(of)) = (reverted.stopped, args.run) {
        let back = run.map_or(String::new(), |run| {
            format!(" (as run {run}; `crmgate revert --run {run}` puts it back)")
        });
        ctx.ui.error(
            &format!(
                "the revert of run {of} stopped after {} of its {} changes were undone: {e}",
                reverted.done.count, reverted.total
            ),
            &[],
            Some(&format!(
                "what was undone stays{back}; `crmgate revert --run {of}` again undoes the rest"
            )),
        );
        return Ok(Outcome::Partial);
    }
    Ok(Outcome::Done)
}

fn print_reverted(run: Option<i64>, done: &apply::RevertSummary, ctx: &Ctx) -> Result<()> {
    for d in done.first.iter().take(SHOWN) {
        let forced = if d.forced { ", forced" } else { "" };
        print_out(format!(
            "change {} undone by change {} ({} {}{forced})",
            d.change,
            d.by,
            safe(&d.record),
            safe(&d.field)
        ))?;
    }
    for s in done.first_skipped.iter().take(SHOWN) {
        print_out(format!(
            "change {} skipped: already undone by change {}",
            s.change, s.by
        ))?;
    }
    if done.count > SHOWN || done.skipped > SHOWN {
        ctx.ui.note(format!(
            "the first {SHOWN} changes of each kind are listed; with `--json` a revert lists every one"
        ));
    }
    let skipped = crate::ui::count(done.skipped as u64, "change", "changes");
    let note = match run {
        None => format!("nothing left to revert: {skipped} already undone"),
        Some(run) => format!(
            "run {run}: {} reverted{}; undo with `crmgate revert --run {run}`",
            crate::ui::count(done.count as u64, "change", "changes"),
            match done.skipped {
                0 => String::new(),
                _ => format!("; {skipped} already undone, skipped"),
            }
        ),
    };
    ctx.ui.note(note);
    Ok(())
}
