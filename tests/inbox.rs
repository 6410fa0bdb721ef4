//! `propose` over an inbox directory, as cron runs it: files in name order, a broken file set
//! aside whole under --skip-invalid, missing directories created, --quiet silent, and every
//! file read moved to the archive so the next run does not read it again.

mod scratch;

use std::path::Path;

use scratch::{Env, HEADER, ROOT};

/// What these tests add to the scratch store.
trait Inbox {
    fn sh(&self, line: &str) -> std::process::Output;
    fn files(&self, rel: &str) -> Vec<String>;
    fn rejects(&self) -> Vec<(String, String, String)>;
    fn inbox(&self);
}

impl Inbox for Env {
    /// `sh -c LINE` in the scratch directory, with the binary on PATH.
    fn sh(&self, line: &str) -> std::process::Output {
        let bin = assert_cmd::cargo::cargo_bin("crmgate");
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::process::Command::new("sh")
            .args(["-c", line])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env_remove("CRMGATE_DB")
            .env("CRMGATE_USER", "cron")
            .output()
            .expect("sh runs")
    }

    /// The files under `rel`, relative to it, sorted.
    fn files(&self, rel: &str) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.path(rel);
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    let rel = p.strip_prefix(&root).unwrap();
                    out.push(rel.display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// The rejects written under `rejects/`: (file, line, error) of each row, over every file.
    fn rejects(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for f in self.files("rejects") {
            let mut rdr = csv::Reader::from_path(self.path("rejects").join(f)).unwrap();
            for r in rdr.records() {
                let r = r.unwrap();
                out.push((r[0].to_string(), r[1].to_string(), r[2].to_string()));
            }
        }
        out
    }

    /// An inbox with a good file, a file with one bad row, a CSV with a quote never closed
    /// after a good row, and a JSON array cut short after a good object.
    fn inbox(&self) {
        self.write(
            "inbox/a-good.csv",
            &format!(
                "{HEADER}g-1,vendor,update,contacts,c-1001,title,CFO,,0.9,,,\n\
                 g-2,vendor,update,contacts,c-1002,title,CEO,,0.9,,,\n"
            ),
        );
        self.write(
            "inbox/b-one-bad-row.csv",
            &format!(
                "{HEADER}b-1,vendor,update,contacts,c-1003,title,COO,,0.9,,,\n\
                 b-2,vendor,update,contacts,c-1003,emial,x@y.co,,0.9,,,\n"
            ),
        );
        self.write(
            "inbox/c-unclosed-quote.csv",
            &format!(
                "{HEADER}c-1,vendor,update,contacts,c-1004,title,CTO,,0.9,,,\n\
                 c-2,vendor,update,contacts,c-1005,title,\"VP,,0.9,,,\n"
            ),
        );
        self.write(
            "inbox/d-cut-short.json",
            r#"[{"id": "d-1", "source": "vendor", "kind": "update", "object": "contacts",
                 "record": "c-1006", "field": "title", "value": "CMO"},
                {"id": "d-2", "source": "ven"#,
        );
        self.write("inbox/notes.txt", "not a proposal file");
    }
}

const CRON_LINE: &str = "crmgate --db crm.db --quiet propose --skip-invalid --rejects rejects/$(date +%F-%H%M%S).csv --archive archive inbox; test $? -ne 1";

#[test]
fn the_readme_cron_line_ingests_an_inbox_with_broken_files_twice_without_failing() {
    let env = Env::new();
    env.inbox();

    let first = env.sh(CRON_LINE);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "",
        "--quiet prints nothing"
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stderr),
        "",
        "--quiet prints nothing"
    );
    // The good rows of the readable files are queued; nothing from the files set aside.
    assert_eq!(
        env.query("SELECT ext_id FROM crmgate_proposals ORDER BY ext_id"),
        ["b-1", "g-1", "g-2"]
    );
    let rejects = env.rejects();
    let lines: Vec<(&str, &str)> = rejects
        .iter()
        .filter(|r| r.2.starts_with("the whole file was set aside"))
        .map(|r| (r.0.as_str(), r.1.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("inbox/c-unclosed-quote.csv", "3"),
            ("inbox/d-cut-short.json", "3")
        ],
        "{rejects:?}"
    );
    assert!(
        rejects
            .iter()
            .any(|r| r.0 == "inbox/b-one-bad-row.csv" && r.1 == "3" && r.2.contains("emial")),
        "{rejects:?}"
    );
    assert_eq!(
        rejects.len(),
        3,
        "a file set aside is named once: {rejects:?}"
    );
    let archived = [
        "a-good.csv",
        "b-one-bad-row.csv",
        "failed/c-unclosed-quote.csv",
        "failed/d-cut-short.json",
    ];
    assert_eq!(env.files("archive"), archived);
    assert_eq!(env.files("inbox"), ["notes.txt"]);

    // Fifteen minutes later: nothing new, nothing rejected again, nothing moved.
    let store_before = env.query("SELECT id || state FROM crmgate_proposals");
    let second = env.sh(CRON_LINE);
    assert!(second.status.success(), "{second:?}");
    assert_eq!(String::from_utf8_lossy(&second.stderr), "");
    assert_eq!(env.rejects(), rejects, "no new rejects");
    assert_eq!(env.files("archive"), archived);
    assert_eq!(
        env.query("SELECT id || state FROM crmgate_proposals"),
        store_before
    );
}

