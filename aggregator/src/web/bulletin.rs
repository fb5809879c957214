//! The monthly bulletin (月通报): per county the plan's measured and
//! declared rates with the change since last month, the enterprises that
//! moved most, and the enterprises whose data stopped; as a printable page
//! and as an XLSX workbook with the same three tables.

use super::html::{self, esc, pct, qty, source, Lang, Nav};
use super::pages::fig;
use super::{queries, PageResult, View, WebState};
use crate::rollup::{self, EnterpriseFacts};
use crate::store::{Period, StoreError};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One county's line.
#[derive(Debug, Clone, PartialEq)]
pub struct CountyLine {
    pub id: String,
    pub name: String,
    pub name_en: String,
    pub above_scale: u64,
    pub with_measured: u64,
    pub digitization_measured: Option<f64>,
    pub digitization_declared: Option<f64>,
    pub key_process_nc_measured: Option<f64>,
    pub coverage: Option<f64>,
    pub electricity_kwh: Option<f64>,
    /// Change of the measured digitization rate since the previous month (fraction).
    pub digitization_change: Option<f64>,
}

/// An enterprise whose utilisation moved most since the previous month.
#[derive(Debug, Clone, PartialEq)]
pub struct Mover {
    pub credit_code: String,
    pub name: String,
    pub county: String,
    pub before: f64,
    pub now: f64,
}

/// An enterprise whose data stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    pub credit_code: String,
    pub name: String,
    pub county: String,
    pub agent_id: String,
    pub last_window_end: Option<i64>,
}

/// The bulletin's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Bulletin {
    pub month: Period,
    pub counties: Vec<CountyLine>,
    pub movers: Vec<Mover>,
    pub stopped: Vec<Stopped>,
}

fn month_of(v: &View, utc_offset_secs: i64) -> Period {
    v.query
        .get("month")
        .and_then(|m| Period::parse(m))
        .filter(|p| matches!(p, Period::Month(..)))
        .unwrap_or(Period::containing(v.today(utc_offset_secs))[0])
}

/// Builds the bulletin of `month`; "stopped" is judged at `now` (no data
/// for over 24 hours before the earlier of `now` and the month's end).
pub fn build(s: &WebState, month: Period, now: i64) -> Result<Bulletin, StoreError> {
    let app = &s.app;
    let prev = queries::previous_month(month);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, month)?;
    let before = rollup::enterprise_facts(&*app.store, &app.reference, prev)?;
    let mut counties = Vec::new();
    for c in app.store.counties()? {
        let m: Vec<&EnterpriseFacts> = facts.iter().filter(|f| f.county == c.id).collect();
        let b: Vec<&EnterpriseFacts> = before.iter().filter(|f| f.county == c.id).collect();
        let g = rollup::group_json(&m);
        let gb = rollup::group_json(&b);
        let d = g["digitization"]["measured"]["mean"].as_f64();
        let kwh = g["energy"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["carrier"] == "electricity")
            .filter_map(|e| Some(e["quantity"].as_f64()? - e["exported"].as_f64()?))
            .reduce(|a, b| a + b);
        counties.push(CountyLine {
            id: c.id.clone(),
            name: c.name.clone(),
            name_en: c.name_en.clone(),
            above_scale: g["enterprises_above_scale"].as_u64().unwrap_or(0),
            with_measured: g["enterprises_with_measured_data"].as_u64().unwrap_or(0),
            digitization_measured: d,
            digitization_declared: g["digitization"]["declared_questionnaire"]["mean"].as_f64(),
            key_process_nc_measured: g["key_process_nc"]["measured"]["mean"].as_f64(),
            coverage: g["coverage"]["mean"].as_f64(),
            electricity_kwh: kwh,
            digitization_change: d
                .zip(gb["digitization"]["measured"]["mean"].as_f64())
                .map(|(a, b)| a - b),
        });
    }
    counties.sort_by(|a, b| {
        b.digitization_measured
            .unwrap_or(-1.0)
            .total_cmp(&a.digitization_measured.unwrap_or(-1.0))
    });
    let prev_util: BTreeMap<&str, f64> = before
        .iter()
        .filter_map(|f| Some((f.credit_code.as_str(), f.utilisation_of_known_time.value?)))
        .collect();
    let mut movers: Vec<Mover> = facts
        .iter()
        .filter_map(|f| {
            Some(Mover {
                credit_code: f.credit_code.clone(),
                name: f.name.clone(),
                county: f.county.clone(),
                before: *prev_util.get(f.credit_code.as_str())?,
                now: f.utilisation_of_known_time.value?,
            })
        })
        .collect();
    movers.sort_by(|a, b| {
        (b.now - b.before)
            .abs()
            .total_cmp(&(a.now - a.before).abs())
    });
    movers.truncate(10);
    let (_, end_day) = month.day_range();
    let cutoff = now.min(end_day * 86_400 - app.utc_offset_secs) - 86_400;
    let names: BTreeMap<&str, &EnterpriseFacts> =
        facts.iter().map(|f| (f.credit_code.as_str(), f)).collect();
    let mut stopped = Vec::new();
    for fr in queries::freshness(&*app.store, &|_| true)? {
        if fr.revoked || fr.last_window_end.is_some_and(|t| t >= cutoff) {
            continue;
        }
        let f = names.get(fr.enterprise.as_str());
        stopped.push(Stopped {
            credit_code: fr.enterprise.clone(),
            name: f.map_or_else(String::new, |f| f.name.clone()),
            county: f.map_or_else(String::new, |f| f.county.clone()),
            agent_id: fr.agent_id,
            last_window_end: fr.last_window_end,
        });
    }
    Ok(Bulletin {
        month,
        counties,
        movers,
        stopped,
    })
}

