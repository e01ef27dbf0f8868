//! Process-wide state shared by every route, plus the counters behind `/_sandbox/stats`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};

use crate::klaviyo::data::KlaviyoStore;
use crate::shopify::ShopifyStore;
use crate::SandboxConfig;

pub struct AppState {
    pub base_url: String,
    pub config: SandboxConfig,
    pub klaviyo: Mutex<KlaviyoStore>,
    pub shopify: Mutex<ShopifyStore>,
    pub stats: Mutex<Stats>,
    pub bedrock: Mutex<crate::bedrock::BedrockState>,
    pub hosted_ui: Mutex<crate::hosted_ui::HostedUi>,
}

impl AppState {
    pub fn klaviyo(&self) -> MutexGuard<'_, KlaviyoStore> {
        // A panic while holding the lock must not wedge every later request.
        self.klaviyo.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn shopify(&self) -> MutexGuard<'_, ShopifyStore> {
        self.shopify.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn hosted_ui(&self) -> MutexGuard<'_, crate::hosted_ui::HostedUi> {
        self.hosted_ui.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn bedrock(&self) -> MutexGuard<'_, crate::bedrock::BedrockState> {
        self.bedrock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub klaviyo_requests: BTreeMap<String, u64>,
    pub klaviyo_throttled: BTreeMap<String, u64>,
    pub shopify_requests: BTreeMap<String, u64>,
    pub shopify_throttled: BTreeMap<String, u64>,
    pub shopify_cost_points: BTreeMap<String, f64>,
    pub shopify_token_refreshes: BTreeMap<String, u64>,
    pub shopify_bulk_operations: BTreeMap<String, u64>,
    pub cognito_tokens_issued: u64,
}

impl Stats {
    pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
        *map.entry(key.to_string()).or_default() += 1;
    }

    pub fn to_json(&self) -> Value {
        json!({
            "klaviyo": {
                "requests": self.klaviyo_requests,
                "requests_total": self.klaviyo_requests.values().sum::<u64>(),
                "throttled": self.klaviyo_throttled,
                "throttled_total": self.klaviyo_throttled.values().sum::<u64>(),
            },
            "shopify": {
                "requests": self.shopify_requests,
                "throttled": self.shopify_throttled,
                "throttled_total": self.shopify_throttled.values().sum::<u64>(),
                "cost_points": self.shopify_cost_points,
                "token_refreshes": self.shopify_token_refreshes,
                "bulk_operations_started": self.shopify_bulk_operations,
            },
            "cognito": { "tokens_issued": self.cognito_tokens_issued },
        })
    }
}
