//! How each source is doing under the policy in force: its numbers from the store, its autonomy
//! from the policy, and the recommendation [`crate::sources::recommend`] makes of the two.

use crate::error::Result;
use crate::model::SourceStats;
use crate::policy::Autonomy;
use crate::sources::{Recommendation, recommend};
use crate::store::{Pause, Store};

/// One source's report.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    pub stats: SourceStats,
    pub autonomy: Autonomy,
    pub recommendation: Recommendation,
    /// Its pause, when it is paused on its own (a pause of the whole store is the store's).
    pub paused: Option<Pause>,
}

/// Every source that has proposed anything, in the store's order, then any source paused
/// before it proposed anything.
pub fn report(store: &Store) -> Result<Vec<SourceReport>> {
    let (_, policy) = super::policy::load(store)?;
    let mut pauses = store.pauses()?;
    pauses.retain(|p| p.source.is_some());
    let mut stats = store.source_stats()?;
    for p in &pauses {
        let name = p.source.clone().unwrap_or_default();
        if !stats.iter().any(|s| s.source == name) {
            stats.push(SourceStats {
                source: name,
                ..SourceStats::default()
            });
        }
    }
    Ok(stats
        .into_iter()
        .map(|stats| {
            let autonomy = policy.source(&stats.source).autonomy;
            SourceReport {
                recommendation: recommend(autonomy, &stats),
                autonomy,
                paused: pauses
                    .iter()
                    .find(|p| p.source.as_deref() == Some(stats.source.as_str()))
                    .cloned(),
                stats,
            }
        })
        .collect())
}
