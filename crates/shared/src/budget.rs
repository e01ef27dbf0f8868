//! Vendor budgets pooled by every container of a function.
//!
//! A fixed share per container wastes what an idle container holds: a Lambda container works one
//! SQS event at a time, and while its last chunk waits for the model, or its first reads wait
//! for Klaviyo, its share of the other vendor sits unused. A pooled budget lets whichever
//! container has work use it, so concurrency no longer decides throughput.
//!
//! Time is cut into one-second slots. A slot admits at most `per_second` units over all
//! containers, and no more than the per-minute budget leaves after the 60 slots before it (one
//! atomic conditional add in the store, after reading those slots' sum once per slot). Any 60 s
//! window lies within 61 consecutive slots, so every window stays inside the per-minute budget
//! whatever boundaries the vendor's own windows have, while a run may still spend a fresh
//! minute's budget at the burst rate, as the vendor allows.
//!
//! Tenants: where merchants draw from one budget (our Bedrock quota), each slot caps every tenant
//! at `capacity / k`, `k` being the tenants that drew from or waited on the previous slot, so a
//! merchant's million-profile run cannot starve another merchant's 200 profiles.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// After this many store errors in a row a caller goes ahead unpaced (the vendor's own 429s
/// still protect the account) rather than stalling a run on a store outage.
const STORE_ERRORS_BEFORE_OPEN: u32 = 3;
/// Slots that any 60 s window can touch: it and the 60 before it.
const WINDOW_SLOTS: u64 = 61;

/// A pooled budget's limits, in units (requests, tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    pub per_second: u64,
    pub per_minute: u64,
}

