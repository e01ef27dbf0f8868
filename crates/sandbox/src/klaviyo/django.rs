//! The subset of Django templates Klaviyo renders in flow webhook bodies and emails.
//!
//! Supported: `{{ var.dotted.path|filter:'arg' }}` with the filters `lookup`, `default`,
//! `default_if_none`, `safe`, `escape`, `upper`, `lower`, `title`, `capfirst`, `length`,
//! `first`, `last` and `join`; `{# comments #}`. Block tags (`{% if %}`, `{% for %}`) are refused
//! when the template is parsed rather than rendered wrongly.
//!
//! Django semantics kept on purpose, because Klaviyo shows them:
//! - an unknown variable renders empty (`string_if_invalid` is `""`), but a known `null` renders
//!   `None`, and `True`/`False` render capitalised;
//! - dicts and lists render as Python reprs (`{'$value': 42.5, 'Items': ['Tent']}`), not JSON;
//! - a variable name may not contain `$`: `{{ event.$value }}` is a syntax error, use
//!   `{{ event|lookup:'$value' }}`;
//! - in emails, values are HTML-escaped unless marked `|safe`; webhook bodies insert values as
//!   they are (no HTML and no JSON escaping), so a quote in a value breaks a JSON body.

use std::fmt::Write;

use serde_json::Value;

/// A parsed template. Parse once (when the flow is saved), render per profile.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Var(Expr),
}

#[derive(Debug, Clone)]
struct Expr {
    base: Operand,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone)]
enum Operand {
    Literal(Value),
    Path(Vec<String>),
}

#[derive(Debug, Clone)]
struct Filter {
    name: FilterName,
    arg: Option<Operand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterName {
    Lookup,
    Default,
    DefaultIfNone,
    Safe,
    Escape,
    Upper,
    Lower,
    Title,
    Capfirst,
    Length,
    First,
    Last,
    Join,
}

impl FilterName {
    fn parse(name: &str) -> Option<(Self, ArgRule)> {
        use ArgRule::*;
        Some(match name {
            "lookup" => (Self::Lookup, Required),
            "default" => (Self::Default, Required),
            "default_if_none" => (Self::DefaultIfNone, Required),
            "safe" => (Self::Safe, Forbidden),
            "escape" | "force_escape" => (Self::Escape, Forbidden),
            "upper" => (Self::Upper, Forbidden),
            "lower" => (Self::Lower, Forbidden),
            "title" => (Self::Title, Forbidden),
            "capfirst" => (Self::Capfirst, Forbidden),
            "length" => (Self::Length, Forbidden),
            "first" => (Self::First, Forbidden),
            "last" => (Self::Last, Forbidden),
            "join" => (Self::Join, Required),
            _ => return None,
        })
    }
}

enum ArgRule {
    Required,
    Forbidden,
}

/// Where a template is rendered: emails autoescape HTML, webhook bodies do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    WebhookBody,
    Email,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template syntax error: {0}")]
pub struct SyntaxError(String);

impl Template {
    pub fn parse(src: &str) -> Result<Self, SyntaxError> {
        let mut nodes = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            let next = ["{{", "{%", "{#"]
                .iter()
                .filter_map(|open| rest.find(open).map(|i| (i, *open)))
                .min_by_key(|(i, _)| *i);
            let Some((at, open)) = next else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if at > 0 {
                nodes.push(Node::Text(rest[..at].to_string()));
            }
            let close = match open {
                "{{" => "}}",
                "{%" => "%}",
                _ => "#}",
            };
            let inner_start = at + 2;
            let Some(len) = rest[inner_start..].find(close) else {
                return Err(SyntaxError(format!("unclosed '{open}'")));
            };
            let inner = rest[inner_start..inner_start + len].trim();
            match open {
                "{{" => nodes.push(Node::Var(parse_expr(inner)?)),
                "{%" => {
                    let tag = inner.split_whitespace().next().unwrap_or("");
                    return Err(SyntaxError(format!(
                        "block tag '{{% {tag} %}}' is not supported by the sandbox"
                    )));
                }
                _ => {}
            }
            rest = &rest[inner_start + len + 2..];
        }
        Ok(Self { nodes })
    }

