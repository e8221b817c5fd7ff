//! A parser for the Python literals of Amazon's 2014 metadata lines
//! (`{'asin': '0001', 'categories': [['Books']], 'price': 4.5}`): dicts, lists, tuples,
//! strings with either quote and escapes, numbers, `True`/`False`/`None`.

use serde_json::{Map, Number, Value};

/// Parses one Python literal into JSON; the error gives the byte offset.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing characters at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.dict(),
            Some(b'[') => self.seq(b']'),
            Some(b'(') => self.seq(b')'),
            Some(b'\'' | b'"') => self.string().map(Value::String),
            Some(c) if c.is_ascii_digit() || *c == b'-' || *c == b'+' || *c == b'.' => {
                self.number()
            }
            Some(_) => self.word(),
            None => self.err("unexpected end"),
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.i += 1;
        let mut map = Map::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(k) => k,
                other => other.to_string(),
            };
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return self.err("expected `:`");
            }
            self.i += 1;
            let v = self.value()?;
            map.insert(key, v);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }

    fn seq(&mut self, close: u8) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&close) {
                self.i += 1;
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(c) if *c == close => {}
                _ => return self.err("expected `,` or the closing bracket"),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            if c == quote {
                return String::from_utf8(out).or_else(|_| self.err("invalid UTF-8 in string"));
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(&e) = self.s.get(self.i) else { break };
            self.i += 1;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'x' | b'u' => {
                    let n = if e == b'x' { 2 } else { 4 };
                    let hex = self.s.get(self.i..self.i + n).ok_or("short escape")?;
                    let code = u32::from_str_radix(std::str::from_utf8(hex).unwrap_or(""), 16)
                        .or_else(|_| self.err("bad escape"))?;
                    self.i += n;
                    let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                    out.extend_from_slice(ch.to_string().as_bytes());
                }
                other => out.push(other), // \\ \' \" and unknown escapes keep the character
            }
        }
        self.err("unterminated string")
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
            )
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Value::Number(n.into()));
        }
        match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => self.err("bad number"),
        }
    }

    fn word(&mut self) -> Result<Value, String> {
        for (w, v) in [
            ("True", Value::Bool(true)),
            ("False", Value::Bool(false)),
            ("None", Value::Null),
        ] {
            if self.s[self.i..].starts_with(w.as_bytes()) {
                self.i += w.len();
                return Ok(v);
            }
        }
        self.err("unexpected character")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_amazon_2014_meta_lines() {
        let line = r#"{'asin': '0001048791', 'salesRank': {'Books': 6334800}, 'categories': [['Books', "Children's Books"]], 'title': 'The Crucible: Performed by Stuart Pankin, Jerome Dempsey &amp; Cast', 'price': 4.5, 'related': {'also_bought': ('a', 'b')}, 'flag': True, 'none': None}"#;
        assert_eq!(
            parse(line).unwrap(),
            json!({"asin": "0001048791", "salesRank": {"Books": 6334800},
                   "categories": [["Books", "Children's Books"]],
                   "title": "The Crucible: Performed by Stuart Pankin, Jerome Dempsey &amp; Cast",
                   "price": 4.5, "related": {"also_bought": ["a", "b"]}, "flag": true, "none": null})
        );
    }

    #[test]
    fn escapes_and_errors() {
        assert_eq!(parse(r"'it\'s \x41\u00e9\n'").unwrap(), json!("it's Aé\n"));
        assert!(parse("{'a': 1").unwrap_err().contains("byte"));
        assert!(parse("{'a': 1} x").is_err());
    }
}
