//! One configuration struct, read once per container from the environment. The names match the
//! `Environment.Variables` of template.yaml, so the deployed stack and the local runner agree.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
#[error("configuration variable {0} is missing or empty")]
pub struct ConfigError(pub &'static str);

/// Claude Haiku 5.5 through the US inference profile (template parameter `BedrockModelId`).
pub const DEFAULT_BEDROCK_MODEL_ID: &str = "us.anthropic.claude-haiku-5-5";
/// We use at most this part of each of a merchant's Klaviyo tiers.
pub const DEFAULT_KLAVIYO_BUDGET_FRACTION: f64 = 0.8;
/// AWS documents 5× for recent Claude models (whether Haiku is on the list is disputed: plan for it).
pub const DEFAULT_OUTPUT_BURNDOWN: f64 = 5.0;

#[derive(Clone, Debug)]
pub struct Config {
    pub app_table: String,
    pub catalog_table: String,
    pub sync_queue_url: String,
    /// Small runs' work queue, polled by containers of their own (unset: the work queue).
    pub express_work_queue_url: Option<String>,
    pub work_queue_url: String,
    /// Every merchant secret is named `{secret_prefix}/{merchant}/{vendor}`.
    pub secret_prefix: String,
    pub secrets_kms_key_id: Option<String>,
    pub klaviyo_base_url: String,
    pub klaviyo_revision: String,
    /// `https://{shop}` in production; `{shop}` is replaced by the shop domain.
    pub shopify_base_url_template: String,
    pub shopify_api_version: String,
    pub shopify_client_id: String,
    /// Name of the Secrets Manager secret holding the Shopify app's client secret.
    pub shopify_client_secret_id: String,
    pub shopify_redirect_uri: String,
    /// Origin of the merchant console (`APP_BASE_URL`): where installs end and start.
    pub app_base_url: String,
    pub bedrock_model_id: String,
    /// Purges asked for by Shopify webhooks (app/uninstalled, shop/redact); connect-shopify only.
    pub purge_queue_url: Option<String>,
    /// The audit table (disconnect-purge only) and the secret holding the pepper of its keys.
    pub audit_table: Option<String>,
    pub audit_pepper_secret_id: Option<String>,
    /// The Cognito user pool whose users `DELETE /account` removes.
    pub user_pool_id: Option<String>,
    /// The fan-out's own queue (continuations of a long audience).
    pub fanout_queue_url: String,
    /// ARN of the work queue's dead-letter queue: its records are counted as failed.
    pub work_dlq_arn: String,
    /// This container's share of our budget: of each merchant's Klaviyo tiers (after
    /// `klaviyo_budget_fraction`) and of the account's Bedrock quota. Every function that calls a
    /// vendor declares it in template.yaml; share × the function's reserved concurrency, summed
    /// over the functions, is at most 1 (tests/e2e/template_budget.rs), so every container
    /// together stays inside the budgets.
    pub vendor_budget_share: f64,
    /// When set (`VENDOR_BUDGET_POOL`, a name), the function's containers pool their budgets
    /// through the app table ([`crate::budget`]) and `vendor_budget_share` is the whole
    /// function's share, counted once (not per container) against the 100%.
    pub vendor_budget_pool: Option<String>,
    /// Per-tier overrides of `vendor_budget_share` for Klaviyo (`KLAVIYO_TIER_SHARES`, e.g.
    /// `L=0.2`), in tier order XS, S, M, L, XL.
    pub klaviyo_tier_shares: [Option<f64>; 5],
    /// The part of each Klaviyo tier SendPersonal may use at all (`KLAVIYO_BUDGET_PERCENT` / 100,
    /// default 80%): Klaviyo shares an account's limits with the merchant's other apps.
    pub klaviyo_budget_fraction: f64,
    /// How many times an output token counts against Bedrock's tokens-per-minute quota (AWS's
    /// burndown rate: 5 for recent Claude models).
    pub bedrock_output_burndown: f64,
    /// Converse calls in flight per container.
    pub bedrock_max_concurrency: usize,
    /// How long one fan-out invocation pages before it hands on to a continuation message
    /// (well inside the function's timeout).
    pub fanout_time_budget_ms: u64,
    /// At most this many profiles of one run enqueued and not yet accounted for
    /// (`FANOUT_WINDOW_PROFILES`; unset or 0: no limit). Keeps one big run from filling the
    /// shared work queue ahead of other merchants' runs.
    pub fanout_window_profiles: Option<u64>,
    /// The account's Bedrock quota for the model (requests and tokens per minute); each
    /// container paces to `vendor_budget_share` of it. Unset means no client-side pacing.
    pub bedrock_quota: Option<(f64, f64)>,
    /// Bedrock runtime endpoint override (unset in production: the SDK's regional endpoint).
    pub bedrock_endpoint_url: Option<String>,
    /// A Bedrock guardrail (id, version) every copy passes through `ApplyGuardrail` before it
    /// may be written (`BEDROCK_GUARDRAIL_ID`, `BEDROCK_GUARDRAIL_VERSION`); unset: none.
    pub bedrock_guardrail: Option<(String, String)>,
    /// How long a worker holds a fresh batch (renewed while it works); a worker that dies lets
    /// the next delivery take the batch over after this long.
    pub batch_lease_secs: i64,
    /// A worker hands a batch it has not finished back to the queue after this long (ms), well
    /// inside the Lambda timeout; throttled reads are retried in place for half of it.
    pub worker_time_budget_ms: u64,
    /// `GET /runs/{id}/samples` gives up after this long (ms), inside API Gateway's 30 s.
    pub samples_deadline_ms: u64,
    /// After a Shopify client-secret rotation, the previous secret still verifies webhooks and
    /// OAuth callbacks for this long (a secret document's own `grace_secs` wins).
    pub shopify_secret_grace_secs: i64,
    /// The watchdog re-drives a fan-out that made no progress for this long (and fails the run
    /// after a few re-drives).
    pub fanout_stall_secs: i64,
    /// The watchdog finishes a run whose batches made no progress for this long, counting what
    /// is still outstanding as `failed: stalled` (longer than SQS's redeliveries and the DLQ).
    pub run_stall_secs: i64,
    /// Test harnesses only: names this stack's fault-injection plan (`shared::faults`). Unset
    /// in every deployed function, where every crash point is a no-op.
    pub fault_scope: Option<String>,
    /// The flow-trigger job queue (`FLOW_QUEUE_URL`).
    pub flow_queue_url: Option<String>,
    /// The app secret keying the hashes of flow hook secrets (`FLOW_HOOK_KEY_SECRET_ID`).
    pub flow_hook_key_secret_id: Option<String>,
    /// The API's public base URL (`API_PUBLIC_URL`): flow webhook URLs are built on it.
    pub api_public_url: Option<String>,
    /// After a rotation the previous flow hook secret keeps working this long.
    pub flow_secret_overlap_secs: i64,
}

impl Config {
    /// When the run watchdog steps in (`RunWatchdog` schedule of the fan-out function).
    pub fn stall_limits(&self) -> crate::personalize::run::StallLimits {
        crate::personalize::run::StallLimits {
            fanout_stall_secs: self.fanout_stall_secs,
            max_fanout_redrives: 3,
            run_stall_secs: self.run_stall_secs,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError(name));
        let or =
            |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        // A positive whole number (seconds or milliseconds, as the name says), else the default.
        let positive = |name: &'static str, default: i64| {
            get(name)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Ok(Self {
            app_table: required("APP_TABLE")?,
            catalog_table: required("CATALOG_TABLE")?,
            sync_queue_url: required("SYNC_QUEUE_URL")?,
            work_queue_url: or("WORK_QUEUE_URL", ""),
            express_work_queue_url: get("EXPRESS_WORK_QUEUE_URL"),
            secret_prefix: or("SECRET_PREFIX", "sendpersonal"),
            secrets_kms_key_id: get("SECRETS_KMS_KEY_ID"),
            klaviyo_base_url: or("KLAVIYO_BASE_URL", "https://a.klaviyo.com"),
            klaviyo_revision: or("KLAVIYO_REVISION", "2026-07-15"),
            shopify_base_url_template: or("SHOPIFY_BASE_URL_TEMPLATE", "https://{shop}"),
            shopify_api_version: or("SHOPIFY_API_VERSION", "2026-10"),
            shopify_client_id: required("SHOPIFY_CLIENT_ID")?,
            shopify_client_secret_id: or(
                "SHOPIFY_CLIENT_SECRET_ID",
                "sendpersonal/app/shopify-client-secret",
            ),
            shopify_redirect_uri: required("SHOPIFY_REDIRECT_URI")?,
            app_base_url: or("APP_BASE_URL", "http://localhost:5173")
                .trim_end_matches('/')
                .to_owned(),
            bedrock_model_id: or("BEDROCK_MODEL_ID", DEFAULT_BEDROCK_MODEL_ID),
            purge_queue_url: get("PURGE_QUEUE_URL"),
            audit_table: get("AUDIT_TABLE"),
            audit_pepper_secret_id: get("AUDIT_PEPPER_SECRET_ID"),
            user_pool_id: get("USER_POOL_ID"),
            fanout_queue_url: or("FANOUT_QUEUE_URL", ""),
            work_dlq_arn: or("WORK_DLQ_ARN", ""),
            vendor_budget_share: get("VENDOR_BUDGET_SHARE")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0 && *v <= 1.0)
                .unwrap_or(1.0),
            vendor_budget_pool: get("VENDOR_BUDGET_POOL"),
            klaviyo_tier_shares: tier_shares(get("KLAVIYO_TIER_SHARES").as_deref().unwrap_or("")),
            klaviyo_budget_fraction: get("KLAVIYO_BUDGET_PERCENT")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0 && *v <= 100.0)
                .map_or(DEFAULT_KLAVIYO_BUDGET_FRACTION, |p| p / 100.0),
            bedrock_output_burndown: get("BEDROCK_OUTPUT_BURNDOWN")
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v >= 1.0)
                .unwrap_or(DEFAULT_OUTPUT_BURNDOWN),
            bedrock_max_concurrency: get("BEDROCK_MAX_CONCURRENCY")
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(8),
            bedrock_endpoint_url: get("BEDROCK_ENDPOINT_URL"),
            bedrock_guardrail: get("BEDROCK_GUARDRAIL_ID").map(|id| {
                let version = get("BEDROCK_GUARDRAIL_VERSION").unwrap_or_else(|| "DRAFT".into());
                (id, version)
            }),
            bedrock_quota: match (
                get("BEDROCK_REQUESTS_PER_MINUTE").and_then(|v| v.parse::<f64>().ok()),
                get("BEDROCK_TOKENS_PER_MINUTE").and_then(|v| v.parse::<f64>().ok()),
            ) {
                (Some(rpm), Some(tpm)) if rpm > 0.0 && tpm > 0.0 => Some((rpm, tpm)),
                _ => None,
            },
            fanout_window_profiles: get("FANOUT_WINDOW_PROFILES")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| *v > 0),
            fanout_time_budget_ms: get("FANOUT_TIME_BUDGET_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(600_000),
            batch_lease_secs: positive("BATCH_LEASE_SECS", 120),
            worker_time_budget_ms: positive("WORKER_TIME_BUDGET_MS", 240_000) as u64,
            samples_deadline_ms: positive("SAMPLES_DEADLINE_MS", 20_000) as u64,
            shopify_secret_grace_secs: positive(
                "SHOPIFY_SECRET_GRACE_SECS",
                crate::shopify::oauth::DEFAULT_SECRET_GRACE_SECS,
            ),
            fanout_stall_secs: positive("FANOUT_STALL_SECS", 900),
            run_stall_secs: positive("RUN_STALL_SECS", 3 * 3600),
            fault_scope: get("FAULT_SCOPE"),
            flow_queue_url: get("FLOW_QUEUE_URL"),
            flow_hook_key_secret_id: get("FLOW_HOOK_KEY_SECRET_ID"),
            api_public_url: get("API_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            flow_secret_overlap_secs: positive("FLOW_SECRET_OVERLAP_SECS", 86_400),
        })
    }

    /// This container's Klaviyo limits: its share of the part of each tier we may use.
    pub fn klaviyo_limits(&self) -> crate::klaviyo::RateLimits {
        let mut factors = [self.vendor_budget_share; 5];
        for (f, o) in factors.iter_mut().zip(self.klaviyo_tier_shares) {
            if let Some(share) = o {
                *f = share;
            }
            *f *= self.klaviyo_budget_fraction;
        }
        crate::klaviyo::RateLimits::Tiered(factors)
    }

    /// The base URL of one shop's Admin endpoints (`https://{shop}` in production).
    pub fn shopify_base_url(&self, shop: &crate::domain::ShopDomain) -> String {
        self.shopify_base_url_template
            .replace("{shop}", shop.as_str())
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn secret_name(
        &self,
        merchant: &crate::domain::MerchantId,
        vendor: crate::domain::Vendor,
    ) -> String {
        format!(
            "{}/{}/{}",
            self.secret_prefix,
            merchant.as_str(),
            vendor.as_str()
        )
    }
}

