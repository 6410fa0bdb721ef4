//! Who may do what, beyond the approver roles of a proposal's rules: with `[roles]` set, acting
//! as someone other than the OS user takes the OS user holding `admin` (like `sudo -u`), an
//! actor holding no role decides nothing, and exports take `admin` or `auditor`. An empty
//! `[roles]` table is single-user: every actor may do everything. The approver roles of a
//! proposal, its approval at apply and who may revert it are judged here too, the same for a
//! person's decision and for apply.

use crate::error::{Error, Holds, Result};
use crate::model::Proposal;
use crate::policy::Decision;
use crate::policy::Policy;
use crate::store::{ReadRecords, Store};

/// What a command asks of its actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// It writes on the record (propose, import, apply): acting as another needs an admin.
    Act,
    /// It decides (approve, reject, review, pause, resume, policy set, revert): the actor must
    /// hold a role.
    Decide,
    /// It takes records or events out of the store (export, audit export).
    Export,
}

/// Checks `actor`, run by the OS user `os_user`, against the policy in force for `need`. A
/// store without a policy has no one to check against.
pub fn check(store: &Store, actor: &str, os_user: &str, need: Need) -> Result<()> {
    if store.current_policy()?.is_none() {
        return Ok(());
    }
    let (_, policy) = super::policy::load(store)?;
    permitted(&policy, actor, os_user, need)
}

/// [`check`] under a given policy.
pub fn permitted(policy: &Policy, actor: &str, os_user: &str, need: Need) -> Result<()> {
    if policy.roles.is_empty() {
        return Ok(());
    }
    let safe = |s: &str| crate::ui::safe(s).into_owned();
    let admins = admins(policy);
    if actor != os_user && !policy.has_role(os_user, "admin") {
        return Err(Error::refused_with_hint(
            format!(
                "{} may not act as {}: acting as someone else takes the admin role, which the OS user {} does not hold",
                safe(os_user),
                safe(actor),
                safe(os_user)
            ),
            format!(
                "run it as yourself (without --as and CRMGATE_USER), or ask an admin ({admins}) to add {} with [\"admin\"] to [roles] and run `crmgate policy set FILE`",
                safe(os_user)
            ),
        ));
    }
    let holds = policy.roles.get(actor).is_some_and(|r| !r.is_empty());
    let refused = match need {
        Need::Act => return Ok(()),
        Need::Decide if holds => return Ok(()),
        Need::Export
            if ["admin", "auditor"]
                .iter()
                .any(|r| policy.has_role(actor, r)) =>
        {
            return Ok(());
        }
        Need::Decide => format!(
            "{} holds no role in the policy in force, so may not decide anything",
            safe(actor)
        ),
        Need::Export => format!(
            "{} may not export from the store: it takes the admin or auditor role",
            safe(actor)
        ),
    };
    Err(Error::refused_with_hint(
        refused,
        format!(
            "ask an admin ({admins}) to give {} a role in [roles] and run `crmgate policy set FILE`",
            safe(actor)
        ),
    ))
}

fn admins(policy: &Policy) -> String {
    let names: Vec<String> = policy
        .roles
        .iter()
        .filter(|(_, r)| r.iter().any(|x| x == "admin"))
        .map(|(a, _)| crate::ui::safe(a).into_owned())
        .collect();
    if names.is_empty() {
        "none is named".into()
    } else {
        names.join(", ")
    }
}

/// The roles that may approve `p` under `policy` (the one in force): its rules' approvers when
/// it is decided again now, not those stored when it was ingested under an older version. A
/// proposal whose record is gone keeps its stored ones (staleness refuses it anyway).
pub fn approvers_now(r: &impl ReadRecords, policy: &Policy, p: &Proposal) -> Result<Vec<String>> {
    if let Some(d) = crate::admin::policy::decide_again(r, policy, p)? {
        return Ok(d.approvers);
    }
    let stored: Option<Decision> = p.rules.clone().and_then(|v| serde_json::from_value(v).ok());
    Ok(stored.map(|d| d.approvers).unwrap_or_default())
}

/// Whether a person's approval of a proposal still holds under the policy in force, given
/// `now`, the policy's decision on it against the record as it is at apply: `approver` must hold
/// one of the roles its matched rules name. `Err` says why not, for the event that sends the
/// proposal back to review.
pub fn approval_holds(
    policy: &Policy,
    now: &Decision,
    approver: &str,
) -> std::result::Result<(), String> {
    if policy.may_approve(approver, &now.approvers) {
        return Ok(());
    }
    Err(format!(
        "{} approved it, but under the policy in force approving it takes the role {}; it is back in review for `crmgate approve` by one who holds it",
        crate::ui::safe(approver),
        now.approvers.join(" or ")
    ))
}

/// Whether `actor` may revert a change made for proposal `p`: an admin may, and so may one
/// who could approve `p` under `policy` (the one in force). `No` says why not, for the refusal.
pub fn may_revert(
    r: &impl ReadRecords,
    policy: &Policy,
    p: &Proposal,
    actor: &str,
) -> Result<Holds> {
    let approvers = approvers_now(r, policy, p)?;
    if policy.has_role(actor, "admin") || policy.may_approve(actor, &approvers) {
        return Ok(Holds::Yes(()));
    }
    Ok(Holds::No(format!(
        "{} may not revert the change made for proposal {}: that takes the role {}, or admin",
        crate::ui::safe(actor),
        p.id,
        approvers.join(" or ")
    )))
}
