//! `crmgate import` and `crmgate export`.

use super::{Ctx, FormatArg, Outcome, print_json};
use crate::error::Result;
use crate::ingest::{Format, Input};
use crate::records::ImportReport;
use crate::ui::count;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The object (table) to load into, e.g. contacts.
    pub object: String,
    /// A .csv, .json or .jsonl file of records; `-` reads stdin.
    pub file: String,
    /// Read the file as this format instead of going by the extension.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The source of the proposals for fields that differ from the store (default: import).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Write the differences at once, as one revertible run, instead of proposing them (admin).
    #[arg(long)]
    pub direct: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The object (table) to write out.
    pub object: String,
    /// csv (the default), json (one array) or jsonl (one record a line).
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,
    /// Make CSV cells that a spreadsheet would run as formulas (=, +, -, @) inert with a leading '.
    /// Off by default, so an export re-imports exactly.
    #[arg(long)]
    pub spreadsheet_safe: bool,
}

pub fn import(args: ImportArgs, ctx: &Ctx) -> Result<Outcome> {
    let input = Input::from_arg(&args.file, args.format.map(Format::from))?;
    let mut store = ctx.open()?;
    let report = crate::import::run(
        &mut store,
        &crate::import::Request {
            object: &args.object,
            input: &input,
            actor: &ctx.actor,
            now: &ctx.now,
            source: args.source,
            direct: args.direct,
        },
    )?;
    if ctx.ui.json {
        print_json(&report)?;
    } else {
        ctx.ui.note(summary(&report));
    }
    Ok(Outcome::Done)
}

/// `contacts.csv: 12 rows into contacts: 2 created, 7 unchanged, 3 queued (run 4: ...)`.
fn summary(r: &ImportReport) -> String {
    let mut line = format!(
        "{}: {} into {}: {} created, ",
        crate::ui::safe(&r.file),
        count(r.rows, "row", "rows"),
        r.object,
        r.created
    );
    if r.updated > 0 || r.bootstrap {
        line.push_str(&format!("{} updated, ", r.updated));
    }
    line.push_str(&format!("{} unchanged, {} queued", r.unchanged, r.queued));
    if r.already_queued > 0 {
        line.push_str(&format!(" ({} already queued)", r.already_queued));
    }
    if r.bootstrap && r.created > 0 {
        line.push_str(" (an empty table: loaded as it is)");
    }
    if let Some(run) = r.run {
        line.push_str(&format!(
            "; run {run} (`crmgate revert --run {run}` undoes it)"
        ));
    }
    if r.queued > 0 {
        line.push_str("; `crmgate queue` shows the proposals");
    }
    line
}

pub fn export(args: ExportArgs, ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let obj = crate::records::object(store.schema(), &args.object)?;
    let format = Format::from(args.format);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = crate::records::export(&store, obj, format, args.spreadsheet_safe, &mut out)?;
    ctx.ui.note(format!(
        "exported {} of {}",
        count(n, "record", "records"),
        obj.name
    ));
    Ok(Outcome::Done)
}
