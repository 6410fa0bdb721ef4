//! `crmgate pause` and `crmgate resume`: the kill switch.

use super::{Ctx, Outcome, print_json};
use crate::admin::pauses::{self, Toggled};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    /// Pause only this source (default: the whole store).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Why; recorded in the audit log and shown by `status`.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// Resume only this source (default: the whole store).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

fn scope(source: &Option<String>) -> String {
    match source {
        Some(s) => format!("source {}", crate::ui::safe(s)),
        None => "the store".into(),
    }
}

pub fn pause(args: PauseArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    let toggled = pauses::pause(
        &mut store,
        args.source.as_deref(),
        &args.reason,
        &ctx.actor,
        &ctx.now,
    )?;
    let what = scope(&args.source);
    let changed = toggled == Toggled::Changed;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "paused": what, "changed": changed }))?;
    } else if changed {
        ctx.ui.note(format!("paused {what}: nothing from it is applied, imported or let through on its own until `crmgate resume`; `crmgate revert` still runs"));
    } else {
        ctx.ui.note(format!("{what} was already paused; unchanged"));
    }
    Ok(Outcome::Done)
}

pub fn resume(args: ResumeArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    let toggled = pauses::resume(&mut store, args.source.as_deref(), &ctx.actor, &ctx.now)?;
    let what = scope(&args.source);
    let changed = toggled == Toggled::Changed;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "resumed": what, "changed": changed }))?;
    } else if changed {
        ctx.ui.note(format!("resumed {what}"));
    } else {
        ctx.ui.note(format!("{what} was not paused; unchanged"));
    }
    Ok(Outcome::Done)
}
