//! What an operator on call relies on, read from template.yaml: every function logs JSON to a
//! log group of the stack with a retention, is traced, and has an errors and a throttles alarm.

use local_runner::intrinsics::ref_target;
use local_runner::Template;
use serde_yaml::Value;
use std::path::Path;

fn template() -> Template {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    Template::load(&path).expect("template.yaml parses")
}

/// A function property, or the Globals value when the function does not set it.
fn property<'a>(template: &'a Template, id: &str, key: &str) -> &'a Value {
    let own = &template.resources[id].properties[key];
    if own.is_null() {
        &template.raw["Globals"]["Function"][key]
    } else {
        own
    }
}

#[test]
fn every_function_logs_json_to_a_stack_log_group_that_expires() {
    let template = template();
    assert!(!template.functions.is_empty());
    for id in template.functions.keys() {
        let logging = property(&template, id, "LoggingConfig");
        assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{id}");
        let group = ref_target(&logging["LogGroup"])
            .unwrap_or_else(|| panic!("{id} logs to Lambda's default group, which never expires"));
        let resource = &template.resources[&group];
        assert_eq!(resource.kind, "AWS::Logs::LogGroup", "{id} → {group}");
        let retention = &resource.properties["RetentionInDays"];
        let days = match ref_target(retention) {
            Some(parameter) => template.parameters[&parameter].default.clone(),
            None => retention.as_u64().map(|d| d.to_string()),
        };
        let days: u64 = days
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{group} has no retention"));
        assert!((1..=3653).contains(&days), "{group}: {days} days");
    }
}

#[test]
fn every_function_is_traced_and_alarmed_on_errors_and_throttles() {
    let template = template();
    for id in template.functions.keys() {
        assert_eq!(
            property(&template, id, "Tracing").as_str(),
            Some("Active"),
            "{id}"
        );
        for metric in ["Errors", "Throttles"] {
            let alarmed = template.resources.values().any(|r| {
                r.kind == "AWS::CloudWatch::Alarm"
                    && r.properties["MetricName"].as_str() == Some(metric)
                    && r.properties["Dimensions"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|d| ref_target(&d["Value"]).as_deref() == Some(id.as_str()))
            });
            assert!(alarmed, "no {metric} alarm names {id}");
        }
    }
}
