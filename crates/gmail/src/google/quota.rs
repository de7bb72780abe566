//! A token bucket on Gmail quota units (250 per user per second; `messages.get` costs 5), so
//! concurrent scans stay under the budget instead of discovering it through 429s.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Units per second, with a burst of one second's worth.
#[derive(Debug)]
pub struct QuotaBucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl QuotaBucket {
    /// A bucket refilling `units_per_second`.
    pub fn new(units_per_second: u32) -> Self {
        let rate = f64::from(units_per_second.max(1));
        QuotaBucket {
            rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    /// Waits until `units` are available, then takes them.
    pub async fn acquire(&self, units: u32) {
        let units = f64::from(units).min(self.rate);
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(state.1).as_secs_f64() * self.rate;
                state.0 = (state.0 + refill).min(self.rate);
                state.1 = now;
                if state.0 >= units {
                    state.0 -= units;
                    return;
                }
                Duration::from_secs_f64((units - state.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_spends_one_second_of_units_then_waits() {
        let bucket = QuotaBucket::new(250);
        let start = Instant::now();
        for _ in 0..50 {
            bucket.acquire(5).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "a full bucket serves 250 units at once"
        );
        for _ in 0..50 {
            bucket.acquire(5).await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1100),
            "{elapsed:?}"
        );
    }
}
