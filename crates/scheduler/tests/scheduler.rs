//! Scheduler behaviour with a manual clock and the real file state store: each occurrence runs
//! once across nodes, a missed run is caught up once, a fresh install does not fire at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use quietbox_core::ports::ManualClock;
use quietbox_scheduler::{Job, Schedule, Scheduler, TickOutcome};
use quietbox_state::FileStore;

struct Counting {
    runs: Arc<AtomicUsize>,
    fail: bool,
}

#[async_trait]
impl Job for Counting {
    fn name(&self) -> &str {
        "digest"
    }

    async fn run(&self, _occurrence: DateTime<Utc>) -> Result<String, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            Err("provider down".into())
        } else {
            Ok("sent 3 links".into())
        }
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn node(
    store: &Arc<FileStore>,
    clock: &ManualClock,
    id: &str,
    runs: &Arc<AtomicUsize>,
) -> Scheduler {
    Scheduler::new(store.clone(), Arc::new(clock.clone()), id).with_job(
        Schedule::parse("0 8 * * MON", "Europe/Paris").unwrap(),
        Arc::new(Counting {
            runs: runs.clone(),
            fail: false,
        }),
    )
}

#[tokio::test]
async fn each_occurrence_runs_once_across_nodes_and_never_at_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    // Wednesday 2026-11-18, 12:00 UTC: the last Monday 08:00 Paris is before first start.
    let clock = ManualClock::new(at(2026, 11, 18, 12, 0));
    let runs = Arc::new(AtomicUsize::new(0));
    let a = node(&store, &clock, "node-a", &runs);
    let b = node(&store, &clock, "node-b", &runs);
    assert_eq!(a.tick().await.unwrap(), vec![TickOutcome::NothingDue]);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "a fresh install does not fire at once"
    );

    // Monday 2026-11-23 08:00 Paris = 07:00 UTC. Both nodes wake.
    clock.set(at(2026, 11, 23, 7, 0));
    let first = a.tick().await.unwrap();
    let second = b.tick().await.unwrap();
    assert!(
        matches!(first[0], TickOutcome::Ran { ok: true, .. }),
        "{first:?}"
    );
    assert!(
        matches!(second[0], TickOutcome::AlreadyRun(_)),
        "{second:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Ticking again within the hour changes nothing.
    clock.set(at(2026, 11, 23, 7, 30));
    a.tick().await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_node_down_for_weeks_catches_up_only_the_latest_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let clock = ManualClock::new(at(2026, 11, 1, 12, 0));
    let runs = Arc::new(AtomicUsize::new(0));
    node(&store, &clock, "node-a", &runs).tick().await.unwrap();
    // Down for three Mondays; back on Wednesday.
    clock.set(at(2026, 11, 25, 9, 0));
    let restarted = node(&store, &clock, "node-a2", &runs);
    let outcome = restarted.tick().await.unwrap();
    assert_eq!(
        outcome,
        vec![TickOutcome::Ran {
            occurrence: at(2026, 11, 23, 7, 0),
            ok: true
        }]
    );
    restarted.tick().await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one catch-up, not one per missed Monday"
    );
}

#[tokio::test]
async fn schedules_follow_the_time_zone_across_dst() {
    let schedule = Schedule::parse("0 8 * * *", "Europe/Paris").unwrap();
    // Paris leaves summer time on 2026-10-25: 08:00 local is 06:00 UTC the day before, 07:00 UTC after.
    assert_eq!(
        schedule.next_after(at(2026, 10, 24, 0, 0)),
        Some(at(2026, 10, 24, 6, 0))
    );
    assert_eq!(
        schedule.next_after(at(2026, 10, 25, 0, 0)),
        Some(at(2026, 10, 25, 7, 0))
    );
    assert!(Schedule::parse("61 * * * *", "UTC").is_err());
    assert!(Schedule::parse("0 8 * * MON", "Mars/Olympus").is_err());
}

#[tokio::test]
async fn a_failed_run_is_reported_and_not_retried_within_the_same_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let clock = ManualClock::new(at(2026, 11, 22, 12, 0));
    let runs = Arc::new(AtomicUsize::new(0));
    let scheduler = Scheduler::new(store.clone(), Arc::new(clock.clone()), "n").with_job(
        Schedule::parse("0 8 * * MON", "UTC").unwrap(),
        Arc::new(Counting {
            runs: runs.clone(),
            fail: true,
        }),
    );
    scheduler.tick().await.unwrap();
    clock.set(at(2026, 11, 23, 8, 0));
    assert_eq!(
        scheduler.tick().await.unwrap(),
        vec![TickOutcome::Ran {
            occurrence: at(2026, 11, 23, 8, 0),
            ok: false
        }]
    );
    scheduler.tick().await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn a_per_second_schedule_names_the_same_occurrence_whatever_the_fraction() {
    let schedule = Schedule::parse("* * * * * *", "UTC").unwrap();
    let base = at(2026, 11, 24, 10, 0);
    let a = schedule.latest_at_or_before(base + chrono::Duration::milliseconds(120));
    let b = schedule.latest_at_or_before(base + chrono::Duration::milliseconds(870));
    assert_eq!(a, Some(base));
    assert_eq!(a, b);
    assert_eq!(
        schedule.next_after(base + chrono::Duration::milliseconds(500)),
        Some(base + chrono::Duration::seconds(1))
    );
}
