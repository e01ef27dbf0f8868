//! Parser for Klaviyo's `filter` query parameter: `op(field,value)` conditions joined by
//! top-level commas (AND), with values that are quoted strings, `[...]` lists or bare tokens
//! (datetimes, numbers, booleans).

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Str(String),
    List(Vec<FilterValue>),
    Bare(String),
}

impl FilterValue {
    /// The value as text, whether quoted or bare.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FilterValue::Str(s) | FilterValue::Bare(s) => Some(s),
            FilterValue::List(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub op: String,
    pub field: String,
    pub value: FilterValue,
}

pub fn parse(input: &str) -> Result<Vec<Condition>, String> {
    let mut p = Parser {
        chars: input.chars().collect(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        out.push(p.condition()?);
        p.skip_ws();
        match p.next() {
            None => break,
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected '{c}' at position {}", p.pos)),
        }
    }
    Ok(out)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        self.skip_ws();
        match self.next() {
            Some(c) if c == want => Ok(()),
            other => Err(format!(
                "expected '{want}' at position {}, found {:?}",
                self.pos, other
            )),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(format!("expected a name at position {start}"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn condition(&mut self) -> Result<Condition, String> {
        let op = self.ident()?;
        self.expect('(')?;
        let field = self.ident()?;
        self.expect(',')?;
        let value = self.value()?;
        self.expect(')')?;
        Ok(Condition { op, field, value })
    }

    fn value(&mut self) -> Result<FilterValue, String> {
        self.skip_ws();
        match self.peek() {
            Some('"') | Some('\'') => self.string().map(FilterValue::Str),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(']') {
                    self.pos += 1;
                    return Ok(FilterValue::List(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_ws();
                    match self.next() {
                        Some(',') => continue,
                        Some(']') => break,
                        other => return Err(format!("unterminated list, found {other:?}")),
                    }
                }
                Ok(FilterValue::List(items))
            }
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| !matches!(c, ',' | ')' | ']') && !c.is_whitespace())
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return Err(format!("expected a value at position {start}"));
                }
                Ok(FilterValue::Bare(
                    self.chars[start..self.pos].iter().collect(),
                ))
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.next().ok_or("expected a string")?;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err("unterminated string".into()),
                Some('\\') => match self.next() {
                    Some(c) => out.push(c),
                    None => return Err("unterminated string".into()),
                },
                Some(c) if c == quote => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_klaviyo_filter_forms() {
        let got =
            parse(r#"equals(profile_id,"01ABC"),greater-or-equal(datetime,2025-01-01T00:00:00Z)"#)
                .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].op, "equals");
        assert_eq!(got[0].value, FilterValue::Str("01ABC".into()));
        assert_eq!(
            got[1].value,
            FilterValue::Bare("2025-01-01T00:00:00Z".into())
        );
        let any = parse(r#"any(id,["a", "b"])"#).unwrap();
        assert_eq!(
            any[0].value,
            FilterValue::List(vec![
                FilterValue::Str("a".into()),
                FilterValue::Str("b".into())
            ])
        );
        assert!(parse("equals(id").is_err());
    }
}
