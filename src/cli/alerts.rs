//! `crmgate alerts test`: check the wiring of the policy's `[alerts]` command.

use super::{Ctx, Outcome, print_json};
use crate::error::Result;

#[derive(Debug, clap::Subcommand)]
pub enum AlertsCommand {
    /// Send a sample alert (kind "test") to the policy's [alerts] command; exit 1 if it fails.
    #[command(after_help = "Example:\n  crmgate alerts test")]
    Test,
}

pub fn run(cmd: AlertsCommand, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        AlertsCommand::Test => test(ctx),
    }
}

fn test(ctx: &Ctx) -> Result<Outcome> {
    let mut store = ctx.open()?;
    let alert = crate::alerts::test(&mut store, &ctx.actor, &ctx.now)?;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "sent": alert }))?;
    } else {
        ctx.ui
            .note("sent a test alert; the [alerts] command ran and exited 0");
    }
    Ok(Outcome::Done)
}
