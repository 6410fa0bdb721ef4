//! Running a child process and measuring it: wall time, its own peak memory and how much it
//! wrote. Shared by the benchmarks.
#![allow(dead_code)]

use std::error::Error;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// What one finished child process cost.
pub struct Measured {
    pub secs: f64,
    /// Peak resident set of this child alone, in KiB (Linux `ru_maxrss`). Linux starts a
    /// spawned child's count from this process's own peak, so a benchmark must stream what it
    /// generates rather than hold it, or every child is charged for it.
    pub max_rss_kib: i64,
    /// Bytes the child passed to `write`-like calls (Linux `/proc/PID/io` `wchar`): the file
    /// data it made the OS take, WAL, store and temporary files alike. New page cache is a large
    /// part of what a bulk command costs, so this shows why two contenders differ. `None` where
    /// `/proc` does not say.
    pub written: Option<u64>,
    pub status: ExitStatus,
}

impl Measured {
    pub fn peak_mb(&self) -> f64 {
        self.max_rss_kib as f64 * 1024.0 / 1e6
    }

    /// ", wrote 1234 MB", or nothing when the amount is unknown.
    pub fn wrote(&self) -> String {
        self.written
            .map(|b| format!(", wrote {:.0} MB", b as f64 / 1e6))
            .unwrap_or_default()
    }
}

/// Runs `cmd` to completion; its stdout and stderr go to `LOG.out` / `LOG.err` so nothing
/// is piped (a full pipe would stall a child we are not reading from).
///
/// It is reaped with `wait4` on its own pid rather than `Child::wait`, because only
/// `wait4` hands back that one process's rusage; `getrusage(RUSAGE_CHILDREN)` would mix
/// in every earlier child (the imports, sqlite3).
pub fn run_measured(cmd: &mut Command, log: &Path) -> Result<Measured> {
    cmd.stdout(File::create(log.with_extension("out"))?)
        .stderr(File::create(log.with_extension("err"))?);
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    // Wait for the exit without reaping, so that /proc still has the child's counters.
    loop {
        // SAFETY: siginfo_t is a plain C struct; all-zero is a valid value to be written over.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our own unreaped child; `info` is valid for writes.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("waitid({pid}): {err}").into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let written = fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar:"))
                .and_then(|n| n.trim().parse().ok())
        });
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is a plain C struct of integers; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own unreaped child; both out-pointers are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(format!("wait4({pid}): {err}").into());
        }
    }
    // `child` is already reaped; dropping a std Child neither waits nor kills.
    drop(child);
    Ok(Measured {
        secs,
        max_rss_kib: usage.ru_maxrss,
        written,
        status: ExitStatus::from_raw(status),
    })
}

/// Runs `cmd` measured and fails, quoting its stderr, unless it exited 0.
pub fn run_ok(cmd: &mut Command, log: &Path, what: &str) -> Result<Measured> {
    let m = run_measured(cmd, log)?;
    if !m.status.success() {
        let stderr = fs::read_to_string(log.with_extension("err")).unwrap_or_default();
        return Err(format!(
            "{what} failed ({}); stderr:\n{}",
            m.status,
            stderr.trim_end()
        )
        .into());
    }
    Ok(m)
}

/// How many times each contender runs (`CRMGATE_BENCH_TRIALS`, default `default`): this machine
/// shares its cores, and one slow moment can add a third to a single run, so the benchmarks
/// alternate the contenders and compare each one's best run.
pub fn trials(default: usize) -> Result<usize> {
    match std::env::var("CRMGATE_BENCH_TRIALS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("CRMGATE_BENCH_TRIALS={v:?} is not a count of 1 or more").into()),
        },
        Err(_) => Ok(default),
    }
}

/// The best (shortest) of several runs of one contender, with the highest peak memory of any
/// and the fastest run's bytes written.
pub fn best(runs: &[Measured]) -> Measured {
    let fastest = runs
        .iter()
        .min_by(|a, b| a.secs.total_cmp(&b.secs))
        .expect("at least one run");
    Measured {
        secs: fastest.secs,
        max_rss_kib: runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0),
        written: fastest.written,
        status: fastest.status,
    }
}

/// "12.34 s, 13.02 s, 12.80 s": every run, for the record.
pub fn all_secs(runs: &[Measured]) -> String {
    runs.iter()
        .map(|m| format!("{:.2} s", m.secs))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How large a benchmark runs: env `var` (`1_000_000` and `1,000,000` are read too), else a
/// million under `cargo bench`, else 1,000: `cargo test --all-targets` runs every benchmark
/// binary too, without `--bench` and with a debug build, as a smoke run.
pub fn size(var: &str) -> Result<usize> {
    match std::env::var(var) {
        Ok(v) => {
            let n: usize = v
                .trim()
                .replace(['_', ','], "")
                .parse()
                .map_err(|e| format!("{var}={v:?} is not a count: {e}"))?;
            if n == 0 {
                return Err(format!("{var} must be at least 1").into());
            }
            Ok(n)
        }
        Err(_) if std::env::args().any(|a| a == "--bench") => Ok(1_000_000),
        Err(_) => Ok(1_000),
    }
}

/// Where a benchmark writes its data, stores and child logs: a temporary directory, removed at
/// the end, or kept for a post-mortem when `CRMGATE_BENCH_KEEP` is set.
pub enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(std::path::PathBuf),
}

impl WorkDir {
    pub fn new(prefix: &str) -> Result<WorkDir> {
        let tmp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        Ok(if std::env::var_os("CRMGATE_BENCH_KEEP").is_some() {
            WorkDir::Kept(tmp.keep())
        } else {
            WorkDir::Temp(tmp)
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(t) => t.path(),
            WorkDir::Kept(p) => p,
        }
    }
}

/// Whether the sqlite3 CLI runs, installing it with apt-get when it is missing: the raw-SQL
/// contenders need it.
pub fn sqlite3_available() -> std::result::Result<(), String> {
    let found = || {
        Command::new("sqlite3")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found() {
        return Ok(());
    }
    println!("sqlite3 is not on PATH: running apt-get install -y sqlite3");
    let out = Command::new("apt-get")
        .args(["install", "-y", "sqlite3"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "apt-get install -y sqlite3 failed ({}): {}",
            out.status,
            stderr.trim_end()
        ));
    }
    if found() {
        Ok(())
    } else {
        Err("apt-get installed sqlite3 but it still does not run".into())
    }
}
