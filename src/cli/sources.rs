//! `crmgate sources`.

use super::{Ctx, Outcome, print_json, print_out};
use crate::admin::sources::{self, SourceReport};
use crate::error::Result;
use crate::ui::safe;

pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.open()?;
    let reports = sources::report(&store)?;
    if ctx.ui.json {
        let rows: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "stats": r.stats,
                    "autonomy": r.autonomy,
                    "acceptance": r.stats.acceptance(),
                    "recommendation": r.recommendation,
                    "paused": r.paused,
                })
            })
            .collect();
        print_json(&rows)?;
        return Ok(Outcome::Done);
    }
    if reports.is_empty() {
        ctx.ui.note("no proposals yet");
        return Ok(Outcome::Done);
    }
    let mut t = ctx.ui.table();
    t.set_header([
        "source",
        "autonomy",
        "paused",
        "proposals",
        "auto",
        "review",
        "suggest",
        "block",
        "human ✓/✗/edit",
        "applied/reverted/conflict",
        "accepted",
        "calibration",
        "recommendation",
    ]);
    for SourceReport {
        stats: s,
        autonomy,
        recommendation: r,
        paused,
    } in &reports
    {
        t.add_row([
            safe(&s.source).into_owned(),
            autonomy.as_str().to_string(),
            paused
                .as_ref()
                .map(|p| format!("since {} by {}: {}", p.at, safe(&p.actor), safe(&p.reason)))
                .unwrap_or_else(|| "–".into()),
            s.proposals.to_string(),
            s.auto.to_string(),
            s.review.to_string(),
            s.suggest.to_string(),
            s.block.to_string(),
            format!("{}/{}/{}", s.approved, s.rejected, s.edited),
            format!("{}/{}/{}", s.applied, s.reverted, s.conflicts),
            s.acceptance()
                .map(|a| format!("{:.0}%", a * 100.0))
                .unwrap_or_else(|| "–".into()),
            s.brier
                .map(|b| format!("Brier {b:.2}"))
                .unwrap_or_else(|| "–".into()),
            match r.to {
                Some(to) => format!("{} to {to}: {}", r.verdict, r.why),
                None => format!("{}: {}", r.verdict, r.why),
            },
        ]);
    }
    print_out(t)?;
    Ok(Outcome::Done)
}
