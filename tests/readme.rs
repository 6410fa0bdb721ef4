//! The documents run: the shell blocks of the README's tour, its cron line and
//! docs/own-schema.md are run line by line against a scratch store, with the built binary on
//! `PATH`; and every file the README and docs/ name exists.
//!
//! The conventions a document follows:
//! - A ```` ```sh ```` block under a `##` heading that contains "tour" (its `###` subsections
//!   included), and every ```` ```sh ```` block of docs/own-schema.md, runs: each command in
//!   order, through `sh -c`, in one scratch directory that holds a copy of `fixtures/`.
//! - A command ends where its quotes close and its line does not end in `\`; a heredoc
//!   (`<<'EOF'` … `EOF`) belongs to its command. Lines starting with `#` are comments.
//! - A command succeeds (exit 0) unless its trailing comment ends in `exit N`: then it must
//!   end with exactly N.
//! - Every argument that looks like a file (`./x`, `/x`, `dir/name.ext`, or a name ending in
//!   .csv, .json, .jsonl or .toml) must exist when the command starts, except where the
//!   command writes it: after `>`, `>>`, `--rejects`, `--plan-out`, or inside a heredoc.
//!   The store (`*.db`) is not checked: `init` or `sqlite3` creates it.
//! - The `## Cron` section's lines are crontab entries: five schedule fields (or one `@word`)
//!   then a command. The schedule is dropped, crontab's `\%` becomes `%`, and a leading
//!   `cd DIR &&` is dropped; the command runs through `sh -c` in a scratch directory holding
//!   `crm.db` (the demo CRM, no proposals), `inbox/` (two proposal files, one with a bad row)
//!   and an empty `rejects/`; any other directory it needs, the line makes itself. It must end
//!   as its comment says (0 by default), and a `propose` line must queue proposals from the inbox.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{BIN, Env, ROOT};

/// One command of a shell block, where it starts in its document, and the status it ends with.
#[derive(Debug)]
struct Cmd {
    text: String,
    line: usize,
    expect: i32,
}

/// The ```sh blocks of `md`, each with the `##` heading it sits under and its first line.
fn sh_blocks(md: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut block: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        match &mut block {
            Some((start, text)) => {
                if line.trim_end() == "```" {
                    out.push((heading.clone(), *start, std::mem::take(text)));
                    block = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            None if line.trim_end() == "```sh" => block = Some((i + 2, String::new())),
            None if line.starts_with("## ") => heading = line[3..].trim().to_string(),
            None => {}
        }
    }
    out
}

/// Where an unquoted `#` starts a comment in `s`, if one does.
fn comment_start(s: &str) -> Option<usize> {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in s.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    None
}

/// Whether `s` leaves a quote open.
fn quote_open(s: &str) -> bool {
    let end = comment_start(s).unwrap_or(s.len());
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for c in s[..end].chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            _ => {}
        }
        prev = c;
    }
    single || double
}

/// The word a heredoc on this line ends at (`<<'EOF'`, `<<"EOF"`, `<<EOF`, `<<-EOF`).
fn heredoc_end(line: &str) -> Option<String> {
    let code = &line[..comment_start(line).unwrap_or(line.len())];
    let rest = code
        .split("<<")
        .nth(1)?
        .trim_start_matches('-')
        .trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// The status a command's trailing comment promises: `... exit N` at its end, else 0.
fn expected_exit(first_line: &str) -> i32 {
    let Some(at) = comment_start(first_line) else {
        return 0;
    };
    let words: Vec<&str> = first_line[at + 1..].split_whitespace().collect();
    match words.as_slice() {
        [.., "exit", n] => n.parse().expect("a number after `exit` in a comment"),
        _ => 0,
    }
}

/// The commands of one shell block.
fn commands(block: &str, first_line: usize) -> Vec<Cmd> {
    let mut out = Vec::new();
    let mut lines = block.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut text = line.to_string();
        let mut head = line.to_string();
        while quote_open(&head) || head.trim_end().ends_with('\\') {
            let Some((_, next)) = lines.next() else { break };
            text.push('\n');
            text.push_str(next);
            head.push('\n');
            head.push_str(next);
        }
        if let Some(end) = heredoc_end(&head) {
            for (_, next) in lines.by_ref() {
                text.push('\n');
                text.push_str(next);
                if next.trim() == end {
                    break;
                }
            }
        }
        let last = head.lines().last().unwrap_or_default();
        out.push(Cmd {
            expect: expected_exit(last),
            text,
            line: first_line + i,
        });
    }
    out
}

