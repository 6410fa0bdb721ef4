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
    w.append_event(NewEvent {
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

/// A decision that `policy test` found would change.
#[derive(Debug, serde::Serialize)]
struct Change {
    id: i64,
    proposal: String,
    record: String,
    field: Option<String>,
    from: String,
    to: String,
    why: Vec<String>,
}

/// Replays every proposal whose decision still matters through the policy in `file`, against
/// the records as they are now and with the confidence crmgate gave it, as one run (the
/// per-run and per-day limits count across the replay). Changes nothing.
fn test(file: &str, limit: usize, ctx: &Ctx) -> Result<Outcome> {
    use crate::model::{Kind, Value};
    use crate::policy::{Action, Facts, Situation};
    use std::collections::{BTreeMap, HashMap};

    let text = read(file)?;
    let store = ctx.open()?;
    let candidate = parse(file, &text, store.schema())?;
    let pauses = store.pauses()?;
    let mut autos: HashMap<String, u64> = HashMap::new();
    let mut replayed = 0u64;
    let mut changed = 0u64;
    let mut moves: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut shown: Vec<Change> = Vec::new();
    store.for_each_replayable(|r| {
        let (Some(obj), Some(kind)) = (store.schema().object(&r.object), Kind::parse(&r.kind))
        else {
            return Ok(());
        };
        let Some(row) = store.record_row(obj, &r.record)? else {
            return Ok(()); // the record is gone; apply will say so
        };
        fn pairs<'a>(
            obj: &'a crate::schema::Object,
            row: &'a [Value],
        ) -> Vec<(&'a str, &'a Value)> {
            obj.columns
                .iter()
                .map(|c| c.name.as_str())
                .zip(row)
                .collect()
        }
        let second_row = match &r.merge_into {
            Some(m) => store.record_row(obj, m)?,
            None => None,
        };
        let first = pairs(obj, &row);
        let second = second_row.as_deref().map(|r| pairs(obj, r));
        let mut records: Vec<&[(&str, &Value)]> = vec![&first];
        if let Some(s) = &second {
            records.push(s);
        }
        let current = r
            .field
            .as_ref()
            .and_then(|f| obj.columns.iter().position(|c| &c.name == f))
            .map(|i| row[i].clone())
            .unwrap_or(Value::Null);
        let used = autos.get(&r.source).copied().unwrap_or(0);
        let situation = Situation {
            store_paused: pauses.iter().any(|p| p.source.is_none()),
            source_paused: pauses
                .iter()
                .any(|p| p.source.as_deref() == Some(r.source.as_str())),
            auto_in_run: used,
            auto_today: used,
        };
        let d = crate::policy::decide(
            &candidate,
            &Facts {
                kind,
                source: &r.source,
                object: &r.object,
                field: r.field.as_deref(),
                value: &r.value,
                current: &current,
                trigger: r.trigger.as_deref(),
                confidence: r.confidence,
                records: &records,
            },
            &situation,
        );
        if d.action == Action::Auto {
            *autos.entry(r.source.clone()).or_default() += 1;
        }
        replayed += 1;
        let from = r.decision.clone().unwrap_or_else(|| "none".into());
        if from != d.action.as_str() {
            changed += 1;
            *moves
                .entry((from.clone(), d.action.as_str().to_string()))
                .or_default() += 1;
            if shown.len() < limit {
                shown.push(Change {
                    id: r.id,
                    proposal: r
                        .ext_id
                        .as_ref()
                        .map(|e| format!("{}:{e}", r.source))
                        .unwrap_or_else(|| r.id.to_string()),
                    record: format!("{}/{}", r.object, r.record),
                    field: r.field.clone(),
                    from,
                    to: d.action.as_str().to_string(),
                    why: d.why(&candidate),
                });
            }
        }
        Ok(())
    })?;
    let summary: Vec<String> = moves
        .iter()
        .map(|((f, t), n)| format!("{n} {f} → {t}"))
        .collect();
    if ctx.ui.json {
        print_json(&serde_json::json!({
            "replayed": replayed,
            "changed": changed,
            "moves": moves.iter().map(|((f, t), n)| serde_json::json!({"from": f, "to": t, "count": n})).collect::<Vec<_>>(),
            "changes": shown,
        }))?;
        return Ok(Outcome::Done);
    }
    if changed == 0 {
        ctx.ui.note(format!(
            "{replayed} proposals replayed through {file}: no decision would change"
        ));
        return Ok(Outcome::Done);
    }
    let mut t = ctx.ui.table();
    t.set_header([
        "id", "proposal", "record", "field", "now", "would be", "why",
    ]);
    for c in &shown {
        t.add_row([
            c.id.to_string(),
            crate::ui::safe(&c.proposal).into_owned(),
            crate::ui::safe(&c.record).into_owned(),
            c.field.clone().unwrap_or_default(),
            c.from.clone(),
            c.to.clone(),
            c.why.join("; "),
        ]);
    }
    print_out(t)?;
    ctx.ui.note(format!(
        "{replayed} proposals replayed through {file}: {changed} decisions would change ({}); nothing was changed",
        summary.join(", ")
    ));
    Ok(Outcome::Done)
}
