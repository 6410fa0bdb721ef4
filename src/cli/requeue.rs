//! `crmgate requeue ID... | --state conflict|failed [--source S] [--object O] [--yes]`

use super::{Ctx, Outcome, print_json};
use crate::error::{Error, Result};
use crate::ingest::requeue::{self, Request, Requeueable, Targets};

/// `--state`: the states a filter-wide requeue takes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StateArg {
    Conflict,
    Failed,
}

#[derive(Debug, clap::Args)]
pub struct RequeueArgs {
    /// Proposals: crmgate ids or SOURCE:ID. Or give --state instead.
    #[arg(
        value_name = "ID",
        required_unless_present = "state",
        conflicts_with = "state"
    )]
    pub ids: Vec<String>,
    /// Every proposal in this state (narrowed by --source and --object).
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only proposals from this source.
    #[arg(long, value_name = "NAME", requires = "state")]
    pub source: Option<String>,
    /// Only proposals about this object.
    #[arg(long, value_name = "OBJECT", requires = "state")]
    pub object: Option<String>,
    /// Requeue every proposal --state matches (it prints the count otherwise).
    #[arg(long, requires = "state")]
    pub yes: bool,
}

pub fn run(args: RequeueArgs, ctx: &Ctx) -> Result<Outcome> {
    let targets = match args.state {
        None => Targets::Ids(args.ids),
        Some(s) => Targets::Matching {
            state: match s {
                StateArg::Conflict => Requeueable::Conflict,
                StateArg::Failed => Requeueable::Failed,
            },
            source: args.source,
            object: args.object,
            confirmed: args.yes,
        },
    };
    let request = Request {
        targets,
        actor: ctx.actor.clone(),
        now: ctx.now.clone(),
    };
    let report = requeue::requeue(&mut ctx.open()?, &request)?;
    if ctx.ui.json {
        print_json(&report)?;
    } else {
        for f in &report.refused {
            eprintln!(
                "{}: not requeued: {}",
                crate::ui::safe(&f.id),
                crate::ui::safe(&f.error)
            );
        }
        for r in &report.requeued {
            ctx.ui
                .note(format!("{} requeued as {} ({})", r.old, r.new, r.state));
        }
        ctx.ui
            .note(match (report.requeued.len(), report.refused.len()) {
                (0, 0) => "nothing to requeue: no proposal matches".to_string(),
                (done, not) => format!("{done} requeued, {not} not"),
            });
    }
    Ok(match (report.requeued.len(), report.refused.is_empty()) {
        (_, true) => Outcome::Done,
        (0, false) => return Err(Error::refused("nothing was requeued")),
        _ => Outcome::Partial,
    })
}