/// The words of a command line before its comment and heredoc body, unquoted.
fn words(text: &str) -> Vec<String> {
    let head = match heredoc_end(text) {
        Some(_) => text.lines().next().unwrap_or_default(),
        None => text,
    };
    let code = &head[..comment_start(head).unwrap_or(head.len())];
    let mut out = Vec::new();
    let (mut word, mut quote, mut any, mut depth) = (String::new(), None::<char>, false, 0);
    for c in code.chars() {
        // A command substitution, $( ... ), is part of its word.
        if quote.is_none() && c == '(' && word.ends_with('$') {
            depth += 1;
        } else if quote.is_none() && c == ')' && depth > 0 {
            depth -= 1;
        }
        match (quote, c) {
            (None, c) if depth > 0 => word.push(c),
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '\\') => {}
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    out
}

/// The words of `text` that name a file it reads.
fn named_files(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut written = false;
    for w in words(text) {
        if written {
            written = false;
            continue;
        }
        if matches!(w.as_str(), ">" | ">>" | "2>" | "--rejects" | "--plan-out") {
            written = true;
            continue;
        }
        if w.starts_with('>') || w.starts_with('-') || w.contains(['$', '*', '`', ' ', '\n']) {
            continue;
        }
        let has_ext = |s: &str| {
            let name = s.rsplit('/').next().unwrap_or(s);
            name.contains('.') && !name.starts_with('.') && !name.ends_with('.')
        };
        let data = [".csv", ".json", ".jsonl", ".toml"]
            .iter()
            .any(|e| w.ends_with(e));
        let pathy = w.starts_with("./")
            || w.starts_with("../")
            || w.starts_with('/')
            || (w.contains('/') && has_ext(&w));
        if (pathy || data) && !w.ends_with(".db") {
            out.push(w);
        }
    }
    out
}

/// A scratch directory with a copy of `fixtures/`, where a document's commands run.
fn scratch_with_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(
        &Path::new(ROOT).join("fixtures"),
        &dir.path().join("fixtures"),
    );
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixtures") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `sh -c TEXT` in `dir`, with the built crmgate first on `PATH` and the harness's controlled
/// environment (fixed time; the OS user acts unless a command says --as), as a reader running it would.
fn shell(dir: &Path, text: &str) -> std::process::Output {
    let bin_dir = Path::new(BIN).parent().expect("the binary's directory");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    let mut c = Command::new("sh");
    common::controlled(&mut c);
    c.current_dir(dir)
        .env("PATH", std::env::join_paths(paths).expect("PATH"))
        .env("CRMGATE_NOW", common::NOW)
        .env("CRMGATE_TEST_CLOCK", "1")
        .env("CRMGATE_BUSY_TIMEOUT_MS", "2000")
        .arg("-c")
        .arg(text);
    c.output().expect("run sh")
}

/// Runs `cmd` from `doc` in `dir`: its files must exist and it must end as promised.
fn run(doc: &str, dir: &Path, cmd: &Cmd) {
    for f in named_files(&cmd.text) {
        assert!(
            dir.join(&f).exists(),
            "{doc}:{}: `{}` names {f}, which does not exist",
            cmd.line,
            cmd.text
        );
    }
    let out = shell(dir, &cmd.text);
    assert_eq!(
        out.status.code(),
        Some(cmd.expect),
        "{doc}:{}: `{}` should end with exit {} (say `# ... exit N` at its end when it fails \
         on purpose)\n--- stdout\n{}\n--- stderr\n{}",
        cmd.line,
        cmd.text,
        cmd.expect,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).expect(rel)
}

#[test]
fn the_readme_tour_runs_as_written() {
    let readme = read("README.md");
    let tour: Vec<Cmd> = sh_blocks(&readme)
        .into_iter()
        .filter(|(heading, _, _)| heading.to_lowercase().contains("tour"))
        .flat_map(|(_, line, block)| commands(&block, line))
        .collect();
    assert!(
        tour.len() >= 20,
        "the README's tour (## ... tour) should have its commands in ```sh blocks: found {tour:?}"
    );
    let dir = scratch_with_fixtures();
    for cmd in &tour {
        run("README.md", dir.path(), cmd);
    }
}

/// A crontab entry's command: the schedule dropped, `\%` unescaped, a leading `cd DIR &&`
/// dropped. None for a line that is not a crontab entry.
fn cron_command(line: &str) -> Option<String> {
    let line = line.trim();
    let rest = if line.starts_with('@') {
        line.split_once(char::is_whitespace)?.1
    } else {
        let mut rest = line;
        for _ in 0..5 {
            let (field, after) = rest.split_once(char::is_whitespace)?;
            if field.is_empty()
                || !field
                    .chars()
                    .all(|c| c.is_ascii_digit() || "*/,-".contains(c))
            {
                return None;
            }
            rest = after.trim_start();
        }
        rest
    };
    assert!(
        !rest.replace("\\%", "").contains('%'),
        "a crontab command ends at an unescaped %: write \\% in `{line}`"
    );
    let command = rest.replace("\\%", "%");
    let command = match command.strip_prefix("cd ") {
        Some(after_cd) => after_cd
            .split_once("&&")
            .map(|(_, c)| c.trim_start().to_string())
            .unwrap_or(command.clone()),
        None => command,
    };
    Some(command)
}

#[test]
fn the_readme_cron_lines_run_and_the_propose_line_queues_an_inbox() {
    let readme = read("README.md");
    let cron: Vec<Cmd> = sh_blocks(&readme)
        .into_iter()
        .filter(|(heading, _, _)| heading == "Cron")
        .flat_map(|(_, line, block)| commands(&block, line))
        .collect();
    assert!(!cron.is_empty(), "the README's ## Cron has no ```sh line");
    for entry in &cron {
        let Some(command) = cron_command(&entry.text) else {
            panic!(
                "README.md:{}: `{}` is not a crontab entry (five schedule fields or @word, then \
                 the command)",
                entry.line, entry.text
            );
        };
        let env = Env::with_crm();
        let applies = command.contains("--apply");
        if applies {
            // Under the demo policy clearbit is autonomous: some of its proposals apply at once.
            let p = env.fixture_policy("demo.toml");
            env.cmd(&["policy", "set", &p]).assert().success();
        }
        std::fs::create_dir(env.path("inbox")).unwrap();
        std::fs::create_dir(env.path("rejects")).unwrap();
        for (from, to) in [
            ("proposals/clearbit.csv", "inbox/clearbit.csv"),
            ("bad/bad-email.csv", "inbox/vendor.csv"),
        ] {
            std::fs::copy(common::fixture(from), env.path(to)).unwrap();
        }
        let cmd = Cmd {
            text: command,
            line: entry.line,
            expect: entry.expect,
        };
        run("README.md", env.dir.path(), &cmd);
        assert!(
            !cmd.text.contains(" propose ")
                || env.count("SELECT count(*) FROM crmgate_proposals") > 0,
            "README.md:{}: `{}` queued nothing from inbox/",
            cmd.line,
            cmd.text
        );
        let changes = env.count("SELECT count(*) FROM crmgate_changes");
        assert_eq!(
            changes > 0,
            applies,
            "README.md:{}: `{}` made {changes} changes",
            cmd.line,
            cmd.text
        );
    }
}

#[test]
fn own_schema_runs_as_written() {
    let doc = read("docs/own-schema.md");
    let cmds: Vec<Cmd> = sh_blocks(&doc)
        .into_iter()
        .flat_map(|(_, line, block)| commands(&block, line))
        .collect();
    assert!(cmds.len() >= 8, "docs/own-schema.md: found only {cmds:?}");
    let dir = tempfile::tempdir().unwrap();
    for cmd in &cmds {
        run("docs/own-schema.md", dir.path(), cmd);
    }
}

/// The files a document names: its relative links, and repository paths in backticks.
fn named_in_doc(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in md.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or_default();
        let target = target.split('#').next().unwrap_or_default();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
    }
    // Inline code only: fenced blocks are left out (the tour's run checks its own files).
    let mut prose = String::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let roots = ["fixtures/", "docs/", "benches/", "tests/", "src/"];
    for span in prose.split('`').skip(1).step_by(2) {
        for word in span.split_whitespace() {
            let word = word.trim_end_matches([',', '.', ';', ':', ')']);
            // FILE:LINE names FILE.
            let word = match word.rsplit_once(':') {
                Some((file, line)) if line.chars().all(|c| c.is_ascii_digit()) => file,
                _ => word,
            };
            if roots.iter().any(|r| word.starts_with(r))
                && !word.contains(['*', '…', '{', '<', '$', '|'])
            {
                out.push(word.to_string());
            }
        }
    }
    out
}

