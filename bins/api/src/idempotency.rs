//! `Idempotency-Key` that holds across replicas: a key runs its request once, and every other
//! request with the same key — on this node or another, at the same moment or later — gets that
//! first answer.
//!
//! Reading the stored answer and storing it after the run would leave a window in which two
//! replicas both miss it and both run. So the first request reserves the key before it runs:
//! it inserts a short-lived `<key>#running` record, an insert only one node can win (a primary
//! key in PostgreSQL, the shared lock of the file backend). A request that loses the reservation
//! waits for the winner's answer and replays it; when none comes in time (the winner failed, or
//! is slow) it gets a 409 and may retry, which the reservation's short life allows soon after.

use std::time::Duration;

use chrono::{DateTime, Utc};
use quietbox_core::ErrorCode;
use quietbox_core::store::{IdempotencyRecord, StateStore};
use serde_json::Value;

use quietbox_runtime::problem::ApiError;

/// How long a stored answer is replayed.
pub const ANSWER_TTL: chrono::Duration = chrono::Duration::hours(24);
/// How long a reservation keeps other requests waiting: the longest a request may run (the
/// HTTP timeout), after which a retry may run again.
pub const RESERVATION_TTL: chrono::Duration = chrono::Duration::seconds(30);
/// How long a request that lost the reservation waits for the winner's answer (longer than an
/// outbound unsubscribe may take).
pub const WAIT_FOR_ANSWER: Duration = Duration::from_secs(12);
const POLL: Duration = Duration::from_millis(100);

/// What to do with a request that carries an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// This request holds the key: run it, then [`finish`].
    Run,
    /// The key already has an answer: send it again.
    Replay(Value),
}

fn state_error(error: quietbox_core::store::StateError) -> ApiError {
    ApiError::from(quietbox_core::CoreError::from(error))
}

fn check_hash(stored: &IdempotencyRecord, hash: &str) -> Result<(), ApiError> {
    if stored.request_hash != hash {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "Idempotency-Key was used with a different request body",
        ));
    }
    Ok(())
}

/// Replays the answer of `key`, waits for it while another request holds the key, or reserves
/// the key for this request. `hash` identifies the request body.
pub async fn begin(
    state: &dyn StateStore,
    key: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<Begin, ApiError> {
    if let Some(stored) = state.idempotency_get(key, now).await.map_err(state_error)? {
        check_hash(&stored, hash)?;
        return Ok(Begin::Replay(stored.response));
    }
    let reservation = IdempotencyRecord {
        key: format!("{key}#running"),
        request_hash: hash.to_owned(),
        response: Value::Null,
        expires_at: now + RESERVATION_TTL,
    };
    let holder = match state
        .idempotency_put(reservation, now)
        .await
        .map_err(state_error)?
    {
        None => {
            // The answer may have been stored between the read above and the reservation.
            if let Some(stored) = state.idempotency_get(key, now).await.map_err(state_error)? {
                check_hash(&stored, hash)?;
                return Ok(Begin::Replay(stored.response));
            }
            return Ok(Begin::Run);
        }
        Some(holder) => holder,
    };
    check_hash(&holder, hash)?;
    let waited = std::time::Instant::now();
    while waited.elapsed() < WAIT_FOR_ANSWER {
        tokio::time::sleep(POLL).await;
        if let Some(stored) = state
            .idempotency_get(key, Utc::now())
            .await
            .map_err(state_error)?
        {
            check_hash(&stored, hash)?;
            return Ok(Begin::Replay(stored.response));
        }
    }
    Err(ApiError::new(
        ErrorCode::Conflict,
        format!(
            "a request with this Idempotency-Key is still running or has failed; retry after {} s",
            RESERVATION_TTL.num_seconds()
        ),
    ))
}

/// Stores the answer of the request that held `key`.
pub async fn finish(
    state: &dyn StateStore,
    key: String,
    hash: String,
    response: Value,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let record = IdempotencyRecord {
        key,
        request_hash: hash,
        response,
        expires_at: now + ANSWER_TTL,
    };
    state
        .idempotency_put(record, now)
        .await
        .map_err(state_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quietbox_state::FileStore;

    #[tokio::test]
    async fn the_first_request_runs_and_later_ones_replay_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let state = FileStore::open(dir.path()).unwrap();
        let now = Utc::now();
        assert_eq!(begin(&state, "k", "h", now).await.unwrap(), Begin::Run);
        finish(
            &state,
            "k".into(),
            "h".into(),
            serde_json::json!({"ok": 1}),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            begin(&state, "k", "h", now).await.unwrap(),
            Begin::Replay(serde_json::json!({"ok": 1}))
        );
        let conflict = begin(&state, "k", "other body", now).await.unwrap_err();
        assert_eq!(conflict.code, ErrorCode::Conflict);
    }

    #[tokio::test]
    async fn a_request_racing_the_holder_waits_for_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let state = std::sync::Arc::new(FileStore::open(dir.path()).unwrap());
        let now = Utc::now();
        assert_eq!(
            begin(state.as_ref(), "k", "h", now).await.unwrap(),
            Begin::Run
        );
        let waiter = {
            let state = state.clone();
            tokio::spawn(async move { begin(state.as_ref(), "k", "h", now).await })
        };
        tokio::time::sleep(Duration::from_millis(250)).await;
        finish(
            state.as_ref(),
            "k".into(),
            "h".into(),
            serde_json::json!({"ok": 2}),
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            waiter.await.unwrap().unwrap(),
            Begin::Replay(serde_json::json!({"ok": 2}))
        );
    }
}
