//! The command line: clap structs are plain data; each command turns them into checked requests
//! and hands those to the library. `main` maps the outcome to an exit code (docs/commands.md lists them).

mod alerts;
mod apply;
mod audit;
mod decide;
mod init;
mod log;
mod pause;
mod policy;
mod propose;
mod queue;
mod records;
mod requeue;
mod review;
mod sources;

use std::io::Write;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::admin::access::Need;
use crate::error::{Error, Result};
use crate::store::{OpenMode, Store};
use crate::ui::{ColorMode, Ui};

/// `--color`: the command line's spelling of [`ColorMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for ColorMode {
    fn from(c: ColorArg) -> ColorMode {
        match c {
            ColorArg::Auto => ColorMode::Auto,
            ColorArg::Always => ColorMode::Always,
            ColorArg::Never => ColorMode::Never,
        }
    }
}

/// `--format` of every command that reads or writes records or events: the same three formats
/// everywhere (each command keeps its own default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Csv,
    Json,
    Jsonl,
}

impl From<FormatArg> for crate::ingest::Format {
    fn from(f: FormatArg) -> crate::ingest::Format {
        match f {
            FormatArg::Csv => crate::ingest::Format::Csv,
            FormatArg::Json => crate::ingest::Format::Json,
            FormatArg::Jsonl => crate::ingest::Format::Jsonl,
        }
    }
}

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: done, or nothing to do.
    Done,
    /// Exit 3: done with exceptions (rows skipped, proposals not applied).
    Partial,
}

const ABOUT: &str =
    "The approval-first gate between the programs that propose CRM changes and your CRM.";

const AFTER_HELP: &str = "\
Examples:
  crmgate demo                           walk the whole pipeline on bundled demo data
  crmgate init                           create ./crm.db with the default tables
  crmgate import contacts export.csv     load CRM records
  crmgate propose vendor.csv             queue proposed changes
  crmgate list --state pending           see what waits

Exit codes: 0 done, 1 error (nothing changed), 2 usage, 3 done with exceptions, 75 store locked.";

