//! Creates the template's tables, queues and secrets in moto, names prefixed so parallel stacks
//! share one moto. Only what template.yaml declares is created, with its key schema, indexes,
//! TTL, visibility timeout and redrive policy, so local and deployed cannot drift.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml::Value;
use std::collections::HashMap;

use crate::error::{aws_message, StackError};
use crate::intrinsics::{Resolver, ACCOUNT_ID};
use crate::resources::{Physical, ResourceKind, Resources};
use crate::template::{scalar_string, Template};

pub(crate) struct Provisioner<'a> {
    pub template: &'a Template,
    pub aws: &'a shared::aws::Aws,
    pub prefix: &'a str,
    pub region: &'a str,
    pub parameters: &'a HashMap<String, String>,
}

impl Provisioner<'_> {
    pub async fn run(&self) -> Result<Resources, StackError> {
        let mut resources = Resources::default();
        for (id, r) in &self.template.resources {
            resources.insert(
                id,
                Resources::placeholder(self.prefix, id, &r.kind, self.region),
            );
        }
        let ddb = self.aws.dynamodb();
        let tables = self
            .template
            .tables
            .values()
            .map(|t| self.create_table(&ddb, &t.logical_id, &t.properties));
        for (id, physical) in futures::future::try_join_all(tables).await? {
            resources.insert(&id, physical);
        }
        self.create_queues(&mut resources).await?;
        self.create_secrets(&mut resources).await?;
        self.create_user_pools(&mut resources).await?;
        Ok(resources)
    }

    fn physical_name(&self, id: &str, properties: &Value, key: &str) -> String {
        let declared = properties.get(key).and_then(scalar_string);
        format!(
            "{}{}",
            self.prefix,
            declared.unwrap_or_else(|| id.to_owned())
        )
    }

    async fn create_table(
        &self,
        ddb: &aws_sdk_dynamodb::Client,
        id: &str,
        p: &Value,
    ) -> Result<(String, Physical), StackError> {
        let name = self.physical_name(id, p, "TableName");
        let fail = |message: String| StackError::Provision {
            resource: format!("table {id}"),
            message,
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| fail(e.to_string());

        let mut req = ddb.create_table().table_name(&name);
        for a in seq(p, "AttributeDefinitions") {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(str_of(a, "AttributeName"))
                    .attribute_type(ScalarAttributeType::from(
                        str_of(a, "AttributeType").as_str(),
                    ))
                    .build()
                    .map_err(build)?,
            );
        }
        req = req.set_key_schema(Some(key_schema(p).map_err(build)?));
        let provisioned = p.get("BillingMode").and_then(Value::as_str) == Some("PROVISIONED")
            || (p.get("BillingMode").is_none() && p.get("ProvisionedThroughput").is_some());
        if provisioned {
            req = req
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(throughput(p.get("ProvisionedThroughput")).map_err(build)?);
        } else {
            req = req.billing_mode(BillingMode::PayPerRequest);
        }
        for g in seq(p, "GlobalSecondaryIndexes") {
            let mut index = GlobalSecondaryIndex::builder()
                .index_name(str_of(g, "IndexName"))
                .set_key_schema(Some(key_schema(g).map_err(build)?))
                .projection(projection(g));
            if provisioned {
                index = index.provisioned_throughput(
                    throughput(g.get("ProvisionedThroughput")).map_err(build)?,
                );
            }
            req = req.global_secondary_indexes(index.build().map_err(build)?);
        }
        for l in seq(p, "LocalSecondaryIndexes") {
            req = req.local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(str_of(l, "IndexName"))
                    .set_key_schema(Some(key_schema(l).map_err(build)?))
                    .projection(projection(l))
                    .build()
                    .map_err(build)?,
            );
        }
        if let Some(view) = p
            .get("StreamSpecification")
            .and_then(|s| s.get("StreamViewType"))
            .and_then(Value::as_str)
        {
            req = req.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(view))
                    .build()
                    .map_err(build)?,
            );
        }
        let created = req.send().await.map_err(|e| fail(aws_message(&e)))?;
        let arn = created
            .table_description()
            .and_then(|d| d.table_arn())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!("arn:aws:dynamodb:{}:{ACCOUNT_ID}:table/{name}", self.region)
            });

        if let Some(ttl) = p.get("TimeToLiveSpecification") {
            let enabled = ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
            if enabled {
                ddb.update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(str_of(ttl, "AttributeName"))
                            .enabled(true)
                            .build()
                            .map_err(build)?,
                    )
                    .send()
                    .await
                    .map_err(|e| fail(aws_message(&e)))?;
            }
        }
        Ok((
            id.to_owned(),
            Physical {
                kind: ResourceKind::Table,
                name,
                arn,
                url: None,
            },
        ))
    }

    /// Queues in dependency order: a queue whose RedrivePolicy targets another is created after it.
    async fn create_queues(&self, resources: &mut Resources) -> Result<(), StackError> {
        let sqs = self.aws.sqs();
        let mut pending: Vec<_> = self.template.queues.values().collect();
        let mut done: Vec<String> = Vec::new();
        while !pending.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|q| {
                q.properties
                    .get("RedrivePolicy")
                    .and_then(|r| r.get("deadLetterTargetArn"))
                    .and_then(crate::intrinsics::ref_target)
                    .is_none_or(|target| {
                        done.contains(&target) || !self.template.queues.contains_key(&target)
                    })
            });
            if ready.is_empty() {
                return Err(StackError::Template(
                    "queues' RedrivePolicy targets form a cycle".into(),
                ));
            }
            for q in ready {
                let physical = self
                    .create_queue(&sqs, &q.logical_id, &q.properties, resources)
                    .await?;
                resources.insert(&q.logical_id, physical);
                done.push(q.logical_id.clone());
            }
            pending = waiting;
        }
        Ok(())
    }

    async fn create_queue(
        &self,
        sqs: &aws_sdk_sqs::Client,
        id: &str,
        p: &Value,
        resources: &Resources,
    ) -> Result<Physical, StackError> {
        let fail = |message: String| StackError::Provision {
            resource: format!("queue {id}"),
            message,
        };
        let mut name = self.physical_name(id, p, "QueueName");
        let fifo = p.get("FifoQueue").and_then(Value::as_bool).unwrap_or(false);
        if fifo && !name.ends_with(".fifo") {
            name.push_str(".fifo");
        }
        let resolver = Resolver {
            template: self.template,
            parameters: self.parameters,
            resources,
            region: self.region,
            stack_name: self.prefix.trim_end_matches('-'),
        };
        let mut attributes = HashMap::new();
        for (key, attr) in [
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
            ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
            (
                "ReceiveMessageWaitTimeSeconds",
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            ),
            ("FifoQueue", QueueAttributeName::FifoQueue),
            (
                "ContentBasedDeduplication",
                QueueAttributeName::ContentBasedDeduplication,
            ),
        ] {
            if let Some(v) = p.get(key) {
                if let Some(v) = resolver.resolve(v)? {
                    attributes.insert(attr, v);
                }
            }
        }
        if let Some(redrive) = p.get("RedrivePolicy") {
            let target = redrive
                .get("deadLetterTargetArn")
                .map(|v| resolver.resolve(v))
                .transpose()?
                .flatten()
                .ok_or_else(|| fail("RedrivePolicy without deadLetterTargetArn".into()))?;
            let max = redrive
                .get("maxReceiveCount")
                .and_then(scalar_string)
                .ok_or_else(|| fail("RedrivePolicy without maxReceiveCount".into()))?;
            let max: u64 = max
                .parse()
                .map_err(|_| fail(format!("maxReceiveCount {max:?} is not a number")))?;
            let policy =
                serde_json::json!({ "deadLetterTargetArn": target, "maxReceiveCount": max });
            attributes.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let created = sqs
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| fail(aws_message(&e)))?;
        let url = created
            .queue_url()
            .ok_or_else(|| fail("CreateQueue returned no URL".into()))?
            .to_owned();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| fail(aws_message(&e)))?;
        let arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_else(|| format!("arn:aws:sqs:{}:{ACCOUNT_ID}:{name}", self.region));
        Ok(Physical {
            kind: ResourceKind::Queue,
            name,
            arn,
            url: Some(url),
        })
    }

    /// `AWS::SecretsManager::Secret` resources: a literal `SecretString`, else a random value.
    async fn create_secrets(&self, resources: &mut Resources) -> Result<(), StackError> {
        let sm = self.aws.secrets();
        for (id, r) in &self.template.resources {
            if r.kind != "AWS::SecretsManager::Secret" {
                continue;
            }
            let name = self.physical_name(id, &r.properties, "Name");
            let value = r
                .properties
                .get("SecretString")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    use rand::Rng;
                    rand::thread_rng()
                        .sample_iter(rand::distributions::Alphanumeric)
                        .take(32)
                        .map(char::from)
                        .collect()
                });
            let arn = create_secret(&sm, &name, &value).await?;
            resources.insert(
                id,
                Physical {
                    kind: ResourceKind::Secret,
                    name,
                    arn,
                    url: None,
                },
            );
        }
        Ok(())
    }
}

