//! `crmgate approve` and `crmgate reject`: decisions from scripts, with the same checks as the
//! interactive review.

use super::{Ctx, Outcome, print_json};
use crate::error::{Error, Result};
use crate::human::{self, Verb};
use crate::model::State;
use crate::policy::Decision;

/// Which pending proposals a filter-wide decision covers. Suggestions are never decided in bulk.
#[derive(Debug, Clone, clap::Args)]
pub struct Filter {
    #[command(flatten)]
    pub narrow: super::queue::Narrow,
    /// Only proposals this policy rule matched.
    #[arg(long, value_name = "NAME")]
    pub rule: Option<String>,
    /// Only proposals with crmgate's confidence at most this.
    #[arg(long, value_name = "X")]
    pub max_confidence: Option<f64>,
    /// Decide every proposal the filter matches (it prints the count otherwise).
    #[arg(long)]
    pub yes: bool,
}

impl Filter {
    fn is_set(&self) -> bool {
        self.narrow.is_set() || self.rule.is_some() || self.max_confidence.is_some()
    }
}

#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// Proposals: crmgate ids or SOURCE:ID. Or give a filter instead.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// A note for the audit log.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Debug, clap::Args)]
pub struct RejectArgs {
    /// Proposals: crmgate ids or SOURCE:ID. Or give a filter instead.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Why (recorded, and counted toward the source's track record).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub filter: Filter,
}

pub fn approve(args: ApproveArgs, ctx: &Ctx) -> Result<Outcome> {
    run(
        &args.ids,
        &args.filter,
        Verb::Approve { note: args.note },
        ctx,
    )
}

pub fn reject(args: RejectArgs, ctx: &Ctx) -> Result<Outcome> {
    if args.reason.trim().is_empty() {
        return Err(Error::refused("a rejection needs a --reason"));
    }
    run(
        &args.ids,
        &args.filter,
        Verb::Reject {
            reason: args.reason,
        },
        ctx,
    )
}

#[derive(Debug, serde::Serialize)]
struct Failure {
    id: String,
    error: String,
}

fn run(ids: &[String], filter: &Filter, verb: Verb, ctx: &Ctx) -> Result<Outcome> {
    let (verb_word, done_word) = match verb {
        Verb::Approve { .. } | Verb::Edit { .. } => ("approve", "approved"),
        Verb::Reject { .. } => ("reject", "rejected"),
    };
    // Exactly one of the two: ids, or a filter.
    if ids.is_empty() != filter.is_set() {
        return Err(Error::refused_with_hint(
            format!("{verb_word} takes proposal ids or a filter (one of the two)"),
            format!(
                "e.g. `crmgate {verb_word} 42 clearbit:p-17` or `crmgate {verb_word} --source clearbit --yes`"
            ),
        ));
    }
    let mut store = ctx.open()?;
    let (version, policy) = super::policy::load(&store)?;
    // Resolve what to decide before taking the write lock.
    let mut targets: Vec<(String, Option<i64>)> = Vec::new();
    if filter.is_set() {
        let base = filter.narrow.clone().filter(None, None);
        for id in store.proposal_ids(&base, &[State::Pending])? {
            let Some(p) = store.proposal(id)? else {
                continue;
            };
            if let Some(max) = filter.max_confidence
                && p.confidence.unwrap_or(0.0) > max
            {
                continue;
            }
            if let Some(rule) = &filter.rule {
                let d: Option<Decision> =
                    p.rules.clone().and_then(|v| serde_json::from_value(v).ok());
                if !d.is_some_and(|d| d.rules.iter().any(|r| r == rule)) {
                    continue;
                }
            }
            targets.push((id.to_string(), Some(id)));
        }
        if !filter.yes {
            return Err(Error::refused_with_hint(
                format!(
                    "{} pending proposals match; nothing was {done_word}",
                    targets.len()
                ),
                format!("check the filter, then add --yes to {verb_word} exactly these"),
            ));
        }
    } else {
        for id in ids {
            let found = super::queue::find_proposal(&store, id).map(|p| p.id).ok();
            targets.push((id.clone(), found));
        }
    }
    let mut failures: Vec<Failure> = Vec::new();
    let mut done = 0u64;
    let mut paused: Vec<String> = Vec::new();
    store.write(&ctx.now, |w| {
        let mut sources: Vec<String> = Vec::new();
        for (shown, id) in &targets {
            let Some(id) = id else {
                failures.push(Failure {
                    id: shown.clone(),
                    error: "no such proposal".into(),
                });
                continue;
            };
            match human::decide(w, &policy, version, &ctx.actor, *id, &verb)? {
                Ok(p) => {
                    done += 1;
                    if !sources.contains(&p.source) {
                        sources.push(p.source);
                    }
                }
                Err(why) => failures.push(Failure {
                    id: shown.clone(),
                    error: why,
                }),
            }
        }
        if let Verb::Reject { .. } = verb {
            for s in &sources {
                if let Some(reason) = human::circuit_breaker(w, &policy, s)? {
                    paused.push(format!("{s}: {reason}"));
                }
            }
        }
        Ok(())
    })?;
    if ctx.ui.json {
        print_json(&serde_json::json!({ done_word: done, "failed": failures, "paused": paused }))?;
    } else {
        for f in &failures {
            eprintln!(
                "{}: not {done_word}: {}",
                crate::ui::safe(&f.id),
                crate::ui::safe(&f.error)
            );
        }
        ctx.ui
            .note(format!("{done} {done_word}, {} not", failures.len()));
        for p in &paused {
            eprintln!("paused source {}", crate::ui::safe(p));
        }
    }
    Ok(match (done, failures.is_empty()) {
        (_, true) => Outcome::Done,
        (0, false) => return Err(Error::refused(format!("nothing was {done_word}"))),
        _ => Outcome::Partial,
    })
}
