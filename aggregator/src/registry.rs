//! Registry import and export: enterprises and recognitions as CSV or XLSX
//! (import and export; an import that starts like a ZIP file is read as an
//! XLSX workbook's first sheet, see [`crate::xlsx`]) and any table as CSV
//! or XLSX export.
//!
//! Import validates every row and reports every bad row with its line number
//! and reason; the caller stores nothing from a file with errors unless it
//! chose to skip bad rows.
//!
//! Enterprise columns: `credit_code, name, county, chain, above_scale,
//! industry_type, rd_design_tools, declared_digitization,
//! declared_networking, declared_key_process_nc`. Rates are fractions
//! (`0.54`) or percentages (`54%`); booleans are `true/false`, `1/0`,
//! `yes/no` or `是/否`; empty optional cells mean "not declared".
//!
//! Recognition columns: `credit_code, kind, level, year, evidence`.

use crate::store::Table;
use serde::Serialize;
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::registry::{
    County, DeclaredRates, Enterprise, IndustryChain, Recognition, RecognitionKind,
    RecognitionLevel,
};
use std::collections::{BTreeSet, HashMap};

/// Column headers of the enterprise file, in order.
pub const ENTERPRISE_COLUMNS: [&str; 10] = [
    "credit_code",
    "name",
    "county",
    "chain",
    "above_scale",
    "industry_type",
    "rd_design_tools",
    "declared_digitization",
    "declared_networking",
    "declared_key_process_nc",
];

/// Column headers of the recognition file, in order.
pub const RECOGNITION_COLUMNS: [&str; 5] = ["credit_code", "kind", "level", "year", "evidence"];

/// One bad row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("header is `{found}`, expected `{expected}`")]
    Header { found: String, expected: String },
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("xlsx: {0}")]
    Xlsx(#[from] crate::xlsx::write::XlsxWriteError),
    #[error(transparent)]
    XlsxRead(#[from] crate::xlsx::XlsxError),
}

/// CSV bytes of an import and, for XLSX, the sheet row of each CSV line.
type ImportText<'a> = (std::borrow::Cow<'a, [u8]>, Option<Vec<u64>>);

/// The CSV text of an import: the bytes themselves, or an XLSX workbook's
/// first sheet turned into CSV, with the sheet row of each CSV line.
fn import_bytes(data: &[u8]) -> Result<ImportText<'_>, RegistryError> {
    if crate::xlsx::looks_like_xlsx(data) {
        let (csv, rows) = crate::xlsx::first_sheet_as_csv(data)?;
        Ok((csv.into(), Some(rows)))
    } else {
        Ok((data.into(), None))
    }
}

