//! template.yaml, read the way SAM and CloudFormation read it: functions with their events and
//! environment, tables, queues, secrets, parameters and conditions. Nothing here talks to AWS;
//! [`crate::provision`] turns the declarations into moto resources and [`crate::intrinsics`]
//! resolves `!Ref`, `!GetAtt`, `!Sub`, `!If`... against them.

use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

use crate::error::StackError;

/// The parsed template. `raw` keeps the whole document for anything not modelled here.
#[derive(Clone, Debug)]
pub struct Template {
    pub raw: Value,
    pub parameters: BTreeMap<String, ParameterDef>,
    pub conditions: Mapping,
    /// Every resource by logical id (type, properties, metadata) in document order.
    pub resources: BTreeMap<String, ResourceDef>,
    pub functions: BTreeMap<String, FunctionDef>,
    pub tables: BTreeMap<String, TableDef>,
    pub queues: BTreeMap<String, QueueDef>,
    /// `AWS::Serverless::HttpApi` resources by logical id.
    pub http_apis: BTreeMap<String, HttpApiDef>,
}

#[derive(Clone, Debug)]
pub struct ParameterDef {
    pub default: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ResourceDef {
    pub kind: String,
    pub properties: Value,
    pub metadata: Value,
}

#[derive(Clone, Debug)]
pub struct FunctionDef {
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary`: the crate (and binary) implementing the function.
    pub binary: Option<String>,
    /// Globals.Function.Environment.Variables overlaid with the function's own, unresolved.
    pub environment: BTreeMap<String, Value>,
    /// `Timeout` in seconds (function, else Globals, else Lambda's default of 3).
    pub timeout_secs: u64,
    /// `ReservedConcurrentExecutions`: at most this many containers of the function at once.
    pub reserved_concurrency: Option<u32>,
    pub http_routes: Vec<HttpRouteDef>,
    pub sqs: Vec<SqsMappingDef>,
    pub schedules: Vec<ScheduleDef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteAuth {
    /// `Auth.Authorizer: NONE`, or the API has no default authorizer and the route names none.
    Public,
    /// The JWT authorizer applies; when `scopes` is non-empty the token needs one of them.
    Jwt {
        authorizer: Option<String>,
        scopes: Vec<String>,
    },
}

#[derive(Clone, Debug)]
pub struct HttpRouteDef {
    pub event_name: String,
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// `/connections/{vendor}`; `{proxy+}` greedy segments allowed.
    pub path: String,
    pub auth: RouteAuth,
    pub api_id: Option<String>,
}

impl HttpRouteDef {
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Clone, Debug)]
pub struct SqsMappingDef {
    pub event_name: String,
    /// Logical id of the queue (`Queue: !GetAtt X.Arn`).
    pub queue: String,
    pub batch_size: u32,
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`.
    pub maximum_concurrency: Option<u32>,
    pub enabled: bool,
}

#[derive(Clone, Debug)]
pub struct ScheduleDef {
    pub event_name: String,
    /// `rate(1 day)` or `cron(...)`.
    pub expression: String,
    /// `Input`: a JSON text that replaces the scheduled event, as EventBridge does.
    pub input: Option<serde_json::Value>,
    pub enabled: bool,
    /// The rule's `Name` (may be an intrinsic); SAM names it after `{function}{event}` otherwise.
    pub name: Option<Value>,
}

#[derive(Clone, Debug)]
pub struct TableDef {
    pub logical_id: String,
    pub properties: Value,
}

#[derive(Clone, Debug)]
pub struct QueueDef {
    pub logical_id: String,
    pub properties: Value,
}

#[derive(Clone, Debug)]
pub struct HttpApiDef {
    pub default_authorizer: Option<String>,
    pub properties: Value,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, StackError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StackError::Template(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, StackError> {
        let raw: Value = serde_yaml::from_str(text)
            .map_err(|e| StackError::Template(format!("template.yaml is not YAML: {e}")))?;
        let parameters = mapping(&raw, "Parameters")
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str()?.to_owned();
                let default = v.get("Default").and_then(scalar_string);
                Some((name, ParameterDef { default }))
            })
            .collect();
        let conditions = mapping(&raw, "Conditions").clone();
        let globals_function = raw
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Value::Null);

        let mut resources = BTreeMap::new();
        for (k, v) in mapping(&raw, "Resources") {
            let Some(id) = k.as_str() else { continue };
            let kind = v
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            resources.insert(
                id.to_owned(),
                ResourceDef {
                    kind,
                    properties: v.get("Properties").cloned().unwrap_or(Value::Null),
                    metadata: v.get("Metadata").cloned().unwrap_or(Value::Null),
                },
            );
        }
        if resources.is_empty() {
            return Err(StackError::Template(
                "template.yaml declares no Resources".into(),
            ));
        }

