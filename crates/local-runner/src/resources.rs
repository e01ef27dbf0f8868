//! Logical id → physical resource, as CloudFormation would report it after a deploy.

use std::collections::BTreeMap;

use crate::error::StackError;
use crate::intrinsics::ACCOUNT_ID;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    Table,
    Queue,
    Secret,
    Function,
    HttpApi,
    /// Declared in the template but not emulated (KMS keys, roles, alarms...): it gets a
    /// placeholder name and ARN so references to it still resolve.
    Other(String),
}

#[derive(Clone, Debug)]
pub struct Physical {
    pub kind: ResourceKind,
    /// Table name, queue name, secret name, function name.
    pub name: String,
    pub arn: String,
    /// Queues only: the queue URL.
    pub url: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Resources {
    entries: BTreeMap<String, Physical>,
}

impl Resources {
    pub fn insert(&mut self, logical_id: &str, physical: Physical) {
        self.entries.insert(logical_id.to_owned(), physical);
    }

    pub fn get(&self, logical_id: &str) -> Option<&Physical> {
        self.entries.get(logical_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Physical)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The physical table name of a `AWS::DynamoDB::Table`.
    pub fn table_name(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id)
            .filter(|p| p.kind == ResourceKind::Table)
            .map(|p| p.name.as_str())
    }

    /// The queue URL of an `AWS::SQS::Queue`.
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id).and_then(|p| p.url.as_deref())
    }

    pub fn arn(&self, logical_id: &str) -> Option<&str> {
        self.get(logical_id).map(|p| p.arn.as_str())
    }

    /// What `!Ref` returns for a resource of this kind.
    pub fn ref_value(&self, logical_id: &str) -> Result<String, StackError> {
        let p = self.get(logical_id).ok_or_else(|| unknown(logical_id))?;
        Ok(match p.kind {
            ResourceKind::Queue => p.url.clone().unwrap_or_default(),
            ResourceKind::Secret => p.arn.clone(),
            _ => p.name.clone(),
        })
    }

    /// What `!GetAtt X.Attr` returns.
    pub fn get_att(&self, logical_id: &str, attr: &str) -> Result<String, StackError> {
        let p = self.get(logical_id).ok_or_else(|| unknown(logical_id))?;
        Ok(match (attr, &p.kind) {
            ("Arn", _) => p.arn.clone(),
            ("QueueName", ResourceKind::Queue) => p.name.clone(),
            ("QueueUrl", ResourceKind::Queue) => p.url.clone().unwrap_or_default(),
            ("StreamArn", ResourceKind::Table) => format!("{}/stream/local", p.arn),
            ("ApiEndpoint", ResourceKind::HttpApi) => p.url.clone().unwrap_or_default(),
            ("KeyId", _) | ("Id", _) => p.name.clone(),
            // Anything else is opaque to the functions; a stable placeholder keeps env building going.
            (other, _) => format!("{}.{other}", p.name),
        })
    }

    /// A placeholder for a resource the runner does not emulate.
    pub fn placeholder(prefix: &str, logical_id: &str, kind: &str, region: &str) -> Physical {
        let name = format!("{prefix}{logical_id}");
        let service = kind
            .split("::")
            .nth(1)
            .unwrap_or("local")
            .to_ascii_lowercase();
        let kind = match kind {
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => ResourceKind::Function,
            "AWS::Serverless::HttpApi" => ResourceKind::HttpApi,
            other => ResourceKind::Other(other.to_owned()),
        };
        let arn = match kind {
            ResourceKind::Function => {
                format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}")
            }
            _ => format!("arn:aws:{service}:{region}:{ACCOUNT_ID}:{name}"),
        };
        Physical {
            kind,
            name,
            arn,
            url: None,
        }
    }
}

fn unknown(logical_id: &str) -> StackError {
    StackError::Template(format!(
        "{logical_id} is neither a parameter nor a resource of the template"
    ))
}
