//! Semantics both backends share, written once: when an unsubscribe may be claimed, how an
//! attempt updates an entry, and how tasks are paged.

use std::time::Duration;

use chrono::{DateTime, Utc};

use quietbox_core::store::{
    StateError, TaskPage, TaskQuery, TaskRecord, TaskRetention, UnsubscribeAttempt,
    UnsubscribeEntry, UnsubscribeStatus,
};

/// The terminal states of an A2A 1.0 task. A task that reached one never changes state again;
/// both backends enforce it where they write (under the file lock, in the upsert's `WHERE`), so
/// a cancel on one replica and a completion on another cannot overwrite each other.
pub const FINAL_TASK_STATES: [&str; 4] = [
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
];

/// Whether a stored task in state `from` may be replaced by one in state `to`: always, unless
/// `from` is final and `to` is another state (re-storing a final task as it is stays allowed).
pub fn task_may_become(from: &str, to: &str) -> bool {
    !FINAL_TASK_STATES.contains(&from) || from == to
}

/// Whether `stored` may be replaced by `new`: the same owner, and a state change
/// [`task_may_become`] allows. A task's owner never changes.
pub fn task_may_be_replaced(stored: &TaskRecord, new: &TaskRecord) -> bool {
    stored.owner == new.owner && task_may_become(&stored.state, &new.state)
}

/// Tasks updated before this instant are past `retention`'s age. Never before 1970, so that a
/// huge age keeps everything instead of leaving the range a database stores.
pub fn task_cutoff(retention: TaskRetention, now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_signed(retention.max_age)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .max(DateTime::UNIX_EPOCH)
}

/// Whether [`prune_tasks`] would drop anything.
pub fn tasks_need_pruning(
    tasks: &[TaskRecord],
    retention: TaskRetention,
    now: DateTime<Utc>,
) -> bool {
    let cutoff = task_cutoff(retention, now);
    tasks.len() > retention.max_tasks || tasks.iter().any(|t| t.updated_at < cutoff)
}

/// Drops the tasks older than `retention.max_age`, then the least recently updated beyond
/// `retention.max_tasks` (ties: the greater id goes first, the order [`page_tasks`] lists them
/// in). Returns how many it dropped.
pub fn prune_tasks(
    tasks: &mut Vec<TaskRecord>,
    retention: TaskRetention,
    now: DateTime<Utc>,
) -> usize {
    let before = tasks.len();
    let cutoff = task_cutoff(retention, now);
    tasks.retain(|t| t.updated_at >= cutoff);
    if tasks.len() > retention.max_tasks {
        tasks.sort_by(newest_first);
        tasks.truncate(retention.max_tasks);
    }
    before - tasks.len()
}

fn newest_first(a: &TaskRecord, b: &TaskRecord) -> std::cmp::Ordering {
    b.updated_at
        .cmp(&a.updated_at)
        .then_with(|| a.id.cmp(&b.id))
}

/// Largest page of tasks.
pub const MAX_PAGE: usize = 100;
/// Page size when the query gives none.
pub const DEFAULT_PAGE: usize = 50;

/// Whether a new attempt may take over `entry`: it failed, or its worker stopped reporting
/// for longer than `stale_after`.
pub fn claimable(entry: &UnsubscribeEntry, now: DateTime<Utc>, stale_after: Duration) -> bool {
    match entry.status {
        UnsubscribeStatus::Failed => true,
        UnsubscribeStatus::Succeeded => false,
        UnsubscribeStatus::InProgress => {
            let stale = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
            entry.updated_at + stale <= now
        }
    }
}

/// A new entry from its first attempt.
pub fn new_entry(attempt: UnsubscribeAttempt) -> UnsubscribeEntry {
    UnsubscribeEntry {
        key: attempt.key.clone(),
        status: attempt.status,
        method: attempt.method,
        updated_at: attempt.at,
        attempts: vec![attempt],
    }
}

/// Records `attempt` as the entry's latest state.
pub fn apply_attempt(entry: &mut UnsubscribeEntry, attempt: UnsubscribeAttempt) {
    entry.status = attempt.status;
    entry.method = attempt.method;
    entry.updated_at = attempt.at;
    entry.attempts.push(attempt);
}

/// Filters, orders (newest `updated_at` first, then id) and pages tasks; only the page is
/// cloned. The page token is the offset of the next page.
pub fn page_tasks<'a>(
    tasks: impl IntoIterator<Item = &'a TaskRecord>,
    query: &TaskQuery,
) -> Result<TaskPage, StateError> {
    let mut tasks: Vec<&TaskRecord> = tasks
        .into_iter()
        .filter(|t| {
            query
                .context_id
                .as_deref()
                .is_none_or(|c| t.context_id == c)
                && query.state.as_deref().is_none_or(|s| t.state == s)
                && query.owner.as_ref().is_none_or(|o| t.owner == *o)
                && query.skills.as_ref().is_none_or(|skills| {
                    t.skill.as_ref().is_some_and(|skill| skills.contains(skill))
                })
        })
        .collect();
    tasks.sort_by(|a, b| newest_first(a, b));
    let total_size = tasks.len();
    let size = page_size(query.page_size);
    let offset = page_offset(query.page_token.as_deref())?;
    let page: Vec<TaskRecord> = tasks.into_iter().skip(offset).take(size).cloned().collect();
    let next = offset.saturating_add(page.len());
    Ok(TaskPage {
        next_page_token: (next < total_size).then(|| next.to_string()),
        tasks: page,
        total_size,
    })
}

/// The effective page size.
pub fn page_size(requested: usize) -> usize {
    match requested {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// Parses a page token.
pub fn page_offset(token: Option<&str>) -> Result<usize, StateError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| StateError::Conflict(format!("invalid page token {t:?}"))),
    }
}

/// A lease TTL as a chrono duration.
pub fn chrono_ttl(ttl: Duration) -> Result<chrono::Duration, StateError> {
    chrono::Duration::from_std(ttl)
        .map_err(|_| StateError::Conflict("lease TTL out of range".to_owned()))
}