    /// Renders against `context` (an object of top-level variables such as `person`, `event`).
    pub fn render(&self, context: &Value, mode: Mode) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Var(expr) => {
                    let (value, safe) = eval(expr, context);
                    let text = value.map(|v| display(&v)).unwrap_or_default();
                    if mode == Mode::Email && !safe {
                        out.push_str(&html_escape(&text));
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        out
    }
}

fn parse_expr(src: &str) -> Result<Expr, SyntaxError> {
    if src.is_empty() {
        return Err(SyntaxError("empty variable tag".into()));
    }
    let parts = split_filters(src)?;
    let base = parse_operand(parts[0].trim())?;
    let mut filters = Vec::new();
    for part in &parts[1..] {
        let part = part.trim();
        let (name, arg) = match split_outside_quotes(part, ':') {
            Some((n, a)) => (n.trim(), Some(parse_operand(a.trim())?)),
            None => (part, None),
        };
        let Some((name, rule)) = FilterName::parse(name) else {
            return Err(SyntaxError(format!("invalid filter: '{name}'")));
        };
        match (rule, &arg) {
            (ArgRule::Required, None) => {
                return Err(SyntaxError(
                    format!("{name:?} requires an argument").to_lowercase(),
                ))
            }
            (ArgRule::Forbidden, Some(_)) => {
                return Err(SyntaxError(
                    format!("{name:?} takes no argument").to_lowercase(),
                ))
            }
            _ => {}
        }
        filters.push(Filter { name, arg });
    }
    Ok(Expr { base, filters })
}

/// Splits on `|` outside quotes.
fn split_filters(src: &str) -> Result<Vec<&str>, SyntaxError> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in src.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '|') => {
                parts.push(&src[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(SyntaxError(format!("unterminated string in '{src}'")));
    }
    parts.push(&src[start..]);
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(SyntaxError(format!(
            "empty expression or filter in '{src}'"
        )));
    }
    Ok(parts)
}

fn split_outside_quotes(src: &str, sep: char) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in src.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c == sep => return Some((&src[..i], &src[i + 1..])),
            _ => {}
        }
    }
    None
}

fn parse_operand(src: &str) -> Result<Operand, SyntaxError> {
    let bytes = src.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'\'' || bytes[0] == b'"')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        return Ok(Operand::Literal(Value::String(
            src[1..src.len() - 1].to_string(),
        )));
    }
    if let Ok(n) = src.parse::<i64>() {
        return Ok(Operand::Literal(Value::from(n)));
    }
    if let Ok(f) = src.parse::<f64>() {
        return Ok(Operand::Literal(Value::from(f)));
    }
    // Django: variable names are [A-Za-z0-9_] joined by dots, and may not start with '_'.
    let segments: Vec<&str> = src.split('.').collect();
    for seg in &segments {
        let valid = !seg.is_empty()
            && !seg.starts_with('_')
            && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(SyntaxError(format!(
                "could not parse the remainder: '{src}' (variable names may use letters, digits \
                 and '_' only; for keys such as '$value' use |lookup:'$value')"
            )));
        }
    }
    Ok(Operand::Path(
        segments.into_iter().map(str::to_owned).collect(),
    ))
}

