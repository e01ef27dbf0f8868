//! flow-hooks: the merchant's flow triggers (create, list with counts, get, pause, resume,
//! rotate or revoke the secret, delete) behind the Cognito authorizer, and the public route
//! Klaviyo's flow Webhook action calls, `POST /hooks/flows/{trigger_id}`: the header checked in
//! constant time against the stored keyed hashes, the body checked, replays answered without a
//! second job, and ids only handed to the flow queue.

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine as _;
use rand::Rng;
use serde_json::{json, Value};
use shared::aws::dynamo::AppStore;
use shared::aws::flows::{Created, FlowStore};
use shared::aws::queue::Queue;
use shared::aws::secrets::SecretStore;
use shared::domain::{now_unix, rfc3339, AppSecret, ConnectionStatus, MerchantId};
use shared::edge::{function::parse_event, http, Function, FunctionError};
use shared::error::ApiError;
use shared::flows::{
    self, add_day, counter, FlowCounts, FlowJob, FlowTrigger, HookBody, SecretHash, SecretRotated,
    TriggerCreated, TriggerList, TriggerRequest, TriggerStatus, TriggerView, TtlCache,
    WebhookSetup,
};
use shared::Config;
use std::collections::BTreeMap;

pub struct Handler {
    config: Config,
    store: AppStore,
    flows: FlowStore,
    queue: Queue,
    hook_key: AppSecret,
    /// Triggers and connection checks as read in the last few seconds: a pause, revocation
    /// or disconnect reaches the hook within `HOT_CACHE_TTL`; a secret that does not match the
    /// cached hashes is checked again against a fresh read (a rotation works at once).
    triggers: TtlCache<String, Option<FlowTrigger>>,
    connected: TtlCache<String, bool>,
    /// One read at a time fills the caches: a burst's first deliveries wait for one read
    /// instead of each making its own.
    filling: tokio::sync::Mutex<()>,
}

/// How long the hook trusts what it read about a trigger or a connection.
const HOT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A fresh hook secret: 32 random bytes, base64url.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    format!(
        "sph_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn new_trigger_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    let tail: String = (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("ft{tail}")
}

fn header<'r>(req: &'r ApiGatewayV2httpRequest, name: &str) -> Option<&'r str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

impl Handler {
    pub async fn init(config: Config) -> Result<Self, FunctionError> {
        let aws = shared::aws::Aws::load().await;
        let secrets = SecretStore::from_sdk(&aws, config.secrets_kms_key_id.clone());
        let key_id = config
            .flow_hook_key_secret_id
            .clone()
            .ok_or("FLOW_HOOK_KEY_SECRET_ID is not set")?;
        let queue_url = config
            .flow_queue_url
            .clone()
            .ok_or("FLOW_QUEUE_URL is not set")?;
        Ok(Self {
            store: AppStore::from_sdk(&aws, &config.app_table),
            flows: FlowStore::from_sdk(&aws, &config.app_table),
            queue: Queue::from_sdk(&aws, queue_url),
            hook_key: secrets.app_secret(&key_id),
            triggers: TtlCache::new(HOT_CACHE_TTL),
            connected: TtlCache::new(HOT_CACHE_TTL),
            filling: tokio::sync::Mutex::new(()),
            config,
        })
    }

    fn hook_url(&self, trigger_id: &str) -> String {
        let base = self
            .config
            .api_public_url
            .as_deref()
            .unwrap_or("https://api-public-url-not-set.invalid");
        format!("{base}/hooks/flows/{trigger_id}")
    }

    async fn key(&self) -> Result<String, ApiError> {
        Ok(self
            .hook_key
            .get()
            .await
            .map_err(|e| internal(e.0))?
            .expose()
            .to_owned())
    }

    fn setup(&self, t: &FlowTrigger, secret: &str) -> WebhookSetup {
        WebhookSetup {
            url: self.hook_url(&t.trigger_id),
            header_name: "Authorization".into(),
            header_value: format!("Bearer {secret}"),
            body: flows::webhook_body_template(t.kind),
            email_snippet: email_snippet(t),
        }
    }