        let mut http_apis = BTreeMap::new();
        for (id, r) in &resources {
            if r.kind == "AWS::Serverless::HttpApi" {
                let default_authorizer = r
                    .properties
                    .get("Auth")
                    .and_then(|a| a.get("DefaultAuthorizer"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                http_apis.insert(
                    id.clone(),
                    HttpApiDef {
                        default_authorizer,
                        properties: r.properties.clone(),
                    },
                );
            }
        }

        let mut functions = BTreeMap::new();
        let mut tables = BTreeMap::new();
        let mut queues = BTreeMap::new();
        for (id, r) in &resources {
            match r.kind.as_str() {
                "AWS::Serverless::Function" => {
                    functions.insert(
                        id.clone(),
                        parse_function(id, r, &globals_function, &http_apis)?,
                    );
                }
                "AWS::DynamoDB::Table" => {
                    tables.insert(
                        id.clone(),
                        TableDef {
                            logical_id: id.clone(),
                            properties: r.properties.clone(),
                        },
                    );
                }
                "AWS::SQS::Queue" => {
                    queues.insert(
                        id.clone(),
                        QueueDef {
                            logical_id: id.clone(),
                            properties: r.properties.clone(),
                        },
                    );
                }
                _ => {}
            }
        }
        for f in functions.values() {
            for m in &f.sqs {
                if !queues.contains_key(&m.queue) {
                    return Err(StackError::Template(format!(
                        "{}.{} polls {}, which is not an AWS::SQS::Queue of the template",
                        f.logical_id, m.event_name, m.queue
                    )));
                }
            }
        }
        Ok(Self {
            raw,
            parameters,
            conditions,
            resources,
            functions,
            tables,
            queues,
            http_apis,
        })
    }

    pub fn function(&self, logical_id: &str) -> Option<&FunctionDef> {
        self.functions.get(logical_id)
    }
}

fn parse_function(
    id: &str,
    r: &ResourceDef,
    globals: &Value,
    apis: &BTreeMap<String, HttpApiDef>,
) -> Result<FunctionDef, StackError> {
    let props = &r.properties;
    let binary = r
        .metadata
        .get("BuildProperties")
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut environment = BTreeMap::new();
    for source in [globals, props] {
        let vars = source.get("Environment").and_then(|e| e.get("Variables"));
        if let Some(Value::Mapping(vars)) = vars {
            for (k, v) in vars {
                if let Some(k) = k.as_str() {
                    environment.insert(k.to_owned(), v.clone());
                }
            }
        }
    }
    let timeout_secs = props
        .get("Timeout")
        .or_else(|| globals.get("Timeout"))
        .and_then(Value::as_u64)
        .unwrap_or(3);
    let reserved_concurrency = props
        .get("ReservedConcurrentExecutions")
        .and_then(Value::as_u64)
        .map(|n| n as u32);

    let mut http_routes = Vec::new();
    let mut sqs = Vec::new();
    let mut schedules = Vec::new();
    if let Some(Value::Mapping(events)) = props.get("Events") {
        for (name, event) in events {
            let name = name.as_str().unwrap_or_default().to_owned();
            let kind = event
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let p = event.get("Properties").cloned().unwrap_or(Value::Null);
            let bad = |what: &str| StackError::Template(format!("{id}.Events.{name}: {what}"));
            match kind {
                "HttpApi" => {
                    let method = p
                        .get("Method")
                        .and_then(Value::as_str)
                        .unwrap_or("ANY")
                        .to_ascii_uppercase();
                    let method = if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" || method == "*" {
                        "ANY".into()
                    } else {
                        method
                    };
                    let path = p
                        .get("Path")
                        .and_then(Value::as_str)
                        .unwrap_or("$default")
                        .to_owned();
                    let api_id = p.get("ApiId").and_then(crate::intrinsics::ref_target);
                    let api = api_id.as_deref().and_then(|a| apis.get(a));
                    let auth = p.get("Auth");
                    let named = auth
                        .and_then(|a| a.get("Authorizer"))
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    let scopes: Vec<String> = auth
                        .and_then(|a| a.get("AuthorizationScopes"))
                        .and_then(Value::as_sequence)
                        .map(|s| s.iter().filter_map(scalar_string).collect())
                        .unwrap_or_default();
                    let auth = match named.as_deref() {
                        Some("NONE") => RouteAuth::Public,
                        Some(a) => RouteAuth::Jwt {
                            authorizer: Some(a.to_owned()),
                            scopes,
                        },
                        // An API declared without a DefaultAuthorizer leaves unnamed routes open,
                        // as API Gateway does; an API we cannot see is assumed protected.
                        None => match api {
                            Some(api) if api.default_authorizer.is_none() => RouteAuth::Public,
                            Some(api) => RouteAuth::Jwt {
                                authorizer: api.default_authorizer.clone(),
                                scopes,
                            },
                            None => RouteAuth::Jwt {
                                authorizer: None,
                                scopes,
                            },
                        },
                    };
                    http_routes.push(HttpRouteDef {
                        event_name: name,
                        method,
                        path,
                        auth,
                        api_id,
                    });
                }
                "SQS" => {
                    let queue = p
                        .get("Queue")
                        .and_then(crate::intrinsics::ref_target)
                        .ok_or_else(|| bad("Queue must be !GetAtt <Queue>.Arn or !Ref <Queue>"))?;
                    let batch_size =
                        p.get("BatchSize").and_then(Value::as_u64).unwrap_or(10) as u32;
                    let report_batch_item_failures = p
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .is_some_and(|s| {
                            s.iter()
                                .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                        });
                    let maximum_concurrency = p
                        .get("ScalingConfig")
                        .and_then(|s| s.get("MaximumConcurrency"))
                        .and_then(Value::as_u64)
                        .map(|n| n as u32);
                    let enabled = p.get("Enabled").and_then(Value::as_bool).unwrap_or(true);
                    sqs.push(SqsMappingDef {
                        event_name: name,
                        queue,
                        batch_size,
                        report_batch_item_failures,
                        maximum_concurrency,
                        enabled,
                    });
                }
                "Schedule" | "ScheduleV2" => {
                    let expression = p
                        .get("Schedule")
                        .or_else(|| p.get("ScheduleExpression"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("Schedule expression missing"))?
                        .to_owned();
                    let input = match p.get("Input") {
                        Some(Value::String(text)) => Some(
                            serde_json::from_str(text)
                                .map_err(|e| bad(&format!("Input is not JSON: {e}")))?,
                        ),
                        _ => None,
                    };
                    let enabled = p.get("Enabled").and_then(Value::as_bool).unwrap_or(true)
                        && p.get("State").and_then(Value::as_str) != Some("DISABLED");
                    let rule = p.get("Name").cloned();
                    schedules.push(ScheduleDef {
                        event_name: name,
                        expression,
                        input,
                        enabled,
                        name: rule,
                    });
                }
                _ => {}
            }
        }
    }
    Ok(FunctionDef {
        logical_id: id.to_owned(),
        binary,
        environment,
        timeout_secs,
        reserved_concurrency,
        http_routes,
        sqs,
        schedules,
    })
}

fn mapping<'a>(v: &'a Value, key: &str) -> &'a Mapping {
    static EMPTY: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
    v.get(key)
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| EMPTY.get_or_init(Mapping::new))
}

