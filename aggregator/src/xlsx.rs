//! A small reader of the first worksheet of an XLSX workbook (Office Open
//! XML), enough for the bureau's registry sheets: shared strings, inline
//! strings, numbers and booleans. Formulas are read as their cached values.
//!
//! The sheet is turned into CSV bytes with one CSV line per spreadsheet row
//! (missing rows become empty lines), so the CSV importers report the same
//! row numbers Excel shows. Line breaks inside a cell become spaces.
//!
//! [`write`](mod@write) is the matching writer the exports and the bulletin use.

use std::io::Read as _;

pub mod write;

/// Why a workbook could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XlsxError {
    #[error("not an XLSX workbook: {0}")]
    Zip(String),
    #[error("workbook part {part} is missing")]
    Missing { part: String },
    #[error("workbook part {part}: {message}")]
    Bad { part: String, message: String },
}

/// Whether `data` starts like a ZIP file (XLSX is a ZIP of XML parts).
pub fn looks_like_xlsx(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
}

type Archive<'a> = zip::ZipArchive<std::io::Cursor<&'a [u8]>>;

fn part(zip: &mut Archive<'_>, name: &str) -> Result<Option<String>, XlsxError> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(XlsxError::Zip(e.to_string())),
    };
    if f.size() > 256 << 20 {
        return Err(XlsxError::Bad {
            part: name.to_owned(),
            message: "larger than 256 MiB".into(),
        });
    }
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| XlsxError::Bad {
        part: name.to_owned(),
        message: e.to_string(),
    })?;
    Ok(Some(s))
}

/// Decodes the five XML entities and numeric character references.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") || ent.starts_with("#X") => {
                u32::from_str_radix(&ent[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value of attribute `name` in a start tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = tag[from..].find(name) {
        let at = from + i;
        let before_ok = at == 0 || tag.as_bytes()[at - 1].is_ascii_whitespace();
        let after = &tag[at + name.len()..];
        let after_trim = after.trim_start();
        if before_ok && after_trim.starts_with('=') {
            let v = after_trim[1..].trim_start();
            let q = v.chars().next()?;
            if q == '"' || q == '\'' {
                let end = v[1..].find(q)?;
                return Some(&v[1..1 + end]);
            }
        }
        from = at + name.len();
    }
    None
}

/// Iterates over elements named `name` (not nested in each other): yields
/// (start tag text, inner text; empty for a self-closing element).
fn elements<'a>(xml: &'a str, name: &str) -> Vec<(&'a str, &'a str)> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        // `<c` must not match `<cols`.
        if !after.starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        let tag = &after[..gt];
        if tag.ends_with('/') {
            out.push((tag, ""));
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push((tag, &body[..end]));
        rest = &body[end + close.len()..];
    }
    out
}

/// All text of `<t>` elements, skipping phonetic runs (`<rPh>`).
fn text_of(xml: &str) -> String {
    let mut s = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<rPh") {
        for (_, t) in elements(&rest[..i], "t") {
            s.push_str(&unescape(t));
        }
        match rest[i..].find("</rPh>") {
            Some(e) => rest = &rest[i + e + 6..],
            None => return s,
        }
    }
    for (_, t) in elements(rest, "t") {
        s.push_str(&unescape(t));
    }
    s
}

/// `B12` → column 1 (0-based).
fn column(r: &str) -> Option<usize> {
    let letters: String = r.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if letters.is_empty() {
        return None;
    }
    let mut n = 0usize;
    for c in letters.chars() {
        n = n * 26 + (c.to_ascii_uppercase() as usize - 'A' as usize + 1);
    }
    Some(n - 1)
}

/// The path of the workbook's first sheet.
fn first_sheet(zip: &mut Archive<'_>) -> Result<String, XlsxError> {
    let fallback = "xl/worksheets/sheet1.xml".to_owned();
    let Some(wb) = part(zip, "xl/workbook.xml")? else {
        return Err(XlsxError::Missing {
            part: "xl/workbook.xml".into(),
        });
    };
    let Some((tag, _)) = elements(&wb, "sheet").into_iter().next() else {
        return Ok(fallback);
    };
    let Some(rid) = attr(tag, "r:id") else {
        return Ok(fallback);
    };
    let Some(rels) = part(zip, "xl/_rels/workbook.xml.rels")? else {
        return Ok(fallback);
    };
    for (t, _) in elements(&rels, "Relationship") {
        if attr(t, "Id") == Some(rid) {
            if let Some(target) = attr(t, "Target") {
                return Ok(match target.strip_prefix('/') {
                    Some(abs) => abs.to_owned(),
                    None => format!("xl/{target}"),
                });
            }
        }
    }
    Ok(fallback)
}

