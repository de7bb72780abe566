//! Scheduled jobs for quietbox (the weekly digest), run once per occurrence per cluster.
//!
//! Main types: [`Schedule`] (a cron expression in an IANA time zone), [`Job`] (what runs), and
//! [`Scheduler`] (wakes at each occurrence and runs the jobs that are due).
//!
//! Decisions:
//! - Every node may host the scheduler. Two guards make an occurrence run once: a lease per job
//!   (one active node, with a fencing token checked before the job starts) and a claim of the
//!   occurrence itself, stored as an idempotency record `scheduler:<job>:<occurrence>` that only
//!   the first node can insert. The claim is what makes it exactly-once even when two nodes take
//!   the lease one after the other for the same tick.
//! - A node that was down runs only the latest missed occurrence when it starts, not one per
//!   missed tick, and never an occurrence from before the job was first seen (so a fresh install
//!   does not send a digest the moment it starts).
//! - Time comes from core's `Clock` port, so tests drive [`Scheduler::tick`] without sleeping.
#![warn(missing_docs)]
// Library code never unwraps; tests may.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use quietbox_core::ports::Clock;
use quietbox_core::store::{IdempotencyRecord, StateError, StateStore};

/// How long occurrence claims are kept (long enough to outlive any downtime worth catching up).
const CLAIM_RETENTION: chrono::Duration = chrono::Duration::days(60);
/// How long the "first seen" marker of a job is kept.
const MARKER_RETENTION: chrono::Duration = chrono::Duration::days(365 * 100);

/// Why a schedule could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("invalid cron expression {expression:?}: {detail}")]
    Cron {
        /// The expression.
        expression: String,
        /// The parser's complaint.
        detail: String,
    },
    /// The time zone is not an IANA name.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
}

/// A cron expression (5 fields, or 6 with seconds first) evaluated in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    expression: String,
}

impl Schedule {
    /// Parses `expression` in the IANA zone `tz`.
    pub fn parse(expression: &str, tz: &str) -> Result<Self, ScheduleError> {
        let tz = Tz::from_str(tz).map_err(|_| ScheduleError::TimeZone(tz.to_owned()))?;
        Self::new(expression, tz)
    }

    /// Parses `expression` in the already parsed zone `tz`; the only error is
    /// [`ScheduleError::Cron`].
    pub fn new(expression: &str, tz: Tz) -> Result<Self, ScheduleError> {
        let cron = Cron::from_str(expression).map_err(|e| ScheduleError::Cron {
            expression: expression.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Schedule {
            cron,
            tz,
            expression: expression.to_owned(),
        })
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&whole_second(after).with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest occurrence at or before `at`.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&whole_second(at).with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone the expression is evaluated in.
    pub fn tz(&self) -> Tz {
        self.tz
    }
}

/// Something the scheduler runs.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Stable name, used in lease and claim keys and in metrics (`job` label).
    fn name(&self) -> &str;

    /// Runs one occurrence. The `Ok` text is a short summary for the log.
    async fn run(&self, occurrence: DateTime<Utc>) -> Result<String, String>;
}

/// What [`Scheduler::tick`] did with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickOutcome {
    /// No occurrence is due (none since the job was first seen, or none at all).
    NothingDue,
    /// The due occurrence was already claimed by this or another node.
    AlreadyRun(DateTime<Utc>),
    /// Another node holds the job's lease.
    LeaseHeldElsewhere,
    /// The job ran.
    Ran {
        /// The occurrence.
        occurrence: DateTime<Utc>,
        /// Whether it succeeded.
        ok: bool,
    },
}

/// Runs jobs on their schedules, once per occurrence across every node sharing `state`.
pub struct Scheduler {
    state: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    node_id: String,
    lease_ttl: Duration,
    jobs: Vec<(Schedule, Arc<dyn Job>)>,
}

impl Scheduler {
    /// A scheduler for node `node_id` (unique per process).
    pub fn new(
        state: Arc<dyn StateStore>,
        clock: Arc<dyn Clock>,
        node_id: impl Into<String>,
    ) -> Self {
        Scheduler {
            state,
            clock,
            node_id: node_id.into(),
            lease_ttl: Duration::from_secs(300),
            jobs: Vec::new(),
        }
    }

    /// Adds a job.
    pub fn with_job(mut self, schedule: Schedule, job: Arc<dyn Job>) -> Self {
        self.jobs.push((schedule, job));
        self
    }

