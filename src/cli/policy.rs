//! `crmgate policy show|set|check`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::admin::policy::{self as admin, Installed, Replayed, decision_label};
use crate::error::{Error, Result};
use crate::ui::{count, safe};

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
    if version.is_none() {
        for w in admin::warnings(&load(&store)?.1) {
            ctx.ui.note(format!("warning: {}", crate::ui::safe(&w)));
        }
    }
    Ok(Outcome::Done)
}

fn set(file: &str, ctx: &Ctx) -> Result<Outcome> {
    let text = read(file)?;
    let mut store = ctx.open()?;
    let report = admin::set_and_redecide(&mut store, file, &text, &ctx.actor, &ctx.now, 50)?;
    let (installed, r) = (report.installed, &report.redecided);
    let version = installed.version();
    if ctx.ui.json {
        let new = matches!(installed, Installed::New(_));
        print_json(&serde_json::json!({
            "version": version,
            "changed": new,
            "redecided": replay_json(r),
        }))?;
        return Ok(Outcome::Done);
    }
    if let Installed::New(_) = installed {
        ctx.ui
            .note(format!("policy version {version} is now in force"));
    } else {
        ctx.ui.note(format!(
            "unchanged: {file} is policy version {version}, already in force"
        ));
    }
    print_replay(r, &format!("policy version {version}"), Tense::Done, ctx)
}

fn check(file: &str, ctx: &Ctx) -> Result<Outcome> {
    let text = read(file)?;
    let store = ctx.open()?;
    let p = parse(file, &text, store.schema())?;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "ok": true, "rules": p.rules.len() }))?;
    } else {
        let rules = count(p.rules.len() as u64, "rule", "rules");
        ctx.ui.note(format!("{file}: ok ({rules})"));
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
        print_json(&replay_json(&r))?;
        return Ok(Outcome::Done);
    }
    print_replay(&r, file, Tense::Would, ctx)
}

fn replay_json(r: &Replayed) -> serde_json::Value {
    serde_json::json!({
        "replayed": r.replayed,
        "changed": r.changed,
        "moves": r.moves.iter().map(|m| serde_json::json!({
            "from": decision_label(m.from),
            "to": m.to,
            "count": m.count,
        })).collect::<Vec<_>>(),
        "changes": r.changes,
        "unpermitted": r.unpermitted,
    })
}

/// Whether a replay's decisions would change (`policy test`) or did (`policy set`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tense {
    Would,
    Done,
}

/// What a replay changed, then the approvals by a person the policy no longer permits.
fn print_replay(r: &Replayed, through: &str, tense: Tense, ctx: &Ctx) -> Result<Outcome> {
    print_moves(r, through, tense, ctx)?;
    print_unpermitted(r, through, tense, ctx)
}

/// The approvals by a person, not applied, whose approver the policy no longer permits.
fn print_unpermitted(r: &Replayed, through: &str, tense: Tense, ctx: &Ctx) -> Result<Outcome> {
    if r.unpermitted.is_empty() {
        return Ok(Outcome::Done);
    }
    let mut t = ctx.ui.table();
    t.set_header([
        "id",
        "proposal",
        "record",
        "field",
        "approved by",
        "now takes",
    ]);
    for u in &r.unpermitted {
        t.add_row([
            u.id.to_string(),
            safe(&u.proposal).into_owned(),
            safe(&u.record).into_owned(),
            u.field.clone().unwrap_or_default(),
            safe(&u.approver).into_owned(),
            u.roles.join(" or "),
        ]);
    }
    print_out(t)?;
    let would = match tense {
        Tense::Would => "would no longer permit",
        Tense::Done => "no longer permits",
    };
    ctx.ui.note(format!(
        "{} {would} {}: apply sends each back to review, for `crmgate approve ID` by one who holds the role",
        safe(through),
        count(
            r.unpermitted.len() as u64,
            "approval by a person",
            "approvals by a person"
        ),
    ));
    Ok(Outcome::Done)
}

/// The table of changed decisions, then one line: how many were replayed and how they moved.
fn print_moves(r: &Replayed, through: &str, tense: Tense, ctx: &Ctx) -> Result<Outcome> {
    let replayed = count(r.replayed, "proposal", "proposals");
    let (verb, header) = match tense {
        Tense::Would => ("replayed through", "would be"),
        Tense::Done => ("decided again under", "now"),
    };
    if r.changed == 0 {
        let none = match tense {
            Tense::Would => "no decision would change",
            Tense::Done => "no decision changed",
        };
        ctx.ui
            .note(format!("{replayed} {verb} {}: {none}", safe(through)));
        return Ok(Outcome::Done);
    }
    let mut t = ctx.ui.table();
    let was = if tense == Tense::Would { "now" } else { "was" };
    t.set_header(["id", "proposal", "record", "field", was, header, "why"]);
    for c in &r.changes {
        t.add_row([
            c.id.to_string(),
            safe(&c.proposal).into_owned(),
            safe(&c.record).into_owned(),
            c.field.clone().unwrap_or_default(),
            decision_label(c.from).to_string(),
            c.to.to_string(),
            c.why.join("; "),
        ]);
    }
    print_out(t)?;
    if (r.changes.len() as u64) < r.changed {
        ctx.ui.note(format!(
            "showing the first {} of {} changes",
            r.changes.len(),
            r.changed
        ));
    }
    let summary: Vec<String> = r
        .moves
        .iter()
        .map(|m| format!("{} {} → {}", m.count, decision_label(m.from), m.to))
        .collect();
    let (changed, tail) = match tense {
        Tense::Would => ("would change", "; nothing was changed"),
        Tense::Done => ("changed", ""),
    };
    ctx.ui.note(format!(
        "{replayed} {verb} {}: {} {changed} ({}){tail}",
        safe(through),
        count(r.changed, "decision", "decisions"),
        summary.join(", ")
    ));
    Ok(Outcome::Done)
}
