//! `crmgate init` and `crmgate demo`.

use std::path::PathBuf;

use super::{Ctx, Outcome, print_out};
use crate::admin::setup::{self, Initialized, Purpose};
use crate::error::{Error, Result};
use crate::ui::count;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Also load the bundled demo records and proposals.
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

const DEMO_DB: &str = "crmgate-demo.db";

fn purpose(demo: bool) -> Purpose {
    if demo { Purpose::Demo } else { Purpose::Plain }
}

pub fn init(args: InitArgs, ctx: &Ctx) -> Result<Outcome> {
    super::store_place(&ctx.db)?;
    let Initialized { mut store, created } =
        setup::init(&ctx.db, purpose(args.demo), &ctx.actor, &ctx.now)?;
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
        let report = setup::load_demo(&mut store, &ctx.actor, &ctx.now)?;
        ctx.ui.note(format!(
            "loaded the demo data and {}",
            count(report.ingested, "proposal", "proposals")
        ));
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

pub fn demo(_args: DemoArgs, ctx: &Ctx) -> Result<Outcome> {
    let db = if ctx.db_explicit {
        ctx.db.clone()
    } else {
        PathBuf::from(DEMO_DB)
    };
    super::store_place(&db)?;
    setup::clear_demo_store(&db)?;
    let demo_ctx = Ctx {
        db: db.clone(),
        db_explicit: true,
        actor: ctx.actor.clone(),
        now: ctx.now.clone(),
        ui: crate::ui::Ui {
            json: false,
            ..ctx.ui
        },
        mode: crate::store::OpenMode::Existing,
    };
    let ui = &demo_ctx.ui;
    let step =
        |n: u32, text: &str| print_out(format!("\n{}", ui.heading(&format!("==> {n}. {text}"))));
    let shown = crate::ui::safe(&db.display().to_string()).into_owned();

    step(
        1,
        &format!("Create a store at {shown} and import a small CRM"),
    )?;
    let (actor, now) = (&ctx.actor, &ctx.now);
    let mut store = setup::init(&db, Purpose::Demo, actor, now)?.store;
    for l in setup::import_crm(&mut store, actor, now)? {
        let (object, file, n) = (l.object, l.file, l.records);
        print_out(format!("  {object:<11} {n:>5} records from {file}"))?;
    }

    step(
        2,
        "Ingest proposals from three sources, in CSV, JSON and JSON Lines",
    )?;
    print_out(
        "  Every row is checked against the live schema and the records: unknown fields,\n  invalid values and missing records are refused with FILE:LINE.",
    )?;
    let inputs = setup::proposal_inputs()?;
    let report = setup::ingest(&mut store, &inputs, actor, now)?;
    print_proposal_report(&report)?;

    step(
        3,
        "Re-ingest the same files: idempotent by (source, id), nothing changes",
    )?;
    let again = setup::ingest(&mut store, &inputs, actor, now)?;
    print_out(format!(
        "  {} read, {} new, {} already queued",
        count(
            again.files.iter().map(|f| f.rows).sum::<u64>(),
            "row",
            "rows"
        ),
        again.ingested,
        again.duplicates
    ))?;

    step(
        4,
        "A file with one bad row is refused whole, with the line and a hint",
    )?;
    match setup::ingest(&mut store, &[setup::bad_input()?], actor, now) {
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
    super::queue::status(super::queue::StatusArgs { max_age: None }, &demo_ctx)?;

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

fn print_proposal_report(report: &crate::ingest::proposals::Report) -> Result<()> {
    for f in &report.files {
        print_out(format!(
            "  {:<34} {:>9}, {:>4} queued, {} superseded",
            f.file,
            count(f.rows, "row", "rows"),
            f.ingested,
            f.superseded
        ))?;
    }
    let kinds: Vec<String> = report
        .by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    print_out(format!(
        "  {} queued: {}",
        count(report.ingested, "proposal", "proposals"),
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