#[derive(Debug, Parser)]
#[command(name = "crmgate", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// The store, an SQLite file [default: $CRMGATE_DB, else ./crm.db; for `demo`, ./crmgate-demo.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Who is acting (recorded on every event); else $CRMGATE_USER, else the OS user.
    #[arg(long = "as", global = true, env = "CRMGATE_USER", value_name = "NAME")]
    pub actor: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only data and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Colour in human output (NO_COLOR is honoured by `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the store (idempotent): the default CRM tables and crmgate's own.
    #[command(
        after_help = "Example:\n  crmgate init --db crm.db\n  crmgate init --demo --db demo.db"
    )]
    Init(init::InitArgs),
    /// Build a demo store from the bundled data and walk the pipeline, step by step.
    #[command(
        after_help = "Example:\n  crmgate demo                 # writes ./crmgate-demo.db\n  crmgate demo --db /tmp/d.db"
    )]
    Demo(init::DemoArgs),
    /// Load CRM records: new ones as a revertible run, differing fields as proposals; all rows
    /// or none.
    #[command(
        after_help = "Example:\n  crmgate import contacts hubspot-export.csv\n  crmgate import companies companies.json\n  crmgate --as alice import contacts fixed.csv --direct   # write the differences at once (admin)"
    )]
    Import(records::ImportArgs),
    /// Write all records of an object to stdout.
    #[command(
        after_help = "Example:\n  crmgate export contacts > contacts.csv\n  crmgate export deals --format json"
    )]
    Export(records::ExportArgs),
    /// Ingest proposed changes: validate, queue, and print counts.
    #[command(
        after_help = "Example:\n  crmgate propose clearbit.csv\n  crmgate propose --source zoominfo - < feed.jsonl --format jsonl\n  crmgate propose vendor.csv --skip-invalid --rejects rejects.csv"
    )]
    Propose(propose::ProposeArgs),
    /// The queue at a glance: counts by state, kind and source; recent ingests.
    #[command(
        after_help = "Example:\n  crmgate status\n  crmgate status --json\n  crmgate status --max-age 24h   # exit 3 and alert when a proposal waits longer"
    )]
    Status(queue::StatusArgs),
    /// Proposals as a table, newest first.
    #[command(
        after_help = "Example:\n  crmgate list --state pending --source clearbit --limit 20\n  crmgate list --json --limit 0"
    )]
    List(queue::ListArgs),
    /// One proposal in full (the record now, the change, where it came from, every event), or
    /// one change and its story from ingest to revert.
    #[command(
        after_help = "Example:\n  crmgate show 42\n  crmgate show clearbit:p-17\n  crmgate show change:17"
    )]
    Show(queue::ShowArgs),
    /// Decide pending and suggested proposals one by one, record by record, on a terminal.
    #[command(
        after_help = "Keys: y approve · n reject · e edit · s skip · a/d approve/reject the rest of the record · u undo · q quit · ? help\n\nExample:\n  crmgate --as alice review\n  crmgate review --source clearbit --kind update --limit 50\n\nWithout a terminal it lists the queue and exits 0."
    )]
    Review(review::ReviewArgs),
    /// Approve proposals by id, or every pending one a filter matches (with --yes).
    #[command(
        after_help = "Example:\n  crmgate --as alice approve 42 clearbit:p-17 --note \"checked LinkedIn\"\n  crmgate --as alice approve --source clearbit --kind verify --yes"
    )]
    Approve(decide::ApproveArgs),
    /// Reject proposals by id, or every pending one a filter matches (with --yes).
    #[command(
        after_help = "Example:\n  crmgate --as alice reject 42 --reason \"wrong person\"\n  crmgate --as alice reject --source sdr-agent --max-confidence 0.5 --reason \"low quality\" --yes"
    )]
    Reject(decide::RejectArgs),
    /// Propose again, against the record as it is now, a proposal that conflicted or failed.
    #[command(
        after_help = "Example:\n  crmgate requeue 42 clearbit:p-17\n  crmgate requeue --state conflict --source clearbit --yes"
    )]
    Requeue(requeue::RequeueArgs),
    /// Apply every approved proposal: re-checked, written, read back, recorded; exit 3 if any was not.
    #[command(
        after_help = "Example:\n  crmgate apply --dry-run\n  crmgate apply --source clearbit --limit 500"
    )]
    Apply(apply::ApplyArgs),
    /// Undo one change or a whole run (newest first); itself a change that can be reverted.
    #[command(
        after_help = "Example:\n  crmgate revert 17\n  crmgate revert --run 3\n  crmgate --as alice revert 17 --force"
    )]
    Revert(apply::RevertArgs),
    /// Per source: volume, decisions, how humans judged its proposals, and a recommendation.
    #[command(after_help = "Example:\n  crmgate sources\n  crmgate sources --json")]
    Sources,
    /// Stop changes going into the CRM, for the whole store or one source, until `resume` (admin).
    ///
    /// A pause of the whole store stops `apply` (approved proposals wait, still approved),
    /// `import`, and the policy letting anything through on its own; a pause of one source
    /// stops the same for that source's proposals, and imports under its name (`import
    /// --source`, `import` by default). Proposing, reviewing and deciding go on. `revert` is not
    /// stopped: it takes changes out, and is how damage is undone while everything else waits.
    #[command(
        after_help = "Example:\n  crmgate --as alice pause --source sdr-agent --reason \"bad batch of titles\"\n  crmgate --as alice pause --reason \"CRM migration tonight\""
    )]
    Pause(pause::PauseArgs),
    /// Lift a pause (admin).
    #[command(after_help = "Example:\n  crmgate --as alice resume --source sdr-agent")]
    Resume(pause::ResumeArgs),
    /// See, check and set the policy that decides what applies on its own.
    #[command(
        subcommand,
        after_help = "Example:\n  crmgate policy check policy.toml\n  crmgate --as alice policy set policy.toml\n  crmgate policy show"
    )]
    Policy(policy::PolicyCommand),
    /// What happened, newest first: ingests, decisions, approvals, pauses, policy changes.
    #[command(
        after_help = "Example:\n  crmgate log --record contacts/c-1001\n  crmgate log --actor alice --since 2026-11-01 --json"
    )]
    Log(log::LogArgs),
    /// Verify, checkpoint and export the hash-chained audit log.
    #[command(
        subcommand,
        after_help = "Example:\n  crmgate audit verify\n  crmgate audit export --format csv > events.csv"
    )]
    Audit(audit::AuditCommand),
    /// Check that alerts reach the policy's [alerts] command.
    #[command(subcommand, after_help = "Example:\n  crmgate alerts test")]
    Alerts(alerts::AlertsCommand),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  crmgate completions bash > /etc/bash_completion.d/crmgate")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What every command gets: the resolved global options.
