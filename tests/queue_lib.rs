//! The queue and human decisions through the library, without a process: approve and reject
//! with roles, the event each appends and the state each leaves; policy replay's summary; pause
//! and resume. Every test builds its own demo store (alice: ops and admin; bob: sdr; mia:
//! manager) and reads the outcome back from the store.

use crmgate::admin::pauses::{self, Toggled};
use crmgate::admin::policy::{self as admin_policy, Installed, Move};
use crmgate::admin::setup::{self, Purpose};
use crmgate::audit::EventRow;
use crmgate::error::Error;
use crmgate::human::{self, Batch, Refusal, Ruling, Selection, Targets, Verb};
use crmgate::model::{Action, State};
use crmgate::queue;
use crmgate::store::{EventFilter, ListFilter, Store};

mod common;

use common::Env;

const NOW: &str = "2026-11-21T09:00:00.000Z";
const LATER: &str = "2026-11-21T10:00:00.000Z";

/// A demo store in its own directory: the bundled records, policy and 35 proposals.
fn demo() -> (Env, Store) {
    let env = Env::new();
    let mut store = setup::init(&env.db(), Purpose::Demo, "alice", NOW)
        .unwrap()
        .store;
    setup::load_demo(&mut store, "alice", NOW).unwrap();
    (env, store)
}

fn state_of(store: &Store, address: &str) -> String {
    queue::find(store, address).unwrap().state.to_string()
}

/// The events about proposal `address`, oldest first.
fn events_of(store: &Store, address: &str) -> Vec<EventRow> {
    let id = queue::find(store, address).unwrap().id;
    store.events_for_proposal(id).unwrap()
}

fn ids(list: &[&str]) -> Targets {
    Targets::Ids(list.iter().map(|s| s.to_string()).collect())
}

fn approve() -> Verb {
    Verb::Approve {
        note: Some("checked".into()),
    }
}

fn pending_of(store: &Store, source: &str) -> Vec<i64> {
    let filter = ListFilter {
        source: Some(source.into()),
        ..ListFilter::default()
    };
    store.proposal_ids(&filter, &[State::Pending]).unwrap()
}

#[test]
fn an_approval_by_an_approver_leaves_the_proposal_approved_with_an_approve_event() {
    let (_dir, mut store) = demo();
    // Proposal 14 is an owner change: the policy wants ops or a manager.
    let batch = human::decide_batch(&mut store, &ids(&["14"]), &approve(), "alice", LATER).unwrap();
    assert_eq!((batch.done, batch.refused.len()), (1, 0));
    assert_eq!(state_of(&store, "14"), "approved");
    let last = events_of(&store, "14").pop().unwrap();
    assert_eq!(
        (
            last.action.as_str(),
            last.actor.as_str(),
            last.approver.as_deref()
        ),
        ("approve", "alice", Some("alice"))
    );
    assert_eq!(last.at, LATER);
    assert!(last.detail.unwrap().contains("\"note\":\"checked\""));
}

#[test]
fn an_actor_without_the_approver_role_is_refused_and_the_proposal_stays_pending() {
    let (_dir, mut store) = demo();
    let before = events_of(&store, "14").len();
    let batch = human::decide_batch(&mut store, &ids(&["14"]), &approve(), "bob", LATER).unwrap();
    assert_eq!(batch.done, 0);
    assert_eq!(
        batch.refused,
        vec![Refusal {
            id: "14".into(),
            error: "bob may not approve it: that takes the role ops or manager".into(),
        }]
    );
    assert_eq!(state_of(&store, "14"), "pending");
    assert_eq!(events_of(&store, "14").len(), before);
}

#[test]
fn a_rejection_needs_a_reason_and_records_it_in_its_event() {
    assert!(matches!(
        Verb::reject("  ".into()),
        Err(Error::Refused { .. })
    ));
    let (_dir, mut store) = demo();
    let verb = Verb::reject("wrong person".into()).unwrap();
    let batch =
        human::decide_batch(&mut store, &ids(&["apollo:ap-1"]), &verb, "mia", LATER).unwrap();
    assert_eq!(batch.done, 1);
    assert_eq!(state_of(&store, "apollo:ap-1"), "rejected");
    let last = events_of(&store, "apollo:ap-1").pop().unwrap();
    assert_eq!((last.action.as_str(), last.approver), ("reject", None));
    assert!(last.detail.unwrap().contains("\"reason\":\"wrong person\""));
}

#[test]
fn unknown_and_already_decided_ids_are_refused_one_by_one_while_the_rest_are_decided() {
    let (_dir, mut store) = demo();
    let targets = ids(&["24", "nosuch:x", "24"]);
    let batch = human::decide_batch(&mut store, &targets, &approve(), "alice", LATER).unwrap();
    assert_eq!(batch.done, 1);
    let errors: Vec<&str> = batch.refused.iter().map(|r| r.error.as_str()).collect();
    assert_eq!(errors, ["no such proposal", "already approved"]);
    assert_eq!(state_of(&store, "24"), "approved");
}

