//! CloudFormation intrinsic functions, evaluated against the local resources: `Ref`, `Fn::GetAtt`,
//! `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::If` with `Conditions` (`Fn::Equals`, `Fn::Not`,
//! `Fn::And`, `Fn::Or`, `Condition`). Both the short tags (`!Ref X`, which serde_yaml yields as
//! `Value::Tagged`) and the long mapping forms (`{"Fn::GetAtt": [X, Arn]}`) are understood.

use serde_yaml::Value;
use std::collections::HashMap;

use crate::error::StackError;
use crate::resources::Resources;
use crate::template::{scalar_string, Template};

pub const ACCOUNT_ID: &str = "123456789012";

/// The intrinsic a value is, if any: (`"Ref"`, `"GetAtt"`, `"Sub"`, ...) and its argument.
pub fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            if k == "Ref" || k == "Condition" {
                Some((k.to_owned(), arg))
            } else {
                k.strip_prefix("Fn::").map(|name| (name.to_owned(), arg))
            }
        }
        _ => None,
    }
}

/// The logical id a `!Ref X` or `!GetAtt X.Attr` points at.
pub fn ref_target(v: &Value) -> Option<String> {
    let (name, arg) = intrinsic(v)?;
    match name.as_str() {
        "Ref" => arg.as_str().map(str::to_owned),
        "GetAtt" => get_att_parts(arg).map(|(id, _)| id),
        _ => None,
    }
}

fn get_att_parts(arg: &Value) -> Option<(String, String)> {
    match arg {
        Value::String(s) => {
            let (id, attr) = s.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Value::Sequence(parts) if parts.len() == 2 => {
            Some((parts[0].as_str()?.to_owned(), parts[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}

pub struct Resolver<'a> {
    pub template: &'a Template,
    /// Effective parameter values (defaults overlaid with local values).
    pub parameters: &'a HashMap<String, String>,
    pub resources: &'a Resources,
    pub region: &'a str,
    pub stack_name: &'a str,
}

impl Resolver<'_> {
    /// A value as a string; `None` for `AWS::NoValue` (the key is then left out, as CloudFormation does).
    pub fn resolve(&self, v: &Value) -> Result<Option<String>, StackError> {
        if let Some(s) = scalar_string(v) {
            return Ok(Some(s));
        }
        let Some((name, arg)) = intrinsic(v) else {
            return Err(StackError::Template(format!(
                "cannot resolve {v:?} to a string"
            )));
        };
        match name.as_str() {
            "Ref" => {
                let id = arg.as_str().ok_or_else(|| bad("Ref", arg))?;
                if id == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(id).map(Some)
            }
            "GetAtt" => {
                let (id, attr) = get_att_parts(arg).ok_or_else(|| bad("GetAtt", arg))?;
                self.resources.get_att(&id, &attr).map(Some)
            }
            "Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Sequence(parts) if parts.len() == 2 => (
                        parts[0].as_str().ok_or_else(|| bad("Sub", arg))?,
                        parts[1].as_mapping(),
                    ),
                    _ => return Err(bad("Sub", arg)),
                };
                self.substitute(text, vars).map(Some)
            }
            "Join" => {
                let parts = arg
                    .as_sequence()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| bad("Join", arg))?;
                let delimiter = parts[0].as_str().unwrap_or_default();
                let items = parts[1].as_sequence().ok_or_else(|| bad("Join", arg))?;
                let mut out = Vec::new();
                for item in items {
                    if let Some(s) = self.resolve(item)? {
                        out.push(s);
                    }
                }
                Ok(Some(out.join(delimiter)))
            }
            "Select" => {
                let parts = arg
                    .as_sequence()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| bad("Select", arg))?;
                let index: usize = self
                    .resolve(&parts[0])?
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| bad("Select", arg))?;
                let item = parts[1]
                    .as_sequence()
                    .and_then(|l| l.get(index))
                    .ok_or_else(|| bad("Select", arg))?;
                self.resolve(item)
            }
            "If" => {
                let parts = arg
                    .as_sequence()
                    .filter(|p| p.len() == 3)
                    .ok_or_else(|| bad("If", arg))?;
                let condition = parts[0].as_str().ok_or_else(|| bad("If", arg))?;
                let chosen = if self.condition(condition)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                self.resolve(chosen)
            }
            other => Err(StackError::Template(format!(
                "the local runner does not evaluate Fn::{other}"
            ))),
        }
    }

    fn reference(&self, id: &str) -> Result<String, StackError> {
        match id {
            "AWS::Region" => return Ok(self.region.to_owned()),
            "AWS::AccountId" => return Ok(ACCOUNT_ID.to_owned()),
            "AWS::StackName" => return Ok(self.stack_name.to_owned()),
            "AWS::Partition" => return Ok("aws".to_owned()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".to_owned()),
            "AWS::StackId" => {
                return Ok(format!(
                    "arn:aws:cloudformation:{}:{ACCOUNT_ID}:stack/{}/local",
                    self.region, self.stack_name
                ))
            }
            _ => {}
        }
        if self.template.parameters.contains_key(id) {
            return self.parameters.get(id).cloned().ok_or_else(|| {
                StackError::Template(format!("parameter {id} has no Default and no local value"))
            });
        }
        self.resources.ref_value(id)
    }

    fn substitute(
        &self,
        text: &str,
        vars: Option<&serde_yaml::Mapping>,
    ) -> Result<String, StackError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| {
                StackError::Template(format!("unterminated ${{ in !Sub {text:?}"))
            })?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.and_then(|m| m.get(name)) {
                out.push_str(&self.resolve(v)?.unwrap_or_default());
            } else if let Some((id, attr)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&self.resources.get_att(id, attr)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn condition(&self, name: &str) -> Result<bool, StackError> {
        let expr = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| StackError::Template(format!("unknown condition {name}")))?;
        self.truth(expr)
    }

    fn truth(&self, v: &Value) -> Result<bool, StackError> {
        if let Value::Bool(b) = v {
            return Ok(*b);
        }
        let (name, arg) = intrinsic(v).ok_or_else(|| bad("condition", v))?;
        let list = || arg.as_sequence().ok_or_else(|| bad(&name, arg));
        match name.as_str() {
            "Equals" => {
                let l = list()?;
                if l.len() != 2 {
                    return Err(bad("Equals", arg));
                }
                Ok(self.resolve(&l[0])? == self.resolve(&l[1])?)
            }
            "Not" => Ok(!self.truth(list()?.first().ok_or_else(|| bad("Not", arg))?)?),
            "And" => list()?
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.truth(c)?)),
            "Or" => list()?
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.truth(c)?)),
            "Condition" => self.condition(arg.as_str().ok_or_else(|| bad("Condition", arg))?),
            other => Err(StackError::Template(format!(
                "unsupported condition function {other}"
            ))),
        }
    }
}

