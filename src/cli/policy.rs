//! `crmgate policy show|set|check`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::error::{Error, Problems, Result};
use crate::model::NewEvent;
use crate::policy::{self, Policy};
use crate::schema::Schema;
use crate::store::{Store, Writer};

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
}

pub fn run(cmd: PolicyCommand, ctx: &Ctx) -> Result<Outcome> {
    match cmd {
        PolicyCommand::Show { number } => show(number, ctx),
        PolicyCommand::Set { file } => set(&file, ctx),
        PolicyCommand::Check { file } => check(&file, ctx),
    }
}

fn read(file: &str) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| Error::io(file, e))
}

/// Parses `text` (named `name` in messages) against the store's schema.
pub fn parse(name: &str, text: &str, schema: &Schema) -> Result<Policy> {
    policy::parse(text, schema).map_err(|found| {
        let mut problems = Problems::default();
        for p in found {
            problems.push(name, p.line as u64, p.message);
        }
        problems.into_error(None, "the policy was not changed; fix the lines above")
    })
}

/// The policy in force and its version.
pub fn load(store: &Store) -> Result<(i64, Policy)> {
    let v = store.current_policy()?.ok_or_else(|| {
        Error::refused_with_hint(
            "this store has no policy",
            "install one with `crmgate policy set FILE`",
        )
    })?;
    Ok((
        v.version,
        parse(
            &format!("policy version {}", v.version),
            &v.text,
            store.schema(),
        )?,
    ))
}

/// Adds `text` as a new policy version unless it is the one in force; returns the version in
/// force afterwards and whether it is new.
pub fn install(w: &Writer<'_>, name: &str, text: &str, actor: &str) -> Result<(i64, bool)> {
    parse(name, text, w.schema())?;
    let sha = crate::audit::sha256_hex(text.as_bytes());
    let current = w.current_policy_version()?;
    if let Some((version, current_sha)) = &current
        && *current_sha == sha
    {
        return Ok((*version, false));
    }
    let version = w.add_policy(actor, &sha, text)?;
    w.append_event(&NewEvent {
        actor: actor.to_string(),
        actor_kind: "human",
        action: "policy",
        detail: serde_json::json!({
            "version": version,
            "previous_version": current.map(|c| c.0),
            "sha256": sha,
            "file": name,
        }),
        ..NewEvent::default()
    })?;
    Ok((version, true))
}

fn show(version: Option<i64>, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let v = match version {
        Some(n) => store.policy_version(n)?.ok_or_else(|| Error::NotFound {
            what: "policy version",
            id: n.to_string(),
        })?,
        None => store.current_policy()?.ok_or_else(|| {
            Error::refused_with_hint(
                "this store has no policy",
                "install one with `crmgate policy set FILE`",
            )
        })?,
    };
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
    if let Some(current) = store.current_policy()? {
        let policy = parse("the policy in force", &current.text, store.schema())?;
        if !policy.has_role(&ctx.actor, "admin") {
            return Err(Error::refused_with_hint(
                format!(
                    "{} may not change the policy: it takes the admin role",
                    ctx.actor
                ),
                format!(
                    "admins: {}",
                    policy
                        .roles
                        .iter()
                        .filter(|(_, r)| r.iter().any(|x| x == "admin"))
                        .map(|(a, _)| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let (version, new) = store.write(&ctx.now, |w| install(w, file, &text, &ctx.actor))?;
    if ctx.ui.json {
        print_json(&serde_json::json!({ "version": version, "changed": new }))?;
    } else if new {
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