pub struct Ctx {
    pub db: PathBuf,
    /// `--db` was given on the command line (the demo only writes where it is told or its own file).
    pub db_explicit: bool,
    pub actor: String,
    pub now: String,
    pub ui: Ui,
    /// How the command opens the store: see [`open_mode`].
    pub mode: OpenMode,
}

impl Ctx {
    pub fn open(&self) -> Result<Store> {
        store_place(&self.db)?;
        Store::open(&self.db, self.mode)
    }
}

/// How a command opens the store: read-only for those that only read it, so that a user who
/// may read the store but not write it can run them (and they never migrate it); else to
/// write, migrating it first when it is older than this build.
pub fn open_mode(command: &Command) -> OpenMode {
    match command {
        // A watch of the queue's age may record an alert that failed.
        Command::Status(a) if a.max_age.is_some() => OpenMode::Existing,
        Command::Status(_)
        | Command::List(_)
        | Command::Show(_)
        | Command::Export(_)
        | Command::Log(_)
        | Command::Sources
        | Command::Audit(_)
        | Command::Policy(
            policy::PolicyCommand::Show { .. }
            | policy::PolicyCommand::Check { .. }
            | policy::PolicyCommand::Test { .. },
        ) => OpenMode::Read,
        _ => OpenMode::Existing,
    }
}

/// Refuses a store path that cannot be a store file, saying why: its directory does not exist,
/// or it is a directory itself. SQLite would only say it "cannot open" it.
pub fn store_place(db: &std::path::Path) -> Result<()> {
    if db.is_dir() {
        return Err(Error::refused_with_hint(
            format!("{} is a directory, not a store file", db.display()),
            format!(
                "give --db a file in it, e.g. `--db {}`",
                db.join("crm.db").display()
            ),
        ));
    }
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    if dir.is_dir() {
        return Ok(());
    }
    Err(Error::refused_with_hint(
        format!(
            "the directory {} does not exist, so the store {} cannot be there",
            dir.display(),
            db.display()
        ),
        format!(
            "create it with `mkdir -p {}` and then `crmgate init --db {}`, or point --db at an existing store",
            dir.display(),
            db.display()
        ),
    ))
}

/// The acting user: `--as`, `CRMGATE_USER` (both via clap), else the OS user.
fn resolve_actor(flag: Option<String>) -> String {
    flag.filter(|s| !s.trim().is_empty())
        .unwrap_or_else(os_user)
}

/// The OS user this process runs as (see [`crate::actor::os_user`]).
pub fn os_user() -> String {
    crate::actor::os_user().to_string()
}