impl Provisioner<'_> {
    /// `AWS::Cognito::UserPool` resources, so `!Ref UserPool` names a pool moto knows (the
    /// account deletion calls AdminDeleteUser on it). Sign-in itself is the sandbox issuer's.
    async fn create_user_pools(&self, resources: &mut Resources) -> Result<(), StackError> {
        use aws_sdk_cognitoidentityprovider::types::UsernameAttributeType;
        let cognito = aws_sdk_cognitoidentityprovider::Client::new(self.aws.config());
        for (id, r) in &self.template.resources {
            if r.kind != "AWS::Cognito::UserPool" {
                continue;
            }
            let name = format!("{}{id}", self.prefix);
            let attributes = seq(&r.properties, "UsernameAttributes")
                .filter_map(scalar_string)
                .map(|a| UsernameAttributeType::from(a.as_str()))
                .collect::<Vec<_>>();
            // The template's password policy, so the pool refuses what the deployed one would.
            let policy = r
                .properties
                .get("Policies")
                .and_then(|p| p.get("PasswordPolicy"));
            let number = |k: &str| policy.and_then(|p| p.get(k)).and_then(Value::as_i64);
            let flag = |k: &str| policy.and_then(|p| p.get(k)).and_then(Value::as_bool);
            let password_policy = policy.map(|_| {
                aws_sdk_cognitoidentityprovider::types::PasswordPolicyType::builder()
                    .set_minimum_length(number("MinimumLength").map(|n| n as i32))
                    .set_require_uppercase(flag("RequireUppercase"))
                    .set_require_lowercase(flag("RequireLowercase"))
                    .set_require_numbers(flag("RequireNumbers"))
                    .set_require_symbols(flag("RequireSymbols"))
                    .build()
            });
            let created = cognito
                .create_user_pool()
                .pool_name(&name)
                .set_username_attributes((!attributes.is_empty()).then_some(attributes))
                .set_policies(password_policy.map(|p| {
                    aws_sdk_cognitoidentityprovider::types::UserPoolPolicyType::builder()
                        .password_policy(p)
                        .build()
                }))
                .send()
                .await
                .map_err(|e| StackError::Provision {
                    resource: format!("user pool {id}"),
                    message: aws_message(&e),
                })?;
            let pool = created.user_pool();
            let pool_id = pool.and_then(|p| p.id()).unwrap_or(&name).to_owned();
            let arn = pool
                .and_then(|p| p.arn())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "arn:aws:cognito-idp:{}:{ACCOUNT_ID}:userpool/{pool_id}",
                        self.region
                    )
                });
            resources.insert(
                id,
                Physical {
                    kind: ResourceKind::Other(r.kind.clone()),
                    name: pool_id,
                    arn,
                    url: None,
                },
            );
        }
        // App clients of those pools: `!Ref UserPoolClient` is a client id moto knows, so the
        // sandbox's managed login signs users up and in through it.
        for (id, r) in &self.template.resources {
            if r.kind != "AWS::Cognito::UserPoolClient" {
                continue;
            }
            let pool_ref = r
                .properties
                .get("UserPoolId")
                .and_then(crate::intrinsics::ref_target)
                .unwrap_or_default();
            let Some(pool) = resources.get(&pool_ref).map(|p| p.name.clone()) else {
                continue;
            };
            let created = cognito
                .create_user_pool_client()
                .user_pool_id(&pool)
                .client_name(format!("{}{id}", self.prefix))
                .send()
                .await
                .map_err(|e| StackError::Provision {
                    resource: format!("user pool client {id}"),
                    message: aws_message(&e),
                })?;
            let client_id = created
                .user_pool_client()
                .and_then(|c| c.client_id())
                .unwrap_or_default()
                .to_owned();
            resources.insert(
                id,
                Physical {
                    kind: ResourceKind::Other(r.kind.clone()),
                    name: client_id,
                    arn: String::new(),
                    url: None,
                },
            );
        }
        Ok(())
    }
}

