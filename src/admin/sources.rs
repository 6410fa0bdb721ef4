//! How each source is doing under the policy in force: its numbers from the store, its autonomy
//! from the policy, and the recommendation [`crate::sources::recommend`] makes of the two.

use crate::error::Result;
use crate::model::SourceStats;
use crate::policy::Autonomy;
use crate::sources::{Recommendation, recommend};
use crate::store::Store;

/// One source's report.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    pub stats: SourceStats,
    pub autonomy: Autonomy,
    pub recommendation: Recommendation,
}

/// Every source that has proposed anything, in the store's order.
pub fn report(store: &Store) -> Result<Vec<SourceReport>> {
    let (_, policy) = super::policy::load(store)?;
    Ok(store
        .source_stats()?
        .into_iter()
        .map(|stats| {
            let autonomy = policy.source(&stats.source).autonomy;
            SourceReport {
                recommendation: recommend(autonomy, &stats),
                autonomy,
                stats,
            }
        })
        .collect())
}
