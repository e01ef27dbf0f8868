//! `serde_json::Value` ↔ `aws_smithy_types::Document`, the SDK's type for tool schemas and
//! tool input. Numbers keep their kind: non-negative integers as `PosInt`, negative ones as
//! `NegInt`, everything else as `Float`.

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde_json::Value;

pub fn json_to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(json_to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// Non-finite floats (which JSON cannot hold) become `null`. Object keys come out sorted,
/// since `Document` objects are hash maps and carry no order.
pub fn document_to_json(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(document_to_json).collect()),
        Document::Object(map) => {
            let mut entries: Vec<(&String, &Document)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), document_to_json(v)))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_survives_a_round_trip_through_document() {
        let value = json!({
            "type": "object",
            "n": 3, "neg": -4, "f": 1.5, "t": true, "none": null,
            "list": [{"a": "b"}, 2, "x"],
        });
        assert_eq!(document_to_json(&json_to_document(&value)), value);
    }

    #[test]
    fn integers_keep_their_kind() {
        assert!(matches!(
            json_to_document(&json!(7)),
            Document::Number(Number::PosInt(7))
        ));
        assert!(matches!(
            json_to_document(&json!(-7)),
            Document::Number(Number::NegInt(-7))
        ));
        assert!(matches!(
            json_to_document(&json!(0.25)),
            Document::Number(Number::Float(_))
        ));
    }

    #[test]
    fn non_finite_floats_become_null() {
        assert_eq!(
            document_to_json(&Document::Number(Number::Float(f64::NAN))),
            Value::Null
        );
    }
}
