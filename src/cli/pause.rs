//! `crmgate pause` and `crmgate resume`: the kill switch.

use super::{Ctx, Outcome, print_json};
use crate::error::{Error, Result};
use crate::model::NewEvent;

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

/// Pausing and resuming take the admin role under the policy in force.
fn require_admin(store: &crate::store::Store, ctx: &Ctx, what: &str) -> Result<()> {
    let (_, policy) = super::policy::load(store)?;
    if policy.has_role(&ctx.actor, "admin") {
        Ok(())
    } else {
        Err(Error::refused(format!(
            "{} may not {what}: it takes the admin role",
            ctx.actor
        )))
    }
}

fn scope(source: &Option<String>) -> String {
    match source {
        Some(s) => format!("source {}", crate::ui::safe(s)),
        None => "the store".into(),
    }
}

pub fn pause(args: PauseArgs, ctx: &Ctx) -> Result<Outcome> {
    if args.reason.trim().is_empty() {
        return Err(Error::refused("a pause needs a --reason"));
    }
    let mut store = ctx.open()?;
    require_admin(&store, ctx, "pause")?;
    let source = args.source.as_deref();
    let changed = store.write(&ctx.now, |w| {
        let changed = w.pause(source, &args.reason, &ctx.actor)?;
        if changed {
            w.append_event(NewEvent {
                actor: ctx.actor.clone(),
                actor_kind: "human",
                action: "pause",
                source: args.source.clone(),
                detail: serde_json::json!({ "reason": args.reason }),
                ..NewEvent::default()
            })?;
        }
        Ok(changed)
    })?;
    let what = scope(&args.source);
    if ctx.ui.json {
        print_json(&serde_json::json!({ "paused": what, "changed": changed }))?;
    } else if changed {
        ctx.ui.note(format!("paused {what}: nothing from it is applied or let through on its own until `crmgate resume`"));
    } else {
        ctx.ui.note(format!("{what} was already paused; unchanged"));
    }
    Ok(Outcome::Done)
}

pub fn resume(args: ResumeArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    require_admin(&store, ctx, "resume")?;
    let source = args.source.as_deref();
    let changed = store.write(&ctx.now, |w| {
        let changed = w.resume(source)?;
        if changed {
            w.append_event(NewEvent {
                actor: ctx.actor.clone(),
                actor_kind: "human",
                action: "resume",
                source: args.source.clone(),
                ..NewEvent::default()
            })?;
        }
        Ok(changed)
    })?;
    let what = scope(&args.source);
    if ctx.ui.json {
        print_json(&serde_json::json!({ "resumed": what, "changed": changed }))?;
    } else if changed {
        ctx.ui.note(format!("resumed {what}"));
    } else {
        ctx.ui.note(format!("{what} was not paused; unchanged"));
    }
    Ok(Outcome::Done)
}