fn change(lang: Lang, c: Option<f64>) -> String {
    match c {
        Some(c) if c > 0.0 => format!("<span class=\"ok\">+{:.1}</span>", c * 100.0),
        Some(c) => format!("<span class=\"bad\">{:.1}</span>", c * 100.0),
        None => format!("<span class=\"na\">{}</span>", html::insufficient(lang)),
    }
}

/// `/bulletin?month=YYYY-MM`: the printable page.
pub fn page(s: &WebState, v: &View) -> Result<PageResult, StoreError> {
    if !v.city_reader() {
        return Ok(PageResult::Forbidden(
            "the monthly bulletin is for the bureau, evaluators and admins".into(),
        ));
    }
    let lang = v.lang;
    let off = s.app.utc_offset_secs;
    let month = month_of(v, off);
    let b = build(s, month, v.now)?;
    let key = month.key();
    let mut h = format!(
        "<h1>{} {}</h1><p class=\"noprint\"><a class=\"button\" href=\"/bulletin.xlsx?month={key}\">{}</a> \
         <a href=\"/bulletin?month={}\">← {}</a></p>",
        lang.t("驻马店市制造业数字化转型月通报", "Monthly bulletin: manufacturing digital transformation"),
        esc(&key),
        lang.t("导出 Excel（XLSX）", "Export XLSX"),
        queries::previous_month(month).key(),
        lang.t("上月", "previous month"),
    );
    let _ = write!(
        h,
        "<h2>{}</h2><table id=\"county-table\"><tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("一、各县区情况", "1. Counties"),
        lang.t("排名", "rank"),
        lang.t("县区", "county"),
        lang.t("规上企业", "above-scale"),
        lang.t("有实测数据", "with measured data"),
        lang.t("生产设备数字化率 实测", "digitization measured"),
        lang.t("较上月（百分点）", "change (points)"),
        lang.t("生产设备数字化率 申报", "digitization declared"),
        lang.t("关键工序数控化率 实测", "key-process NC measured"),
        lang.t("数据覆盖率", "coverage"),
        lang.t("电力（kWh）", "electricity (kWh)"),
    );
    for (i, c) in b.counties.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            esc(lang.t(&c.name, &c.name_en)),
            c.above_scale,
            c.with_measured,
            fig(&format!("bulletin.{}.digitization.measured", c.id), c.digitization_measured, pct(lang, c.digitization_measured)),
            change(lang, c.digitization_change),
            pct(lang, c.digitization_declared),
            pct(lang, c.key_process_nc_measured),
            pct(lang, c.coverage),
            qty(lang, c.electricity_kwh, ""),
        );
    }
    h.push_str("</table>");
    h.push_str(&source(lang, &key, super::pages::src_measured(lang)));
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("二、设备利用率变化较大的企业", "2. Movers: largest change in utilisation"),
        lang.t("企业", "enterprise"),
        lang.t("县区", "county"),
        lang.t("上月", "last month"),
        lang.t("本月", "this month"),
        lang.t("变化（百分点）", "change (points)"),
    );
    for m in &b.movers {
        let _ = write!(
            h,
            "<tr><td><a href=\"/enterprises/{}\">{}</a></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&m.credit_code),
            esc(&m.name),
            esc(&m.county),
            pct(lang, Some(m.before)),
            pct(lang, Some(m.now)),
            change(lang, Some(m.now - m.before)),
        );
    }
    if b.movers.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"5\" class=\"na\">{}</td></tr>",
            lang.t(
                "两个月都有数据的企业不足",
                "not enough enterprises with data in both months"
            )
        );
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<h2>{}</h2><table id=\"stopped\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t(
            "三、数据中断的企业（超过24小时无数据）",
            "3. Enterprises whose data stopped (no data for over 24 h)"
        ),
        lang.t("企业", "enterprise"),
        lang.t("县区", "county"),
        lang.t("网关", "gateway"),
        lang.t("最新数据截至", "latest data up to"),
    );
    for st in &b.stopped {
        let _ = write!(
            h,
            "<tr><td><a href=\"/enterprises/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st.credit_code),
            esc(if st.name.is_empty() {
                &st.credit_code
            } else {
                &st.name
            }),
            esc(&st.county),
            esc(&st.agent_id),
            st.last_window_end.map_or_else(
                || lang.t("从未上报", "never reported").to_owned(),
                |t| html::local_time(t, off)
            ),
        );
    }
    if b.stopped.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"4\" class=\"ok\">{}</td></tr>",
            lang.t("无", "none")
        );
    }
    h.push_str("</table>");
    h.push_str(&source(
        lang,
        &key,
        lang.t("网关最新报告", "gateways' newest reports"),
    ));
    Ok(PageResult::Ok(html::page(
        lang,
        &format!("{} {key}", lang.t("月通报", "Monthly bulletin")),
        Nav::Bulletin,
        &v.who(),
        &v.here,
        &h,
    )))
}