#[test]
fn every_file_the_readme_and_docs_name_exists() {
    let root = PathBuf::from(ROOT);
    let mut docs = vec![root.join("README.md")];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    let mut missing = Vec::new();
    for doc in &docs {
        let md = std::fs::read_to_string(doc).unwrap();
        let rel = doc.strip_prefix(&root).unwrap().display().to_string();
        for name in named_in_doc(&md) {
            let link_base = doc.parent().unwrap();
            // A link is relative to its document; a path in backticks, to the repository.
            let found = link_base.join(&name).exists() || root.join(&name).exists();
            if !found {
                missing.push(format!("{rel}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named but not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_block_reader_splits_commands_the_way_sh_does() {
    let block = "# a comment\ncrmgate a   # fine\ncrmgate b \\\n  --c d   # refused; exit 1\n\
                 sqlite3 crm.db 'CREATE TABLE t (\n  id TEXT PRIMARY KEY\n)'\n\
                 cat > x.csv <<'EOF'\nid,name\nEOF\n";
    let cmds = commands(block, 10);
    let got: Vec<(usize, i32)> = cmds.iter().map(|c| (c.line, c.expect)).collect();
    assert_eq!(got, [(11, 0), (12, 1), (14, 0), (17, 0)]);
    assert!(cmds[3].text.ends_with("id,name\nEOF"));
    assert_eq!(
        named_files("crmgate propose fixtures/a.csv x.toml --rejects r.csv > out.json"),
        ["fixtures/a.csv", "x.toml"]
    );
    assert_eq!(
        named_files("crmgate log --record contacts/c-1 --db crm.db"),
        [] as [&str; 0]
    );
    assert_eq!(
        cron_command(r"*/15 * * * *  cd /srv/crm && crmgate x rejects/$(date +\%F).csv").unwrap(),
        "crmgate x rejects/$(date +%F).csv"
    );
    assert_eq!(cron_command("crmgate x"), None);
}

#[test]
fn an_unknown_column_says_how_to_add_it_and_a_typo_what_it_may_mean() {
    let env = Env::with_crm();
    let contact = common::contact_where(&env, "1");
    let file = env.write(
        "rows.csv",
        format!(
            "{}x-1,bot,update,contacts,{contact},shoe_size,44,,,,,\n\
             x-2,bot,update,contacts,{contact},emial,a@b.example,,,,,\n",
            common::HEADER
        ),
    );
    let out = env
        .cmd(&["propose", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "rows.csv:2: field \"shoe_size\" does not exist on contacts; to add it as a column: \
             sqlite3 STORE 'ALTER TABLE contacts ADD COLUMN shoe_size', then propose again"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("rows.csv:3: field \"emial\" does not exist on contacts (did you mean \"email\"?); to add it as a column"),
        "{stderr}"
    );
}

#[test]
fn a_line_that_ends_otherwise_than_its_comment_says_or_names_a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let fails = |text: &str| {
        let cmd = commands(text, 1).pop().unwrap();
        let path = dir.path().to_path_buf();
        std::panic::catch_unwind(move || run("doc.md", &path, &cmd)).is_err()
    };
    assert!(!fails("crmgate --version\n"));
    assert!(fails("crmgate status --no-such-flag\n"));
    assert!(!fails(
        "crmgate status --no-such-flag   # a usage error; exit 2\n"
    ));
    assert!(fails("crmgate --version   # exit 1\n"));
    assert!(fails("crmgate propose fixtures/nowhere.csv   # exit 1\n"));
}
