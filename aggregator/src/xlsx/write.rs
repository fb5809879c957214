//! A small writer of XLSX workbooks (Office Open XML, ECMA-376 part 1) for
//! the exports and the bulletin: sheets of text and number cells, three cell
//! styles (plain, bold, percent `0.0%`), strings inline in the cells.
//!
//! It writes the minimal package a spreadsheet needs: content types, the
//! package and workbook relationships, the workbook, one style sheet and one
//! worksheet part per sheet, deflated in a ZIP. Cells are kept sparse and
//! written in row-major order, as the format requires.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

/// Why a workbook could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum XlsxWriteError {
    #[error("sheet name {name:?}: {why}")]
    SheetName { name: String, why: &'static str },
    #[error("sheet {sheet:?} cell {cell}: {why}")]
    Cell {
        sheet: String,
        cell: String,
        why: &'static str,
    },
    #[error("zip: {0}")]
    Zip(String),
}

/// How a cell looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Bold,
    /// A fraction shown as a percentage with one decimal (`0.0%`).
    Percent,
}

impl Style {
    /// The cell format's index in `cellXfs` of the style sheet below.
    fn xf(self) -> u8 {
        match self {
            Style::Plain => 0,
            Style::Bold => 1,
            Style::Percent => 2,
        }
    }
}

#[derive(Clone, Debug)]
enum Value {
    Text(String),
    Number(f64),
}

/// Rows and columns are numbered from 0, as in the rest of the code; the
/// sheet's limits are Excel's (1,048,576 rows, 16,384 columns).
const MAX_ROWS: u32 = 1 << 20;
const MAX_COLS: u16 = 1 << 14;

/// One worksheet.
#[derive(Debug)]
pub struct Sheet {
    name: String,
    cells: BTreeMap<(u32, u16), (Value, Style)>,
    error: Option<XlsxWriteError>,
}