#[test]
fn ids_and_a_filter_together_or_neither_are_refused_before_anything_is_read() {
    let both = Targets::new(&approve(), vec!["1".into()], Some(Selection::default()));
    let neither = Targets::new(&approve(), Vec::new(), None);
    for refused in [both, neither] {
        let e = refused.unwrap_err();
        assert!(e.to_string().contains("one of the two"), "{e}");
    }
}

#[test]
fn a_filter_without_confirmation_counts_its_matches_and_decides_nothing() {
    let (_dir, mut store) = demo();
    let selection = Selection {
        narrow: ListFilter {
            source: Some("dedupe-bot".into()),
            ..ListFilter::default()
        },
        ..Selection::default()
    };
    let verb = Verb::reject("not duplicates".into()).unwrap();
    let unconfirmed = Targets::Matching(selection.clone());
    let e = human::decide_batch(&mut store, &unconfirmed, &verb, "alice", LATER).unwrap_err();
    assert_eq!(
        e.to_string(),
        "6 pending proposals match; nothing was rejected"
    );
    assert_eq!(pending_of(&store, "dedupe-bot").len(), 6);

    let confirmed = Targets::Matching(Selection {
        confirmed: true,
        ..selection
    });
    let batch = human::decide_batch(&mut store, &confirmed, &verb, "alice", LATER).unwrap();
    assert_eq!((batch.done, batch.refused.len()), (6, 0));
    assert!(pending_of(&store, "dedupe-bot").is_empty());
    let rejects = store
        .events(&EventFilter {
            source: Some("dedupe-bot".into()),
            ..EventFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "reject")
        .count();
    assert_eq!(rejects, 6);
}

#[test]
fn a_filter_on_confidence_and_rule_decides_only_what_matches_both() {
    let (_dir, mut store) = demo();
    let selection = Selection {
        rule: Some("owner-needs-human".into()),
        max_confidence: Some(0.6),
        confirmed: true,
        ..Selection::default()
    };
    let targets = Targets::Matching(selection);
    let batch = human::decide_batch(&mut store, &targets, &approve(), "alice", LATER).unwrap();
    // Of the owner changes waiting, only proposal 14 (0.50) is at most 0.6.
    assert_eq!(batch.done, 1);
    assert_eq!(state_of(&store, "14"), "approved");
    assert_eq!(state_of(&store, "7"), "pending");
}

#[test]
fn an_undo_by_the_decider_puts_the_proposal_back_and_anyone_else_is_refused() {
    let (_dir, mut store) = demo();
    human::decide_batch(&mut store, &ids(&["24"]), &approve(), "alice", LATER).unwrap();
    let by_mia = store.write(LATER, |w| human::undo(w, "mia", 24)).unwrap();
    assert!(matches!(by_mia, Ruling::Refused(ref why) if why.contains("alice's")));
    let by_alice = store.write(LATER, |w| human::undo(w, "alice", 24)).unwrap();
    assert!(matches!(by_alice, Ruling::Done(_)));
    assert_eq!(state_of(&store, "24"), "pending");
    assert_eq!(events_of(&store, "24").pop().unwrap().action, "undo");
}

/// Proposals by state, as `status` counts them.
fn states(store: &Store) -> Vec<(String, i64)> {
    let status = queue::status(store).unwrap();
    status
        .by_state
        .into_iter()
        .map(|c| (c.key, c.count))
        .collect()
}

/// The demo policy, with clearbit no longer trusted on its own.
fn stricter() -> String {
    let text = std::str::from_utf8(crmgate::fixtures::DEMO_POLICY.data).unwrap();
    text.replace(
        "[sources.clearbit]\nautonomy = \"autonomous\"",
        "[sources.clearbit]\nautonomy = \"supervised\"",
    )
}

#[test]
fn a_replay_through_a_stricter_policy_counts_each_move_and_changes_nothing() {
    let (_dir, store) = demo();
    let before = states(&store);
    let candidate = admin_policy::parse("stricter.toml", &stricter(), store.schema()).unwrap();
    let r = admin_policy::replay(&store, &candidate, 1).unwrap();
    assert!(r.changed > 0, "{r:?}");
    assert_eq!(r.moves.iter().map(|m| m.count).sum::<u64>(), r.changed);
    assert!(
        r.moves.iter().all(|m| *m
            == Move {
                from: Some(Action::Auto),
                to: Action::Review,
                count: m.count
            }),
        "{:?}",
        r.moves
    );
    assert_eq!(r.changes.len(), 1, "the limit keeps the first in full");
    assert!(r.changes[0].proposal.starts_with("clearbit:"));
    assert_eq!(states(&store), before);
}

#[test]
fn a_replay_through_the_policy_in_force_changes_no_decision() {
    let (_dir, store) = demo();
    let (_, in_force) = admin_policy::load(&store).unwrap();
    let r = admin_policy::replay(&store, &in_force, 50).unwrap();
    assert!(r.replayed > 0);
    assert_eq!((r.changed, r.moves.len(), r.changes.len()), (0, 0, 0));
}

#[test]
fn a_policy_is_installed_once_by_an_admin_only() {
    let (_dir, mut store) = demo();
    let text = stricter();
    let by_bob = admin_policy::set(&mut store, "p.toml", &text, "bob", LATER).unwrap_err();
    assert!(by_bob.to_string().contains("takes the admin role"));
    let first = admin_policy::set(&mut store, "p.toml", &text, "alice", LATER).unwrap();
    assert_eq!(first, Installed::New(2));
    let again = admin_policy::set(&mut store, "p.toml", &text, "alice", LATER).unwrap();
    assert_eq!(again, Installed::AlreadyInForce(2));
    let events = store.events(&EventFilter::default()).unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "policy").count(), 2);
}