    /// Sets how long a job's lease lasts (it should outlast a run).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Runs every job whose latest occurrence at or before now has not run yet.
    pub async fn tick(&self) -> Result<Vec<TickOutcome>, StateError> {
        let mut outcomes = Vec::with_capacity(self.jobs.len());
        for (schedule, job) in &self.jobs {
            outcomes.push(self.tick_job(schedule, job.as_ref()).await?);
        }
        Ok(outcomes)
    }

    async fn first_seen(&self, job: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StateError> {
        let marker = IdempotencyRecord {
            key: format!("scheduler:{job}:first-seen"),
            request_hash: String::new(),
            response: serde_json_value(now),
            expires_at: now + MARKER_RETENTION,
        };
        let stored = match self.state.idempotency_put(marker, now).await? {
            Some(existing) => existing.response,
            None => return Ok(now),
        };
        Ok(stored
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now))
    }

    async fn tick_job(
        &self,
        schedule: &Schedule,
        job: &dyn Job,
    ) -> Result<TickOutcome, StateError> {
        let name = job.name();
        let now = self.clock.now();
        let first_seen = self.first_seen(name, now).await?;
        let Some(occurrence) = schedule.latest_at_or_before(now) else {
            return Ok(TickOutcome::NothingDue);
        };
        if occurrence < first_seen {
            return Ok(TickOutcome::NothingDue);
        }
        let claim_key = format!("scheduler:{name}:{}", occurrence.to_rfc3339());
        if self.state.idempotency_get(&claim_key, now).await?.is_some() {
            return Ok(TickOutcome::AlreadyRun(occurrence));
        }
        let lease_name = format!("scheduler:{name}");
        let Some(lease) = self
            .state
            .acquire_lease(&lease_name, &self.node_id, self.lease_ttl, now)
            .await?
        else {
            return Ok(TickOutcome::LeaseHeldElsewhere);
        };
        let claim = IdempotencyRecord {
            key: claim_key,
            request_hash: String::new(),
            response: serde_json::json!({"node": self.node_id, "claimed_at": now.to_rfc3339()}),
            expires_at: now + CLAIM_RETENTION,
        };
        if self.state.idempotency_put(claim, now).await?.is_some() {
            self.state.release_lease(&lease).await?;
            return Ok(TickOutcome::AlreadyRun(occurrence));
        }
        if !self
            .state
            .check_fence(&lease_name, lease.fencing_token, self.clock.now())
            .await?
        {
            // The lease lapsed between taking it and starting: the claim stands, the run is
            // reported failed rather than racing a newer holder.
            metrics::counter!("scheduler_runs_total", "job" => name.to_owned(), "result" => "fenced")
                .increment(1);
            tracing::warn!(job = name, %occurrence, "lease lost before the run started");
            return Ok(TickOutcome::Ran {
                occurrence,
                ok: false,
            });
        }
        let started = std::time::Instant::now();
        let result = job.run(occurrence).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let ok = result.is_ok();
        match &result {
            Ok(summary) => {
                tracing::info!(job = name, %occurrence, duration_ms, summary, "scheduled job ran")
            }
            Err(error) => {
                tracing::error!(job = name, %occurrence, duration_ms, error, "scheduled job failed")
            }
        }
        metrics::counter!(
            "scheduler_runs_total",
            "job" => name.to_owned(),
            "result" => if ok { "success" } else { "failure" }
        )
        .increment(1);
        self.state.release_lease(&lease).await?;
        Ok(TickOutcome::Ran { occurrence, ok })
    }

    /// Ticks once now (catching up the latest missed occurrence), then at every occurrence
    /// until `shutdown` resolves.
    pub async fn run_until(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(error) = self.tick().await {
                tracing::error!(%error, "scheduler tick failed");
            }
            let now = self.clock.now();
            let next = self
                .jobs
                .iter()
                .filter_map(|(s, _)| s.next_after(now))
                .min();
            let wait = next
                .and_then(|n| (n - now).to_std().ok())
                .unwrap_or(Duration::from_secs(60))
                // Wake a little after the boundary so `latest_at_or_before` sees it.
                + Duration::from_millis(20);
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Cron works in whole seconds; croner would otherwise return `at` itself, fraction and all, as
/// an occurrence of a per-second schedule, and two nodes would claim different "occurrences".
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0).unwrap_or(at)
}

fn serde_json_value(at: DateTime<Utc>) -> serde_json::Value {
    serde_json::Value::String(at.to_rfc3339())
}