/// Evaluates an expression: the value (None = unknown variable) and whether it is marked safe.
fn eval(expr: &Expr, context: &Value) -> (Option<Value>, bool) {
    let mut value = resolve(&expr.base, context);
    let mut safe = false;
    for f in &expr.filters {
        let arg = f.arg.as_ref().and_then(|a| resolve(a, context));
        value = match f.name {
            FilterName::Lookup => value.and_then(|v| lookup(&v, arg.as_ref())),
            FilterName::Default => {
                if value.as_ref().is_some_and(truthy) {
                    value
                } else {
                    arg
                }
            }
            FilterName::DefaultIfNone => match value {
                Some(Value::Null) => arg,
                other => other,
            },
            FilterName::Safe => {
                safe = true;
                value
            }
            FilterName::Escape => {
                safe = true;
                Some(Value::String(html_escape(
                    &value.map(|v| display(&v)).unwrap_or_default(),
                )))
            }
            FilterName::Upper => value.map(|v| Value::String(display(&v).to_uppercase())),
            FilterName::Lower => value.map(|v| Value::String(display(&v).to_lowercase())),
            FilterName::Title => value.map(|v| Value::String(title_case(&display(&v)))),
            FilterName::Capfirst => value.map(|v| {
                let s = display(&v);
                let mut chars = s.chars();
                Value::String(match chars.next() {
                    Some(c) => c.to_uppercase().chain(chars).collect(),
                    None => s,
                })
            }),
            FilterName::Length => Some(Value::from(match &value {
                Some(Value::String(s)) => s.chars().count(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(o)) => o.len(),
                _ => 0,
            })),
            FilterName::First => value.and_then(|v| match v {
                Value::Array(a) => a.into_iter().next(),
                Value::String(s) => s.chars().next().map(|c| Value::String(c.to_string())),
                _ => None,
            }),
            FilterName::Last => value.and_then(|v| match v {
                Value::Array(a) => a.into_iter().last(),
                Value::String(s) => s.chars().last().map(|c| Value::String(c.to_string())),
                _ => None,
            }),
            FilterName::Join => value.map(|v| match v {
                Value::Array(a) => {
                    let sep = arg.as_ref().map(display).unwrap_or_default();
                    Value::String(a.iter().map(display).collect::<Vec<_>>().join(&sep))
                }
                other => other,
            }),
        };
    }
    (value, safe)
}

