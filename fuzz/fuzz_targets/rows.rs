//! What every reader target checks: any bytes as a proposal file either come back as rows and
//! unreadable lines, or stop with a problem that names the file and a line in it. A panic, or a
//! line number outside the file, is a finding.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crmgate::ingest::proposals::COLUMNS;
use crmgate::ingest::{Format, Input, Item, read_rows};

/// The columns propose requires when the file names its own source.
const REQUIRED: [&str; 4] = ["source", "kind", "object", "record"];

pub fn check(data: &[u8], format: Format) {
    // The readers take a path, as propose does; one scratch file per process keeps it cheap.
    thread_local! {
        static FILE: tempfile::NamedTempFile = tempfile::NamedTempFile::new().expect("temp file");
    }
    let path = FILE.with(|f| {
        let mut file = f.reopen().expect("reopen");
        file.set_len(0).expect("truncate");
        file.write_all(data).expect("write");
        f.path().display().to_string()
    });
    let input = Input::from_arg(&path, Some(format)).expect("input");
    let last_line = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let in_file = |line: u64| (1..=last_line).contains(&line);
    let mut items = 0u64;
    let summary = read_rows(
        &input,
        &COLUMNS,
        &REQUIRED,
        Arc::new(AtomicU64::new(0)),
        &mut |item| {
            items += 1;
            match item {
                Item::Row(row) => {
                    assert!(in_file(row.line), "row at line {} of {last_line}", row.line);
                    assert_eq!(row.cells.len(), COLUMNS.len());
                }
                Item::Unreadable { line, message } => {
                    assert!(
                        in_file(line),
                        "unreadable line {line} of {last_line}: {message}"
                    );
                }
            }
            Ok(())
        },
    )
    .expect("reading a regular file fails only on I/O");
    assert_eq!(summary.bytes, data.len() as u64, "every byte is hashed");
    if let Some(p) = summary.fatal {
        assert_eq!(p.file, path);
        assert!(
            in_file(p.line),
            "fatal at line {} of {last_line}: {}",
            p.line,
            p.message
        );
        assert!(!p.message.is_empty());
    }
}