/// `/bulletin.xlsx?month=YYYY-MM`: the same tables as a workbook (sheets
/// 县区 counties, 变化 movers, 数据中断 stopped). Rates are fractions formatted as percentages.
pub fn xlsx(s: &WebState, v: &View) -> Result<(String, Vec<u8>), StoreError> {
    let month = month_of(v, s.app.utc_offset_secs);
    let b = build(s, month, v.now)?;
    use crate::xlsx::write::{Style, Workbook};
    let opt = |ws: &mut crate::xlsx::write::Sheet, r: u32, c: u16, v: Option<f64>, style: Style| {
        match v {
            Some(v) => ws.number_styled(r, c, v, style),
            None => ws.text(r, c, "数据不足 insufficient data"),
        };
    };
    let fail = |e: crate::xlsx::write::XlsxWriteError| StoreError::Corrupt(format!("xlsx: {e}"));
    let mut wb = Workbook::new();
    {
        let ws = wb.add_sheet("县区 counties").map_err(fail)?;
        let head = [
            "排名 rank",
            "县区 county",
            "id",
            "规上企业 above-scale",
            "有实测数据 with measured data",
            "生产设备数字化率 实测 digitization measured",
            "较上月 change",
            "生产设备数字化率 申报 digitization declared",
            "关键工序数控化率 实测 key-process NC measured",
            "数据覆盖率 coverage",
            "电力 electricity kWh",
        ];
        for (c, t) in head.iter().enumerate() {
            ws.text_styled(0, c as u16, *t, Style::Bold);
        }
        for (i, c) in b.counties.iter().enumerate() {
            let r = i as u32 + 1;
            ws.number(r, 0, (i + 1) as f64)
                .text(r, 1, &c.name)
                .text(r, 2, &c.id)
                .number(r, 3, c.above_scale as f64)
                .number(r, 4, c.with_measured as f64);
            opt(ws, r, 5, c.digitization_measured, Style::Percent);
            opt(ws, r, 6, c.digitization_change, Style::Percent);
            opt(ws, r, 7, c.digitization_declared, Style::Percent);
            opt(ws, r, 8, c.key_process_nc_measured, Style::Percent);
            opt(ws, r, 9, c.coverage, Style::Percent);
            opt(ws, r, 10, c.electricity_kwh, Style::Plain);
        }
        let n = b.counties.len() as u32 + 2;
        ws.text(
            n,
            0,
            format!(
                "统计期 period: {} · 来源 source: 网关签名上报 signed gateway reports",
                month.key()
            ),
        );
    }
    {
        let ws = wb.add_sheet("变化 movers").map_err(fail)?;
        for (c, t) in [
            "企业 enterprise",
            "统一社会信用代码 credit code",
            "县区 county",
            "上月利用率 last month",
            "本月利用率 this month",
        ]
        .iter()
        .enumerate()
        {
            ws.text_styled(0, c as u16, *t, Style::Bold);
        }
        for (i, m) in b.movers.iter().enumerate() {
            let r = i as u32 + 1;
            ws.text(r, 0, &m.name)
                .text(r, 1, &m.credit_code)
                .text(r, 2, &m.county)
                .number_styled(r, 3, m.before, Style::Percent)
                .number_styled(r, 4, m.now, Style::Percent);
        }
    }
    {
        let ws = wb.add_sheet("数据中断 stopped").map_err(fail)?;
        for (c, t) in [
            "企业 enterprise",
            "统一社会信用代码 credit code",
            "县区 county",
            "网关 gateway",
            "最新数据截至 latest data",
        ]
        .iter()
        .enumerate()
        {
            ws.text_styled(0, c as u16, *t, Style::Bold);
        }
        for (i, st) in b.stopped.iter().enumerate() {
            let r = i as u32 + 1;
            ws.text(r, 0, &st.name)
                .text(r, 1, &st.credit_code)
                .text(r, 2, &st.county)
                .text(r, 3, &st.agent_id)
                .text(
                    r,
                    4,
                    st.last_window_end.map_or_else(
                        || "从未上报 never".to_owned(),
                        |t| html::local_time(t, s.app.utc_offset_secs),
                    ),
                );
        }
    }
    let bytes = wb.to_bytes().map_err(fail)?;
    Ok((month.key(), bytes))
}