    async fn view(&self, t: &FlowTrigger) -> Result<TriggerView, ApiError> {
        let now = now_unix();
        let today = flows::day_of(now);
        let since = flows::day_of(now - (flows::COUNTER_DAYS - 1) * 86_400);
        let days = self
            .flows
            .days(&t.trigger_id, &since)
            .await
            .map_err(internal)?;
        let (mut c_today, mut h_today) = (FlowCounts::default(), BTreeMap::new());
        let (mut c_all, mut h_all) = (FlowCounts::default(), BTreeMap::new());
        for (day, attrs) in &days {
            if *day == today {
                add_day(&mut c_today, &mut h_today, attrs);
            }
            add_day(&mut c_all, &mut h_all, attrs);
        }
        Ok(TriggerView {
            trigger_id: t.trigger_id.clone(),
            name: t.name.clone(),
            kind: t.kind,
            brief: t.brief.clone(),
            offer: t.offer.clone(),
            settings: t.settings.clone(),
            property_set: t.property_set.as_str().to_owned(),
            status: t.status,
            deadline_seconds: t.deadline_seconds,
            created_at: rfc3339(t.created_at),
            webhook_url: self.hook_url(&t.trigger_id),
            webhook_body: flows::webhook_body_template(t.kind),
            today: c_today,
            last_30_days: c_all,
            latency_today: flows::percentiles(&h_today),
            latency_30_days: flows::percentiles(&h_all),
        })
    }