/// The row number people see: the CSV line, or the XLSX sheet row.
fn shown_line(rows: &Option<Vec<u64>>, line: u64) -> u64 {
    match rows {
        Some(r) => r
            .get(line.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(line),
        None => line,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "是" => Some(true),
        "false" | "0" | "no" | "n" | "否" => Some(false),
        _ => None,
    }
}

fn parse_rate(s: &str) -> Result<Option<f64>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{t}` is not a rate (0.54 or 54%)"))?;
    let v = v / scale;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("`{t}` is outside 0 to 100%"));
    }
    Ok(Some(v))
}

fn enum_from<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_owned())).ok()
}

fn enum_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn check_header(rdr: &mut csv::Reader<&[u8]>, expected: &[&str]) -> Result<(), RegistryError> {
    let found: Vec<String> = rdr
        .headers()?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
        .collect();
    if found
        .iter()
        .map(String::as_str)
        .ne(expected.iter().copied())
    {
        return Err(RegistryError::Header {
            found: found.join(","),
            expected: expected.join(","),
        });
    }
    Ok(())
}

/// Parses an enterprise CSV or XLSX, checking codes, counties, chains and values.
pub fn parse_enterprises(
    data: &[u8],
    counties: &[County],
    chains: &[IndustryChain],
) -> Result<(Vec<Enterprise>, Vec<RowError>), RegistryError> {
    let (data, sheet_rows) = import_bytes(data)?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(&*data);
    check_header(&mut rdr, &ENTERPRISE_COLUMNS)?;
    let counties: BTreeSet<&str> = counties.iter().map(|c| c.id.as_str()).collect();
    let chains: HashMap<&str, &IndustryChain> = chains.iter().map(|c| (c.id.as_str(), c)).collect();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    for rec in rdr.records() {
        let rec = rec?;
        let line = shown_line(&sheet_rows, rec.position().map_or(0, |p| p.line()));
        let cell = |i: usize| rec.get(i).unwrap_or("").trim();
        let mut reasons = Vec::new();
        if rec.len() != ENTERPRISE_COLUMNS.len() {
            bad.push(RowError {
                line,
                reason: format!("{} cells, expected {}", rec.len(), ENTERPRISE_COLUMNS.len()),
            });
            continue;
        }
        let code = CreditCode::parse(cell(0))
            .map_err(|e| reasons.push(e.to_string()))
            .ok();
        if let Some(c) = &code {
            if !seen.insert(c.clone()) {
                reasons.push(format!("credit code {c} appears twice in the file"));
            }
        }
        if cell(1).is_empty() {
            reasons.push("name is empty".to_owned());
        }
        if !counties.contains(cell(2)) {
            reasons.push(format!(
                "county `{}` is not one of the city's counties and zones",
                cell(2)
            ));
        }
        let chain = chains.get(cell(3));
        if chain.is_none() {
            reasons.push(format!(
                "industry chain `{}` is not in the chain list",
                cell(3)
            ));
        }
        let above_scale = parse_bool(cell(4));
        if above_scale.is_none() {
            reasons.push(format!("above_scale `{}` is not true or false", cell(4)));
        }
        let industry_type = if cell(5).is_empty() {
            chain.map(|c| c.industry_type)
        } else {
            let t = enum_from(cell(5));
            if t.is_none() {
                reasons.push(format!(
                    "industry_type `{}` is not discrete or process",
                    cell(5)
                ));
            }
            t
        };
        let rd = if cell(6).is_empty() {
            None
        } else {
            let b = parse_bool(cell(6));
            if b.is_none() {
                reasons.push(format!(
                    "rd_design_tools `{}` is not true or false",
                    cell(6)
                ));
            }
            b
        };
        let mut rate = |i: usize| {
            parse_rate(cell(i))
                .map_err(|e| reasons.push(format!("{}: {e}", ENTERPRISE_COLUMNS[i])))
                .ok()
                .flatten()
        };
        let declared = DeclaredRates {
            digitization: rate(7),
            networking: rate(8),
            key_process_nc: rate(9),
        };
        match (reasons.is_empty(), code, above_scale, industry_type) {
            (true, Some(credit_code), Some(above_scale), Some(industry_type)) => {
                ok.push(Enterprise {
                    credit_code,
                    name: cell(1).to_owned(),
                    county: cell(2).to_owned(),
                    chain: cell(3).to_owned(),
                    above_scale,
                    industry_type,
                    rd_design_tools: rd,
                    declared,
                })
            }
            _ => bad.push(RowError {
                line,
                reason: reasons.join("; "),
            }),
        }
    }
    Ok((ok, bad))
}

/// Parses a recognition CSV or XLSX; `known` holds the credit codes that exist.
pub fn parse_recognitions(
    data: &[u8],
    known: &BTreeSet<String>,
) -> Result<(Vec<Recognition>, Vec<RowError>), RegistryError> {
    let (data, sheet_rows) = import_bytes(data)?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(&*data);
    check_header(&mut rdr, &RECOGNITION_COLUMNS)?;
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for rec in rdr.records() {
        let rec = rec?;
        let line = shown_line(&sheet_rows, rec.position().map_or(0, |p| p.line()));
        let cell = |i: usize| rec.get(i).unwrap_or("").trim();
        if rec.len() != RECOGNITION_COLUMNS.len() {
            bad.push(RowError {
                line,
                reason: format!(
                    "{} cells, expected {}",
                    rec.len(),
                    RECOGNITION_COLUMNS.len()
                ),
            });
            continue;
        }
        let mut reasons = Vec::new();
        let code = CreditCode::parse(cell(0))
            .map_err(|e| reasons.push(e.to_string()))
            .ok();
        if let Some(c) = &code {
            if !known.contains(c.as_str()) {
                reasons.push(format!("enterprise {c} is not in the registry"));
            }
        }
        let kind: Option<RecognitionKind> = enum_from(cell(1));
        if kind.is_none() {
            reasons.push(format!(
                "kind `{}` is not a recognition kind (smart_workshop, green_factory …)",
                cell(1)
            ));
        }
        let level: Option<RecognitionLevel> = enum_from(cell(2));
        if level.is_none() {
            reasons.push(format!(
                "level `{}` is not national, provincial or city",
                cell(2)
            ));
        }
        let year = cell(3)
            .parse::<u16>()
            .ok()
            .filter(|y| (2000..=2100).contains(y));
        if year.is_none() {
            reasons.push(format!(
                "year `{}` is not a year between 2000 and 2100",
                cell(3)
            ));
        }
        match (reasons.is_empty(), code, kind, level, year) {
            (true, Some(credit_code), Some(kind), Some(level), Some(year)) => {
                ok.push(Recognition {
                    credit_code,
                    kind,
                    level,
                    year,
                    evidence: cell(4).to_owned(),
                })
            }
            _ => bad.push(RowError {
                line,
                reason: reasons.join("; "),
            }),
        }
    }
    Ok((ok, bad))
}

fn opt_bool(b: Option<bool>) -> String {
    b.map(|b| b.to_string()).unwrap_or_default()
}
fn opt_f64(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Enterprises as a table in the import format (export → edit → import round-trips).
pub fn enterprises_table(es: &[Enterprise]) -> Table {
    Table {
        columns: ENTERPRISE_COLUMNS.iter().map(|s| s.to_string()).collect(),
        rows: es
            .iter()
            .map(|e| {
                vec![
                    e.credit_code.to_string(),
                    e.name.clone(),
                    e.county.clone(),
                    e.chain.clone(),
                    e.above_scale.to_string(),
                    enum_name(&e.industry_type),
                    opt_bool(e.rd_design_tools),
                    opt_f64(e.declared.digitization),
                    opt_f64(e.declared.networking),
                    opt_f64(e.declared.key_process_nc),
                ]
            })
            .collect(),
    }
}

/// Recognitions as a table in the import format.
pub fn recognitions_table(rs: &[Recognition]) -> Table {
    Table {
        columns: RECOGNITION_COLUMNS.iter().map(|s| s.to_string()).collect(),
        rows: rs
            .iter()
            .map(|r| {
                vec![
                    r.credit_code.to_string(),
                    enum_name(&r.kind),
                    enum_name(&r.level),
                    r.year.to_string(),
                    r.evidence.clone(),
                ]
            })
            .collect(),
    }
}

/// Writes a table as CSV (UTF-8, header first).
pub fn to_csv(t: &Table) -> Result<Vec<u8>, RegistryError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&t.columns)?;
    for r in &t.rows {
        w.write_record(r)?;
    }
    w.into_inner()
        .map_err(|e| RegistryError::Csv(e.into_error().into()))
}

/// Writes a table as a one-sheet XLSX workbook; cells that read as numbers
/// are written as numbers so spreadsheets can sum them.
pub fn to_xlsx(t: &Table, sheet: &str) -> Result<Vec<u8>, RegistryError> {
    use crate::xlsx::write::{Style, Workbook};
    let mut wb = Workbook::new();
    // Sheet names are limited to 31 characters.
    let ws = wb.add_sheet(&sheet.chars().take(31).collect::<String>())?;
    for (c, h) in t.columns.iter().enumerate() {
        ws.text_styled(0, c as u16, h, Style::Bold);
    }
    for (r, row) in t.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            // Credit codes and ids stay text even when all digits.
            let numeric = v.parse::<f64>().ok().filter(|n| {
                n.is_finite()
                    && v.len() < 16
                    && (!v.starts_with('0') || v == "0" || v.starts_with("0."))
            });
            match numeric {
                Some(n) => ws.number(r, c, n),
                None => ws.text(r, c, v),
            };
        }
    }
    Ok(wb.to_bytes()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhuan_common::inventory::IndustryType;
    use shuzhuan_common::registry::CountyKind;

    fn city() -> (Vec<County>, Vec<IndustryChain>) {
        (
            vec![County {
                id: "xiping".into(),
                name: "西平县".into(),
                name_en: "Xiping".into(),
                kind: CountyKind::County,
                division_code: None,
            }],
            vec![IndustryChain {
                id: "food".into(),
                name: "食品".into(),
                name_en: "Food".into(),
                cluster: None,
                industry_type: IndustryType::Process,
            }],
        )
    }

    fn code(n: u32) -> String {
        CreditCode::from_body(&format!("91411721{n:09}"))
            .unwrap()
            .to_string()
    }

    #[test]
    fn good_rows_parse_and_round_trip() {
        let (co, ch) = city();
        let csv = format!(
            "{}\n{},甲厂,xiping,food,是,,true,54%,0.3,\n",
            ENTERPRISE_COLUMNS.join(","),
            code(1)
        );
        let (ok, bad) = parse_enterprises(csv.as_bytes(), &co, &ch).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            ok[0].industry_type,
            IndustryType::Process,
            "defaults to the chain's type"
        );
        assert_eq!(ok[0].declared.digitization, Some(0.54));
        let again = to_csv(&enterprises_table(&ok)).unwrap();
        let (ok2, bad2) = parse_enterprises(&again, &co, &ch).unwrap();
        assert!(bad2.is_empty());
        assert_eq!(ok, ok2);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let (co, ch) = city();
        let mut bad_check = code(2);
        bad_check.replace_range(17.., if bad_check.ends_with('0') { "1" } else { "0" });
        let csv = format!(
            "{}\n{},好,xiping,food,true,,,,,\n{bad_check},坏,xiping,food,true,,,,,\n{},无县,nowhere,food,maybe,,,150%,,\n",
            ENTERPRISE_COLUMNS.join(","),
            code(1),
            code(3)
        );
        let (ok, bad) = parse_enterprises(csv.as_bytes(), &co, &ch).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].line, 3);
        assert!(bad[0].reason.contains("check character"), "{}", bad[0]);
        assert_eq!(bad[1].line, 4);
        for part in ["county `nowhere`", "above_scale `maybe`", "150%"] {
            assert!(bad[1].reason.contains(part), "{} lacks {part}", bad[1]);
        }
    }

    #[test]
    fn wrong_header_is_refused() {
        let (co, ch) = city();
        let err = parse_enterprises(b"code,name\n", &co, &ch).unwrap_err();
        assert!(
            err.to_string().starts_with("header is `code,name`"),
            "{err}"
        );
    }

    #[test]
    fn recognitions_need_a_known_enterprise_and_valid_kind() {
        let known: BTreeSet<String> = [code(1)].into_iter().collect();
        let csv = format!(
            "credit_code,kind,level,year,evidence\n{},smart_workshop,provincial,2024,豫工信〔2024〕1号\n{},smart_bakery,city,1999,\n",
            code(1),
            code(2)
        );
        let (ok, bad) = parse_recognitions(csv.as_bytes(), &known).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad[0].line, 3);
        assert!(
            bad[0].reason.contains("not in the registry")
                && bad[0].reason.contains("smart_bakery")
                && bad[0].reason.contains("1999"),
            "{}",
            bad[0]
        );
    }

    #[test]
    fn xlsx_is_a_zip_workbook() {
        let bytes = to_xlsx(&recognitions_table(&[]), "recognitions").unwrap();
        assert_eq!(&bytes[..2], b"PK");
    }
}
