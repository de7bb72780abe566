//! The candidates use case: rank the senders of the last scan for unsubscribing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::{CoreError, Quietbox};
use crate::candidates::{self, Candidate};
use crate::ports::MessageMeta;
use crate::senders;
use crate::store::{Decision, SenderDecision, StatePart, UnsubscribeEntry, UnsubscribeStatus};

/// The revisions of the state parts candidates are ranked from (see
/// [`crate::store::StateStore::revision`]).
type CandidateInputs = [u64; 3];

/// The last ranking, with the revisions of the state it was ranked from. Shared by clones of a
/// [`Quietbox`]; a ranking is reused only while the store reports the same revisions.
#[derive(Debug, Default)]
pub(super) struct RankedCandidates(Mutex<Option<(CandidateInputs, Arc<Vec<Candidate>>)>>);

impl RankedCandidates {
    fn get(&self, inputs: CandidateInputs) -> Option<Arc<Vec<Candidate>>> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.as_ref()
            .filter(|(of, _)| *of == inputs)
            .map(|(_, ranked)| Arc::clone(ranked))
    }

    fn put(&self, inputs: CandidateInputs, ranked: Arc<Vec<Candidate>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((inputs, ranked));
    }
}

impl Quietbox {
    /// Ranked unsubscribe candidates from the last scan (scanning first if there was none),
    /// without senders already unsubscribed or kept.
    ///
    /// The ranking is a pure function of the checkpoint, the unsubscribes and the decisions, so
    /// while the store reports the same revisions of those three (another process may change
    /// them at any time) the last ranking is answered again without reading them.
    pub async fn candidates(&self) -> Result<Vec<Candidate>, CoreError> {
        Ok(self.shared_candidates().await?.as_ref().clone())
    }

    /// [`Quietbox::candidates`] without a copy: while the ranking is kept, every call returns
    /// the same allocation, so a caller may keep what it derived from it (a serialized body)
    /// for as long as [`Arc::ptr_eq`] says it got the same ranking again.
    pub async fn shared_candidates(&self) -> Result<Arc<Vec<Candidate>>, CoreError> {
        let before = self.candidate_inputs().await?;
        if let Some(ranked) = before.and_then(|inputs| self.ranked.get(inputs)) {
            return Ok(ranked);
        }
        let messages = self.known_messages().await?;
        let entries = self.state.unsubscribe_history(None).await?;
        let decisions = self.state.sender_decisions().await?;
        let ranked = Arc::new(rank_candidates(&messages, &entries, &decisions));
        // Kept only when nothing changed while reading: then the reads saw exactly the content
        // of these revisions (a store never gives one revision to two contents).
        if let Some(inputs) = before
            && self.candidate_inputs().await? == before
        {
            self.ranked.put(inputs, Arc::clone(&ranked));
        }
        Ok(ranked)
    }

    /// The revisions of what [`Quietbox::candidates`] ranks from; `None` when the store gives
    /// no revisions.
    async fn candidate_inputs(&self) -> Result<Option<CandidateInputs>, CoreError> {
        let mut inputs = [0; 3];
        let parts = [
            StatePart::ScanCheckpoints,
            StatePart::Unsubscribes,
            StatePart::SenderDecisions,
        ];
        for (slot, part) in inputs.iter_mut().zip(parts) {
            match self.state.revision(part).await? {
                Some(revision) => *slot = revision,
                None => return Ok(None),
            }
        }
        Ok(Some(inputs))
    }
}

/// Ranked candidates among the senders of `messages`, without those unsubscribed (or being) and
/// those the owner keeps.
pub(super) fn rank_candidates(
    messages: &[MessageMeta],
    entries: &[UnsubscribeEntry],
    decisions: &[SenderDecision],
) -> Vec<Candidate> {
    let excluded: HashSet<String> = entries
        .iter()
        .filter(|e| e.status != UnsubscribeStatus::Failed)
        .map(|e| e.key.sender.clone())
        .chain(
            decisions
                .iter()
                .filter(|d| d.decision == Decision::Keep)
                .map(|d| d.sender.clone()),
        )
        .collect();
    candidates::rank(&senders::aggregate(messages), &excluded)
}
