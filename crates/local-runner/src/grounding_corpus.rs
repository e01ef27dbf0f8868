//! The labelled grounding corpus (`tests/grounding/`) put through the real preview API: each
//! world becomes a merchant with its own Shopify shop (the world's products, in its currency)
//! and its customers in Klaviyo with their orders; each case's copy is what the sandbox's model
//! answers (a scripted tool output), for the case's customer and the others sharing the
//! request. A defect is caught when the preview does not pass the customer's copy.
//!
//! Shared by `tests/e2e/grounding.rs` (which holds the targets) and `make bench` (which prints
//! the confusion table).

use crate::LocalStack;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Slot limits every corpus case was written for.
const SETTINGS_SLOTS: (u16, u16, u16, u8) = (60, 100, 500, 3);

/// What happened to one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub id: String,
    pub language: String,
    pub defect: bool,
    pub kind: String,
    /// The customer's copy passed the gate (would be written).
    pub passed: bool,
    /// The findings of the last attempt, for reports.
    pub findings: Vec<String>,
}

impl CaseResult {
    /// Whether the gate was right: a defect stopped, clean copy passed.
    pub fn right(&self) -> bool {
        self.passed != self.defect
    }
}

/// Counts over the corpus.
#[derive(Clone, Debug, Default)]
pub struct Confusion {
    pub results: Vec<CaseResult>,
}

impl Confusion {
    fn share(&self, keep: impl Fn(&CaseResult) -> bool) -> (usize, usize) {
        let cases: Vec<&CaseResult> = self.results.iter().filter(|r| keep(r)).collect();
        (cases.iter().filter(|r| r.right()).count(), cases.len())
    }

    /// Defects caught ÷ defects.
    pub fn recall(&self) -> f64 {
        ratio(self.share(|r| r.defect))
    }

    /// Recall for the given defect kinds.
    pub fn recall_of(&self, kinds: &[&str]) -> f64 {
        ratio(self.share(|r| r.defect && kinds.contains(&r.kind.as_str())))
    }

    /// Clean cases rejected ÷ clean cases.
    pub fn false_rejections(&self) -> f64 {
        1.0 - ratio(self.share(|r| !r.defect))
    }

    /// `{"by_language": {"de": {"defects": n, "caught": n, "clean": n, "rejected": n}}, "by_kind": …}`.
    pub fn table(&self) -> Value {
        let mut by_language: BTreeMap<String, [usize; 4]> = BTreeMap::new();
        let mut by_kind: BTreeMap<String, [usize; 2]> = BTreeMap::new();
        for r in &self.results {
            let l = by_language.entry(r.language.clone()).or_default();
            if r.defect {
                l[0] += 1;
                l[1] += usize::from(r.right());
            } else {
                l[2] += 1;
                l[3] += usize::from(!r.right());
            }
            let k = by_kind
                .entry(format!(
                    "{}:{}",
                    if r.defect { "defect" } else { "clean" },
                    r.kind
                ))
                .or_default();
            k[0] += 1;
            k[1] += usize::from(r.right());
        }
        json!({
            "by_language": by_language.iter().map(|(l, c)| (l.clone(), json!({
                "defects": c[0], "caught": c[1], "clean": c[2], "rejected": c[3],
            }))).collect::<serde_json::Map<_, _>>(),
            "by_kind": by_kind.iter().map(|(k, c)| (k.clone(), json!({
                "cases": c[0], "right": c[1],
            }))).collect::<serde_json::Map<_, _>>(),
        })
    }

    pub fn wrong(&self) -> Vec<&CaseResult> {
        self.results.iter().filter(|r| !r.right()).collect()
    }
}

fn ratio((right, all): (usize, usize)) -> f64 {
    if all == 0 {
        1.0
    } else {
        right as f64 / all as f64
    }
}

/// Where the corpus lives in the repository.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/grounding")
}

pub fn load() -> (Vec<Value>, Vec<Value>) {
    let dir = corpus_dir();
    let worlds: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("worlds.json")).expect("tests/grounding/worlds.json"),
    )
    .expect("worlds.json is JSON");
    let cases = std::fs::read_to_string(dir.join("corpus.jsonl"))
        .expect("tests/grounding/corpus.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a corpus line is JSON"))
        .collect();
    (worlds, cases)
}

/// A world set up on the stack: its merchant, and each customer's Klaviyo id and candidates
/// (product titles in ref order, as the preview shows them).
struct Shop {
    token: String,
    profile_ids: BTreeMap<String, String>,
    candidates: BTreeMap<String, Vec<String>>,
    first_names: BTreeMap<String, Option<String>>,
}

/// The stack the corpus runs on: 320 previews are counted, not timed, so Bedrock's quota (ours
/// and the sandbox's) is set out of the way; everything else as configured.
pub fn stack_options(options: &mut crate::StackOptions) {
    options.sandbox.bedrock_tpm = 1_000_000_000;
    options.sandbox.bedrock_rpm = 1_000_000;
    options
        .parameters
        .insert("BedrockTokensPerMinute".into(), "1000000000".into());
    options
        .parameters
        .insert("BedrockRequestsPerMinute".into(), "1000000".into());
}

