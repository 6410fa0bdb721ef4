//! Reading rows from proposal and record files. Every format (CSV, a JSON array, JSON Lines)
//! comes through [`read_rows`], so stdin, line numbers, size limits and the file's SHA-256 behave
//! the same everywhere. Rows stream to a callback; nothing holds the whole file.

mod archive;
mod check;
mod csv_rows;
mod dedupe;
mod json_rows;
mod judge;
pub mod proposals;
mod queue;
pub mod requeue;
mod stage;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Problem, Result};
use crate::validate::MAX_VALUE_BYTES;

/// The longest line a JSON Lines file may have.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Jsonl,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }

    /// By extension; stdin and unknown extensions need `--format` (stdin defaults to CSV).
    pub fn detect(path: &str, explicit: Option<Format>) -> Result<Format> {
        if let Some(f) = explicit {
            return Ok(f);
        }
        if path == "-" {
            return Ok(Format::Csv);
        }
        let ext = Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("json") => Ok(Format::Json),
            Some("jsonl") | Some("ndjson") => Ok(Format::Jsonl),
            _ => Err(Error::refused_with_hint(
                format!("{path}: cannot tell the format from the file name"),
                "name it .csv, .json or .jsonl, or pass --format csv|json|jsonl",
            )),
        }
    }
}

pub use crate::model::Cell;

/// One row: cells indexed like the `columns` passed to [`read_rows`].
#[derive(Debug, Clone)]
pub struct Row {
    pub line: u64,
    pub cells: Vec<Cell>,
    /// What was wrong with the row's shape (unknown or duplicate key, nested value, bad UTF-8).
    pub problems: Vec<String>,
}

/// What the callback receives.
pub enum Item {
    Row(Row),
    /// A row that could not be read at all (wrong number of CSV fields, a broken JSONL line).
    Unreadable {
        line: u64,
        message: String,
    },
}

/// The input as a whole: a problem here (bad header, malformed JSON array) ends the file.
#[derive(Debug)]
pub struct FileSummary {
    pub sha256: String,
    pub bytes: u64,
    pub fatal: Option<Problem>,
}

/// Where a file is read from: a path, stdin (`-`), or data built into the binary (the demo).
#[derive(Debug, Clone)]
pub struct Input {
    pub arg: String,
    pub format: Format,
    pub embedded: Option<&'static [u8]>,
}

impl Input {
    /// `arg` is a path or `-`; the format comes from `explicit` or the extension.
    pub fn from_arg(arg: &str, explicit: Option<Format>) -> Result<Input> {
        Ok(Input {
            arg: arg.to_string(),
            format: Format::detect(arg, explicit)?,
            embedded: None,
        })
    }

    /// The inputs `arg` names: a file or `-` as itself; a directory as its proposal files
    /// (`.csv`, `.json`, `.jsonl`, `.ndjson`; not hidden ones, not in subdirectories), in name
    /// order, none when it has none.
    pub fn expand(arg: &str, explicit: Option<Format>) -> Result<Vec<Input>> {
        let path = Path::new(arg);
        if arg == "-" || !path.is_dir() {
            return Ok(vec![Input::from_arg(arg, explicit)?]);
        }
        let entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let proposal_file = !name.starts_with('.')
                && Format::detect(name, None).is_ok()
                && entry.file_type().is_ok_and(|t| !t.is_dir());
            if proposal_file {
                names.push(name.to_string());
            }
        }
        names.sort();
        names
            .iter()
            .map(|n| Input::from_arg(&path.join(n).to_string_lossy(), explicit))
            .collect()
    }

    pub fn embedded(name: &str, data: &'static [u8]) -> Result<Input> {
        Ok(Input {
            arg: name.to_string(),
            format: Format::detect(name, None)?,
            embedded: Some(data),
        })
    }

    /// The name used in `FILE:LINE` messages and the audit log.
    pub fn display_name(&self) -> String {
        if self.arg == "-" && self.embedded.is_none() {
            "<stdin>".to_string()
        } else {
            self.arg.clone()
        }
    }

    /// The size in bytes, when it is known before reading.
    pub fn size(&self) -> Option<u64> {
        match self.embedded {
            Some(d) => Some(d.len() as u64),
            None if self.arg == "-" => None,
            None => std::fs::metadata(&self.arg).ok().map(|m| m.len()),
        }
    }

    fn open(&self) -> Result<Box<dyn Read>> {
        if let Some(d) = self.embedded {
            return Ok(Box::new(d));
        }
        if self.arg == "-" {
            Ok(Box::new(io::stdin().lock()))
        } else {
            let path = PathBuf::from(&self.arg);
            if path.is_dir() {
                return Err(Error::io(
                    &path,
                    io::Error::other("is a directory, not a file"),
                ));
            }
            let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            Ok(Box::new(f))
        }
    }
}

/// Hashes and counts every byte that passes through it.
struct Tap<R> {
    inner: R,
    hasher: Sha256,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads `input` row by row, mapping column names to positions in `columns`. `required` columns
/// must be in a CSV header (JSON rows are checked by the caller, row by row). `progress` counts
/// bytes read, for a progress bar.
pub fn read_rows(
    input: &Input,
    columns: &[&str],
    required: &[&str],
    progress: Arc<AtomicU64>,
    on_item: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<FileSummary> {
    let name = input.display_name();
    let mut tap = Tap {
        inner: input.open()?,
        hasher: Sha256::new(),
        bytes: progress,
    };
    let fatal = match input.format {
        Format::Csv => csv_rows::read(&mut tap, &name, columns, required, on_item)?,
        Format::Json => json_rows::read_array(&mut tap, &name, columns, on_item)?,
        Format::Jsonl => json_rows::read_lines(&mut tap, &name, columns, on_item)?,
    };
    // The recorded SHA-256 is of the whole file, even when reading stopped early.
    io::copy(&mut tap, &mut io::sink()).map_err(|e| Error::io(&input.arg, e))?;
    Ok(FileSummary {
        sha256: crate::model::hex(&tap.hasher.finalize()),
        bytes: tap.bytes.load(Ordering::Relaxed),
        fatal,
    })
}

/// Index of `name` in `columns`, or a message naming the closest known column.
fn column_index(name: &str, columns: &[&str], what: &str) -> Result<usize, String> {
    columns.iter().position(|c| *c == name).ok_or_else(|| {
        format!(
            "unknown {what} \"{}\"{}",
            crate::validate::short(name),
            crate::schema::suggestion_suffix(name, columns.iter().copied())
        )
    })
}

fn check_size(value: &str, column: &str) -> Option<String> {
    (value.len() > MAX_VALUE_BYTES).then(|| {
        format!(
            "\"{column}\" is {} bytes; the limit is {MAX_VALUE_BYTES}",
            value.len()
        )
    })
}
