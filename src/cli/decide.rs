//! `crmgate approve` and `crmgate reject`: decisions from scripts, with the same checks as the
//! interactive review.

use super::{Ctx, Outcome, print_json};
use crate::error::{Error, Result};
use crate::human::{self, Selection, Targets, Verb};

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

impl Filter {
    /// As the library's selection, when any filter is set.
    fn selection(&self) -> Option<Selection> {
        self.is_set().then(|| Selection {
            narrow: self.narrow.clone().filter(None, None),
            rule: self.rule.clone(),
            max_confidence: self.max_confidence,
            confirmed: self.yes,
        })
    }
}

pub fn approve(args: ApproveArgs, ctx: &Ctx) -> Result<Outcome> {
    let verb = Verb::Approve { note: args.note };
    run(args.ids, &args.filter, verb, ctx)
}

pub fn reject(args: RejectArgs, ctx: &Ctx) -> Result<Outcome> {
    let verb = Verb::reject(args.reason)?;
    run(args.ids, &args.filter, verb, ctx)
}

fn run(ids: Vec<String>, filter: &Filter, verb: Verb, ctx: &Ctx) -> Result<Outcome> {
    let targets = Targets::new(&verb, ids, filter.selection())?;
    let mut store = ctx.open()?;
    let batch = human::decide_batch(&mut store, &targets, &verb, &ctx.actor, &ctx.now)?;
    let done_word = verb.words().1;
    if ctx.ui.json {
        print_json(&serde_json::json!({
            done_word: batch.done,
            "failed": batch.refused,
            "paused": batch.paused,
        }))?;
    } else {
        for f in &batch.refused {
            eprintln!(
                "{}: not {done_word}: {}",
                crate::ui::safe(&f.id),
                crate::ui::safe(&f.error)
            );
        }
        ctx.ui.note(match batch.refused.len() {
            0 => format!(
                "{} {done_word}",
                crate::ui::count(batch.done as u64, "proposal", "proposals")
            ),
            n => format!("{} {done_word}, {n} not", batch.done),
        });
        for p in &batch.paused {
            eprintln!("paused source {}", crate::ui::safe(p));
        }
    }
    Ok(match (batch.done, batch.refused.is_empty()) {
        (_, true) => Outcome::Done,
        (0, false) => return Err(Error::refused(format!("nothing was {done_word}"))),
        _ => Outcome::Partial,
    })
}
