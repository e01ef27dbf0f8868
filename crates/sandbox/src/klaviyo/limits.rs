//! Klaviyo's per-account, per-endpoint fixed-window rate limits (1 s burst + 60 s steady).

use std::collections::HashMap;

use crate::RateLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    XS,
    S,
    M,
    L,
    XL,
}

impl Tier {
    /// (burst per second, steady per minute) from Klaviyo's published tiers.
    pub fn limits(self) -> (u32, u32) {
        match self {
            Tier::XS => (1, 15),
            Tier::S => (3, 60),
            Tier::M => (10, 150),
            Tier::L => (75, 750),
            Tier::XL => (350, 3500),
        }
    }
}

#[derive(Debug, Default)]
struct Windows {
    second: i64,
    second_count: u32,
    minute: i64,
    minute_count: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
        reset_secs: u32,
    },
    Throttled {
        retry_after_secs: u64,
    },
}

#[derive(Debug)]
pub struct RateLimiter {
    factor: u32,
    windows: HashMap<(String, &'static str), Windows>,
}

impl RateLimiter {
    pub fn new(mode: RateLimits) -> Self {
        let factor = match mode {
            RateLimits::Real => 1,
            RateLimits::Relaxed => 100,
        };
        Self {
            factor,
            windows: HashMap::new(),
        }
    }

    /// Counts one request of `account` against bucket `key` at time `now` (seconds, fractional).
    /// A throttled request is not counted, as with Klaviyo's fixed windows.
    pub fn check(&mut self, account: &str, key: &'static str, tier: Tier, now: f64) -> Decision {
        let (burst, steady) = tier.limits();
        let (burst, steady) = (burst * self.factor, steady * self.factor);
        let second = now.floor() as i64;
        let minute = (now / 60.0).floor() as i64;
        let w = self.windows.entry((account.to_string(), key)).or_default();
        if w.second != second {
            w.second = second;
            w.second_count = 0;
        }
        if w.minute != minute {
            w.minute = minute;
            w.minute_count = 0;
        }
        let secs_to_minute_end = ((minute + 1) as f64 * 60.0 - now).ceil().max(1.0) as u64;
        if w.minute_count >= steady {
            return Decision::Throttled {
                retry_after_secs: secs_to_minute_end,
            };
        }
        if w.second_count >= burst {
            return Decision::Throttled {
                retry_after_secs: 1,
            };
        }
        w.second_count += 1;
        w.minute_count += 1;
        let burst_left = burst - w.second_count;
        let steady_left = steady - w.minute_count;
        // Report whichever window binds first, the way a client would need to pace itself.
        if burst_left <= steady_left {
            Decision::Allowed {
                limit: burst,
                remaining: burst_left,
                reset_secs: 1,
            }
        } else {
            Decision::Allowed {
                limit: steady,
                remaining: steady_left,
                reset_secs: secs_to_minute_end as u32,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_windows_throttle() {
        let mut rl = RateLimiter::new(RateLimits::Real);
        let t = 1_000.2;
        assert!(matches!(
            rl.check("a", "k", Tier::XS, t),
            Decision::Allowed { .. }
        ));
        assert_eq!(
            rl.check("a", "k", Tier::XS, t + 0.1),
            Decision::Throttled {
                retry_after_secs: 1
            }
        );
        // Another account has its own windows.
        assert!(matches!(
            rl.check("b", "k", Tier::XS, t),
            Decision::Allowed { .. }
        ));
        // 15 per minute for XS: use up the minute one second at a time.
        let mut allowed = 0;
        for s in 1..30 {
            if matches!(
                rl.check("a", "k", Tier::XS, 1_020.0 + s as f64),
                Decision::Allowed { .. }
            ) {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 15);
    }
}