impl Sheet {
    fn put(&mut self, row: u32, col: u16, v: Value, style: Style) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let why = if row >= MAX_ROWS || col >= MAX_COLS {
            Some("outside the sheet")
        } else if matches!(v, Value::Number(n) if !n.is_finite()) {
            Some("not a finite number")
        } else {
            None
        };
        match why {
            Some(why) => {
                self.error = Some(XlsxWriteError::Cell {
                    sheet: self.name.clone(),
                    cell: cell_ref(row.min(MAX_ROWS - 1), col.min(MAX_COLS - 1)),
                    why,
                })
            }
            None => {
                self.cells.insert((row, col), (v, style));
            }
        }
        self
    }

    /// Text in a plain cell.
    pub fn text(&mut self, row: u32, col: u16, s: impl Into<String>) -> &mut Self {
        self.put(row, col, Value::Text(s.into()), Style::Plain)
    }

    /// Text in a cell of `style`.
    pub fn text_styled(
        &mut self,
        row: u32,
        col: u16,
        s: impl Into<String>,
        style: Style,
    ) -> &mut Self {
        self.put(row, col, Value::Text(s.into()), style)
    }

    /// A number in a plain cell (not finite: the workbook fails to build,
    /// naming the cell).
    pub fn number(&mut self, row: u32, col: u16, n: f64) -> &mut Self {
        self.put(row, col, Value::Number(n), Style::Plain)
    }

    /// A number in a cell of `style`.
    pub fn number_styled(&mut self, row: u32, col: u16, n: f64, style: Style) -> &mut Self {
        self.put(row, col, Value::Number(n), style)
    }

    fn xml(&self) -> String {
        let mut x = String::with_capacity(256 + self.cells.len() * 48);
        x.push_str(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#);
        x.push_str(r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#);
        let mut open: Option<u32> = None;
        for (&(r, c), (v, style)) in &self.cells {
            if open != Some(r) {
                if open.is_some() {
                    x.push_str("</row>");
                }
                let _ = write!(x, r#"<row r="{}">"#, r + 1);
                open = Some(r);
            }
            let at = cell_ref(r, c);
            let s = match style.xf() {
                0 => String::new(),
                n => format!(r#" s="{n}""#),
            };
            match v {
                Value::Number(n) => {
                    let _ = write!(x, r#"<c r="{at}"{s}><v>{n}</v></c>"#);
                }
                Value::Text(t) => {
                    let _ = write!(
                        x,
                        r#"<c r="{at}"{s} t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>"#,
                        escape(t)
                    );
                }
            }
        }
        if open.is_some() {
            x.push_str("</row>");
        }
        x.push_str("</sheetData></worksheet>");
        x
    }
}

/// A workbook being built.
#[derive(Debug, Default)]
pub struct Workbook {
    sheets: Vec<Sheet>,
}

impl Workbook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sheet. Names follow Excel's rules: 1 to 31 characters, none of
    /// `[ ] : * ? / \`, not starting or ending with `'`, unique ignoring case.
    pub fn add_sheet(&mut self, name: &str) -> Result<&mut Sheet, XlsxWriteError> {
        let bad = |why| XlsxWriteError::SheetName {
            name: name.to_string(),
            why,
        };
        let len = name.chars().count();
        if len == 0 || len > 31 {
            return Err(bad("must be 1 to 31 characters"));
        }
        if name.contains(['[', ']', ':', '*', '?', '/', '\\']) {
            return Err(bad("contains one of [ ] : * ? / \\"));
        }
        if name.starts_with('\'') || name.ends_with('\'') {
            return Err(bad("starts or ends with an apostrophe"));
        }
        if name.chars().any(|c| c.is_control()) {
            return Err(bad("contains a control character"));
        }
        let lower = name.to_lowercase();
        if self.sheets.iter().any(|s| s.name.to_lowercase() == lower) {
            return Err(bad("already used by another sheet"));
        }
        self.sheets.push(Sheet {
            name: name.to_string(),
            cells: BTreeMap::new(),
            error: None,
        });
        Ok(self.sheets.last_mut().expect("just pushed"))
    }

    /// The workbook as the bytes of an `.xlsx` file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, XlsxWriteError> {
        if let Some(e) = self.sheets.iter().find_map(|s| s.error.as_ref()) {
            return Err(e.clone());
        }
        let empty;
        let sheets: &[Sheet] = if self.sheets.is_empty() {
            // A workbook needs at least one sheet.
            empty = [Sheet {
                name: "Sheet1".into(),
                cells: BTreeMap::new(),
                error: None,
            }];
            &empty
        } else {
            &self.sheets
        };
        let mut parts: Vec<(String, String)> = vec![
            ("[Content_Types].xml".into(), content_types(sheets.len())),
            ("_rels/.rels".into(), ROOT_RELS.into()),
            ("xl/workbook.xml".into(), workbook_xml(sheets)),
            (
                "xl/_rels/workbook.xml.rels".into(),
                workbook_rels(sheets.len()),
            ),
            ("xl/styles.xml".into(), STYLES.into()),
        ];
        for (i, s) in sheets.iter().enumerate() {
            parts.push((format!("xl/worksheets/sheet{}.xml", i + 1), s.xml()));
        }
        let zerr = |e: zip::result::ZipError| XlsxWriteError::Zip(e.to_string());
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in &parts {
            zip.start_file(name.as_str(), opts).map_err(zerr)?;
            zip.write_all(body.as_bytes())
                .map_err(|e| XlsxWriteError::Zip(e.to_string()))?;
        }
        Ok(zip.finish().map_err(zerr)?.into_inner())
    }
}

/// `A1`-style reference of a 0-based cell.
fn cell_ref(row: u32, col: u16) -> String {
    let mut letters = Vec::new();
    let mut c = u32::from(col) + 1;
    while c > 0 {
        let rem = (c - 1) % 26;
        letters.push(b'A' + rem as u8);
        c = (c - 1) / 26;
    }
    letters.reverse();
    format!("{}{}", String::from_utf8(letters).expect("ASCII"), row + 1)
}

/// XML text escaping. Characters XML 1.0 cannot carry (control characters
/// other than tab, line feed, carriage return) are written in the format's
/// own `_xHHHH_` escape, as is a literal `_x` sequence that would read as one.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    for (i, ch) in s.char_indices() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "_x{:04X}_", c as u32);
            }
            '_' if looks_like_escape(&bytes[i..]) => out.push_str("_x005F_"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `b` starts with `_xHHHH_`.
fn looks_like_escape(b: &[u8]) -> bool {
    b.len() >= 7 && b[1] == b'x' && b[2..6].iter().all(u8::is_ascii_hexdigit) && b[6] == b'_'
}

fn attr_escape(s: &str) -> String {
    escape(s).replace('"', "&quot;")
}

fn content_types(sheets: usize) -> String {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>"#,
    );
    for i in 1..=sheets {
        let _ = write!(
            x,
            r#"<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>"#
        );
    }
    x.push_str("</Types>");
    x
}

const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;

fn workbook_xml(sheets: &[Sheet]) -> String {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>"#,
    );
    for (i, s) in sheets.iter().enumerate() {
        let _ = write!(
            x,
            r#"<sheet name="{}" sheetId="{}" r:id="rId{}"/>"#,
            attr_escape(&s.name),
            i + 1,
            i + 1
        );
    }
    x.push_str("</sheets></workbook>");
    x
}

