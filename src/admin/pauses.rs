//! The kill switch: an admin pauses the whole store or one source, and resumes it; each change
//! is an event in the audit log. Apply and the policy read the pauses; this is where they change.

use crate::alerts::{Alert, AlertKind};
use crate::error::{Error, Result};
use crate::model::NewEvent;
use crate::policy::Policy;
use crate::store::Store;

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
