//! `crmgate init` and `crmgate demo`.

use std::path::{Path, PathBuf};

use super::{Ctx, Outcome, print_out};
use crate::error::{Error, Result};
use crate::fixtures;
use crate::ingest::Input;
use crate::model::NewEvent;
use crate::store::{OpenMode, Store};

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Also load the bundled demo records and proposals.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

const DEMO_DB: &str = "crmgate-demo.db";

/// Creates the store and default tables; with `demo`, loads the bundled data.
fn setup(ctx: &Ctx, demo: bool) -> Result<(Store, Vec<&'static str>)> {
    let mut store = Store::open(&ctx.db, OpenMode::Create)?;
    let created = store.create_default_tables()?;
    // Only the run that creates the store leaves an event, so `init` stays idempotent; a store
    // created by the demo starts with a `demo` event, which is how the demo recognises its own.
    if !created.is_empty() {
        store.write(&ctx.now, |w| {
            w.append_event(NewEvent {
                actor: ctx.actor.clone(),
                actor_kind: "human",
                action: if demo { "demo" } else { "init" },
                detail: serde_json::json!({ "created_tables": created }),
                ..NewEvent::default()
            })
            .map(|_| ())
        })?;
    }
    // A new store gets the default policy (the demo's for a demo store); an existing one keeps
    // whatever policy it has.
    if store.current_policy()?.is_none() {
        let p = if demo {
            &fixtures::DEMO_POLICY
        } else {
            &fixtures::DEFAULT_POLICY
        };
        let text = std::str::from_utf8(p.data).expect("the bundled policies are UTF-8");
        store.write(&ctx.now, |w| {
            super::policy::install(w, p.name, text, &ctx.actor).map(|_| ())
        })?;
    }
    Ok((store, created))
}

pub fn init(args: InitArgs, ctx: &Ctx) -> Result<Outcome> {
    let (mut store, created) = setup(ctx, args.demo)?;
    if created.is_empty() {
        ctx.ui.note(format!(
            "{}: store is set up; no tables needed creating",
            ctx.db.display()
        ));
    } else {
        ctx.ui.note(format!(
            "{}: created {}",
            ctx.db.display(),
            created.join(", ")
        ));
    }
    if args.demo {
        load_demo(&mut store, ctx)?;
    }
    if ctx.ui.json {
        super::print_json(&serde_json::json!({
            "store": ctx.db,
            "created_tables": created,
            "schema_version": crate::store::SCHEMA_VERSION,
        }))?;
    }
    Ok(Outcome::Done)
}

/// Imports the bundled CRM records and ingests the bundled proposals.
fn load_demo(store: &mut Store, ctx: &Ctx) -> Result<()> {
    load_crm(store, ctx)?;
    let report = super::propose::ingest(store, &proposal_inputs()?, None, false, None, ctx)?;
    ctx.ui.note(format!(
        "loaded the demo data and {} proposals",
        report.ingested
    ));
    Ok(())
}

/// Whether an existing file is a store the demo built (and may rebuild).
fn is_demo_store(path: &Path) -> bool {
    let Ok(store) = Store::open(path, OpenMode::Existing) else {
        return false;
    };
    store.first_event_action().ok().flatten().as_deref() == Some("demo")
}

