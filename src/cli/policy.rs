//! `crmgate policy show|set|check`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::admin::policy::{self as admin, Installed, Replayed, decision_label};
use crate::error::{Error, Result};

pub use crate::admin::policy::{load, parse};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force (or an earlier version).
    #[command(after_help = "Example:\n  crmgate policy show\n  crmgate policy show 2 --json")]
    Show {
        /// An earlier version's number (default: the one in force).
        #[arg(value_name = "VERSION")]
        number: Option<i64>,
    },
    /// Check a policy file and make it the policy in force (admin).
    #[command(after_help = "Example:\n  crmgate --as alice policy set policy.toml")]
    Set { file: String },
    /// Check a policy file against the store without installing it; exit 1 with its problems.
    #[command(after_help = "Example:\n  crmgate policy check policy.toml")]
    Check { file: String },
    /// Replay the queue through a policy file and show which decisions would change, and why.
    #[command(
        after_help = "Example:\n  crmgate policy test stricter.toml\n  crmgate policy test stricter.toml --json"
    )]
    Test {
        file: String,
        /// Show at most this many changes (all are counted).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

pub fn run(cmd: PolicyCommand, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        PolicyCommand::Show { number } => show(number, ctx),
        PolicyCommand::Set { file } => set(&file, ctx),
        PolicyCommand::Check { file } => check(&file, ctx),
        PolicyCommand::Test { file, limit } => test(&file, limit, ctx),
    }
}

fn read(file: &str) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| Error::io(file, e))
}

fn show(version: Option<i64>, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let v = admin::version(&store, version)?;
    if ctx.ui.json {
        print_json(&v)?;
    } else {
        ctx.ui.note(format!(
            "# policy version {}, set by {} at {}",
            v.version, v.actor, v.at
        ));
        print_out(crate::ui::safe(v.text.trim_end()).replace("\\u{a}", "\n"))?;
    }
    Ok(Outcome::Done)
}

fn set(file: &str, ctx: &Ctx) -> Result<Outcome> {
    let text = read(file)?;
    let mut store = ctx.open()?;
    let installed = admin::set(&mut store, file, &text, &ctx.actor, &ctx.now)?;
    let version = installed.version();
    if ctx.ui.json {
        let new = matches!(installed, Installed::New(_));
        print_json(&serde_json::json!({ "version": version, "changed": new }))?;
    } else if let Installed::New(_) = installed {
        ctx.ui
            .note(format!("policy version {version} is now in force"));
    } else {
        ctx.ui.note(format!(
            "unchanged: {file} is policy version {version}, already in force"
        ));
    }
    Ok(Outcome::Done)
}

fn check(file: &str, ctx: &Ctx) -> Result<Outcome> {
    let text = read(file)?;
    let store = ctx.open()?;
    let p = parse(file, &text, store.schema())?;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "ok": true, "rules": p.rules.len() }))?;
    } else {
        ctx.ui.note(format!("{file}: ok ({} rules)", p.rules.len()));
    }
    Ok(Outcome::Done)
}

/// Replays the queue through the policy in `file` and prints what would change.
fn test(file: &str, limit: usize, ctx: &Ctx) -> Result<Outcome> {
    let text = read(file)?;
    let store = ctx.open()?;
    let candidate = parse(file, &text, store.schema())?;
    let r = admin::replay(&store, &candidate, limit)?;
    if ctx.ui.json {
        print_json(&serde_json::json!({
            "replayed": r.replayed,
            "changed": r.changed,
            "moves": r.moves.iter().map(|m| serde_json::json!({
                "from": decision_label(m.from),
                "to": m.to,
                "count": m.count,
            })).collect::<Vec<_>>(),
            "changes": r.changes,
        }))?;
    } else if r.changed == 0 {
        ctx.ui.note(format!(
            "{} proposals replayed through {file}: no decision would change",
            r.replayed
        ));
    } else {
        print_changes(&r, file, ctx)?;
    }
    Ok(Outcome::Done)
}

fn print_changes(r: &Replayed, file: &str, ctx: &Ctx) -> Result<()> {
    let mut t = ctx.ui.table();
    t.set_header([
        "id", "proposal", "record", "field", "now", "would be", "why",
    ]);
    for c in &r.changes {
        t.add_row([
            c.id.to_string(),
            crate::ui::safe(&c.proposal).into_owned(),
            crate::ui::safe(&c.record).into_owned(),
            c.field.clone().unwrap_or_default(),
            decision_label(c.from).to_string(),
            c.to.to_string(),
            c.why.join("; "),
        ]);
    }
    print_out(t)?;
    let summary: Vec<String> = r
        .moves
        .iter()
        .map(|m| format!("{} {} → {}", m.count, decision_label(m.from), m.to))
        .collect();
    ctx.ui.note(format!(
        "{} proposals replayed through {file}: {} decisions would change ({}); nothing was changed",
        r.replayed,
        r.changed,
        summary.join(", ")
    ));
    Ok(())
}