fn pause_events(store: &Store) -> Vec<EventRow> {
    let events = store.events(&EventFilter::default()).unwrap();
    events
        .into_iter()
        .filter(|e| e.action == "pause" || e.action == "resume")
        .collect()
}

#[test]
fn a_pause_takes_the_admin_role_and_appends_one_event_however_often_it_is_asked() {
    let (_dir, mut store) = demo();
    let by_bob = pauses::pause(&mut store, Some("apollo"), "bad batch", "bob", LATER);
    assert!(
        by_bob
            .unwrap_err()
            .to_string()
            .contains("bob may not pause")
    );
    assert!(store.pauses().unwrap().is_empty());

    let first = pauses::pause(&mut store, Some("apollo"), "bad batch", "alice", LATER).unwrap();
    let second = pauses::pause(&mut store, Some("apollo"), "bad batch", "alice", LATER).unwrap();
    assert_eq!((first, second), (Toggled::Changed, Toggled::AlreadySo));
    let paused = store.pauses().unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(
        (paused[0].source.as_deref(), paused[0].reason.as_str()),
        (Some("apollo"), "bad batch")
    );
    let events = pause_events(&store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].source.as_deref(), Some("apollo"));
}

#[test]
fn a_pause_needs_a_reason() {
    let (_dir, mut store) = demo();
    let e = pauses::pause(&mut store, None, " ", "alice", LATER).unwrap_err();
    assert_eq!(e.to_string(), "a pause needs a --reason");
    assert!(store.pauses().unwrap().is_empty());
}

#[test]
fn a_resume_lifts_the_pause_with_a_resume_event_and_a_second_changes_nothing() {
    let (_dir, mut store) = demo();
    pauses::pause(&mut store, None, "migration tonight", "alice", LATER).unwrap();
    let first = pauses::resume(&mut store, None, "alice", LATER).unwrap();
    let second = pauses::resume(&mut store, None, "alice", LATER).unwrap();
    assert_eq!((first, second), (Toggled::Changed, Toggled::AlreadySo));
    assert!(store.pauses().unwrap().is_empty());
    let actions: Vec<String> = pause_events(&store).into_iter().map(|e| e.action).collect();
    // Newest first.
    assert_eq!(actions, ["resume", "pause"]);
}

#[test]
fn a_source_humans_keep_rejecting_is_paused_by_the_circuit_breaker_in_the_same_batch() {
    let (_dir, mut store) = demo();
    // A window of 5: two rejections are more than 30% of it.
    let text = std::str::from_utf8(crmgate::fixtures::DEMO_POLICY.data).unwrap();
    let small = text.replace("window = 50 ", "window = 5  ");
    assert_ne!(small, text);
    admin_policy::set(&mut store, "small.toml", &small, "alice", LATER).unwrap();
    // Two of clearbit's pending updates that any reviewer may decide.
    let two = vec!["9".to_string(), "12".to_string()];
    let verb = Verb::reject("wrong".into()).unwrap();
    let Batch {
        done,
        paused,
        refused,
    } = human::decide_batch(&mut store, &Targets::Ids(two), &verb, "alice", LATER).unwrap();
    assert_eq!(done, 2, "{refused:?}");
    assert_eq!(paused.len(), 1);
    assert!(
        paused[0].starts_with("clearbit: circuit breaker: 2 of the last 2"),
        "{paused:?}"
    );
    let pause = &store.pauses().unwrap()[0];
    assert_eq!(
        (pause.source.as_deref(), pause.actor.as_str()),
        (Some("clearbit"), "crmgate")
    );
    let event = pause_events(&store).remove(0);
    assert_eq!(
        (event.actor.as_str(), event.actor_kind.as_str()),
        ("crmgate", "system")
    );
}
