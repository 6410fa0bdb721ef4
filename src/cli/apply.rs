//! `crmgate apply` and `crmgate revert`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::apply::{self, Options, Report};
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
    /// At most this many proposals, oldest first.
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
    /// Undo every change of this run, newest first. A run of field writes larger than one
    /// chunk (CRMGATE_APPLY_CHUNK) that can all be undone goes a chunk per transaction.
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
    let plan: Option<apply::Plan> = match &args.plan {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            Some(serde_json::from_str(&text).map_err(|e| {
                Error::refused(format!(
                    "{}: not a plan from `crmgate apply --plan-out`: {e}",
                    path.display()
                ))
            })?)
        }
        None => None,
    };
    let opts = Options {
        source: args.source,
        limit: args.limit,
        only: plan
            .as_ref()
            .map(|p| p.items.iter().map(|i| i.proposal).collect()),
        keep_all: args.plan_out.is_some(),
    };
    let now = ctx.now.clone();
    // A plain apply commits in chunks; a dry run, and a run that makes or follows a plan, are
    // one transaction (the plan describes, and is checked against, one moment of the store).
    if !args.dry_run && plan.is_none() && args.plan_out.is_none() {
        return apply_in_chunks(&mut store, &policy, version, &opts, ctx);
    }
    let run = |w: &mut crate::store::Writer<'_>| -> Result<(Report, apply::Plan)> {
        if let Some(plan) = &plan {
            let changed = plan.changes_since(w)?;
            if !changed.is_empty() {
                return Err(Error::Refused {
                    message: format!(
                        "the plan was not applied; it changed since it was made:\n{}",
                        changed
                            .iter()
                            .map(|c| safe(c).into_owned())
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                    hint: Some(
                        "make a new plan with `crmgate apply --dry-run --plan-out FILE`".into(),
                    ),
                });
            }
        }
        let report = apply::apply(w, &policy, version, &ctx.actor, &opts)?;
        let made = apply::Plan::of(&report, w)?;
        Ok((report, made))
    };
    let (report, made) = if args.dry_run {
        store.write_and_roll_back(&now, run)?
    } else {
        store.write(&now, run)?
    };
    if let Some(path) = &args.plan_out {
        let text = serde_json::to_string_pretty(&made).expect("plans serialize");
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
        ctx.ui.note(format!(
            "plan of {} changes saved to {}",
            made.items.len(),
            path.display()
        ));
    }
    print_report(&report, args.dry_run, ctx)?;
    Ok(outcome(&report))
}