pub fn demo(_args: DemoArgs, ctx: &Ctx) -> Result<Outcome> {
    let db = if ctx.db_explicit {
        ctx.db.clone()
    } else {
        PathBuf::from(DEMO_DB)
    };
    if db.exists() {
        if !is_demo_store(&db) {
            return Err(Error::refused_with_hint(
                format!(
                    "{} exists and is not a demo store; the demo will not touch it",
                    db.display()
                ),
                "pass --db with a new path, e.g. `crmgate demo --db /tmp/crmgate-demo.db`",
            ));
        }
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    let demo_ctx = Ctx {
        db: db.clone(),
        db_explicit: true,
        actor: ctx.actor.clone(),
        now: ctx.now.clone(),
        ui: crate::ui::Ui {
            json: false,
            ..ctx.ui
        },
    };
    let ui = &demo_ctx.ui;
    let step =
        |n: u32, text: &str| print_out(format!("\n{}", ui.heading(&format!("==> {n}. {text}"))));
    let shown = db.display().to_string();

    step(
        1,
        &format!("Create a store at {shown} and import a small CRM"),
    )?;
    let (mut store, _) = setup(&demo_ctx, true)?;
    for (object, file, n) in load_crm(&mut store, &demo_ctx)? {
        print_out(format!("  {object:<11} {n:>5} records from {file}"))?;
    }

    step(
        2,
        "Ingest proposals from three sources, in CSV, JSON and JSON Lines",
    )?;
    print_out(
        "  Every row is checked against the live schema and the records: unknown fields,\n  invalid values and missing records are refused with FILE:LINE.",
    )?;
    let inputs = proposal_inputs()?;
    let report = super::propose::ingest(&mut store, &inputs, None, false, None, &demo_ctx)?;
    print_proposal_report(&report)?;

    step(
        3,
        "Re-ingest the same files: idempotent by (source, id), nothing changes",
    )?;
    let again = super::propose::ingest(&mut store, &inputs, None, false, None, &demo_ctx)?;
    print_out(format!(
        "  {} rows read, {} new, {} already queued",
        again.files.iter().map(|f| f.rows).sum::<u64>(),
        again.ingested,
        again.duplicates
    ))?;

    step(
        4,
        "A file with one bad row is refused whole, with the line and a hint",
    )?;
    let bad = Input::embedded(fixtures::BAD.name, fixtures::BAD.data)?;
    match super::propose::ingest(&mut store, &[bad], None, false, None, &demo_ctx) {
        Err(e @ Error::Invalid { .. }) => {
            for line in e.to_string().lines() {
                print_out(format!("  error: {}", crate::ui::safe(line)))?;
            }
            print_out("  nothing from that file was ingested (exit code 1)")?;
        }
        Err(e) => return Err(e),
        Ok(_) => return Err(Error::Store("the demo's bad file was accepted".into())),
    }
    drop(store);

    step(5, "The queue at a glance: crmgate status")?;
    super::queue::status(&demo_ctx)?;

    let list = |state: &str, limit: u64| {
        super::queue::list(
            super::queue::ListArgs {
                state: Some(state.to_string()),
                narrow: super::queue::Narrow::default(),
                limit,
            },
            &demo_ctx,
        )
    };
    step(
        6,
        "What the policy let through on its own: crmgate list --state approved",
    )?;
    print_out(
        "  Autonomous sources, fills of empty fields and verified emails, above the confidence threshold.",
    )?;
    list("approved", 10)?;

    step(7, "What it stopped: crmgate list --state blocked")?;
    print_out("  Records on legal hold: nothing changes them, whatever the source or confidence.")?;
    list("blocked", 10)?;

    step(8, "Why one went through: crmgate show clearbit:cb-101")?;
    super::queue::show(
        super::queue::ShowArgs {
            id: "clearbit:cb-101".into(),
        },
        &demo_ctx,
    )?;

    step(9, "Why one waits for a human: crmgate show apollo:ap-1")?;
    print_out("  The same kind of change, from a source the policy does not trust on its own.")?;
    super::queue::show(
        super::queue::ShowArgs {
            id: "apollo:ap-1".into(),
        },
        &demo_ctx,
    )?;

    step(
        10,
        "A dry run: every check and write, then rolled back: crmgate apply --dry-run",
    )?;
    super::apply::apply(super::apply::ApplyArgs::everything(true), &demo_ctx)?;

    step(11, "Apply what was approved: crmgate apply")?;
    super::apply::apply(super::apply::ApplyArgs::everything(false), &demo_ctx)?;

    step(12, "Everything can be undone: crmgate revert 1")?;
    super::apply::revert(
        super::apply::RevertArgs {
            change: Some(1),
            run: None,
            force: false,
        },
        &demo_ctx,
    )?;

    step(13, "What happened, newest first: crmgate log --limit 6")?;
    super::log::run(
        super::log::LogArgs {
            record: None,
            source: None,
            actor: None,
            since: None,
            limit: 6,
        },
        &demo_ctx,
    )?;

    step(14, "The audit log is a hash chain: crmgate audit verify")?;
    super::audit::run(
        super::audit::AuditCommand::Verify { checkpoint: None },
        &demo_ctx,
    )?;

    print_out(format!(
        "\n{}\n  crmgate --db {shown} --as alice review          # decide the queue, one key each\n  crmgate --db {shown} list --state pending\n  crmgate --db {shown} --as alice approve apollo:ap-1\n  crmgate --db {shown} policy show\n  crmgate --db {shown} list --kind merge\n  crmgate --db {shown} show clearbit:<id>\n  crmgate --db {shown} export contacts --format json | head\n  crmgate --db {shown} propose your-file.csv",
        ui.heading("Try it yourself:")
    ))?;
    Ok(Outcome::Done)
}

/// The bundled proposal files, as inputs.
fn proposal_inputs() -> Result<Vec<Input>> {
    fixtures::PROPOSALS
        .iter()
        .map(|f| Input::embedded(f.name, f.data))
        .collect()
}

/// Imports the bundled CRM tables; returns (object, file, records) for each.
fn load_crm(store: &mut Store, ctx: &Ctx) -> Result<Vec<(&'static str, &'static str, u64)>> {
    let mut loaded = Vec::new();
    for (object, f) in &fixtures::CRM {
        let input = Input::embedded(f.name, f.data)?;
        let r = super::records::import_input(store, object, &input, ctx)?;
        loaded.push((*object, f.name, r.inserted + r.updated + r.unchanged));
    }
    Ok(loaded)
}

fn print_proposal_report(report: &crate::ingest::proposals::Report) -> Result<()> {
    for f in &report.files {
        print_out(format!(
            "  {:<34} {:>4} rows, {:>4} queued, {} superseded",
            f.file, f.rows, f.ingested, f.superseded
        ))?;
    }
    let kinds: Vec<String> = report
        .by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    print_out(format!(
        "  {} proposals queued: {}",
        report.ingested,
        kinds.join(", ")
    ))?;
    let decisions: Vec<String> = report
        .by_decision
        .iter()
        .map(|(d, n)| format!("{n} {d}"))
        .collect();
    print_out(format!(
        "  the policy decided each one: {} (see `crmgate policy show`)",
        decisions.join(", ")
    ))
}
