//! CSV rows. The one place a CSV reader is built, so every command reads CSV the same way.

use std::io::Read;

use super::{Cell, Item, Row, check_size, column_index};
use crate::error::{Error, Problem, Result};

pub fn reader<R: Read>(r: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(r)
}

/// Watches the bytes the CSV reader consumes for a quoted field that is still open at the end of
/// the file. The csv crate reads such a field to EOF without complaint, silently swallowing every
/// row after the stray quote into one value; this tracks just enough of RFC 4180's quoting (a
/// quote opens a field only at its start, `""` is an escaped quote) to catch that and say where
/// the quote opened.
///
/// It also counts lines the way an editor does, so `FILE:LINE` is right whatever ends the lines:
/// `\n`, `\r\n` or a bare `\r` each end one line (the csv crate counts only `\n`).
struct QuoteCheck<R> {
    inner: R,
    state: QuoteState,
    line: u64,
    opened_at: u64,
    /// Bytes read so far.
    offset: u64,
    /// The last byte read was a `\r`: a `\n` right after it ends no further line.
    after_cr: bool,
    /// Where each line read but not yet asked about starts (the byte after its break), in
    /// order; [`QuoteCheck::line_at`] drops the ones behind the reader, so this holds only what
    /// the CSV reader's buffer is ahead by.
    starts: std::collections::VecDeque<u64>,
    /// The line of the last start dropped from `starts`.
    passed: u64,
}

impl<R> QuoteCheck<R> {
    fn new(inner: R) -> Self {
        QuoteCheck {
            inner,
            state: QuoteState::FieldStart,
            line: 1,
            opened_at: 0,
            offset: 0,
            after_cr: false,
            starts: std::collections::VecDeque::new(),
            passed: 1,
        }
    }

    /// The line the byte at `offset` is on. Offsets asked about never go backwards.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.starts.front().is_some_and(|&s| s <= offset) {
            self.starts.pop_front();
            self.passed += 1;
        }
        self.passed
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl<R: Read> Read for QuoteCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use QuoteState::*;
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.offset += 1;
            let crlf = b == b'\n' && self.after_cr;
            self.after_cr = b == b'\r';
            if matches!(b, b'\n' | b'\r') && !crlf {
                self.line += 1;
                self.starts.push_back(self.offset);
            }
            self.state = match (self.state, b) {
                (FieldStart, b'"') => {
                    self.opened_at = self.line;
                    Quoted
                }
                (Quoted, b'"') => QuoteInQuoted,
                (Quoted, _) => Quoted,
                (QuoteInQuoted, b'"') => Quoted,
                (_, b',' | b'\n' | b'\r') => FieldStart,
                _ => Unquoted,
            };
        }
        Ok(n)
    }
}

pub(super) fn read(
    r: &mut dyn Read,
    name: &str,
    columns: &[&str],
    required: &[&str],
    on_item: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<Option<Problem>> {
    let mut rdr = reader(QuoteCheck::new(r));
    let fatal = |line: u64, message: String| {
        Ok(Some(Problem {
            file: name.to_string(),
            line,
            message,
        }))
    };
    let headers = match rdr.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return fatal(1, csv_message(&e)),
    };
    if headers.is_empty() {
        return fatal(1, "the file is empty: expected a header row".into());
    }
    let mut map = Vec::with_capacity(headers.len());
    let mut problems = Vec::new();
    for (i, raw) in headers.iter().enumerate() {
        let Ok(h) = std::str::from_utf8(raw) else {
            return fatal(1, format!("header column {} is not valid UTF-8", i + 1));
        };
        let h = h.trim_start_matches('\u{feff}').trim();
        match column_index(h, columns, "column") {
            Ok(idx) if map.contains(&idx) => problems.push(format!(
                "column \"{}\" appears twice",
                crate::validate::short(h)
            )),
            Ok(idx) => map.push(idx),
            Err(msg) => problems.push(msg),
        }
    }
    for req in required {
        if let Some(idx) = columns.iter().position(|c| c == req)
            && !map.contains(&idx)
        {
            problems.push(format!("missing required column \"{req}\""));
        }
    }
    if !problems.is_empty() {
        return fatal(1, problems.join("; "));
    }
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => {
                let check = rdr.get_ref();
                if check.state == QuoteState::Quoted {
                    return fatal(
                        check.opened_at,
                        "malformed CSV: a quoted field opened here is never closed".into(),
                    );
                }
                return Ok(None);
            }
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| rdr.get_mut().line_at(p.byte()));
                match e.kind() {
                    csv::ErrorKind::UnequalLengths { .. } => {
                        on_item(Item::Unreadable {
                            line,
                            message: csv_message(&e),
                        })?;
                        continue;
                    }
                    csv::ErrorKind::Io(_) => {
                        return Err(Error::io(name, std::io::Error::other(e.to_string())));
                    }
                    _ => return fatal(line, csv_message(&e)),
                }
            }
        }
        let line = rec
            .position()
            .map_or(0, |p| rdr.get_mut().line_at(p.byte()));
        let mut row = Row {
            line,
            cells: vec![Cell::Absent; columns.len()],
            problems: Vec::new(),
        };
        for (i, raw) in rec.iter().enumerate() {
            let col = columns[map[i]];
            match std::str::from_utf8(raw) {
                Ok("") => row.cells[map[i]] = Cell::Null,
                Ok(s) => {
                    if let Some(p) = check_size(s, col) {
                        row.problems.push(p);
                    } else {
                        row.cells[map[i]] = Cell::Text(s.to_string());
                    }
                }
                Err(e) => row.problems.push(format!(
                    "\"{col}\" is not valid UTF-8 (bad byte at offset {})",
                    e.valid_up_to()
                )),
            }
        }
        on_item(Item::Row(row))?;
    }
}

/// The csv crate's message without its own position prefix (ours says `FILE:LINE`).
fn csv_message(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("malformed CSV: this row has {len} fields, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8 in field {}", err.field() + 1),
        csv::ErrorKind::Io(err) => format!("read error: {err}"),
        _ => format!("malformed CSV: {e}"),
    }
}