/// How many proposals one transaction of an apply run takes.
fn chunk_size() -> usize {
    std::env::var("CRMGATE_APPLY_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10_000)
}

/// Applies the queue a chunk per transaction, with a progress bar on a terminal. The store is
/// locked only one chunk at a time, so a reviewer's decisions get in between. If the lock
/// cannot be had for a later chunk, what was committed stays (each proposal whole) and the
/// rest waits for the next run: exit 3, not 75, because something did change.
fn apply_in_chunks(
    store: &mut crate::store::Store,
    policy: &crate::policy::Policy,
    version: i64,
    opts: &Options,
    ctx: &Ctx,
) -> Result<Outcome> {
    let ids = store.write(&ctx.now, |w| apply::queue(w, opts))?;
    let mut report = Report::default();
    let mut state = apply::RunState::default();
    let stopped = in_chunks(
        store,
        ctx,
        &ids,
        chunk_size(),
        "applying",
        |w, chunk| {
            let mut part = Report::default();
            apply::apply_ids(w, policy, version, &ctx.actor, chunk, &mut state, &mut part)?;
            Ok(part)
        },
        |part| report.absorb(part),
    )?;
    print_report(&report, false, ctx)?;
    if let Some(e) = stopped {
        eprintln!(
            "error: the run stopped after {} proposals were committed: {e}",
            report.total()
        );
        eprintln!(
            "hint: what was committed stays, each proposal whole; run `crmgate apply` again for the rest"
        );
        return Ok(Outcome::Partial);
    }
    Ok(outcome(&report))
}

/// Runs `f` on `ids` a chunk per transaction (the first `first` long, then `CRMGATE_APPLY_CHUNK`
/// each), with a progress bar on a terminal, and hands what each chunk returns to `committed`
/// once its transaction has committed. An error before any chunk committed is returned as it
/// is: nothing changed. A later one stops the run and comes back as `Ok(Some(error))`: what was
/// committed stays.
fn in_chunks<T>(
    store: &mut crate::store::Store,
    ctx: &Ctx,
    ids: &[i64],
    first: usize,
    verb: &str,
    mut f: impl FnMut(&crate::store::Writer<'_>, &[i64]) -> Result<T>,
    mut committed: impl FnMut(T),
) -> Result<Option<Error>> {
    let bar = if ids.len() > 1 {
        ctx.ui.progress(
            ids.len() as u64,
            &format!("{verb} [{{bar:30}}] {{pos}}/{{len}} ({{per_sec}}, {{eta}})"),
        )
    } else {
        None
    };
    let mut any = false;
    let mut stopped = None;
    let (head, rest) = ids.split_at(first.min(ids.len()));
    let chunks = std::iter::once(head)
        .filter(|c| !c.is_empty())
        .chain(rest.chunks(chunk_size()));
    for chunk in chunks {
        match store.write(&super::now(), |w| f(w, chunk)) {
            Ok(out) => {
                committed(out);
                any = true;
                if let Some(b) = &bar {
                    b.inc(chunk.len() as u64);
                }
            }
            Err(e) => {
                stopped = Some(e);
                break;
            }
        }
    }
    // Cleared before any message, whichever way the run ended.
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match stopped {
        Some(e) if !any => Err(e),
        stopped => Ok(stopped),
    }
}

/// Exit 3 when any proposal was not applied.
fn outcome(report: &Report) -> Outcome {
    if report.exceptions() > 0 {
        Outcome::Partial
    } else {
        Outcome::Done
    }
}

fn print_report(r: &Report, dry_run: bool, ctx: &Ctx) -> Result<()> {
    if ctx.ui.json {
        return print_json(
            &serde_json::json!({ "dry_run": dry_run, "run": r.run, "items": r.items }),
        );
    }
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
    for i in r.items.iter().take(200) {
        t.add_row([
            i.proposal.to_string(),
            safe(&i.record).into_owned(),
            i.field.clone().unwrap_or_default(),
            safe(&crate::validate::short(&shown(&i.before))).into_owned(),
            safe(&crate::validate::short(&shown(&i.after))).into_owned(),
            if dry_run && i.result == "applied" {
                "would apply".into()
            } else {
                i.result.to_string()
            },
            i.change
                .filter(|_| !dry_run)
                .map(|c| c.to_string())
                .unwrap_or_default(),
            safe(i.why.as_deref().unwrap_or("")).into_owned(),
        ]);
    }
    print_out(t)?;
    let counts = [
        "applied", "conflict", "blocked", "held", "failed", "paused", "skipped",
    ]
    .iter()
    .map(|k| (k, r.count(k)))
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{n} {k}"))
    .collect::<Vec<_>>()
    .join(", ");
    if dry_run {
        ctx.ui
            .note(format!("dry run: {counts}; nothing was changed"));
    } else {
        ctx.ui.note(format!(
            "run {}: {counts}{}",
            r.run.unwrap_or_default(),
            if r.count("applied") > 0 {
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
        return Err(Error::refused(format!(
            "{} may not force a revert: it takes the admin role",
            ctx.actor
        )));
    }
    let ids = match (args.change, args.run) {
        (Some(c), _) => {
            store.change(c)?.ok_or_else(|| Error::NotFound {
                what: "change",
                id: c.to_string(),
            })?;
            vec![c]
        }
        (None, Some(run)) => {
            let all = store.run_change_ids(run)?;
            if all.is_empty() {
                return Err(Error::NotFound {
                    what: "run with changes",
                    id: run.to_string(),
                });
            }
            all
        }
        (None, None) => unreachable!("clap requires one"),
    };
    store.set_bulk_cache()?;
    if let Some(of) = args.run
        && ids.len() > chunk_size()
        && let Some(outcome) = revert_in_chunks(&mut store, of, &ids, args.force, ctx)?
    {
        return Ok(outcome);
    }
    let (run, done) = store.write(&ctx.now, |w| apply::revert(w, &ctx.actor, &ids, args.force))?;
    print_reverted(run, &done, ctx)?;
    Ok(Outcome::Done)
}

/// A large run reverted a chunk per transaction as apply does, so the write-ahead log never
/// holds the whole run, if the whole run can be undone (see `Store::run_revertible_in_chunks`);
/// `None`, with nothing written, if it cannot. A chunk is still all or nothing. Only a record
/// changed by someone else between two chunks can stop it part way: what was undone stays, as
/// one revert run that can itself be reverted (exit 3).
///
/// The check reads every change of the run against its record, about a twentieth of the work
/// of the revert itself, so it runs on a second core over a snapshot taken in the first
/// chunk's transaction, while that chunk is reverted; the chunk commits only once the check
/// has passed. The first chunk is made long enough that the check is usually done first.
fn revert_in_chunks(
    store: &mut crate::store::Store,
    of: i64,
    ids: &[i64],
    force: bool,
    ctx: &Ctx,
) -> Result<Option<Outcome>> {
    let run = std::cell::Cell::new(None);
    let mut done = apply::RevertSummary::default();
    let not_in_chunks = std::cell::Cell::new(false);
    let stopped = in_chunks(
        store,
        ctx,
        ids,
        chunk_size().max(ids.len() / 12),
        "reverting",
        |w, chunk| {
            let check = match run.get() {
                None => {
                    let snapshot = w.snapshot()?;
                    Some(std::thread::spawn(move || {
                        snapshot.run_revertible_in_chunks(of, force)
                    }))
                }
                Some(_) => None,
            };
            let reverted = apply::revert_chunk(w, &ctx.actor, chunk, force, run.get());
            // The check is waited for whatever the chunk met. If it finds a record moved on,
            // the chunk rolls back and the run goes in one transaction, which names every
            // change it cannot undo.
            if let Some(check) = check
                && !check.join().expect("the check does not panic")?
            {
                not_in_chunks.set(true);
                return Err(Error::Store("not revertible in chunks".into()));
            }
            reverted
        },
        |(r, part)| {
            run.set(Some(r));
            done.absorb(part);
        },
    );
    if not_in_chunks.get() {
        return Ok(None);
    }
    let stopped = stopped?;
    let run = run.get().expect("the first chunk committed");
    print_reverted(run, &done, ctx)?;
    if let Some(e) = stopped {
        eprintln!(
            "error: the revert of run {of} stopped after {} of its {} changes were undone: {e}",
            done.count,
            ids.len()
        );
        eprintln!(
            "hint: what was undone stays, as run {run}; `crmgate revert --run {run}` puts it back"
        );
        return Ok(Some(Outcome::Partial));
    }
    Ok(Some(Outcome::Done))
}

fn print_reverted(run: i64, done: &apply::RevertSummary, ctx: &Ctx) -> Result<()> {
    if ctx.ui.json {
        print_json(
            &serde_json::json!({ "run": run, "reverted": done.count, "first": done.first }),
        )?;
    } else {
        for d in &done.first {
            print_out(format!(
                "change {} undone by change {} ({} {})",
                d.change,
                d.by,
                safe(&d.record),
                d.field
            ))?;
        }
        let noun = if done.count == 1 { "change" } else { "changes" };
        ctx.ui.note(format!(
            "run {run}: {} {noun} reverted; undo with `crmgate revert --run {run}`",
            done.count
        ));
    }
    Ok(())
}
