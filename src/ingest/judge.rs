//! The fourth stage of a propose run: each staged row's records looked up, the proposal
//! scored and decided under the policy in force. It runs on a thread of its own, over a
//! [`Snapshot`], while the writer queues what it has judged.

mod tallies;

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{Receiver, Sender};

use crate::error::Result;
use crate::model::{Kind, NewProposal, Related, State, Value, Verdict};
use crate::policy::{self, Action, Decision, Facts, Policy, Situation};
use crate::schema::Object;
use crate::score::{self, FieldFacts, Score, TrackRecord};
use crate::store::{ColumnPlan, Pause, PlanRow, ReadRecords, Snapshot, Staged};
use crate::validate::{FieldType, short};

/// Scores and decides each proposal of a run under the policy in force, keeping count of the
/// auto decisions each source has had in this run and today, for the policy's limits.
///
/// It reads the store only through a [`Snapshot`]: the store as the run's write transaction
/// found it, which no one else can change while that transaction holds the write lock. What
/// the snapshot may be asked is what the run itself never writes: CRM records, their parents,
/// and the proposals and events of earlier runs (track records, today's auto decisions). What
/// the run writes (its own proposals, their supersedes and events) the snapshot does not see,
/// so it is never asked: this run's auto decisions are counted here, in `auto_in_run` and on
/// top of `auto_today`, as they are made, in queueing order.
pub(super) struct Judge<'p> {
    policy: &'p Policy,
    version: i64,
    /// The columns the policy's record conditions read.
    columns: BTreeSet<String>,
    auto_in_run: HashMap<String, u64>,
    auto_today: HashMap<String, u64>,
    day_start: String,
    /// Column plans for a write, by (object, written column): a few per run.
    plans: Vec<(String, usize, ColumnPlan)>,
    /// Plans reading only a parent's `domain`, by parent: kept apart from `plans`, whose plan
    /// for a write of that column reads every column the policy tests.
    domain_plans: Vec<(String, ColumnPlan)>,
    /// What is paused: nothing from it is let through on its own.
    pauses: Vec<Pause>,
    /// Track records by (source, kind, field), read once per run.
    tracks: HashMap<(String, Kind, Option<String>), TrackRecord>,
    /// How common values are in the tables merged, as far as this run's merges have asked.
    tallies: HashMap<String, tallies::Tally>,
}

impl<'p> Judge<'p> {
    pub(super) fn new(policy: &'p Policy, version: i64, now: &str, pauses: Vec<Pause>) -> Self {
        let columns = policy
            .rules
            .iter()
            .flat_map(|r| {
                r.record_eq
                    .iter()
                    .map(|(c, _)| c)
                    .chain(r.record_min.iter().map(|(c, _)| c))
                    .chain(r.record_max.iter().map(|(c, _)| c))
            })
            .cloned()
            .collect();
        Judge {
            policy,
            version,
            columns,
            auto_in_run: HashMap::new(),
            auto_today: HashMap::new(),
            day_start: format!("{}T00:00:00.000Z", &now[..10.min(now.len())]),
            plans: Vec::new(),
            domain_plans: Vec::new(),
            pauses,
            tracks: HashMap::new(),
            tallies: HashMap::new(),
        }
    }

