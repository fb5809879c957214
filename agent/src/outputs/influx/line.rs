//! InfluxDB line protocol encoding (v2 reference, "Line protocol"):
//! `measurement[,tag=value…] field=value[,field=value…] timestamp`.
//!
//! Escaping: in the measurement a comma, a space and a backslash get a
//! backslash before them; in tag keys, tag values and field keys also the
//! equals sign; in string field values a double quote and a backslash.
//! Line protocol has no escape for a line break, so `\n` and `\r` become a
//! space everywhere. Tags with an empty key or value, fields with an empty
//! key and non-finite floats are left out (the server refuses them); a line
//! without any field is not written at all. Tags are written sorted by key,
//! as InfluxDB recommends.

use std::fmt::Write as _;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(String),
}

/// One point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue)>,
    /// In the write's precision.
    pub ts: i64,
}

impl Point {
    pub fn new(measurement: impl Into<String>, ts: i64) -> Point {
        Point {
            measurement: measurement.into(),
            tags: Vec::new(),
            fields: Vec::new(),
            ts,
        }
    }

    pub fn tag(mut self, k: impl Into<String>, v: impl Into<String>) -> Point {
        self.tags.push((k.into(), v.into()));
        self
    }

    pub fn field(mut self, k: impl Into<String>, v: FieldValue) -> Point {
        self.fields.push((k.into(), v));
        self
    }

    /// The encoded line (without a trailing newline), or `None` when no
    /// field is left to write.
    pub fn encode(&self) -> Option<String> {
        let mut out = String::with_capacity(64);
        escape_into(&mut out, &self.measurement, &[',', ' ']);
        let mut tags: Vec<&(String, String)> = self
            .tags
            .iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in tags {
            out.push(',');
            escape_into(&mut out, k, KEY_SPECIAL);
            out.push('=');
            escape_into(&mut out, v, KEY_SPECIAL);
        }
        let mut first = true;
        for (k, v) in &self.fields {
            if k.is_empty() || matches!(v, FieldValue::Float(f) if !f.is_finite()) {
                continue;
            }
            out.push(if first { ' ' } else { ',' });
            first = false;
            escape_into(&mut out, k, KEY_SPECIAL);
            out.push('=');
            match v {
                FieldValue::Float(f) => {
                    let _ = write!(out, "{f}");
                }
                FieldValue::Int(i) => {
                    let _ = write!(out, "{i}i");
                }
                FieldValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                FieldValue::Str(s) => {
                    out.push('"');
                    for c in s.chars() {
                        match c {
                            '"' | '\\' => {
                                out.push('\\');
                                out.push(c);
                            }
                            '\n' | '\r' => out.push(' '),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
            }
        }
        if first {
            return None;
        }
        let _ = write!(out, " {}", self.ts);
        Some(out)
    }
}

const KEY_SPECIAL: &[char] = &[',', '=', ' '];

fn escape_into(out: &mut String, s: &str, special: &[char]) {
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push_str("\\ "),
            '\\' => out.push_str("\\\\"),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// A strict parser of what [`Point::encode`] writes, after the spec's
/// unescaping rules; for tests (the round trip) only.
#[cfg(test)]
pub fn parse(line: &str) -> Result<Point, String> {
    let mut it = line.chars().peekable();
    // Reads up to an unescaped char in `stop`; returns the text and the stop char.
    fn read(
        it: &mut std::iter::Peekable<std::str::Chars<'_>>,
        stop: &[char],
        escapable: &[char],
    ) -> (String, Option<char>) {
        let mut s = String::new();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.peek() {
                    Some(&n) if n == '\\' || escapable.contains(&n) => {
                        s.push(n);
                        it.next();
                    }
                    _ => s.push('\\'),
                }
            } else if stop.contains(&c) {
                return (s, Some(c));
            } else {
                s.push(c);
            }
        }
        (s, None)
    }
    let (measurement, mut stop) = read(&mut it, &[',', ' '], &[',', ' ']);
    let mut p = Point::new(measurement, 0);
    while stop == Some(',') {
        let (k, s) = read(&mut it, &['='], KEY_SPECIAL);
        if s != Some('=') {
            return Err(format!("tag `{k}` without value"));
        }
        let (v, s) = read(&mut it, &[',', ' '], KEY_SPECIAL);
        p.tags.push((k, v));
        stop = s;
    }
    if stop != Some(' ') {
        return Err("no fields".into());
    }
    loop {
        let (k, s) = read(&mut it, &['='], KEY_SPECIAL);
        if s != Some('=') {
            return Err(format!("field `{k}` without value"));
        }
        let v = if it.peek() == Some(&'"') {
            it.next();
            let mut s = String::new();
            loop {
                match it.next() {
                    Some('\\') => match it.next() {
                        Some(c @ ('"' | '\\')) => s.push(c),
                        Some(c) => {
                            s.push('\\');
                            s.push(c);
                        }
                        None => return Err("unterminated string".into()),
                    },
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err("unterminated string".into()),
                }
            }
            FieldValue::Str(s)
        } else {
            let mut raw = String::new();
            while let Some(&c) = it.peek() {
                if c == ',' || c == ' ' {
                    break;
                }
                raw.push(c);
                it.next();
            }
            match raw.as_str() {
                "true" => FieldValue::Bool(true),
                "false" => FieldValue::Bool(false),
                r if r.ends_with('i') => {
                    FieldValue::Int(r[..r.len() - 1].parse().map_err(|e| format!("{r}: {e}"))?)
                }
                r => FieldValue::Float(r.parse().map_err(|e| format!("{r}: {e}"))?),
            }
        };
        p.fields.push((k, v));
        match it.next() {
            Some(',') => continue,
            Some(' ') => break,
            other => return Err(format!("after a field: {other:?}")),
        }
    }
    let ts: String = it.collect();
    p.ts = ts.parse().map_err(|e| format!("timestamp `{ts}`: {e}"))?;
    Ok(p)
}