impl PoolLimits {
    /// From a vendor's (possibly fractional) limits after our share; at least one unit each.
    pub fn new(per_minute: f64, per_second: f64) -> Self {
        let per_minute = per_minute.floor().max(1.0) as u64;
        let per_second = per_second.min(per_minute as f64).floor().max(1.0) as u64;
        Self {
            per_second,
            per_minute,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("budget store: {0}")]
pub struct StoreError(pub String);

/// Where the slots live: DynamoDB in production (`aws::budget_store`), memory in unit tests.
#[async_trait]
pub trait SlotStore: Send + Sync {
    /// Units admitted in slots `first..=last` of `bucket`.
    async fn used(&self, bucket: &str, first: u64, last: u64) -> Result<u64, StoreError>;

    /// Add `units` to `slot` of `bucket` (for `tenant`) if the slot's total stays within
    /// `capacity` and the tenant's part within `tenant_capacity`. Whether it was added.
    async fn take(
        &self,
        bucket: &str,
        slot: u64,
        tenant: &str,
        units: u64,
        capacity: u64,
        tenant_capacity: u64,
    ) -> Result<bool, StoreError>;

    /// Record that `tenant` waited on `slot` and got nothing (it counts as active next slot).
    async fn wanted(&self, bucket: &str, slot: u64, tenant: &str) -> Result<(), StoreError>;

    /// How many tenants drew from or waited on `slot`.
    async fn tenants(&self, bucket: &str, slot: u64) -> Result<u64, StoreError>;
}

/// One pooled budget (a Klaviyo account's tier, our Bedrock tokens or requests) as one container
/// sees it.
pub struct PooledBudget {
    store: Arc<dyn SlotStore>,
    bucket: String,
    limits: PoolLimits,
    /// Units taken per store call when a caller needs fewer (Klaviyo requests are one unit each:
    /// taking a few at a time keeps store writes well below the request rate).
    chunk: u64,
    per_tenant: bool,
    /// One caller per container talks to the store at a time, in arrival order; the rest wait
    /// here instead of racing for every slot.
    turn: tokio::sync::Mutex<()>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    slot: u64,
    tenant: String,
    left: u64,
    /// (slot, tenants active in the slot before it), read once per slot.
    active: Option<(u64, u64)>,
    /// (slot, units the 60 slots before it admitted), read once per slot.
    recent: Option<(u64, u64)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl PooledBudget {
    pub fn new(store: Arc<dyn SlotStore>, bucket: impl Into<String>, limits: PoolLimits) -> Self {
        Self {
            store,
            bucket: bucket.into(),
            chunk: (limits.per_second / 8).clamp(1, 8),
            limits,
            per_tenant: false,
            turn: tokio::sync::Mutex::new(()),
            held: Mutex::new(Held::default()),
        }
    }

    /// Cap each tenant per slot by the number of tenants active (see the module docs).
    pub fn per_tenant(mut self) -> Self {
        self.per_tenant = true;
        self.chunk = 1;
        self
    }

    pub fn limits(&self) -> PoolLimits {
        self.limits
    }

    /// Wait until `units` fit a slot, then take them. A request larger than a whole slot takes a
    /// whole slot. Returns how long it waited.
    pub async fn acquire(&self, tenant: &str, units: u64) -> Duration {
        let started = std::time::Instant::now();
        let units = units.clamp(1, self.limits.per_second);
        let _turn = self.turn.lock().await;
        let mut errors = 0;
        loop {
            let now = now_ms();
            let slot = now / 1000;
            {
                let mut held = self.held.lock().expect("budget lock");
                if held.slot == slot && held.tenant == tenant && held.left >= units {
                    held.left -= units;
                    return started.elapsed();
                }
            }
            match self.try_slot(slot, tenant, units).await {
                Ok(true) => return started.elapsed(),
                Ok(false) => errors = 0,
                Err(err) => {
                    errors += 1;
                    tracing::warn!(bucket = %self.bucket, error = %err, "pooled budget unavailable");
                    if errors >= STORE_ERRORS_BEFORE_OPEN {
                        return started.elapsed();
                    }
                }
            }
            // Next slot, with a little jitter so the containers do not all call at its first ms.
            let next = (slot + 1) * 1000;
            let jitter = rand::random::<u64>() % 40;
            let wait = next.saturating_sub(now_ms()) + jitter;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    async fn try_slot(&self, slot: u64, tenant: &str, units: u64) -> Result<bool, StoreError> {
        let recent = self.recent_use(slot).await?;
        let capacity = self
            .limits
            .per_second
            .min(self.limits.per_minute.saturating_sub(recent));
        if capacity < units {
            return Ok(false);
        }
        let tenant_capacity = if self.per_tenant {
            let active = self.active_tenants(slot).await?;
            (capacity / active).max(units)
        } else {
            capacity
        };
        let want = units + self.chunk.saturating_sub(units);
        for n in [want, units] {
            if self
                .store
                .take(&self.bucket, slot, tenant, n, capacity, tenant_capacity)
                .await?
            {
                let mut held = self.held.lock().expect("budget lock");
                *held = Held {
                    slot,
                    tenant: tenant.to_owned(),
                    left: n - units,
                    active: held.active,
                    recent: held.recent,
                };
                return Ok(true);
            }
            if n == units {
                break;
            }
        }
        if self.per_tenant {
            self.store.wanted(&self.bucket, slot, tenant).await?;
        }
        Ok(false)
    }

    /// Units the 60 slots before `slot` admitted.
    async fn recent_use(&self, slot: u64) -> Result<u64, StoreError> {
        let cached = self.held.lock().expect("budget lock").recent;
        if let Some((s, n)) = cached {
            if s == slot {
                return Ok(n);
            }
        }
        let first = slot.saturating_sub(WINDOW_SLOTS - 1);
        let n = self
            .store
            .used(&self.bucket, first, slot.saturating_sub(1))
            .await?;
        self.held.lock().expect("budget lock").recent = Some((slot, n));
        Ok(n)
    }

    /// Tenants active in the slot before `slot` (at least one: the caller).
    async fn active_tenants(&self, slot: u64) -> Result<u64, StoreError> {
        let cached = self.held.lock().expect("budget lock").active;
        let before = match cached {
            Some((s, n)) if s == slot => n,
            _ => {
                let n = self
                    .store
                    .tenants(&self.bucket, slot.saturating_sub(1))
                    .await?;
                self.held.lock().expect("budget lock").active = Some((slot, n));
                n
            }
        };
        Ok(before.max(1))
    }
}

/// Slots in memory: what the DynamoDB store does, for tests without AWS.
#[derive(Default)]
pub struct MemorySlots {
    slots: Mutex<HashMap<(String, u64), MemorySlot>>,
}

#[derive(Default, Clone)]
struct MemorySlot {
    used: u64,
    by_tenant: HashMap<String, u64>,
    waited: std::collections::HashSet<String>,
}

impl MemorySlots {
    /// Every slot of `bucket` with its units, in order.
    pub fn history(&self, bucket: &str) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .slots
            .lock()
            .expect("slots lock")
            .iter()
            .filter(|((b, _), _)| b == bucket)
            .map(|((_, slot), s)| (*slot, s.used))
            .collect();
        out.sort();
        out
    }

    /// Units `tenant` took from `bucket` over all slots.
    pub fn tenant_total(&self, bucket: &str, tenant: &str) -> u64 {
        self.slots
            .lock()
            .expect("slots lock")
            .iter()
            .filter(|((b, _), _)| b == bucket)
            .map(|(_, s)| s.by_tenant.get(tenant).copied().unwrap_or(0))
            .sum()
    }
}

#[async_trait]
impl SlotStore for MemorySlots {
    async fn used(&self, bucket: &str, first: u64, last: u64) -> Result<u64, StoreError> {
        let slots = self.slots.lock().expect("slots lock");
        Ok((first..=last)
            .filter_map(|slot| slots.get(&(bucket.to_owned(), slot)))
            .map(|s| s.used)
            .sum())
    }

    async fn take(
        &self,
        bucket: &str,
        slot: u64,
        tenant: &str,
        units: u64,
        capacity: u64,
        tenant_capacity: u64,
    ) -> Result<bool, StoreError> {
        let mut slots = self.slots.lock().expect("slots lock");
        let s = slots.entry((bucket.to_owned(), slot)).or_default();
        let mine = s.by_tenant.get(tenant).copied().unwrap_or(0);
        if s.used + units > capacity || mine + units > tenant_capacity {
            return Ok(false);
        }
        s.used += units;
        *s.by_tenant.entry(tenant.to_owned()).or_default() += units;
        Ok(true)
    }

    async fn wanted(&self, bucket: &str, slot: u64, tenant: &str) -> Result<(), StoreError> {
        let mut slots = self.slots.lock().expect("slots lock");
        slots
            .entry((bucket.to_owned(), slot))
            .or_default()
            .waited
            .insert(tenant.to_owned());
        Ok(())
    }

    async fn tenants(&self, bucket: &str, slot: u64) -> Result<u64, StoreError> {
        let slots = self.slots.lock().expect("slots lock");
        Ok(slots.get(&(bucket.to_owned(), slot)).map_or(0, |s| {
            let mut all: std::collections::HashSet<&String> = s.by_tenant.keys().collect();
            all.extend(s.waited.iter());
            all.len() as u64
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_whole_units_and_a_second_never_exceeds_the_minute() {
        assert_eq!(
            PoolLimits::new(3500.0 * 0.72, 350.0 * 0.72),
            PoolLimits {
                per_second: 252,
                per_minute: 2520
            }
        );
        // Below one unit a second (Klaviyo's XS tier at our share) still admits one.
        assert_eq!(PoolLimits::new(10.8, 0.72).per_second, 1);
        assert_eq!(PoolLimits::new(5.0, f64::INFINITY).per_second, 5);
    }

    /// The most any 60 s window (61 consecutive slots) admitted.
    fn busiest_minute(history: &[(u64, u64)]) -> u64 {
        history
            .iter()
            .map(|(start, _)| {
                history
                    .iter()
                    .filter(|(s, _)| *s >= *start && *s < start + WINDOW_SLOTS)
                    .map(|(_, u)| u)
                    .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn containers_sharing_a_pool_keep_to_both_windows_and_one_busy_container_gets_it_all() {
        let store = Arc::new(MemorySlots::default());
        let limits = PoolLimits {
            per_second: 20,
            per_minute: 50,
        };
        let containers: Vec<Arc<PooledBudget>> = (0..4)
            .map(|_| Arc::new(PooledBudget::new(store.clone(), "acct#XL", limits)))
            .collect();
        // Only one container has work: it is not held to a quarter, and a fresh minute goes at
        // the burst rate (40 units in two or three slots, not twelve).
        let busy = containers[0].clone();
        let started = std::time::Instant::now();
        for _ in 0..40 {
            busy.acquire("", 1).await;
        }
        assert!(
            started.elapsed() < Duration::from_millis(3200),
            "{:?}",
            started.elapsed()
        );
        // All four at once: the minute's last 10 units, then nothing until slots age out.
        let mut tasks = Vec::new();
        for c in &containers {
            for _ in 0..3 {
                let c = c.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(4), async {
                        for _ in 0..10 {
                            c.acquire("", 1).await;
                        }
                    })
                    .await
                    .ok();
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let history = store.history("acct#XL");
        assert!(history.iter().all(|(_, used)| *used <= 20), "{history:?}");
        assert_eq!(busiest_minute(&history), 50, "{history:?}");
    }

    #[tokio::test]
    async fn a_tenant_beside_a_busy_one_gets_half_of_each_slot_from_the_next_slot_on() {
        let store = Arc::new(MemorySlots::default());
        let limits = PoolLimits {
            per_second: 10,
            per_minute: 100_000,
        };
        let big = Arc::new(PooledBudget::new(store.clone(), "bedrock", limits).per_tenant());
        let small = Arc::new(PooledBudget::new(store.clone(), "bedrock", limits).per_tenant());
        // The big tenant keeps asking for everything.
        let hog = {
            let big = big.clone();
            tokio::spawn(async move {
                loop {
                    big.acquire("big", 1).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let started = std::time::Instant::now();
        for _ in 0..10 {
            small.acquire("small", 1).await;
        }
        hog.abort();
        // Alone it would take one slot; beside the hog, half of each slot once it is seen
        // waiting: two or three slots, not starved.
        assert!(
            started.elapsed() < Duration::from_millis(3300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(store.tenant_total("bedrock", "small"), 10);
    }
}
