//! The availability use case: busy intervals and free slots of the calendar.

use super::{CoreError, Quietbox};
use crate::availability::{self, Availability, AvailabilityQuery};

impl Quietbox {
    /// Busy intervals and free slots. The query is [`AvailabilityQuery::validate`]d against the
    /// clock first (window near now, at most 62 days, slots of 5 to 1440 minutes), so the work
    /// per request is bounded.
    pub async fn availability(&self, query: AvailabilityQuery) -> Result<Availability, CoreError> {
        query.validate(self.clock.now())?;
        let busy = self
            .calendar
            .busy(query.start, query.end, query.tz.name())
            .await?;
        Ok(availability::free_slots(&query, busy))
    }
}
