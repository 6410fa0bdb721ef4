//! `crmgate import` and `crmgate export`.

use super::{Ctx, FormatArg, Outcome, print_json};
use crate::error::Result;
use crate::ingest::{Format, Input};
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
    let report =
        crate::records::import_file(&mut store, &args.object, &input, &ctx.actor, &ctx.now)?;
    if ctx.ui.json {
        print_json(&report)?;
    } else {
        ctx.ui.note(format!(
            "{}: {} into {}: {} inserted, {} updated, {} unchanged",
            crate::ui::safe(&report.file),
            count(report.rows, "row", "rows"),
            report.object,
            report.inserted,
            report.updated,
            report.unchanged
        ));
    }
    Ok(Outcome::Done)
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
