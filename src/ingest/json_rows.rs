//! JSON rows: a JSON array of objects, streamed element by element, or JSON Lines. Keys are
//! checked as they are read (unknown, duplicate), values must be scalars, numbers are kept exactly
//! as written (a 20-digit id never passes through a float).

use std::cell::Cell as StdCell;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Cell, Item, MAX_LINE_BYTES, Row, check_size, column_index};
use crate::error::{Error, Problem, Result};
use crate::validate::short;

/// Counts the newlines that pass through, so an object's line is known when it is parsed.
struct LineCounter<R> {
    inner: R,
    newlines: Rc<StdCell<u64>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let nl = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        self.newlines.set(self.newlines.get() + nl);
        Ok(n)
    }
}

/// Deserializes one row. Problems with the row's content become `Row::problems`, never serde
/// errors, so one bad object does not stop the stream.
struct RowSeed<'a> {
    columns: &'a [&'a str],
    /// Newlines consumed so far; the current line is this plus one (plus `base`).
    newlines: Rc<StdCell<u64>>,
    base: u64,
}

impl RowSeed<'_> {
    fn line(&self) -> u64 {
        self.base + self.newlines.get() + 1
    }

    fn not_an_object(&self, what: &str) -> Row {
        Row {
            line: self.line(),
            cells: vec![Cell::Absent; self.columns.len()],
            problems: vec![format!("expected an object, found {what}")],
        }
    }
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut row = Row {
            line: self.line(),
            cells: vec![Cell::Absent; self.columns.len()],
            problems: Vec::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            let raw: Box<RawValue> = map.next_value()?;
            let idx = match column_index(&key, self.columns, "key") {
                Ok(i) => i,
                Err(msg) => {
                    row.problems.push(msg);
                    continue;
                }
            };
            if !row.cells[idx].is_absent() {
                row.problems
                    .push(format!("duplicate key \"{}\"", short(&key)));
                continue;
            }
            let text = raw.get();
            row.cells[idx] = match text.as_bytes().first() {
                Some(b'"') => match serde_json::from_str::<String>(text) {
                    Ok(s) => match check_size(&s, &key) {
                        Some(p) => {
                            row.problems.push(p);
                            continue;
                        }
                        None => Cell::Text(s),
                    },
                    Err(e) => {
                        row.problems.push(format!("\"{}\": {e}", short(&key)));
                        continue;
                    }
                },
                Some(b'n') => Cell::Null,
                // A create's fields, checked as such with the rest of the row.
                Some(b'{') if key == "value" && self.columns == &super::check::COLUMNS[..] => {
                    match check_size(text, &key) {
                        Some(p) => {
                            row.problems.push(p);
                            continue;
                        }
                        None => Cell::Object(text.to_string()),
                    }
                }
                Some(b'{') | Some(b'[') => {
                    row.problems.push(format!(
                        "\"{}\" must be a single value, not an object or array",
                        short(&key)
                    ));
                    continue;
                }
                // Numbers and booleans, exactly as written.
                _ => Cell::Text(text.to_string()),
            };
        }
        Ok(row)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.not_an_object("an array"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Row, E> {
        Ok(self.not_an_object("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Row, E> {
        Ok(self.not_an_object("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Row, E> {
        Ok(self.not_an_object("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Row, E> {
        Ok(self.not_an_object("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Row, E> {
        Ok(self.not_an_object("a number"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Row, E> {
        Ok(self.not_an_object("null"))
    }
}

/// The top-level array: each element goes to the callback as soon as it is parsed.
struct ArraySeed<'a, 'f> {
    columns: &'a [&'a str],
    newlines: Rc<StdCell<u64>>,
    on_item: &'f mut dyn FnMut(Item) -> Result<()>,
    /// The callback's own error, carried out through serde.
    failed: &'f mut Option<Error>,
}

const ABORTED: &str = "crmgate: aborted by the row handler";

impl<'de> Visitor<'de> for ArraySeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of objects (for one object per line use JSON Lines: .jsonl or --format jsonl)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let seed = RowSeed {
                columns: self.columns,
                newlines: self.newlines.clone(),
                base: 0,
            };
            match seq.next_element_seed(seed)? {
                None => return Ok(()),
                Some(row) => {
                    if let Err(e) = (self.on_item)(Item::Row(row)) {
                        *self.failed = Some(e);
                        return Err(de::Error::custom(ABORTED));
                    }
                }
            }
        }
    }
}

/// serde_json's message without its trailing " at line L column C" (we say `FILE:LINE:`).
fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    if e.column() > 0 {
        format!("malformed JSON: {s} (column {})", e.column())
    } else {
        format!("malformed JSON: {s}")
    }
}

/// `r` without a UTF-8 byte-order mark at its very start, as a CSV reader takes its header.
fn skip_bom<'r>(r: &'r mut dyn Read, name: &str) -> Result<impl Read + 'r> {
    let mut head = [0u8; 3];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(name, e)),
        }
    }
    let keep = if head[..n] == [0xEF, 0xBB, 0xBF] {
        0
    } else {
        n
    };
    Ok(std::io::Cursor::new(head[..keep].to_vec()).chain(r))
}

pub(super) fn read_array(
    r: &mut dyn Read,
    name: &str,
    columns: &[&str],
    on_item: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<Option<Problem>> {
    let newlines = Rc::new(StdCell::new(0));
    let counted = LineCounter {
        inner: BufReader::with_capacity(64 * 1024, skip_bom(r, name)?),
        newlines: newlines.clone(),
    };
    let mut de = serde_json::Deserializer::from_reader(counted);
    let mut failed = None;
    let seed = ArraySeed {
        columns,
        newlines,
        on_item,
        failed: &mut failed,
    };
    let result = de::Deserializer::deserialize_any(&mut de, seed).and_then(|()| de.end());
    if let Some(e) = failed {
        return Err(e);
    }
    match result {
        Ok(()) => Ok(None),
        Err(e) if e.is_io() => Err(Error::io(name, std::io::Error::other(e.to_string()))),
        Err(e) => Ok(Some(Problem {
            file: name.to_string(),
            line: e.line() as u64,
            message: json_message(&e),
        })),
    }
}

pub(super) fn read_lines(
    r: &mut dyn Read,
    name: &str,
    columns: &[&str],
    on_item: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<Option<Problem>> {
    let mut rdr = BufReader::with_capacity(64 * 1024, skip_bom(r, name)?);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let io_err = |e: std::io::Error| Error::io(name, e);
    loop {
        buf.clear();
        let n = (&mut rdr)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io_err)?;
        if n == 0 {
            return Ok(None);
        }
        line += 1;
        if buf.len() > MAX_LINE_BYTES {
            rdr.skip_until(b'\n').map_err(io_err)?;
            on_item(Item::Unreadable {
                line,
                message: format!("line is longer than {MAX_LINE_BYTES} bytes"),
            })?;
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(&buf);
        let seed = RowSeed {
            columns,
            newlines: Rc::new(StdCell::new(0)),
            base: line - 1,
        };
        match seed
            .deserialize(&mut de)
            .and_then(|row| de.end().map(|()| row))
        {
            Ok(row) => on_item(Item::Row(row))?,
            Err(e) => on_item(Item::Unreadable {
                line,
                message: json_message(&e),
            })?,
        }
    }
}
