//! Who may revert. With `[roles]` set, undoing a change takes a role that could approve its
//! proposal under the policy in force, or admin; a change made for no proposal (an import's)
//! takes admin. A revert is checked whole before it writes anything.

use super::run::RevertTarget;
use crate::error::{Error, Holds, Result};
use crate::policy::Policy;
use crate::store::Writer;

/// How many refused proposals a refusal names one by one.
const NAMED: usize = 20;

/// Refuses the revert of `target` by `actor` when any change it would undo takes a role the
/// actor does not hold, naming those changes and who may revert them.
pub(super) fn may_revert(
    w: &Writer<'_>,
    policy: &Policy,
    actor: &str,
    target: RevertTarget,
) -> Result<()> {
    if policy.roles.is_empty() || policy.has_role(actor, "admin") {
        return Ok(());
    }
    let mut refused = Refused::default();
    match target {
        RevertTarget::Change(c) => {
            let proposal = w.change_to_revert(c)?.and_then(|(row, _)| row.proposal_id);
            refused.check(w, policy, actor, proposal, &[c])?;
        }
        RevertTarget::Run(run) => {
            let mut after = None;
            loop {
                let batch = w.run_proposals_after(run, after, 1000)?;
                let Some(&(last, _)) = batch.last() else {
                    break;
                };
                for (proposal, changes) in &batch {
                    refused.check(w, policy, actor, *proposal, changes)?;
                }
                after = last.or(Some(0));
            }
        }
    }
    refused.into_result(actor, target)
}

/// The changes refused so far, and why.
#[derive(Default)]
struct Refused {
    lines: Vec<String>,
    more: usize,
}

impl Refused {
    fn check(
        &mut self,
        w: &Writer<'_>,
        policy: &Policy,
        actor: &str,
        proposal: Option<i64>,
        changes: &[i64],
    ) -> Result<()> {
        let why = match proposal.map(|id| w.proposal(id)).transpose()?.flatten() {
            Some(p) => match crate::admin::access::may_revert(w, policy, &p, actor)? {
                Holds::Yes(()) => return Ok(()),
                Holds::No(why) => why,
            },
            None => format!(
                "{} may not revert a change made for no proposal: that takes the role admin",
                crate::ui::safe(actor)
            ),
        };
        if self.lines.len() == NAMED {
            self.more += 1;
            return Ok(());
        }
        let ids: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        let what = if ids.len() == 1 { "change" } else { "changes" };
        self.lines.push(format!("{what} {}: {why}", ids.join(", ")));
        Ok(())
    }

    fn into_result(self, actor: &str, target: RevertTarget) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let (what, command) = match target {
            RevertTarget::Change(c) => (format!("change {c}"), format!("revert {c}")),
            RevertTarget::Run(r) => (format!("run {r}"), format!("revert --run {r}")),
        };
        let more = match self.more {
            0 => String::new(),
            n => format!("\nand the changes of {n} more proposals"),
        };
        Err(Error::refused_with_hint(
            format!(
                "{} may not revert {what}; nothing was reverted:\n{}{more}",
                crate::ui::safe(actor),
                self.lines.join("\n")
            ),
            format!(
                "one who holds the role named, or an admin, can: `crmgate --as NAME {command}`"
            ),
        ))
    }
}