fn resolve(operand: &Operand, context: &Value) -> Option<Value> {
    match operand {
        Operand::Literal(v) => Some(v.clone()),
        Operand::Path(segments) => {
            let mut current = context;
            for (i, seg) in segments.iter().enumerate() {
                current = match current {
                    Value::Object(map) => match map.get(seg) {
                        Some(v) => v,
                        // Klaviyo's own Shopify templates read `event.extra.line_items`:
                        // the `$extra` key answers to `extra` one level below the root.
                        None if i == 1 && seg == "extra" => map.get("$extra")?,
                        None => return None,
                    },
                    Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            Some(current.clone())
        }
    }
}

fn lookup(value: &Value, key: Option<&Value>) -> Option<Value> {
    let key = key?;
    match value {
        Value::Object(map) => map.get(&display(key)).cloned(),
        Value::Array(items) => {
            let i = match key {
                Value::Number(n) => n.as_u64()? as usize,
                other => display(other).parse().ok()?,
            };
            items.get(i).cloned()
        }
        _ => None,
    }
}

/// Python truthiness, which `|default` tests.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// What `str()` of the value gives in Python, which is what Django prints.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

/// Python's `repr()` of the value as the dict/list/str/int/float/bool/None it would be.
pub fn python_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

fn write_repr(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&python_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => out.push_str(&python_str_repr(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&python_str_repr(k));
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// `repr(float)`: shortest round-trip digits, always with a '.0' or an exponent; exponent form
/// from 1e16 up and below 1e-4 (`1e+16`, `1e-05`).
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        let s = format!("{f:e}"); // e.g. "1e16", "1.5e-5"
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// `repr(str)`: single quotes unless the text holds a single quote and no double quote.
fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Django's `escape`: `& < > " '`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphabetic() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = !c.is_alphanumeric() && c != '\'';
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, ctx: &Value, mode: Mode) -> String {
        Template::parse(src).expect("parses").render(ctx, mode)
    }

    fn ctx() -> Value {
        json!({
            "person": {
                "KlaviyoID": "01JABCDEF0123456789ABCDEFG",
                "id": "shop-42",
                "email": "ava@example.com",
                "first_name": "Ava",
                "Some Prop": "with space",
                "sp_flow_body": "Tents & <b>tarps</b>",
                "empty": "",
            },
            // Keys in sorted order, so the repr is the same whether or not serde_json
            // preserves insertion order (a feature another workspace crate may switch on).
            "event": {
                "$event_id": "ck-1",
                "$extra": {"line_items": [{"product_id": 7, "quantity": 1.0}]},
                "$value": 129.5,
                "Gift": false,
                "Item Count": 2.0,
                "Items": ["Tent", "Kid's Sleeping Bag"],
                "Note": null,
            },
        })
    }

    #[test]
    fn dotted_lookups_and_lookup_filter_read_person_and_event() {
        let out = render(
            r#"{"id":"{{ person.KlaviyoID }}","ext":"{{ person.id }}","p":"{{ person|lookup:'Some Prop' }}","v":{{ event|lookup:'$value' }},"q":{{ event.extra.line_items.0.quantity }}}"#,
            &ctx(),
            Mode::WebhookBody,
        );
        assert_eq!(
            out,
            r#"{"id":"01JABCDEF0123456789ABCDEFG","ext":"shop-42","p":"with space","v":129.5,"q":1.0}"#
        );
    }

    #[test]
    fn unknown_variables_render_empty_but_null_renders_none() {
        let out = render(
            "[{{ person.nope }}|{{ nothing.at.all }}|{{ event.Note }}|{{ event.Gift }}]",
            &ctx(),
            Mode::WebhookBody,
        );
        assert_eq!(out, "[||None|False]");
    }

    #[test]
    fn default_applies_to_missing_and_falsy_values() {
        let out = render(
            "{{ person.nope|default:'Our bestsellers' }}/{{ person.empty|default:'x' }}/{{ event.Gift|default:'no' }}/{{ person.first_name|default:'friend' }}/{{ event.Note|default_if_none:'n/a' }}",
            &ctx(),
            Mode::Email,
        );
        assert_eq!(out, "Our bestsellers/x/no/Ava/n/a");
    }

    #[test]
    fn whole_event_renders_as_a_python_dict_not_json() {
        let out = render("{{ event }}", &ctx(), Mode::WebhookBody);
        assert_eq!(
            out,
            "{'$event_id': 'ck-1', '$extra': {'line_items': [{'product_id': 7, 'quantity': 1.0}]}, \
             '$value': 129.5, 'Gift': False, 'Item Count': 2.0, 'Items': ['Tent', \"Kid's Sleeping Bag\"], 'Note': None}"
        );
    }

    #[test]
    fn email_escapes_html_unless_safe_and_webhook_body_inserts_raw() {
        let c = ctx();
        assert_eq!(
            render("{{ person.sp_flow_body }}", &c, Mode::Email),
            "Tents &amp; &lt;b&gt;tarps&lt;/b&gt;"
        );
        assert_eq!(
            render("{{ person.sp_flow_body|safe }}", &c, Mode::Email),
            "Tents & <b>tarps</b>"
        );
        assert_eq!(
            render("{{ person.sp_flow_body }}", &c, Mode::WebhookBody),
            "Tents & <b>tarps</b>"
        );
        assert_eq!(
            render("{{ event.Items.1|escape }}", &c, Mode::WebhookBody),
            "Kid&#x27;s Sleeping Bag"
        );
    }

    #[test]
    fn dollar_keys_need_lookup_and_block_tags_are_refused() {
        assert!(Template::parse("{{ event.$value }}").is_err());
        assert!(Template::parse("{% for i in event.Items %}{{ i }}{% endfor %}").is_err());
        assert!(Template::parse("{{ person.email|nosuchfilter }}").is_err());
        assert!(Template::parse("{{ person.email|default }}").is_err());
        assert!(Template::parse("{{ person.email").is_err());
        assert!(Template::parse("{{ person._secret }}").is_err());
    }

    #[test]
    fn comments_vanish_and_string_filters_work() {
        let out = render(
            "{# note #}{{ person.first_name|upper }} {{ event.Items|join:', ' }} {{ event.Items|length }} {{ 'hello world'|title }}",
            &ctx(),
            Mode::WebhookBody,
        );
        assert_eq!(out, "AVA Tent, Kid's Sleeping Bag 2 Hello World");
    }

    #[test]
    fn python_float_repr_matches_python() {
        for (f, want) in [
            (42.0, "42.0"),
            (0.1, "0.1"),
            (129.5, "129.5"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (-3.0, "-3.0"),
        ] {
            assert_eq!(python_float(f), want);
        }
    }
}