fn bad(what: &str, v: &Value) -> StackError {
    StackError::Template(format!("malformed {what}: {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Physical, ResourceKind};

    fn fixture() -> (Template, Resources, HashMap<String, String>) {
        let t = Template::parse(
            r#"
Parameters:
  Url: { Type: String, Default: "" }
  Rev: { Type: String, Default: "2026-07-15" }
Conditions:
  HasUrl: !Not [!Equals [!Ref Url, ""]]
Resources:
  Q: { Type: AWS::SQS::Queue }
  T: { Type: AWS::DynamoDB::Table }
"#,
        )
        .unwrap();
        let mut r = Resources::default();
        r.insert(
            "Q",
            Physical {
                kind: ResourceKind::Queue,
                name: "p-Q".into(),
                arn: "arn:aws:sqs:us-east-1:123456789012:p-Q".into(),
                url: Some("http://moto/123456789012/p-Q".into()),
            },
        );
        r.insert(
            "T",
            Physical {
                kind: ResourceKind::Table,
                name: "p-T".into(),
                arn: "arn:aws:dynamodb:us-east-1:123456789012:table/p-T".into(),
                url: None,
            },
        );
        let params = [("Url", ""), ("Rev", "2026-07-15")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        (t, r, params)
    }

    fn resolve(yaml: &str, params: Option<HashMap<String, String>>) -> Option<String> {
        let (t, r, p) = fixture();
        let p = params.unwrap_or(p);
        let resolver = Resolver {
            template: &t,
            parameters: &p,
            resources: &r,
            region: "us-east-1",
            stack_name: "s",
        };
        resolver
            .resolve(&serde_yaml::from_str(yaml).unwrap())
            .unwrap()
    }

    #[test]
    fn refs_give_table_names_queue_urls_and_parameters() {
        assert_eq!(resolve("!Ref T", None).unwrap(), "p-T");
        assert_eq!(
            resolve("!Ref Q", None).unwrap(),
            "http://moto/123456789012/p-Q"
        );
        assert_eq!(
            resolve("!GetAtt Q.Arn", None).unwrap(),
            "arn:aws:sqs:us-east-1:123456789012:p-Q"
        );
        assert_eq!(
            resolve("{ 'Fn::GetAtt': [Q, QueueName] }", None).unwrap(),
            "p-Q"
        );
        assert_eq!(resolve("!Ref Rev", None).unwrap(), "2026-07-15");
    }

    #[test]
    fn sub_replaces_pseudo_parameters_attributes_and_escapes() {
        let out = resolve(r#"!Sub "${AWS::Region}/${T}/${Q.Arn}/${!Keep}""#, None).unwrap();
        assert_eq!(
            out,
            "us-east-1/p-T/arn:aws:sqs:us-east-1:123456789012:p-Q/${Keep}"
        );
    }

    #[test]
    fn if_follows_the_condition() {
        let yaml = r#"!If [HasUrl, !Sub "${Url}/cb", ""]"#;
        assert_eq!(resolve(yaml, None).unwrap(), "");
        let params = [("Url", "https://api"), ("Rev", "x")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(resolve(yaml, Some(params)).unwrap(), "https://api/cb");
        assert_eq!(resolve("!If [HasUrl, a, !Ref AWS::NoValue]", None), None);
    }
}