    /// Judges the rows that come in, in order (the policy's limits count auto decisions as they
    /// are made), and sends each batch back judged. Stops early when the other side hangs up.
    pub(super) fn run(
        mut self,
        snapshot: &Snapshot,
        rows: Receiver<Vec<Staged>>,
        judged: Sender<Vec<Judged>>,
    ) -> Result<()> {
        for batch in rows {
            let out = batch
                .into_iter()
                .map(|s| self.judge(snapshot, s))
                .collect::<Result<Vec<_>>>()?;
            if judged.send(out).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// One staged row, judged: its records looked up, then scored and decided.
    pub(super) fn judge(&mut self, snapshot: &Snapshot, mut s: Staged) -> Result<Judged> {
        if let Err(why) = self.policy.may_submit(&s.p.source, crate::actor::os_user()) {
            return Ok(Judged::Rejected(s, why));
        }
        Ok(match self.resolve(snapshot, &mut s.p) {
            Ok(records) => {
                let verdict = self.verdict(snapshot, &s.p, &records)?;
                Judged::Decided(s, verdict)
            }
            Err(msg) => Judged::Rejected(s, msg),
        })
    }

    /// The checks that need the store: the records exist, a foreign-key value names a real
    /// parent. Fills in the value the record holds now (the baseline staleness is judged against
    /// later) and returns the records involved as they are now (for a merge, both, whole; for a
    /// field write, the columns the decision reads, and the parents its related conditions read).
    fn resolve(&mut self, w: &Snapshot, p: &mut NewProposal) -> Result<Records, String> {
        let obj = w
            .schema()
            .object(&p.object)
            .expect("staged objects were checked");
        let missing = |id: &str| format!("record {}/{} does not exist", obj.name, short(id));
        if let Some(into) = &p.merge_into {
            let row = |id: &str| -> Result<Vec<Value>, String> {
                w.record_row(obj, id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| missing(id))
            };
            let dup = row(&p.record)?;
            let survivor = row(into)?;
            p.baseline_fp = Some(crate::model::merge_fingerprint(&dup, &survivor));
            return Ok(Records {
                rows: vec![dup, survivor],
                related: None,
            });
        }
        if p.kind == Kind::Create {
            return resolve_create(w, obj, p).map(|rows| Records {
                rows,
                related: None,
            });
        }
        let field = p.field.as_deref().expect("a field write names its field");
        let at = obj
            .columns
            .iter()
            .position(|c| c.name == field)
            .expect("staged fields were checked");
        let plan = self.field_plan(w, obj, at);
        let read = w
            .read_columns(plan, &p.record)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| missing(&p.record))?;
        let related = related_of(plan, &read);
        let record = read.values;
        p.baseline = record[at].clone();
        if let Some(parent) = w
            .missing_parent(&obj.columns[at], &p.value)
            .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "{field}: \"{}\" does not exist in {}",
                short(&p.value.display()),
                parent.name
            ));
        }
        Ok(Records {
            rows: vec![record],
            related: Some(related),
        })
    }

    /// The columns a write of `obj.columns[at]` needs read: the field, the columns the policy's
    /// record conditions test, and for an email the foreign keys that lead to a company domain;
    /// with the parents the policy's related conditions read.
    fn field_plan(&mut self, w: &Snapshot, obj: &Object, at: usize) -> &ColumnPlan {
        let found = self
            .plans
            .iter()
            .position(|(o, f, _)| *o == obj.name && *f == at);
        let i = match found {
            Some(i) => i,
            None => {
                let mut cols = vec![at];
                for (i, c) in obj.columns.iter().enumerate() {
                    let wanted = self.columns.contains(&c.name)
                        || crate::related::wanted(self.policy, obj, i)
                        || (FieldType::of(&obj.columns[at]) == FieldType::Email
                            && c.foreign_key.is_some());
                    if wanted && !cols.contains(&i) {
                        cols.push(i);
                    }
                }
                let parents: Vec<_> = crate::related::parent_reads(self.policy, w.schema(), obj)
                    .into_iter()
                    .map(|r| (r.fk, r.parent, r.cols))
                    .collect();
                let plan = ColumnPlan::with_parents(obj, &cols, &parents);
                self.plans.push((obj.name.clone(), at, plan));
                self.plans.len() - 1
            }
        };
        &self.plans[i].2
    }

    /// The domain of the company a record belongs to: the `domain` of the parent its foreign
    /// key points at, for the email consistency signal.
    fn company_domain(
        &mut self,
        w: &Snapshot,
        obj: &Object,
        row: &[Value],
    ) -> Result<Option<String>> {
        for (i, c) in obj.columns.iter().enumerate() {
            let Some(fk) = &c.foreign_key else { continue };
            if row[i].is_empty() {
                continue;
            }
            let Some(parent) = w.schema().object(&fk.table) else {
                continue;
            };
            let Some(at) = parent.columns.iter().position(|x| x.name == "domain") else {
                continue;
            };
            let found = self
                .domain_plans
                .iter()
                .position(|(o, _)| *o == parent.name);
            let plan = match found {
                Some(j) => &self.domain_plans[j].1,
                None => {
                    let plan = ColumnPlan::new(parent, &[at]);
                    self.domain_plans.push((parent.name.clone(), plan));
                    &self.domain_plans[self.domain_plans.len() - 1].1
                }
            };
            if let Some(prow) = w.read_columns(plan, &row[i].display())?
                && let Value::Text(d) = &prow.values[at]
            {
                return Ok(Some(d.clone()));
            }
        }
        Ok(None)
    }

    fn verdict(&mut self, w: &Snapshot, p: &NewProposal, records: &Records) -> Result<Verdict> {
        let obj = w.schema().object(&p.object).expect("checked object");
        let score = self.score(w, obj, p, &records.rows)?;
        let decision = self.decide(w, obj, p, records, &score)?;
        if decision.action == Action::Auto {
            *self.auto_in_run.entry(p.source.clone()).or_default() += 1;
            *self.auto_today.entry(p.source.clone()).or_default() += 1;
        }
        Ok(Verdict {
            state: match decision.action {
                Action::Auto => State::Approved,
                Action::Suggest => State::Suggested,
                Action::Review => State::Pending,
                Action::Block => State::Blocked,
            },
            action: decision.action,
            confidence: score.value,
            signals: serde_json::to_string(&score.signals).expect("signals serialize"),
            decision: serde_json::to_string(&decision).expect("decisions serialize"),
            policy_version: self.version,
        })
    }

    /// crmgate's own confidence in `p`, and the signals behind it.
    fn score(
        &mut self,
        w: &Snapshot,
        obj: &Object,
        p: &NewProposal,
        rows: &[Vec<Value>],
    ) -> Result<Score> {
        let track = self.track_record(w, p)?;
        if p.kind == Kind::Create {
            return Ok(score::score_create(p.stated_confidence, track));
        }
        let Some(field) = &p.field else {
            let mut asked = tallies::Asked {
                snapshot: w,
                obj,
                tally: self.tallies.entry(obj.name.clone()).or_default(),
                error: None,
            };
            let similarity =
                crate::similarity::similarity_in(&obj.columns, &rows[0], &rows[1], &mut asked);
            asked.finish()?;
            return Ok(score::score_merge(p.stated_confidence, track, &similarity));
        };
        let field_type = FieldType::of(obj.column(field).expect("checked field"));
        let company_domain = if field_type == FieldType::Email {
            self.company_domain(w, obj, &rows[0])?
        } else {
            None
        };
        Ok(score::score_field(&FieldFacts {
            stated: p.stated_confidence,
            field_type,
            value: &p.value,
            current: &p.baseline,
            company_domain: company_domain.as_deref(),
            track,
        }))
    }

    /// The source's track record for proposals like `p`, read once per run.
    fn track_record(&mut self, w: &Snapshot, p: &NewProposal) -> Result<TrackRecord> {
        let key = (p.source.clone(), p.kind, p.field.clone());
        if let Some(t) = self.tracks.get(&key) {
            return Ok(*t);
        }
        let (approved, rejected) =
            w.track_record(&p.source, p.kind.as_str(), p.field.as_deref())?;
        let t = TrackRecord { approved, rejected };
        self.tracks.insert(key, t);
        Ok(t)
    }

    /// The policy's decision on `p`, given its score, the records it involves and the limits
    /// and pauses in force.
    fn decide(
        &mut self,
        w: &Snapshot,
        obj: &Object,
        p: &NewProposal,
        read: &Records,
        score: &Score,
    ) -> Result<Decision> {
        let rows = &read.rows;
        let situation = self.situation(w, &p.source)?;
        // Each record as the columns the policy's conditions read.
        let records: Vec<Vec<(&str, &Value)>> = rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .filter_map(|c| {
                        let i = obj.columns.iter().position(|x| &x.name == c)?;
                        Some((c.as_str(), &row[i]))
                    })
                    .collect()
            })
            .collect();
        let record_refs: Vec<&[(&str, &Value)]> = records.iter().map(Vec::as_slice).collect();
        let row_refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
        let looked_up;
        let related = match &read.related {
            Some(r) => r,
            None => {
                looked_up =
                    crate::related::related(self.policy, w.schema(), obj, &row_refs, |o, k| {
                        w.record_row(o, k)
                    })?;
                &looked_up
            }
        };
        Ok(policy::decide(
            self.policy,
            &Facts {
                kind: p.kind,
                source: &p.source,
                object: &p.object,
                field: p.field.as_deref(),
                value: &p.value,
                current: &p.baseline,
                trigger: p.trigger.as_deref(),
                confidence: score.value,
                records: &record_refs,
                related,
            },
            &situation,
        ))
    }

    /// The pauses and auto-decision counts that bear on a proposal from `source`.
    fn situation(&mut self, w: &Snapshot, source: &str) -> Result<Situation> {
        if !self.auto_today.contains_key(source) {
            let n = w.auto_decisions_since(source, &self.day_start)?;
            self.auto_today.insert(source.to_string(), n);
        }
        Ok(Situation {
            store_paused: self.pauses.iter().any(|p| p.source.is_none()),
            source_paused: self
                .pauses
                .iter()
                .any(|x| x.source.as_deref() == Some(source)),
            auto_in_run: self.auto_in_run.get(source).copied().unwrap_or(0),
            auto_today: self.auto_today[source],
        })
    }
}

