//! Incident mode: refuse every mutation until an operator ends it or its TTL lapses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CoreError, Quietbox};
use crate::store::Incident;

/// Incident mode as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentStatus {
    /// Whether mutations are refused now.
    pub active: bool,
    /// The stored incident (also when it has lapsed).
    pub incident: Option<Incident>,
}

impl Quietbox {
    /// Refuses mutations while an incident is active.
    pub async fn ensure_mutations_allowed(&self) -> Result<(), CoreError> {
        if let Some(incident) = self.state.incident().await?
            && incident.is_active(self.clock.now())
        {
            return Err(CoreError::IncidentActive {
                until: incident.until,
                reason: incident.reason,
            });
        }
        Ok(())
    }

    /// Starts incident mode for `ttl`.
    pub async fn incident_start(
        &self,
        ttl: Duration,
        reason: &str,
        actor: &str,
    ) -> Result<Incident, CoreError> {
        let ttl = chrono::Duration::from_std(ttl)
            .map_err(|_| CoreError::InvalidInput("TTL out of range".into()))?;
        if ttl <= chrono::Duration::zero() {
            return Err(CoreError::InvalidInput(
                "the incident TTL must be positive".into(),
            ));
        }
        let now = self.clock.now();
        let until = now
            .checked_add_signed(ttl)
            .ok_or_else(|| CoreError::InvalidInput("the incident TTL is too long".into()))?;
        let incident = Incident {
            reason: reason.to_owned(),
            started_by: actor.to_owned(),
            started_at: now,
            until,
        };
        self.state.set_incident(Some(incident.clone())).await?;
        tracing::warn!(until = %incident.until, reason, actor, "incident mode started: mutations disabled");
        Ok(incident)
    }

    /// Ends incident mode now.
    pub async fn incident_end(&self, actor: &str) -> Result<(), CoreError> {
        self.state.set_incident(None).await?;
        tracing::warn!(actor, "incident mode ended");
        Ok(())
    }

    /// Whether incident mode is active.
    pub async fn incident_status(&self) -> Result<IncidentStatus, CoreError> {
        let incident = self.state.incident().await?;
        let active = incident
            .as_ref()
            .is_some_and(|i| i.is_active(self.clock.now()));
        Ok(IncidentStatus { active, incident })
    }
}