fn workbook_rels(sheets: usize) -> String {
    let mut x = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
    );
    for i in 1..=sheets {
        let _ = write!(
            x,
            r#"<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{i}.xml"/>"#
        );
    }
    let _ = write!(
        x,
        r#"<Relationship Id="rId{}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#,
        sheets + 1
    );
    x
}

/// Fonts: 0 regular, 1 bold. Cell formats (`cellXfs`, the `s` attribute of
/// a cell): 0 plain, 1 bold, 2 the custom number format 164 `0.0%`. Two
/// fills are required by the format (none, gray125).
const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="0.0%"/></numFmts><fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font><font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlsx::first_sheet_rows;

    #[test]
    fn cell_references_follow_the_spreadsheet_letters() {
        assert_eq!(cell_ref(0, 0), "A1");
        assert_eq!(cell_ref(9, 25), "Z10");
        assert_eq!(cell_ref(0, 26), "AA1");
        assert_eq!(cell_ref(0, 701), "ZZ1");
        assert_eq!(cell_ref(0, 702), "AAA1");
        assert_eq!(cell_ref(MAX_ROWS - 1, MAX_COLS - 1), "XFD1048576");
    }

    #[test]
    fn escapes_markup_controls_and_literal_escapes() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(escape("x\u{1}y\tz"), "x_x0001_y\tz");
        assert_eq!(escape("_x0041_"), "_x005F_x0041_");
        assert_eq!(escape("_x41"), "_x41");
    }

    #[test]
    fn our_reader_reads_back_text_numbers_and_gaps() {
        let mut wb = Workbook::new();
        wb.add_sheet("表 one")
            .unwrap()
            .text_styled(0, 0, "credit_code", Style::Bold)
            .text(0, 1, "name")
            .text(2, 0, "x,y")
            .text(2, 1, "西平 & \"机械\"\n二厂")
            .number_styled(3, 1, 0.54, Style::Percent)
            .number(3, 2, 1e-7);
        wb.add_sheet("two").unwrap().text(0, 0, "ignored");
        let bytes = wb.to_bytes().unwrap();
        let rows = first_sheet_rows(&bytes).unwrap();
        assert_eq!(rows[0], ["credit_code", "name"]);
        assert!(rows[1].is_empty());
        assert_eq!(rows[2], ["x,y", "西平 & \"机械\"\n二厂"]);
        assert_eq!(rows[3][1].parse::<f64>().unwrap(), 0.54);
        assert_eq!(rows[3][2].parse::<f64>().unwrap(), 1e-7);
    }

    #[test]
    fn bad_sheet_names_and_cells_are_named_in_the_error() {
        let mut wb = Workbook::new();
        for bad in ["", "a/b", "'q", &"x".repeat(32)] {
            let e = wb.add_sheet(bad).unwrap_err().to_string();
            assert!(e.contains("sheet name"), "{e}");
        }
        wb.add_sheet("Data").unwrap();
        assert!(wb.add_sheet("data").is_err());
        wb.sheets[0].number(4, 2, f64::NAN).text(5, 0, "after");
        let e = wb.to_bytes().unwrap_err().to_string();
        assert!(e.contains("\"Data\"") && e.contains("C5"), "{e}");
        let mut wb = Workbook::new();
        wb.add_sheet("s").unwrap().text(MAX_ROWS, 0, "x");
        assert!(wb.to_bytes().is_err());
    }

    #[test]
    fn an_empty_workbook_still_has_a_sheet() {
        let rows = first_sheet_rows(&Workbook::new().to_bytes().unwrap()).unwrap();
        assert!(rows.iter().all(|r| r.is_empty()));
    }
}