pub struct Runner<'s> {
    stack: &'s LocalStack,
    http: reqwest::Client,
}

impl<'s> Runner<'s> {
    pub fn new(stack: &'s LocalStack) -> Self {
        Self {
            stack,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn sandbox(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{}", self.stack.sandbox.base_url, path))
            .json(&body)
            .send()
            .await
            .expect("the sandbox answers");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "sandbox {path}: {status} {body}");
        body
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{}", self.stack.api_url, path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("the local API answers");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// The world's shop, merchant, settings and customers.
    async fn set_up(&self, world: &Value) -> Shop {
        let language = world["language"].as_str().expect("language");
        let sub = format!("corpus-{language}");
        let shop = format!("corpus-{language}.myshopify.com");
        let catalog: Vec<Value> = world["products"]
            .as_array()
            .expect("products")
            .iter()
            .map(|p| {
                json!({
                    "title": p["title"], "price": p["price"], "description": p["description"],
                    "product_type": p["product_type"], "vendor": world["shop"],
                })
            })
            .collect();
        let created = self
            .sandbox(
                reqwest::Method::POST,
                "/_sandbox/shopify/shops",
                json!({ "shop": shop, "catalog": catalog, "currency": world["currency"] }),
            )
            .await;
        let ids: BTreeMap<String, String> = world["products"]
            .as_array()
            .unwrap()
            .iter()
            .zip(created["catalog"].as_array().expect("the created catalog"))
            .map(|(p, c)| {
                (
                    p["key"].as_str().unwrap().to_owned(),
                    c["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();

        // A Klaviyo account per world: each has its own rate limits, as merchants do.
        let account = format!("corpus{language}");
        self.sandbox(
            reqwest::Method::POST,
            "/_sandbox/klaviyo/accounts",
            json!({ "id": account, "name": world["shop"] }),
        )
        .await;
        let key = self
            .sandbox(
                reqwest::Method::POST,
                "/_sandbox/klaviyo/keys",
                json!({ "account": account, "scopes": shared::klaviyo::limits::SCOPES }),
            )
            .await["key"]
            .as_str()
            .expect("a key")
            .to_owned();
        let token = self.stack.token(&sub).await;
        self.stack
            .connect_merchant(&self.http, &token, Some(&key), &shop)
            .await
            .expect("the merchant connects");

        let (subject, preheader, body, products) = SETTINGS_SLOTS;
        let mut settings = self
            .api(reqwest::Method::GET, "/settings", &token, Value::Null)
            .await;
        settings["language"] = json!(language);
        settings["sign_off"] = json!("");
        settings["slots"] = json!({
            "subject": { "max_chars": subject }, "preheader": { "max_chars": preheader },
            "body": { "max_chars": body }, "products": products,
        });
        self.api(reqwest::Method::PUT, "/settings", &token, settings)
            .await;

        let customers = world["customers"].as_array().expect("customers");
        let products = world["products"].as_array().unwrap();
        let profiles: Vec<Value> = customers
            .iter()
            .map(|c| {
                let orders: Vec<Value> = c["purchases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|key| {
                        let p = products.iter().find(|p| &p["key"] == key).unwrap();
                        json!({
                            "product_id": ids[key.as_str().unwrap()], "title": p["title"],
                            "price": p["price"], "product_type": p["product_type"], "days_ago": 30,
                        })
                    })
                    .collect();
                json!({
                    "first_name": c["first_name"], "last_name": c["last_name"],
                    "email": format!("{}.{}@corpus.example", c["key"].as_str().unwrap(), language),
                    "orders": orders,
                })
            })
            .collect();
        let made = self
            .sandbox(
                reqwest::Method::POST,
                &format!("/_sandbox/klaviyo/accounts/{account}/profiles"),
                json!({ "profiles": profiles, "currency": world["currency"] }),
            )
            .await;
        let profile_ids: BTreeMap<String, String> = customers
            .iter()
            .zip(made["profiles"].as_array().expect("profiles made"))
            .map(|(c, p)| {
                (
                    c["key"].as_str().unwrap().to_owned(),
                    p["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();

        Shop {
            token,
            profile_ids,
            candidates: BTreeMap::new(),
            first_names: customers
                .iter()
                .map(|c| {
                    (
                        c["key"].as_str().unwrap().to_owned(),
                        c["first_name"].as_str().map(str::to_owned),
                    )
                })
                .collect(),
        }
    }

    /// The candidates each customer gets, in ref order: one preview with the ordinary model,
    /// once the shop's catalog is synced.
    async fn discover(&self, mut shop: Shop) -> Shop {
        let (token, profile_ids) = (&shop.token, &shop.profile_ids);
        let all: Vec<&String> = profile_ids.values().collect();
        let preview = self
            .api(
                reqwest::Method::POST,
                "/preview",
                token,
                json!({ "brief": "Candidates", "profiles": all }),
            )
            .await;
        let mut candidates = BTreeMap::new();
        for p in preview["profiles"].as_array().expect("previewed") {
            let key = profile_ids
                .iter()
                .find(|(_, id)| p["profile_id"].as_str() == Some(id.as_str()))
                .map(|(k, _)| k.clone())
                .expect("a previewed customer");
            let titles = p["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["title"].as_str().unwrap().to_owned())
                .collect();
            candidates.insert(key, titles);
        }
        shop.candidates = candidates;
        shop
    }

    /// Every case of the corpus through the preview: the worlds side by side (each merchant's
    /// scripted answers are tied to its own products), each world's cases one after another.
    pub async fn run(&self) -> Confusion {
        let (worlds, cases) = load();
        let shops = futures::future::join_all(worlds.iter().map(|w| self.set_up(w))).await;
        let started = std::time::Instant::now();
        self.stack
            .drain(Duration::from_secs(300))
            .await
            .expect("the catalog syncs settle");
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "corpus catalogs synced"
        );
        let per_world = futures::future::join_all(worlds.iter().zip(shops).map(|(world, shop)| {
            let cases: Vec<&Value> = cases
                .iter()
                .filter(|c| c["world"] == world["language"])
                .collect();
            async move {
                let started = std::time::Instant::now();
                let shop = self.discover(shop).await;
                let mut results = Vec::new();
                for case in cases {
                    results.push(self.case(world, &shop, case).await);
                }
                tracing::info!(
                    world = %world["language"],
                    cases = results.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "corpus world done"
                );
                results
            }
        }))
        .await;
        Confusion {
            results: per_world.into_iter().flatten().collect(),
        }
    }

    async fn case(&self, world: &Value, shop: &Shop, case: &Value) -> CaseResult {
        let target = case["customer"].as_str().expect("customer").to_owned();
        let mut keys = vec![target.clone()];
        keys.extend(
            case["others"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.as_str().map(str::to_owned)),
        );
        let refs_of = |key: &str, titles: &[String]| -> Vec<String> {
            titles
                .iter()
                .map(|t| {
                    shop.candidates[key]
                        .iter()
                        .position(|c| c == t)
                        .map_or("P9".to_owned(), |i| format!("P{}", i + 1))
                })
                .collect()
        };
        let copy = &case["copy"];
        let titles: Vec<String> = copy["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        let mut entries = vec![json!({
            "profile_ref": "C1", "subject": copy["subject"], "preheader": copy["preheader"],
            "body": copy["body"], "products": refs_of(&target, &titles),
        })];
        let filler = &world["filler_copy"];
        for (i, other) in keys.iter().enumerate().skip(1) {
            let product = shop.candidates[other].first().cloned().unwrap_or_default();
            let name = shop.first_names[other].clone().unwrap_or_default();
            let fill = |slot: &str| {
                filler[slot]
                    .as_str()
                    .unwrap_or_default()
                    .replace("{first_name}", &name)
                    .replace("{product}", &product)
            };
            entries.push(json!({
                "profile_ref": format!("C{}", i + 1), "subject": fill("subject"),
                "preheader": fill("preheader"), "body": fill("body"), "products": ["P1"],
            }));
        }
        // The first answer, and the same copy again for the one repair attempt; both only for
        // a request that names this customer's first candidate (a product of this world).
        let marker = shop.candidates[&target]
            .first()
            .cloned()
            .unwrap_or_default();
        let repair = json!({ "copies": [entries[0].clone()] });
        self.sandbox(
            reqwest::Method::POST,
            "/_sandbox/bedrock/script",
            json!({ "outputs": [
                { "input": { "copies": entries }, "when_prompt_contains": marker },
                { "input": repair, "when_prompt_contains": marker },
            ] }),
        )
        .await;
        let profiles: Vec<&String> = keys.iter().map(|k| &shop.profile_ids[k]).collect();
        let asked = std::time::Instant::now();
        let preview = self
            .api(
                reqwest::Method::POST,
                "/preview",
                &shop.token,
                json!({ "brief": case["brief"], "offer": case["offer"], "profiles": profiles }),
            )
            .await;
        tracing::debug!(case = %case["id"], ms = asked.elapsed().as_millis() as u64, "corpus case");
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("when_prompt_contains", &marker)
            .finish();
        self.sandbox(
            reqwest::Method::DELETE,
            &format!("/_sandbox/bedrock/script?{query}"),
            json!({}),
        )
        .await;
        let mine = preview["profiles"]
            .as_array()
            .expect("previewed profiles")
            .iter()
            .find(|p| p["profile_id"].as_str() == Some(shop.profile_ids[&target].as_str()))
            .expect("the case's customer is previewed");
        CaseResult {
            id: case["id"].as_str().unwrap_or_default().to_owned(),
            language: case["language"].as_str().unwrap_or_default().to_owned(),
            defect: case["label"] == "defect",
            kind: case["kind"].as_str().unwrap_or_default().to_owned(),
            passed: mine["outcome"] == "written",
            findings: mine["grounding"]["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .chain(mine["reason"].as_str().map(|r| format!("reason: {r}")))
                .collect(),
        }
    }
}