/// The first worksheet as rows of cell texts; `rows[i]` is spreadsheet row `i + 1`.
pub fn first_sheet_rows(data: &[u8]) -> Result<Vec<Vec<String>>, XlsxError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data))
        .map_err(|e| XlsxError::Zip(e.to_string()))?;
    let shared: Vec<String> = match part(&mut zip, "xl/sharedStrings.xml")? {
        Some(x) => elements(&x, "si")
            .into_iter()
            .map(|(_, b)| text_of(b))
            .collect(),
        None => Vec::new(),
    };
    let name = first_sheet(&mut zip)?;
    let sheet = part(&mut zip, &name)?.ok_or(XlsxError::Missing { part: name.clone() })?;
    let bad = |message: String| XlsxError::Bad {
        part: name.clone(),
        message,
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (rtag, rbody) in elements(&sheet, "row") {
        let rn = match attr(rtag, "r") {
            Some(r) => r
                .parse::<usize>()
                .map_err(|_| bad(format!("row number `{r}`")))?,
            None => rows.len() + 1,
        };
        if rn == 0 || rn > 1_048_576 {
            return Err(bad(format!("row number {rn} is out of range")));
        }
        if rows.len() < rn {
            rows.resize(rn, Vec::new());
        }
        let row = &mut rows[rn - 1];
        for (ctag, cbody) in elements(rbody, "c") {
            let col = match attr(ctag, "r").and_then(column) {
                Some(c) => c,
                None => row.len(),
            };
            if col >= 16_384 {
                return Err(bad(format!("column {} is out of range", col + 1)));
            }
            let v = elements(cbody, "v")
                .first()
                .map(|(_, v)| unescape(v))
                .unwrap_or_default();
            let value = match attr(ctag, "t") {
                Some("s") => {
                    let i: usize = v
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("shared string index `{v}`")))?;
                    shared
                        .get(i)
                        .cloned()
                        .ok_or_else(|| bad(format!("shared string {i} does not exist")))?
                }
                Some("inlineStr") => text_of(cbody),
                Some("b") => (if v.trim() == "1" { "true" } else { "false" }).to_owned(),
                _ => v,
            };
            if row.len() <= col {
                row.resize(col + 1, String::new());
            }
            row[col] = value;
        }
    }
    Ok(rows)
}

/// The first worksheet as CSV without its blank rows, and for each CSV
/// line (index 0 is line 1) the spreadsheet row it came from. Rows are
/// padded with empty cells to the header's width.
pub fn first_sheet_as_csv(data: &[u8]) -> Result<(Vec<u8>, Vec<u64>), XlsxError> {
    let rows = first_sheet_rows(data)?;
    let used = |row: &[String]| {
        row.iter()
            .rposition(|c| !c.trim().is_empty())
            .map(|i| i + 1)
    };
    let width = rows.iter().find_map(|r| used(r)).unwrap_or(0);
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut lines = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Some(n) = used(row) else { continue };
        let mut cells: Vec<String> = row[..n]
            .iter()
            .map(|c| c.replace("\r\n", " ").replace(['\n', '\r'], " "))
            .collect();
        if cells.len() < width {
            cells.resize(width, String::new());
        }
        w.write_record(&cells)
            .map_err(|e| XlsxError::Zip(e.to_string()))?;
        lines.push(i as u64 + 1);
    }
    let out = w.into_inner().map_err(|e| XlsxError::Zip(e.to_string()))?;
    Ok((out, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_columns() {
        assert_eq!(
            unescape("a &amp; b &lt;c&gt; &#20013;&#x6587;"),
            "a & b <c> 中文"
        );
        assert_eq!(column("A1"), Some(0));
        assert_eq!(column("AA10"), Some(26));
        assert_eq!(attr(r#"c r="B2" t="s""#, "t"), Some("s"));
        assert_eq!(attr(r#"c r="B2" s="3""#, "t"), None);
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        ws.write_string(0, 0, "credit_code").unwrap();
        ws.write_string(0, 1, "name").unwrap();
        ws.write_string(2, 0, "x,y").unwrap();
        ws.write_string(2, 1, "西平 & \"机械\"\n二厂").unwrap();
        ws.write_number(3, 1, 0.54).unwrap();
        ws.write_boolean(3, 2, true).unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        assert!(looks_like_xlsx(&bytes));
        let rows = first_sheet_rows(&bytes).unwrap();
        assert_eq!(rows[0], ["credit_code", "name"]);
        assert!(rows[1].is_empty());
        assert_eq!(rows[2], ["x,y", "西平 & \"机械\"\n二厂"]);
        assert_eq!(rows[3], ["", "0.54", "true"]);
        let (csv, lines) = first_sheet_as_csv(&bytes).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "credit_code,name\n\"x,y\",\"西平 & \"\"机械\"\" 二厂\"\n,0.54,true\n"
        );
        assert_eq!(lines, [1, 3, 4]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(first_sheet_rows(b"PK\x03\x04garbage").is_err());
        assert!(first_sheet_rows(b"").is_err());
    }
}