/// Creates a secret (or overwrites its value if it exists), returning its ARN.
pub(crate) async fn create_secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<String, StackError> {
    let fail = |message: String| StackError::Provision {
        resource: format!("secret {name}"),
        message,
    };
    match sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(out) => Ok(out.arn().unwrap_or(name).to_owned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            let out = sm
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| fail(aws_message(&e)))?;
            Ok(out.arn().unwrap_or(name).to_owned())
        }
        Err(e) => Err(fail(aws_message(&e))),
    }
}

fn seq<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(scalar_string).unwrap_or_default()
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>, aws_sdk_dynamodb::error::BuildError> {
    seq(v, "KeySchema")
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(str_of(k, "AttributeName"))
                .key_type(KeyType::from(str_of(k, "KeyType").as_str()))
                .build()
        })
        .collect()
}

fn projection(v: &Value) -> Projection {
    let p = v.get("Projection");
    let kind = p
        .and_then(|p| p.get("ProjectionType"))
        .and_then(Value::as_str)
        .unwrap_or("ALL");
    let non_key: Option<Vec<String>> = p
        .and_then(|p| p.get("NonKeyAttributes"))
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(scalar_string).collect());
    Projection::builder()
        .projection_type(ProjectionType::from(kind))
        .set_non_key_attributes(non_key)
        .build()
}

fn throughput(
    v: Option<&Value>,
) -> Result<ProvisionedThroughput, aws_sdk_dynamodb::error::BuildError> {
    let units = |key| {
        v.and_then(|t| t.get(key))
            .and_then(Value::as_i64)
            .unwrap_or(5)
    };
    ProvisionedThroughput::builder()
        .read_capacity_units(units("ReadCapacityUnits"))
        .write_capacity_units(units("WriteCapacityUnits"))
        .build()
}