/// The related records of a record a plan read with its parents (see
/// [`crate::related::parent_reads`]): a parent whose key the record leaves empty, or that does
/// not exist, is none.
fn related_of(plan: &ColumnPlan, row: &PlanRow) -> Vec<Related> {
    plan.parents
        .iter()
        .zip(&row.parents)
        .filter(|(p, _)| !row.values[p.fk].is_empty())
        .filter_map(|(p, found)| {
            Some(Related {
                object: p.object.clone(),
                fields: p.names.iter().cloned().zip(found.clone()?).collect(),
            })
        })
        .collect()
}

/// The records a proposal involves, as [`Judge::resolve`] read them: the rows, and the related
/// records when they were read with the rows (a field write's plan reads them in one statement).
struct Records {
    rows: Vec<Vec<Value>>,
    related: Option<Vec<Related>>,
}

/// A create's checks that need the store: its id is free, its foreign keys name records that
/// exist. Returns the new record as a row, for the policy's record conditions.
fn resolve_create(w: &Snapshot, obj: &Object, p: &NewProposal) -> Result<Vec<Vec<Value>>, String> {
    let fields: serde_json::Value = match &p.value {
        Value::Text(json) => serde_json::from_str(json).map_err(|e| e.to_string())?,
        _ => return Err("a create's value is not an object of fields".into()),
    };
    let (cols, values) = crate::apply::create_fields(obj, &fields)?;
    if w.record_row(obj, &p.record)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Err(format!(
            "record {}/{} already exists: a create needs an id no record has",
            obj.name,
            short(&p.record)
        ));
    }
    let dangling =
        crate::validate::dangling(obj, &cols, &values, &mut |c, v| w.missing_parent(c, v))
            .map_err(|e| e.to_string())?;
    if !dangling.is_empty() {
        return Err(dangling.join("; "));
    }
    Ok(vec![crate::apply::row_of(obj, &cols, &values)])
}

/// A staged row, judged: rejected with why, or scored and decided.
pub(super) enum Judged {
    Rejected(Staged, String),
    Decided(Staged, Verdict),
}

/// Rows per message between the thread that reads and queues and the one that judges.
pub(super) const JUDGE_BATCH: usize = 1024;
