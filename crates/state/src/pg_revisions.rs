//! Revisions on PostgreSQL: what makes [`crate::PgStore`] answer
//! [`StateStore::revision`](quietbox_core::store::StateStore::revision) from memory, so that
//! core's ranking cache (and the REST body cache built on it) works as on files.
//!
//! Migration `0003_revisions.sql` keeps one row per [`StatePart`] in `state_revisions`. A
//! statement-level trigger on each of the three tables bumps its part's revision in the
//! writing transaction and sends `NOTIFY quietbox_state, '<schema> <part> <revision>'`, which
//! PostgreSQL delivers to every listening session when (and only if) the transaction commits.
//! Revisions only grow, and a revision stands for the content its transaction committed.
//!
//! Each store runs two tasks:
//! - **the listener** holds one connection of the pool, `LISTEN`s, then reads every revision
//!   (so a write committed before the `LISTEN` is not missed), then raises the known revisions
//!   from each notification. While it is not connected and in step, [`Revisions::get`] asks the
//!   database (one small query per call: slower, never stale). A lost connection is noticed
//!   by the read that fails (a terminated backend, a restarted server) and re-established
//!   after 50 ms, then with a growing pause;
//! - **the safety net** reads every revision every [`CHECK_EVERY`], so that even a connection
//!   that died without a word (a silent network cut) costs at most that much staleness.
//!
//! A write, once committed, reads its part's revision back (so the next read of this replica
//! sees the write whatever the listener's pace) and waits until every listener of the schema
//! has applied it: a listener acknowledges each change it applied with a notification on
//! [`ACK_CHANNEL`] (which carries its backend's pid), and the writer knows the listeners alive
//! from `pg_stat_activity` (they set `application_name` to `quietbox-listener <schema>`). So a
//! read that starts on any replica after the write returned sees it. A listener that does not
//! acknowledge within [`ACK_WAIT`] (its connection died without a word, or its process hangs)
//! is not waited for longer: that replica is then stale until its periodic check, at most
//! [`CHECK_EVERY`] later.
//!
//! Revisions only grow. Restoring an older copy of the database under running replicas needs
//! their restart, as any restore does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use quietbox_core::store::{StateError, StatePart};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{Notify, watch};

/// The channel every quietbox store notifies on; the payload names the schema.
pub(crate) const CHANNEL: &str = "quietbox_state";

/// The channel listeners acknowledge applied changes on (same payload as [`CHANNEL`]).
pub(crate) const ACK_CHANNEL: &str = "quietbox_state_ack";

/// How often the safety net reads every revision.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Longest a write waits for the listeners' acknowledgements.
const ACK_WAIT: Duration = Duration::from_millis(250);

/// Pauses between failed attempts to (re)connect the listener.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The three parts, in the order of [`index`].
const PARTS: [StatePart; 3] = [
    StatePart::ScanCheckpoints,
    StatePart::Unsubscribes,
    StatePart::SenderDecisions,
];

/// The `state_revisions.part` name of a part.
fn name(part: StatePart) -> &'static str {
    match part {
        StatePart::ScanCheckpoints => "scan_checkpoints",
        StatePart::Unsubscribes => "unsubscribes",
        StatePart::SenderDecisions => "sender_decisions",
    }
}

fn index(part: StatePart) -> usize {
    match part {
        StatePart::ScanCheckpoints => 0,
        StatePart::Unsubscribes => 1,
        StatePart::SenderDecisions => 2,
    }
}

fn part_named(name_: &str) -> Option<StatePart> {
    PARTS.into_iter().find(|p| name(*p) == name_)
}

fn db(error: sqlx::Error) -> StateError {
    StateError::Backend(error.to_string())
}

/// What one store knows of the revisions, shared by its clones and its two tasks.
#[derive(Debug)]
pub(crate) struct Revisions {
    /// The schema whose notifications are ours.
    schema: String,
    /// The highest revision of each part known to this store (from any source).
    known: [AtomicU64; 3],
    /// Per listener (backend pid) of the schema, the highest revision of each part it has
    /// acknowledged.
    acks: Mutex<HashMap<i32, [u64; 3]>>,
    /// Whether the listener is connected and in step: only then is `known` answered as is.
    live: AtomicBool,
    /// Woken whenever an acknowledgement arrives or the listener is lost.
    moved: Notify,
    /// The listening connection's backend process id (0 while there is none).
    listener_pid: AtomicI32,
}

