//! Generates a deterministic CRM dataset and proposal file.
//!
//! ```text
//! cargo run --release --example gen_fixtures -- --out DIR [--contacts N] [--proposals N]
//!     [--seed S] [--format csv|json|jsonl]
//! ```
//!
//! With no size flag it writes the demo size (`GenConfig::demo()`, what `fixtures/crm`
//! holds). `--contacts N` scales the other tables from N (`GenConfig::scaled`);
//! `--proposals N` alone keeps the demo tables. The proposals go to DIR/proposals.csv,
//! DIR/proposals.json or DIR/proposals.jsonl according to `--format` (default csv).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crmgate_gen::{GenConfig, Summary};

const USAGE: &str = "usage: gen_fixtures --out DIR [--contacts N] [--proposals N] [--seed S] [--format csv|json|jsonl]";

struct Args {
    out: PathBuf,
    contacts: Option<usize>,
    proposals: Option<usize>,
    seed: Option<u64>,
    format: String,
}

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut contacts = None;
    let mut proposals = None;
    let mut seed = None;
    let mut format = "csv".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--contacts" => contacts = Some(number(value()?)? as usize),
            "--proposals" => proposals = Some(number(value()?)? as usize),
            "--seed" => seed = Some(number(value()?)?),
            "--format" => {
                format = value()?;
                if !matches!(format.as_str(), "csv" | "json" | "jsonl") {
                    return Err(format!(
                        "--format: expected csv, json or jsonl, got {format:?}"
                    ));
                }
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Args {
        out: out.ok_or("--out DIR is required")?,
        contacts,
        proposals,
        seed,
        format,
    })
}

fn config(args: &Args) -> GenConfig {
    let mut cfg = match args.contacts {
        None => GenConfig::demo(),
        Some(n) => GenConfig::scaled(n, args.proposals.unwrap_or(n * 2 / 5)),
    };
    if let Some(p) = args.proposals {
        cfg.proposals = p;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    cfg
}

fn run(args: &Args) -> std::io::Result<Summary> {
    let cfg = config(args);
    if args.format == "csv" {
        return crmgate_gen::write_dataset(&args.out, &cfg);
    }
    let mut summary = crmgate_gen::write_tables(&args.out, &cfg)?;
    let path = args.out.join(format!("proposals.{}", args.format));
    summary.bytes += crmgate_gen::write_proposals(&path, &cfg, &args.format)?;
    summary.proposals = cfg.proposals;
    Ok(summary)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("gen_fixtures: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    match run(&args) {
        Ok(s) => {
            eprintln!(
                "wrote {}: {} companies, {} contacts, {} deals, {} activities, {} proposals ({}), {} bytes in {:.2?}",
                args.out.display(),
                s.companies,
                s.contacts,
                s.deals,
                s.activities,
                s.proposals,
                args.format,
                s.bytes,
                started.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_fixtures: {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
