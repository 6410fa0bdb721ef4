//! Alerts: the policy's `[alerts]` command, run once per alert with the alert as one JSON object
//! (one line) on its standard input, after the transaction that caused it committed (docs/policy.md). The
//! library functions that trip a breaker, pause, block, or end an apply with conflicts call
//! [`send`] with what they committed; `status --max-age` and `alerts test` call it too.
//!
//! The command is an operator's program, so it is never trusted to behave: it runs without a
//! shell, in a process group of its own, with nothing of crmgate's output open to it; one that
//! fails, or runs past [`TIMEOUT`] (then its whole group is killed), never fails the command
//! that sent the alert. It is recorded as an `alert_failed` event instead.

use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use crate::model::NewEvent;
use crate::policy::Policy;
use crate::store::Store;

/// How long an alert command may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a failed command's standard error an `alert_failed` event keeps.
const STDERR_KEPT: usize = 1000;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A source was paused because humans rejected too much of what it proposed.
    CircuitBreaker,
    /// A person paused the store or a source.
    Pause,
    Resume,
    /// Proposals a stop rule blocked, at ingest or apply.
    Blocked,
    /// Approved proposals an apply found the record moved on from.
    Conflict,
    /// Approved proposals an apply could not write or read back.
    Failed,
    /// An undecided proposal older than `status --max-age`.
    QueueAge,
    /// A sample, from `alerts test`.
    Test,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CircuitBreaker => "circuit_breaker",
            AlertKind::Pause => "pause",
            AlertKind::Resume => "resume",
            AlertKind::Blocked => "blocked",
            AlertKind::Conflict => "conflict",
            AlertKind::Failed => "failed",
            AlertKind::QueueAge => "queue_age",
            AlertKind::Test => "test",
        }
    }
}

/// One alert, exactly as the command reads it on its standard input.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    /// When what it reports committed (RFC 3339, UTC).
    pub at: String,
    pub source: Option<String>,
    pub object: Option<String>,
    pub record: Option<String>,
    pub proposal: Option<i64>,
    /// What happened, by kind: a reason, counts, a run.
    pub detail: serde_json::Value,
}

impl Alert {
    /// An alert of `kind` at `at` with `detail`, about nothing narrower than the store.
    pub fn new(kind: AlertKind, at: &str, detail: serde_json::Value) -> Alert {
        Alert {
            kind,
            at: at.to_string(),
            source: None,
            object: None,
            record: None,
            proposal: None,
            detail,
        }
    }

    /// The same alert, about `source`.
    pub fn about_source(mut self, source: Option<&str>) -> Alert {
        self.source = source.map(str::to_string);
        self
    }
}

/// How one alert went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The policy has no `[alerts]` command.
    Nowhere,
    /// The command ran and exited 0.
    Delivered,
    /// Why it did not, as the `alert_failed` event records it.
    Failed(String),
}

/// Sends each alert to the policy's command, one run each, in order. A failure is recorded as an
/// `alert_failed` event, in a transaction of its own, and goes on to the next alert; what the
/// caller committed is never touched, and nothing here is an error of the caller's command.
pub fn send(store: &mut Store, policy: &Policy, alerts: &[Alert]) -> Vec<Sent> {
    let Some(a) = &policy.alerts else {
        return vec![Sent::Nowhere; alerts.len()];
    };
    alerts
        .iter()
        .map(|alert| match run(&a.argv, alert) {
            Ok(()) => Sent::Delivered,
            Err(why) => {
                record_failure(store, &a.argv, alert, &why);
                Sent::Failed(why)
            }
        })
        .collect()
}

/// [`send`] under the policy in force; no alerts when it cannot be read (status says why).
pub fn send_in_force(store: &mut Store, alerts: &[Alert]) -> Vec<Sent> {
    if alerts.is_empty() {
        return Vec::new();
    }
    match crate::admin::policy::load(store) {
        Ok((_, policy)) => send(store, &policy, alerts),
        Err(e) => vec![Sent::Failed(e.to_string()); alerts.len()],
    }
}