/// `"L=0.2,XL=0.1"` → per-tier shares (unknown tiers and bad numbers are ignored).
pub fn tier_shares(spec: &str) -> [Option<f64>; 5] {
    let mut out = [None; 5];
    for part in spec.split(',') {
        let Some((tier, share)) = part.split_once('=') else {
            continue;
        };
        let i = match tier.trim().to_ascii_uppercase().as_str() {
            "XS" => 0,
            "S" => 1,
            "M" => 2,
            "L" => 3,
            "XL" => 4,
            _ => continue,
        };
        out[i] = share
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && *v <= 1.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> HashMap<String, String> {
        [
            ("APP_TABLE", "app"),
            ("CATALOG_TABLE", "catalog"),
            ("SYNC_QUEUE_URL", "http://q/sync"),
            ("SHOPIFY_CLIENT_ID", "cid"),
            ("SHOPIFY_REDIRECT_URI", "https://api/cb"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn defaults_point_at_the_real_vendors() {
        let config = Config::from_map(&minimal()).unwrap();
        assert_eq!(config.klaviyo_base_url, "https://a.klaviyo.com");
        let shop = crate::domain::ShopDomain::parse("a-shop.myshopify.com").unwrap();
        assert_eq!(
            config.shopify_base_url(&shop),
            "https://a-shop.myshopify.com"
        );
    }

    #[test]
    fn klaviyo_limits_leave_the_headroom_for_other_apps() {
        let mut vars = minimal();
        vars.insert("VENDOR_BUDGET_SHARE".into(), "0.25".into());
        let config = Config::from_map(&vars).unwrap();
        assert_eq!(config.klaviyo_budget_fraction, 0.8);
        assert_eq!(
            config.klaviyo_limits(),
            crate::klaviyo::RateLimits::Tiered([0.25 * 0.8; 5])
        );
        vars.insert("KLAVIYO_BUDGET_PERCENT".into(), "50".into());
        vars.insert("KLAVIYO_TIER_SHARES".into(), "L=0.1, bogus=3".into());
        let config = Config::from_map(&vars).unwrap();
        assert_eq!(
            config.klaviyo_limits(),
            crate::klaviyo::RateLimits::Tiered([0.125, 0.125, 0.125, 0.05, 0.125])
        );
        assert_eq!(config.bedrock_output_burndown, 5.0);
        assert_eq!(config.bedrock_model_id, "us.anthropic.claude-haiku-5-5");
    }

    #[test]
    fn missing_table_is_named_in_the_error() {
        let mut vars = minimal();
        vars.remove("APP_TABLE");
        assert_eq!(Config::from_map(&vars).unwrap_err().0, "APP_TABLE");
    }
}