#[test]
fn an_inbox_run_exits_3_with_a_file_set_aside_and_0_when_empty() {
    let env = Env::new();
    env.inbox();
    let args = [
        "propose",
        "--skip-invalid",
        "--rejects",
        "out/rejects.csv",
        "--archive",
        "archive",
        "inbox",
    ];
    let out = env.cmd(&args).assert().code(3).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("inbox/c-unclosed-quote.csv could not be read to its end"),
        "{stderr}"
    );
    assert!(stderr.contains("1 row was skipped"), "{stderr}");
    assert!(env.path("out/rejects.csv").exists());
    env.cmd(&args).assert().code(0);
    env.cmd(&["propose", "inbox"]).assert().code(0);
}

#[test]
fn without_skip_invalid_an_unreadable_file_still_stops_the_whole_run() {
    let env = Env::new();
    env.inbox();
    env.cmd(&["propose", "--archive", "archive", "inbox"])
        .assert()
        .code(1);
    assert!(env.query("SELECT id FROM crmgate_proposals").is_empty());
    assert_eq!(env.files("archive"), Vec::<String>::new());
    assert_eq!(env.files("inbox").len(), 5, "every file stays in the inbox");
}

#[test]
fn the_archive_never_overwrites_a_file_already_there() {
    let env = Env::new();
    let good = format!("{HEADER}g-1,vendor,update,contacts,c-1001,title,CFO,,0.9,,,\n");
    env.write("archive/a.csv", "kept as it was");
    env.write("inbox/a.csv", &good);
    env.cmd(&["propose", "--archive", "archive", "inbox"])
        .assert()
        .code(0);
    env.write("inbox/a.csv", &good);
    env.cmd(&["propose", "--archive", "archive", "inbox"])
        .assert()
        .code(0);
    assert_eq!(env.files("archive"), ["a-1.csv", "a-2.csv", "a.csv"]);
    let kept = std::fs::read_to_string(env.path("archive/a.csv")).unwrap();
    assert_eq!(kept, "kept as it was");
    assert_eq!(env.query("SELECT ext_id FROM crmgate_proposals"), ["g-1"]);
}

#[test]
fn stdin_cannot_be_archived() {
    let env = Env::new();
    env.cmd(&["propose", "-", "--archive", "archive"])
        .write_stdin(HEADER)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("stdin"));
}

#[test]
fn with_skip_invalid_a_file_that_cannot_be_read_to_its_end_is_set_aside_and_named() {
    let env = Env::new();
    let counts = "SELECT (SELECT count(*) FROM crmgate_proposals) || '/' ||
                         (SELECT count(*) FROM crmgate_events) || '/' ||
                         (SELECT count(*) FROM crmgate_ingests)";
    let before = env.query(counts);
    for file in [
        "missing-column.csv",
        "unterminated-quote.csv",
        "malformed.json",
    ] {
        let path = Path::new(ROOT).join("fixtures/bad").join(file);
        let rejects = format!("rejects/{file}.csv");
        env.cmd(&[
            "propose",
            path.to_str().unwrap(),
            "--skip-invalid",
            "--rejects",
            &rejects,
        ])
        .assert()
        .code(3);
        assert_eq!(
            env.query(counts),
            before,
            "{file}: nothing from it is queued"
        );
        let named = env
            .rejects()
            .into_iter()
            .filter(|r| r.0.ends_with(file) && r.2.starts_with("the whole file was set aside"))
            .count();
        assert_eq!(named, 1, "{file} is named once in its rejects file");
    }
}

#[test]
fn a_file_that_cannot_be_archived_stays_in_the_inbox_and_the_run_exits_3() {
    let env = Env::new();
    env.write(
        "inbox/a.csv",
        &format!("{HEADER}g-1,vendor,update,contacts,c-1001,title,CFO,,0.9,,,\n"),
    );
    env.write("archive", "a file where the archive directory should be");
    env.cmd(&["--quiet", "propose", "--archive", "archive", "inbox"])
        .assert()
        .code(3)
        .stderr(predicates::str::contains(
            "not archived, left in place: inbox/a.csv",
        ));
    assert_eq!(env.files("inbox"), ["a.csv"]);
    assert_eq!(env.query("SELECT ext_id FROM crmgate_proposals"), ["g-1"]);
}