impl Revisions {
    pub(crate) fn new(schema: String) -> Self {
        Revisions {
            schema,
            known: Default::default(),
            acks: Mutex::default(),
            live: AtomicBool::new(false),
            moved: Notify::new(),
            listener_pid: AtomicI32::new(0),
        }
    }

    /// The listening connection's backend process id, while it is connected and in step.
    pub(crate) fn listener_pid(&self) -> Option<i32> {
        let pid = self.listener_pid.load(Ordering::Acquire);
        (pid != 0 && self.live.load(Ordering::Acquire)).then_some(pid)
    }

    /// Raises what is known of `part` to `revision`; returns the known revision.
    fn observe(&self, part: StatePart, revision: u64) -> u64 {
        let previous = self.known[index(part)].fetch_max(revision, Ordering::AcqRel);
        previous.max(revision)
    }

    /// The `application_name` of this schema's listening connections.
    fn application_name(&self) -> String {
        format!("quietbox-listener {}", self.schema)
    }

    fn acked(&self, pid: i32, part: StatePart) -> u64 {
        let acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        acks.get(&pid).map_or(0, |a| a[index(part)])
    }

    /// The revision of `part`: from memory while the listener is in step, else from the
    /// database.
    pub(crate) async fn get(&self, pool: &PgPool, part: StatePart) -> Result<u64, StateError> {
        if self.live.load(Ordering::Acquire) {
            return Ok(self.known[index(part)].load(Ordering::Acquire));
        }
        let revision = read_one(pool, part).await?;
        Ok(self.observe(part, revision))
    }

    /// Called after a write to `part` committed: learns its revision at once, then waits (at
    /// most [`ACK_WAIT`]) until every listener of the schema has acknowledged it.
    pub(crate) async fn wrote(&self, pool: &PgPool, part: StatePart) -> Result<(), StateError> {
        let row = sqlx::query(
            "SELECT (SELECT revision FROM state_revisions WHERE part = $1) AS revision,
                    array(SELECT pid FROM pg_stat_activity
                          WHERE application_name = $2 AND datname = current_database()) AS pids",
        )
        .bind(name(part))
        .bind(self.application_name())
        .fetch_one(pool)
        .await
        .map_err(db)?;
        let revision = u64::try_from(row.get::<i64, _>("revision")).unwrap_or(0);
        let listeners: Vec<i32> = row.get("pids");
        self.observe(part, revision);
        let all_acked = || {
            listeners
                .iter()
                .all(|pid| self.acked(*pid, part) >= revision)
        };
        let waited = tokio::time::timeout(ACK_WAIT, async {
            loop {
                let moved = self.moved.notified();
                if all_acked() {
                    return;
                }
                moved.await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::debug!(
                part = name(part),
                revision,
                "not every listener acknowledged a write in time"
            );
        }
        Ok(())
    }

    /// Parses a payload (`<schema> <part> <revision>`) of this schema.
    fn parse(&self, payload: &str) -> Option<(StatePart, u64)> {
        let mut fields = payload.rsplitn(3, ' ');
        let (revision, part, schema) = (fields.next()?, fields.next()?, fields.next()?);
        if schema != self.schema {
            return None;
        }
        Some((part_named(part)?, revision.parse().ok()?))
    }

    /// Applies one notification; returns the change to acknowledge, if it was one of ours.
    fn apply(&self, channel: &str, from: u32, payload: &str) -> Option<(StatePart, u64)> {
        let (part, revision) = self.parse(payload)?;
        if channel == ACK_CHANNEL {
            let pid = i32::try_from(from).ok()?;
            let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
            let acked = acks.entry(pid).or_default();
            acked[index(part)] = acked[index(part)].max(revision);
            drop(acks);
            self.moved.notify_waiters();
            return None;
        }
        self.observe(part, revision);
        Some((part, revision))
    }

    /// Forgets the acknowledgements of listeners that are gone (`alive` are the others).
    fn forget_listeners_but(&self, alive: &[i32]) {
        let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        acks.retain(|pid, _| alive.contains(pid));
    }
}

/// One part's revision, read from the database.
async fn read_one(pool: &PgPool, part: StatePart) -> Result<u64, StateError> {
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM state_revisions WHERE part = $1")
        .bind(name(part))
        .fetch_one(pool)
        .await
        .map_err(db)?;
    Ok(u64::try_from(revision).unwrap_or(0))
}

/// Every part's revision, read through `executor`.
async fn read_all<'e, E>(executor: E) -> Result<Vec<(StatePart, u64)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let rows = sqlx::query("SELECT part, revision FROM state_revisions")
        .fetch_all(executor)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let part = part_named(row.get::<&str, _>("part"))?;
            Some((
                part,
                u64::try_from(row.get::<i64, _>("revision")).unwrap_or(0),
            ))
        })
        .collect())
}