/// A YAML scalar as CloudFormation sees it: a string.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `rate(5 minutes)` → 300 s. `cron(...)` is not interpreted (returns None).
pub fn rate_interval(expression: &str) -> Option<std::time::Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let mut parts = inner.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    let secs = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n * secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Rev: { Type: String, Default: "2026-07-15" }
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        APP_TABLE: !Ref AppTable
        REV: !Ref Rev
Resources:
  HttpApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Cognito
  AppTable:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{ AttributeName: pk, KeyType: HASH }]
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: f-bin } }
    Properties:
      Timeout: 60
      Environment: { Variables: { EXTRA: x } }
      Events:
        Get: { Type: HttpApi, Properties: { ApiId: !Ref HttpApi, Method: get, Path: "/things/{id}" } }
        Doc: { Type: HttpApi, Properties: { ApiId: !Ref HttpApi, Method: GET, Path: /doc, Auth: { Authorizer: NONE } } }
        Poll: { Type: SQS, Properties: { Queue: !GetAtt Q.Arn, BatchSize: 5, FunctionResponseTypes: [ReportBatchItemFailures] } }
        Tick: { Type: Schedule, Properties: { Schedule: rate(1 day) } }
"#;

    #[test]
    fn reads_functions_events_and_merged_environment() {
        let t = Template::parse(TEMPLATE).unwrap();
        let f = t.function("F").unwrap();
        assert_eq!(f.binary.as_deref(), Some("f-bin"));
        assert_eq!(f.timeout_secs, 60);
        assert_eq!(
            f.environment.keys().collect::<Vec<_>>(),
            vec!["APP_TABLE", "EXTRA", "REV"]
        );
        let get = f
            .http_routes
            .iter()
            .find(|r| r.event_name == "Get")
            .unwrap();
        assert_eq!(get.route_key(), "GET /things/{id}");
        assert_eq!(
            get.auth,
            RouteAuth::Jwt {
                authorizer: Some("Cognito".into()),
                scopes: vec![]
            }
        );
        assert_eq!(
            f.http_routes
                .iter()
                .find(|r| r.event_name == "Doc")
                .unwrap()
                .auth,
            RouteAuth::Public
        );
        assert_eq!(f.sqs[0].queue, "Q");
        assert_eq!(f.sqs[0].batch_size, 5);
        assert!(f.sqs[0].report_batch_item_failures);
        assert_eq!(f.schedules[0].expression, "rate(1 day)");
        assert!(t.tables.contains_key("AppTable") && t.queues.contains_key("Q"));
    }

    #[test]
    fn sqs_event_on_an_undeclared_queue_is_rejected() {
        let bad = TEMPLATE.replace("!GetAtt Q.Arn", "!GetAtt Nope.Arn");
        assert!(Template::parse(&bad).is_err());
    }

    #[test]
    fn rate_expressions_become_intervals() {
        assert_eq!(
            rate_interval("rate(1 day)"),
            Some(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(
            rate_interval("rate(5 minutes)"),
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(rate_interval("cron(0 12 * * ? *)"), None);
    }
}
