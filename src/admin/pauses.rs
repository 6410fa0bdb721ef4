//! The kill switch: an admin pauses the whole store or one source, and resumes it; each change
//! is an event in the audit log; and the circuit breaker, which pauses a source its reviewers
//! reject too often. Apply and the policy read the pauses; this is where they change.

use crate::alerts::{Alert, AlertKind};
use crate::error::{Error, Result};
use crate::model::NewEvent;
use crate::policy::Policy;
use crate::store::{Store, Writer};

/// What a pause or resume did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggled {
    /// The scope changed (and an event says so).
    Changed,
    /// The scope already was as asked; nothing was written.
    AlreadySo,
}

/// Pausing and resuming take the admin role under the policy in force, which is returned.
fn require_admin(store: &Store, actor: &str, what: &str) -> Result<Policy> {
    let (_, policy) = super::policy::load(store)?;
    if policy.has_role(actor, "admin") {
        Ok(policy)
    } else {
        Err(Error::refused(format!(
            "{actor} may not {what}: it takes the admin role"
        )))
    }
}

fn toggled(changed: bool) -> Toggled {
    if changed {
        Toggled::Changed
    } else {
        Toggled::AlreadySo
    }
}

/// Pauses `source` (the whole store when `None`) for `actor`, an admin, with a `pause` event.
pub fn pause(
    store: &mut Store,
    source: Option<&str>,
    reason: &str,
    actor: &str,
    now: &str,
) -> Result<Toggled> {
    if reason.trim().is_empty() {
        return Err(Error::refused("a pause needs a --reason"));
    }
    let policy = require_admin(store, actor, "pause")?;
    let done = store.write(now, |w| {
        let changed = w.pause(source, reason, actor)?;
        if changed {
            w.append_event(NewEvent {
                actor: actor.to_string(),
                actor_kind: "human",
                action: "pause",
                source: source.map(str::to_string),
                detail: serde_json::json!({ "reason": reason }),
                ..NewEvent::default()
            })?;
        }
        Ok(toggled(changed))
    })?;
    if done == Toggled::Changed {
        let detail = serde_json::json!({ "reason": reason, "by": actor });
        let alert = Alert::new(AlertKind::Pause, now, detail).about_source(source);
        crate::alerts::send(store, &policy, &[alert]);
    }
    Ok(done)
}

/// Lifts the pause on `source` (the whole store when `None`) for `actor`, an admin, with a
/// `resume` event.
pub fn resume(store: &mut Store, source: Option<&str>, actor: &str, now: &str) -> Result<Toggled> {
    let policy = require_admin(store, actor, "resume")?;
    let done = store.write(now, |w| {
        let changed = w.resume(source)?;
        if changed {
            w.append_event(NewEvent {
                actor: actor.to_string(),
                actor_kind: "human",
                action: "resume",
                source: source.map(str::to_string),
                ..NewEvent::default()
            })?;
        }
        Ok(toggled(changed))
    })?;
    if done == Toggled::Changed {
        let detail = serde_json::json!({ "by": actor });
        let alert = Alert::new(AlertKind::Resume, now, detail).about_source(source);
        crate::alerts::send(store, &policy, &[alert]);
    }
    Ok(done)
}

/// Pauses `source` when more than the policy's `max_reject_rate` of a window of its latest
/// human decisions are rejections, counting the window as full: 20 rejections out of any 50
/// trip a 30% breaker, however few approvals came between. Returns the reason when it paused.
pub fn circuit_breaker(w: &Writer<'_>, policy: &Policy, source: &str) -> Result<Option<String>> {
    let Some(b) = policy.circuit_breaker else {
        return Ok(None);
    };
    let recent = w.recent_human_decisions(source, b.window)?;
    let rejected = recent.iter().filter(|r| **r).count();
    if (rejected as f64) <= b.max_reject_rate * b.window as f64 {
        return Ok(None);
    }
    let reason = format!(
        "circuit breaker: {rejected} of the last {} human decisions on its proposals were rejections (more than {:.0}% of {})",
        recent.len(),
        b.max_reject_rate * 100.0,
        b.window
    );
    if !w.pause(Some(source), &reason, "crmgate")? {
        return Ok(None); // already paused
    }
    w.append_event(NewEvent {
        actor: "crmgate".into(),
        actor_kind: "system",
        action: "pause",
        source: Some(source.to_string()),
        detail: serde_json::json!({ "reason": reason, "rejected": rejected, "window": b.window }),
        ..NewEvent::default()
    })?;
    Ok(Some(reason))
}

/// A `circuit_breaker` alert for each source the breaker paused (`(source, reason)`), sent
/// once the pause committed.
pub fn alert_breakers(store: &mut Store, policy: &Policy, now: &str, trips: &[(String, String)]) {
    use crate::alerts::{Alert, AlertKind};
    let alerts: Vec<Alert> = trips
        .iter()
        .map(|(source, reason)| {
            let detail = serde_json::json!({ "reason": reason });
            Alert::new(AlertKind::CircuitBreaker, now, detail).about_source(Some(source))
        })
        .collect();
    if !alerts.is_empty() {
        crate::alerts::send(store, policy, &alerts);
    }
}