/// Now, in UTC, RFC 3339 with milliseconds. `CRMGATE_NOW` fixes it for reproducible tests,
/// but only under the test switch `CRMGATE_TEST_CLOCK=1`, and every event written then says so
/// (see [`crate::audit::set_test_clock`]); without the switch it is ignored, with a warning.
pub(crate) fn now() -> String {
    let fixed = std::env::var("CRMGATE_NOW").ok();
    let switched = std::env::var("CRMGATE_TEST_CLOCK").is_ok_and(|v| v == "1");
    let ts = match fixed {
        Some(t) if switched => {
            let ts = t.parse::<jiff::Timestamp>().ok();
            crate::audit::set_test_clock(ts.is_some());
            ts
        }
        Some(_) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "warning: CRMGATE_NOW is ignored: the time is the system's\nhint: a test that needs a fixed time sets CRMGATE_TEST_CLOCK=1 as well; every event then records that it did"
                )
            });
            None
        }
        None => None,
    };
    ts.unwrap_or_else(jiff::Timestamp::now)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
        }
    };
    let db_explicit = cli.db.is_some();
    let db = cli
        .db
        .clone()
        .or_else(|| {
            std::env::var_os("CRMGATE_DB")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("crm.db"));
    let ctx = Ctx {
        db,
        db_explicit,
        actor: resolve_actor(cli.actor.clone()),
        now: now(),
        ui: Ui::new(cli.json, cli.quiet, cli.color.into()),
        mode: open_mode(&cli.command),
    };
    match run(cli.command, &ctx) {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Partial) => 3,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            report_error(&e, &ctx.ui);
            e.exit_code()
        }
    }
}

pub fn report_error(e: &Error, ui: &Ui) {
    // A cause the message already quotes (`FILE: No such file or directory`) is not repeated.
    let mut said = e.to_string();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let cause = s.to_string();
        if !said.contains(&cause) {
            said.push_str(&cause);
            causes.push(cause);
        }
        source = s.source();
    }
    ui.error(&e.to_string(), &causes, e.hint().as_deref());
}

/// What a command asks of its actor under the policy in force, if anything.
fn need(command: &Command) -> Option<Need> {
    match command {
        Command::Approve(_)
        | Command::Reject(_)
        | Command::Review(_)
        | Command::Pause(_)
        | Command::Resume(_)
        | Command::Revert(_)
        | Command::Policy(policy::PolicyCommand::Set { .. }) => Some(Need::Decide),
        Command::Export(_) | Command::Audit(audit::AuditCommand::Export { .. }) => {
            Some(Need::Export)
        }
        Command::Propose(_) | Command::Import(_) | Command::Apply(_) => Some(Need::Act),
        _ => None,
    }
}

fn run(command: Command, ctx: &Ctx) -> Result<Outcome> {
    if let Some(need) = need(&command) {
        crate::admin::access::check(&ctx.open()?, &ctx.actor, crate::actor::os_user(), need)?;
    }
    match command {
        Command::Init(args) => init::init(args, ctx),
        Command::Demo(args) => init::demo(args, ctx),
        Command::Import(args) => records::import(args, ctx),
        Command::Export(args) => records::export(args, ctx),
        Command::Propose(args) => propose::run(args, ctx),
        Command::Status(args) => queue::status(args, ctx),
        Command::List(args) => queue::list(args, ctx),
        Command::Show(args) => queue::show(args, ctx),
        Command::Policy(cmd) => policy::run(cmd, ctx),
        Command::Audit(cmd) => audit::run(cmd, ctx),
        Command::Alerts(cmd) => alerts::run(cmd, ctx),
        Command::Log(args) => log::run(args, ctx),
        Command::Sources => sources::run(ctx),
        Command::Apply(args) => apply::apply(args, ctx),
        Command::Revert(args) => apply::revert(args, ctx),
        Command::Review(args) => review::run(args, ctx),
        Command::Approve(args) => decide::approve(args, ctx),
        Command::Reject(args) => decide::reject(args, ctx),
        Command::Requeue(args) => requeue::run(args, ctx),
        Command::Pause(args) => pause::pause(args, ctx),
        Command::Resume(args) => pause::resume(args, ctx),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "crmgate",
                &mut std::io::stdout(),
            );
            Ok(Outcome::Done)
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| Error::io("<stdout>", e.into()))?;
    writeln!(out).map_err(|e| Error::io("<stdout>", e))
}

/// Prints a line of data on stdout.
pub fn print_out(text: impl std::fmt::Display) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(|e| Error::io("<stdout>", e))
}
