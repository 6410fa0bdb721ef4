//! `crmgate review`: the interactive review on a terminal; without one, the queue and how to
//! decide it from a script.

use super::{Ctx, Outcome, print_json, print_out};
use crate::error::Result;
use crate::model::State;
use crate::prompt::{self, Prompt};
use crate::store::ListFilter;

#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// Only pending or only suggested proposals (default: both).
    #[arg(long, value_parser = ["pending", "suggested"])]
    pub state: Option<String>,
    #[command(flatten)]
    pub narrow: super::queue::Narrow,
    /// Stop after this many proposals.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}

/// How many proposals a review without a terminal lists.
const LISTED: usize = 20;

pub fn run(args: ReviewArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    let filter = args
        .narrow
        .filter(args.state.as_deref().and_then(State::parse), None);
    let filter = crate::queue::checked(&store, filter)?;
    if !prompt::attended() || ctx.ui.json {
        return unattended(&store, &filter, ctx);
    }
    let prompt = Prompt::new();
    let tally = crate::review::review(
        &mut store,
        filter,
        args.limit,
        &ctx.actor,
        ctx.ui,
        super::now,
        &prompt,
    )?;
    let mut done = format!(
        "Review done: {} approved, {} edited and approved, {} rejected, {} skipped",
        tally.approved, tally.edited, tally.rejected, tally.skipped
    );
    if tally.undone > 0 {
        done.push_str(&format!(", {} undone", tally.undone));
    }
    if tally.shown == 0 {
        done = "Nothing to review: no pending or suggested proposals match.".into();
    }
    ctx.ui.note(done);
    if tally.approved + tally.edited > 0 {
        ctx.ui
            .note("Approved proposals apply with `crmgate apply` (try `--dry-run` first).");
    }
    Ok(Outcome::Done)
}

/// No one to ask: list what waits, say how to decide it from a script, and return at once.
fn unattended(store: &crate::store::Store, filter: &ListFilter, ctx: &Ctx) -> Result<Outcome> {
    let (total, rows) = crate::review::waiting(store, filter, LISTED)?;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "open": total, "first": rows }))?;
        return Ok(Outcome::Done);
    }
    if total == 0 {
        ctx.ui
            .note("Nothing to review: no pending or suggested proposals match.");
        return Ok(Outcome::Done);
    }
    print_out(super::queue::proposal_table(&ctx.ui, &rows))?;
    ctx.ui.note(format!(
        "{} for review{}.\n\
         `crmgate review` is interactive and needs a terminal. From a script, decide by id:\n  \
         crmgate approve ID... [--note TEXT]\n  crmgate reject ID... --reason TEXT\n\
         or by filter (it prints the count; add --yes to go ahead):\n  \
         crmgate approve --source NAME --kind KIND --yes",
        if total == 1 {
            "1 proposal waits".to_string()
        } else {
            format!("{total} proposals wait")
        },
        if total as usize > rows.len() {
            format!(" (the first {} by record above)", rows.len())
        } else {
            String::new()
        }
    ));
    Ok(Outcome::Done)
}