/// Stops the store's tasks when the last clone of the store is dropped.
#[derive(Debug)]
pub(crate) struct Tasks {
    _stop: watch::Sender<()>,
}

/// Starts the listener and the safety net of `revisions` over `pool`.
pub(crate) fn start(pool: PgPool, revisions: Arc<Revisions>) -> Tasks {
    let (stop, stopped) = watch::channel(());
    tokio::spawn(listen(
        pool.clone(),
        Arc::clone(&revisions),
        stopped.clone(),
    ));
    tokio::spawn(check(pool, revisions, stopped));
    Tasks { _stop: stop }
}

/// Resolves when the store is gone.
async fn gone(stopped: &mut watch::Receiver<()>) {
    while stopped.changed().await.is_ok() {}
}

/// The listener task: connect, `LISTEN`, get in step, follow; again after every loss.
async fn listen(pool: PgPool, revisions: Arc<Revisions>, mut stopped: watch::Receiver<()>) {
    let mut pause = Duration::ZERO;
    loop {
        let connected = tokio::select! {
            () = gone(&mut stopped) => return,
            connected = in_step(&pool, &revisions) => connected,
        };
        match connected {
            Ok(mut listener) => {
                let lost = tokio::select! {
                    () = gone(&mut stopped) => return,
                    lost = follow(&mut listener, &revisions) => lost,
                };
                revisions.live.store(false, Ordering::Release);
                revisions.listener_pid.store(0, Ordering::Release);
                revisions.moved.notify_waiters();
                // A server that is restarting is given a moment; reads meanwhile ask it.
                pause = RETRY_FIRST;
                tracing::warn!(
                    error = %lost,
                    "state change notifications lost; reads ask PostgreSQL until they are back"
                );
            }
            Err(error) => {
                pause = (pause * 2).clamp(RETRY_FIRST, RETRY_MAX);
                tracing::warn!(%error, retry_in = ?pause, "cannot listen for state changes");
            }
        }
        tokio::select! {
            () = gone(&mut stopped) => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// A listening connection whose revisions are read after its `LISTEN`, marked live.
async fn in_step(pool: &PgPool, revisions: &Revisions) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is this task's job: it must read the revisions after every new LISTEN.
    listener.eager_reconnect(false);
    // Writers find the listeners of the schema by this name (in `pg_stat_activity`).
    sqlx::query("SELECT set_config('application_name', $1, false)")
        .bind(revisions.application_name())
        .execute(&mut listener)
        .await?;
    match get_in_step(&mut listener, revisions).await {
        Ok(()) => Ok(listener),
        Err(error) => {
            revisions.live.store(false, Ordering::Release);
            revisions.listener_pid.store(0, Ordering::Release);
            // The connection goes back to the pool: it must not pass for a listener there.
            let _ = sqlx::query("RESET application_name")
                .execute(&mut listener)
                .await;
            Err(error)
        }
    }
}

/// `LISTEN`, read the revisions, apply what arrived meanwhile, go live, acknowledge.
async fn get_in_step(listener: &mut PgListener, revisions: &Revisions) -> Result<(), sqlx::Error> {
    listener.listen_all([CHANNEL, ACK_CHANNEL]).await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *listener)
        .await?;
    for (part, revision) in read_all(&mut *listener).await? {
        revisions.observe(part, revision);
    }
    // Notifications that arrived while reading are applied before going live.
    while let Some(n) = listener.next_buffered() {
        revisions.apply(n.channel(), n.process_id(), n.payload());
    }
    revisions.listener_pid.store(pid, Ordering::Release);
    revisions.live.store(true, Ordering::Release);
    // Everything up to now is applied: say so, for writers that were waiting on this replica.
    for part in PARTS {
        let known = revisions.known[index(part)].load(Ordering::Acquire);
        acknowledge(listener, revisions, part, known).await?;
    }
    Ok(())
}

/// Tells the writers that this replica has applied `part` up to `revision`.
async fn acknowledge(
    listener: &mut PgListener,
    revisions: &Revisions,
    part: StatePart,
    revision: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ACK_CHANNEL)
        .bind(format!("{} {} {revision}", revisions.schema, name(part)))
        .execute(listener)
        .await?;
    Ok(())
}