    async fn trigger(&self, merchant: &MerchantId, id: &str) -> Result<FlowTrigger, ApiError> {
        if !flows::is_trigger_id(id) {
            return Err(ApiError::FlowTriggerNotFound(id.chars().take(22).collect()));
        }
        self.flows
            .get_for(merchant, id)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::FlowTriggerNotFound(id.to_owned()))
    }

    pub async fn handle_http(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let route = http::route_key(req);
        if route == "POST /hooks/flows/{trigger_id}" {
            return self.hook(req).await;
        }
        let merchant = http::live_merchant(req, &self.store).await?;
        let id = req.path_parameters.get("id").cloned().unwrap_or_default();
        match route {
            "POST /flows/triggers" => self.create(&merchant, req).await,
            "GET /flows/triggers" => {
                let mut triggers = Vec::new();
                for t in self.flows.list(&merchant).await.map_err(internal)? {
                    triggers.push(self.view(&t).await?);
                }
                Ok(http::json(200, &TriggerList { triggers }))
            }
            "GET /flows/triggers/{id}" => {
                let t = self.trigger(&merchant, &id).await?;
                Ok(http::json(200, &self.view(&t).await?))
            }
            "DELETE /flows/triggers/{id}" => {
                let t = self.trigger(&merchant, &id).await?;
                self.flows.remove_trigger(&t).await.map_err(internal)?;
                self.triggers.forget(&t.trigger_id);
                Ok(http::json(200, &json!({"status": "deleted"})))
            }
            "POST /flows/triggers/{id}/pause" | "POST /flows/triggers/{id}/resume" => {
                let mut t = self.trigger(&merchant, &id).await?;
                if t.status == TriggerStatus::Revoked {
                    return Err(ApiError::RunStateConflict(
                        "the trigger's secret was revoked; rotate it to use the trigger again"
                            .into(),
                    ));
                }
                t.status = if route.ends_with("/pause") {
                    TriggerStatus::Paused
                } else {
                    TriggerStatus::Active
                };
                self.flows
                    .update_state(&t.trigger_id, t.status, &t.secret_hashes)
                    .await
                    .map_err(internal)?;
                self.triggers.forget(&t.trigger_id);
                Ok(http::json(200, &self.view(&t).await?))
            }
            "POST /flows/triggers/{id}/rotate-secret" => {
                let t = self.trigger(&merchant, &id).await?;
                let now = now_unix();
                let until = now + self.config.flow_secret_overlap_secs;
                let secret = new_secret();
                let mut hashes = vec![SecretHash {
                    hash: flows::secret_hash(&self.key().await?, &secret),
                    valid_until: None,
                }];
                // The newest previous secret keeps working through the overlap (a revoked
                // trigger has none); older ones end now.
                if t.status != TriggerStatus::Revoked {
                    if let Some(prev) = t.secret_hashes.iter().find(|h| h.valid_until.is_none()) {
                        hashes.push(SecretHash {
                            hash: prev.hash.clone(),
                            valid_until: Some(until),
                        });
                    }
                }
                let status = match t.status {
                    TriggerStatus::Revoked => TriggerStatus::Active,
                    s => s,
                };
                self.flows
                    .update_state(&t.trigger_id, status, &hashes)
                    .await
                    .map_err(internal)?;
                Ok(http::json(
                    200,
                    &SecretRotated {
                        webhook: self.setup(&t, &secret),
                        previous_secret_valid_until: rfc3339(until),
                    },
                ))
            }
            "POST /flows/triggers/{id}/revoke" => {
                let mut t = self.trigger(&merchant, &id).await?;
                t.status = TriggerStatus::Revoked;
                self.flows
                    .update_state(&t.trigger_id, t.status, &[])
                    .await
                    .map_err(internal)?;
                self.triggers.forget(&t.trigger_id);
                Ok(http::json(200, &self.view(&t).await?))
            }
            other => Err(ApiError::RouteNotFound(other.to_owned())),
        }
    }

    async fn create(
        &self,
        merchant: &MerchantId,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let body: TriggerRequest = http::json_body(req)?;
        body.validate().map_err(ApiError::InvalidSettings)?;
        let secret = new_secret();
        let trigger = FlowTrigger {
            trigger_id: new_trigger_id(),
            merchant_id: merchant.as_str().to_owned(),
            name: body.name.trim().to_owned(),
            kind: body.kind,
            brief: body.brief,
            offer: body.offer,
            settings: body.settings,
            property_set: body.property_set,
            status: TriggerStatus::Active,
            deadline_seconds: body
                .deadline_seconds
                .unwrap_or(flows::DEFAULT_DEADLINE_SECS),
            created_at: now_unix(),
            secret_hashes: vec![SecretHash {
                hash: flows::secret_hash(&self.key().await?, &secret),
                valid_until: None,
            }],
        };
        match self.flows.create(&trigger).await.map_err(internal)? {
            Created::Ok => {}
            Created::SetInUse => {
                return Err(ApiError::FlowPropertySetTaken(
                    trigger.property_set.as_str().to_owned(),
                ))
            }
        }
        tracing::info!(trigger_id = %trigger.trigger_id, kind = trigger.kind.as_str(), "flow trigger created");
        Ok(http::json(
            201,
            &TriggerCreated {
                webhook: self.setup(&trigger, &secret),
                trigger: self.view(&trigger).await?,
            },
        ))
    }

    /// The public hook. Order: the trigger (404), the secret (401), the body (422), the
    /// trigger's state and the merchant's connection (422), the replay mark, the queue (503).
    async fn hook(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let id = req
            .path_parameters
            .get("trigger_id")
            .cloned()
            .unwrap_or_default();
        if !flows::is_trigger_id(&id) {
            return Err(ApiError::FlowTriggerNotFound(id.chars().take(22).collect()));
        }
        let now = now_unix();
        let key = match self.hook_key.get().await {
            Ok(k) => k.expose().to_owned(),
            Err(e) => {
                tracing::warn!(error = %e.0, "flow hook: key unavailable");
                return Err(ApiError::FlowHookUnavailable);
            }
        };
        let authorization = header(req, "authorization").unwrap_or_default();
        let mut fresh = false;
        let trigger = loop {
            let mut cached = if fresh { None } else { self.triggers.get(&id) };
            let _filling = match cached {
                Some(_) => None,
                None => {
                    let guard = self.filling.lock().await;
                    if !fresh {
                        // Filled while we waited?
                        cached = self.triggers.get(&id);
                    }
                    Some(guard)
                }
            };
            let trigger = match cached {
                Some(t) => t,
                None => match self.flows.get(&id).await {
                    Ok(t) => {
                        self.triggers.keep(id.clone(), t.clone());
                        fresh = true;
                        t
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "flow hook: trigger read failed");
                        return Err(ApiError::FlowHookUnavailable);
                    }
                },
            };
            let Some(trigger) = trigger.filter(|t| t.status != TriggerStatus::Revoked) else {
                if fresh {
                    return Err(ApiError::FlowTriggerNotFound(id));
                }
                fresh = true;
                continue;
            };
            if flows::authorized(&key, authorization, trigger.accepted_hashes(now)) {
                break trigger;
            }
            if fresh {
                return Err(ApiError::FlowHookUnauthorized);
            }
            fresh = true;
        };
        // The raw body is never logged; only the rule it broke is answered.
        let raw = http::body_bytes(req)
            .map_err(|_| ApiError::FlowHookBody("the body is not readable or too large".into()))?;
        let body = HookBody::parse(&raw).map_err(ApiError::FlowHookBody)?;
        if trigger.status == TriggerStatus::Paused {
            self.count(&id, now, counter::PAUSED).await;
            return Err(ApiError::FlowTriggerPaused);
        }
        let merchant = MerchantId::parse(&trigger.merchant_id).map_err(internal)?;
        let mut cached = self.connected.get(&trigger.merchant_id);
        let _filling = match cached {
            Some(_) => None,
            None => {
                let guard = self.filling.lock().await;
                cached = self.connected.get(&trigger.merchant_id);
                Some(guard)
            }
        };
        let connected = match cached {
            Some(c) => c,
            None => match self.store.klaviyo(&merchant).await {
                Ok(c) => {
                    let c = c.is_some_and(|c| c.status == ConnectionStatus::Connected);
                    self.connected.keep(trigger.merchant_id.clone(), c);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "flow hook: connection read failed");
                    return Err(ApiError::FlowHookUnavailable);
                }
            },
        };
        drop(_filling);
        if !connected {
            return Err(ApiError::FlowMerchantNotConnected);
        }
        let job = FlowJob {
            trigger_id: id.clone(),
            merchant_id: trigger.merchant_id.clone(),
            profile_id: body.profile_id.clone(),
            event_id: body.event_id.clone(),
            received_at_ms: now_ms(),
        };
        let sent = match shared::faults::point(self.config.fault_scope.as_deref(), "hook.enqueue") {
            Err(crash) => Err(crash.to_string()),
            Ok(()) => self
                .queue
                .send_with(&job, Some(merchant.as_str()), 0)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = sent {
            // Not queued: Klaviyo retries a 503. (Replays are recognised by the worker, which
            // marks (trigger, profile, event) before it generates: a delivery whose answer was
            // lost and is sent again makes one generation.)
            tracing::warn!(error = %e, "flow hook: job not queued; asking for a retry");
            return Err(ApiError::FlowHookUnavailable);
        }
        Ok(accepted("accepted"))
    }

    async fn count(&self, trigger_id: &str, now: i64, name: &str) {
        if let Err(e) = self
            .flows
            .count(trigger_id, now, &[(name.to_owned(), 1)])
            .await
        {
            tracing::warn!(error = %e, "flow counter not updated");
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn accepted(status: &str) -> ApiGatewayV2httpResponse {
    http::json(202, &json!({ "status": status }))
}

/// What the email should show: the copy, or the merchant's own words when there is none.
fn email_snippet(t: &FlowTrigger) -> String {
    let set = &t.property_set;
    format!(
        "{{{{ person|lookup:'{}'|default:'Your usual paragraph here' }}}}",
        set.key("body")
    )
}

#[async_trait]
impl Function for Handler {
    async fn invoke(&self, event: Value) -> Result<Value, FunctionError> {
        let req: ApiGatewayV2httpRequest = parse_event(event, "API Gateway HTTP API")?;
        Ok(serde_json::to_value(http::respond(
            self.handle_http(&req).await,
        ))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_and_trigger_id_have_their_shapes() {
        let s = new_secret();
        assert!(s.starts_with("sph_") && s.len() > 40);
        assert!(flows::is_trigger_id(&new_trigger_id()));
        assert_ne!(new_secret(), new_secret());
    }
}