/// The `alert_failed` event. A store that cannot take it (locked past the busy timeout) loses
/// the record, not the caller's work.
fn record_failure(store: &mut Store, argv: &[String], alert: &Alert, why: &str) {
    let _ = store.write(&alert.at, |w| {
        w.append_event(NewEvent {
            actor: "crmgate".into(),
            actor_kind: "system",
            action: "alert_failed",
            // Not the proposal's own event: its state is read from its latest one of those.
            object: alert.object.clone(),
            record: alert.record.clone(),
            source: alert.source.clone(),
            detail: serde_json::json!({
                "kind": alert.kind,
                "command": argv[0],
                "error": why,
                "alert": alert,
            }),
            ..NewEvent::default()
        })
    });
}

/// Runs `argv` once with `alert` on its standard input; `Err` says why it did not succeed.
fn run(argv: &[String], alert: &Alert) -> Result<(), String> {
    // One line: a command may read it with `read`, `jq`, or append it to a JSON Lines file.
    let mut payload = serde_json::to_vec(alert).expect("an alert serializes");
    payload.push(b'\n');
    let mut stderr = tempfile::tempfile().map_err(|e| format!("no file for its errors: {e}"))?;
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().map_err(|e| e.to_string())?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{} could not be started: {e}", argv[0]))?;
    // A command that does not read its input must not hold crmgate up: the input is written
    // beside the wait, and a closed pipe is the command's business.
    let input = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut input) = input {
            let _ = input.write_all(&payload);
        }
    });
    let waited = child.wait_timeout(TIMEOUT);
    let result = match waited {
        Ok(Some(status)) if status.success() => Ok(()),
        Ok(Some(status)) => Err(format!("{} {status}{}", argv[0], tail(&mut stderr))),
        Ok(None) => {
            kill_group(&mut child);
            Err(format!(
                "{} was still running after {} s and was killed",
                argv[0],
                TIMEOUT.as_secs()
            ))
        }
        Err(e) => {
            kill_group(&mut child);
            Err(format!("waiting for {}: {e}", argv[0]))
        }
    };
    let _ = writer.join();
    result
}

/// Kills the command and everything it started (its process group), and reaps it.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads
        // (`process_group(0)` made it its own); it touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The end of what the command wrote to its standard error, as `: TEXT`, or nothing.
fn tail(f: &mut std::fs::File) -> String {
    let mut text = Vec::new();
    if f.rewind().is_err() || f.read_to_end(&mut text).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| text.len() - i <= STDERR_KEPT)
        .unwrap_or(0);
    format!(": {}", &text[start..])
}

/// `alerts test`: a sample alert to the policy's command, so an operator can check the wiring.
/// Refused when the policy has no `[alerts]`; an `Err` when the command failed (and an
/// `alert_failed` event records it, as for any alert).
pub fn test(store: &mut Store, actor: &str, now: &str) -> crate::error::Result<Alert> {
    use crate::error::Error;
    let (_, policy) = crate::admin::policy::load(store)?;
    let detail = serde_json::json!({
        "message": "a test alert from `crmgate alerts test`",
        "by": actor,
    });
    let alert = Alert::new(AlertKind::Test, now, detail);
    match send(store, &policy, std::slice::from_ref(&alert)).pop() {
        Some(Sent::Delivered) => Ok(alert),
        Some(Sent::Failed(why)) => Err(Error::refused_with_hint(
            format!("the alert command failed: {why}"),
            "fix [alerts] command in the policy (`crmgate policy show`), set it with `crmgate policy set FILE`, and run `crmgate alerts test` again",
        )),
        _ => Err(Error::refused_with_hint(
            "the policy has no [alerts] command, so alerts go nowhere",
            "add [alerts] command = \"/path/to/notify\" to the policy and set it with `crmgate policy set FILE`",
        )),
    }
}
