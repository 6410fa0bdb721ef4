//! Property: any bytes as a proposal file, CSV, JSON or JSON Lines, are either accepted or
//! refused with errors that name the file and a line in it; never a panic, and a refused file
//! leaves the store exactly as it was. Drives the real binary. The inputs are random bytes and
//! the committed proposal files with random edits (quotes, separators, brackets, newlines,
//! invalid UTF-8), so both the accepting and the refusing paths are walked.

mod common;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use common::{Env, fixture};

/// Cases per format: each runs `crmgate propose` once, so this keeps the file to a few seconds.
const CASES: u32 = 40;

/// Bytes that matter to one of the formats, favoured by the edits.
const SPICY: &[u8] = b"\",\n\r{}[]:\\ 0.-e\xff\x00\xef\xbb\xbf";

#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, u8),
    Replace(Index, u8),
    Delete(Index),
}

fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![proptest::sample::select(SPICY), any::<u8>()]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<Index>().prop_map(Edit::Delete),
    ]
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match *e {
            Edit::Insert(ref i, b) => {
                let at = i.index(data.len() + 1);
                data.insert(at, b);
            }
            Edit::Replace(ref i, b) if !data.is_empty() => {
                let at = i.index(data.len());
                data[at] = b;
            }
            Edit::Delete(ref i) if !data.is_empty() => {
                data.remove(i.index(data.len()));
            }
            _ => {}
        }
    }
    data
}

/// The committed proposal files of one format, good and bad.
fn seeds(ext: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in ["proposals", "bad"] {
        for entry in std::fs::read_dir(fixture(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == ext) && path.metadata().unwrap().len() < 8192 {
                out.push(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(!out.is_empty(), "no .{ext} seeds");
    out
}

fn input(ext: &str) -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        proptest::sample::select(seeds(ext)),
        proptest::collection::vec(edit(), 1..4),
    )
        .prop_map(|(seed, edits)| apply(seed, &edits));
    prop_oneof![
        1 => proptest::collection::vec(byte(), 0..256),
        3 => edited,
    ]
}

/// Proposes `data` as `p.EXT` (with `--skip-invalid`: the good rows of a file whose bad rows
/// go to a rejects file) and checks the outcome.
fn check(env: &Env, name: &str, data: &[u8], skip_invalid: bool) -> Result<(), TestCaseError> {
    env.write(name, data);
    let before = env.dump();
    let mut args = vec!["propose", name];
    if skip_invalid {
        args.extend(["--skip-invalid", "--rejects", "rejects.csv"]);
    }
    let out = env.cmd(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    prop_assert!(!stderr.contains("panicked"), "{stderr}");
    if std::env::var_os("CRMGATE_PROP_STATS").is_some() {
        eprintln!("{name} {skip_invalid}: exit {:?}", out.status.code());
    }
    match out.status.code() {
        // 3: accepted, with the bad rows skipped into the rejects file.
        Some(0 | 3) => {}
        Some(1) => {
            prop_assert_eq!(
                env.dump(),
                before,
                "a refused file leaves the store as it was"
            );
            let prefix = format!("{name}:");
            prop_assert!(
                stderr.starts_with(&format!("error: {prefix}")),
                "the refusal names the file first: {}",
                stderr
            );
            let last = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            for (at, _) in stderr.match_indices(&prefix) {
                let digits: String = stderr[at + prefix.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let line: u64 = digits.parse().unwrap_or(0);
                prop_assert!(
                    (1..=last).contains(&line),
                    "line {} is not in the file's {} lines: {}",
                    line,
                    last,
                    stderr
                );
            }
        }
        other => prop_assert!(false, "exit {other:?}: {stderr}"),
    }
    Ok(())
}

fn refused_by_line_or_accepted(ext: &str) {
    let env = Env::with_crm();
    let name = format!("p.{ext}");
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = (input(ext), any::<bool>());
    match runner.run(&cases, |(data, skip)| check(&env, &name, &data, skip)) {
        Ok(()) => {}
        Err(TestError::Fail(why, (data, skip))) => panic!(
            "{why}\nsmallest failing {name} (--skip-invalid: {skip}): {:?}",
            String::from_utf8_lossy(&data)
        ),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn any_csv_file_is_refused_by_line_or_accepted_and_never_half_written() {
    refused_by_line_or_accepted("csv");
}

#[test]
fn any_json_file_is_refused_by_line_or_accepted_and_never_half_written() {
    refused_by_line_or_accepted("json");
}

#[test]
fn any_jsonl_file_is_refused_by_line_or_accepted_and_never_half_written() {
    refused_by_line_or_accepted("jsonl");
}
