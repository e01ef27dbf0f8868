//! Shopify's leaky-bucket cost throttle (per app and shop).

use std::time::Instant;

use serde_json::{json, Value};

/// Largest cost a single query may request.
pub const MAX_QUERY_COST: u64 = 1000;

#[derive(Debug)]
pub struct Bucket {
    pub maximum: f64,
    pub restore_rate: f64,
    available: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(maximum: f64, restore_rate: f64) -> Self {
        Self {
            maximum,
            restore_rate,
            available: maximum,
            last: Instant::now(),
        }
    }

    /// Points available now, after leaking back what was restored since the last look.
    pub fn available(&mut self) -> f64 {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.maximum);
        self.last = now;
        self.available
    }

    /// Takes `cost` points if available; false means the request must be throttled.
    pub fn try_take(&mut self, cost: f64) -> bool {
        if cost > self.available() {
            return false;
        }
        self.available -= cost;
        true
    }

    /// Returns points a query requested but did not use.
    pub fn refund(&mut self, points: f64) {
        self.available = (self.available() + points).min(self.maximum);
    }

    pub fn status_json(&mut self) -> Value {
        json!({
            "maximumAvailable": self.maximum,
            "currentlyAvailable": self.available().floor() as u64,
            "restoreRate": self.restore_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_drains_and_refunds() {
        let mut b = Bucket::new(100.0, 0.0);
        assert!(b.try_take(60.0));
        assert!(!b.try_take(60.0));
        b.refund(30.0);
        assert!(b.try_take(60.0));
        assert!(b.available() < 11.0);
    }
}