/// Applies (and acknowledges) notifications until the connection is lost; returns why.
async fn follow(listener: &mut PgListener, revisions: &Revisions) -> String {
    loop {
        let change = match listener.try_recv().await {
            Ok(Some(n)) => revisions.apply(n.channel(), n.process_id(), n.payload()),
            Ok(None) => return "connection closed".to_owned(),
            Err(error) => return error.to_string(),
        };
        if let Some((part, revision)) = change
            && let Err(error) = acknowledge(listener, revisions, part, revision).await
        {
            return error.to_string();
        }
    }
}

/// The safety net: every [`CHECK_EVERY`], every revision read through the pool (and the
/// acknowledgements of listeners that are gone forgotten).
async fn check(pool: PgPool, revisions: Arc<Revisions>, mut stopped: watch::Receiver<()>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = gone(&mut stopped) => return,
            _ = every.tick() => {}
        }
        match read_all(&pool).await {
            Ok(all) => {
                for (part, revision) in all {
                    let known = revisions.observe(part, revision);
                    if known == revision && revisions.live.load(Ordering::Acquire) {
                        tracing::trace!(part = name(part), revision, "periodic revision check");
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "periodic revision check failed"),
        }
        let alive: Result<Vec<i32>, _> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        )
        .bind(revisions.application_name())
        .fetch_all(&pool)
        .await;
        if let Ok(alive) = alive {
            revisions.forget_listeners_but(&alive);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_of_other_schemas_and_garbage_are_ignored() {
        let revisions = Revisions::new("ours".into());
        for payload in [
            "theirs sender_decisions 9",
            "ours nothing 9",
            "ours sender_decisions x",
            "",
        ] {
            assert_eq!(revisions.apply(CHANNEL, 1, payload), None, "{payload:?}");
        }
        assert_eq!(revisions.known[2].load(Ordering::Acquire), 0);
        assert_eq!(
            revisions.apply(CHANNEL, 1, "ours sender_decisions 9"),
            Some((StatePart::SenderDecisions, 9))
        );
        revisions.apply(CHANNEL, 1, "ours sender_decisions 7");
        assert_eq!(
            revisions.known[2].load(Ordering::Acquire),
            9,
            "revisions only grow"
        );
        assert_eq!(revisions.known[0].load(Ordering::Acquire), 0);
    }

    #[test]
    fn acknowledgements_are_kept_per_listener_and_only_grow() {
        let revisions = Revisions::new("ours".into());
        assert_eq!(revisions.apply(ACK_CHANNEL, 7, "ours unsubscribes 4"), None);
        revisions.apply(ACK_CHANNEL, 7, "ours unsubscribes 3");
        revisions.apply(ACK_CHANNEL, 8, "theirs unsubscribes 9");
        assert_eq!(revisions.acked(7, StatePart::Unsubscribes), 4);
        assert_eq!(revisions.acked(8, StatePart::Unsubscribes), 0);
        assert_eq!(revisions.acked(7, StatePart::SenderDecisions), 0);
        assert_eq!(
            revisions.known[1].load(Ordering::Acquire),
            0,
            "an acknowledgement is no change"
        );
        revisions.forget_listeners_but(&[8]);
        assert_eq!(revisions.acked(7, StatePart::Unsubscribes), 0);
    }
}
