//! The dashboard's pages. Each builder reads through the store's public
//! interface and the roll-up functions the JSON API uses
//! (`rollup::enterprise_facts`, `rollup::group_json`), so every figure on a
//! page equals the API's for the same period. Figures carry
//! `data-key`/`data-value` attributes with the raw value for tests and tools.

use super::html::{self, esc, pct, qty, source, Lang, Nav};
use super::{queries, svg, PageResult, View, WebState};
use crate::api::auth::{may_see_county, may_see_enterprise};
use crate::rollup::{self, EnterpriseFacts};
use crate::store::{Period, Role, StoreError};
use serde_json::Value;
use shuzhuan_common::registry::{County, IndustryChain};
use shuzhuan_common::state::DeviceState;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The plan's headline indicators: (json key, 中文, English).
pub const HEADLINES: [(&str, &str, &str); 3] = [
    (
        "digitization",
        "生产设备数字化率",
        "Production equipment digitization rate",
    ),
    ("key_process_nc", "关键工序数控化率", "Key-process NC rate"),
    (
        "rd_design_tools",
        "数字化研发设计工具普及率",
        "Digital R&D design tool penetration",
    ),
];

/// A figure with its raw value in `data-value`.
pub fn fig(key: &str, v: Option<f64>, shown: String) -> String {
    match v {
        Some(v) => format!(
            "<span data-key=\"{}\" data-value=\"{v}\">{shown}</span>",
            esc(key)
        ),
        None => format!(
            "<span data-key=\"{}\" data-value=\"\">{shown}</span>",
            esc(key)
        ),
    }
}

fn county_name(lang: Lang, c: &County) -> String {
    match lang {
        Lang::Zh => c.name.clone(),
        Lang::En => c.name_en.clone(),
    }
}

fn chain_name(lang: Lang, c: &IndustryChain) -> String {
    match lang {
        Lang::Zh => c.name.clone(),
        Lang::En => c.name_en.clone(),
    }
}

/// Where a measured or declared figure comes from.
pub fn src_measured(lang: Lang) -> &'static str {
    lang.t(
        "实测：企业智能网关签名上报（规上企业均值）",
        "measured: signed gateway reports (mean over above-scale enterprises)",
    )
}

fn target_2025(s: &WebState, key: &str) -> Option<f64> {
    s.targets
        .as_ref()
        .as_ref()
        .ok()
        .and_then(|t| {
            t.headline(match key {
                "rd_design_tools" => "rd_design_tool",
                k => k,
            })
        })
        .and_then(|r| r.target(2025))
}

/// The headline cards of a group (city, county, chain): measured and
/// declared side by side, coverage, and the 2025 target.
pub fn headline_cards(s: &WebState, lang: Lang, g: &Value, period: &str, prefix: &str) -> String {
    let mut h = String::from("<div class=\"cards\">");
    let above = g["enterprises_above_scale"].as_u64().unwrap_or(0);
    for (key, zh, en) in HEADLINES {
        let target = target_2025(s, key);
        let (measured, declared, inventory, n_measured, n_declared) = if key == "rd_design_tools" {
            let d = &g[key]["declared"];
            (
                None,
                d["mean"].as_f64(),
                None,
                0,
                d["enterprises_with_value"].as_u64().unwrap_or(0),
            )
        } else {
            let m = &g[key]["measured"];
            let d = &g[key]["declared_questionnaire"];
            (
                m["mean"].as_f64(),
                d["mean"].as_f64(),
                g[key]["declared_inventory"]["mean"].as_f64(),
                m["enterprises_with_value"].as_u64().unwrap_or(0),
                d["enterprises_with_value"].as_u64().unwrap_or(0),
            )
        };
        let _ = write!(h, "<div class=\"card\"><h3>{}</h3>", lang.t(zh, en));
        if key == "rd_design_tools" {
            let _ = write!(
                h,
                "<div class=\"big\">{}</div><div>{} · {}</div>",
                fig(
                    &format!("{prefix}{key}.declared.mean"),
                    declared,
                    pct(lang, declared)
                ),
                lang.t(
                    "申报（不可由设备实测）",
                    "declared (not measurable from machines)"
                ),
                lang.t(
                    &format!("{n_declared}/{above} 家规上企业已申报"),
                    &format!("{n_declared}/{above} above-scale enterprises declared"),
                )
            );
        } else {
            let _ = write!(
                h,
                "<div class=\"big\">{}</div><div>{}</div>\
                 <table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>\
                 <tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{n_measured}/{above}</td></tr>\
                 <tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{n_declared}/{above}</td></tr>\
                 <tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">–</td></tr></table>",
                fig(&format!("{prefix}{key}.measured.mean"), measured, pct(lang, measured)),
                lang.t("实测（规上企业均值）", "measured (mean of above-scale enterprises)"),
                lang.t("口径", "basis"),
                lang.t("数值", "value"),
                lang.t("企业数", "enterprises"),
                lang.t("实测", "measured"),
                pct(lang, measured),
                lang.t("问卷申报", "declared (questionnaire)"),
                fig(&format!("{prefix}{key}.declared_questionnaire.mean"), declared, pct(lang, declared)),
                lang.t("设备清单申报", "declared (inventory)"),
                pct(lang, inventory),
            );
        }
        let shown = measured.or(declared);
        h.push_str(&svg::progress(shown, target, lang.t(zh, en)));
        let _ = write!(
            h,
            "<div>{} {}</div>",
            lang.t("2025年目标：", "2025 target:"),
            match target {
                Some(t) => format!("≥ {:.0}%", t * 100.0),
                None => format!(
                    "<span class=\"na\">{}</span>",
                    lang.t(
                        "目标未加载（config/plan/targets.toml）",
                        "target not loaded (config/plan/targets.toml)"
                    )
                ),
            }
        );
        let _ = write!(
            h,
            "{}</div>",
            source(
                lang,
                period,
                if key == "rd_design_tools" {
                    lang.t("企业问卷申报", "enterprise questionnaire")
                } else {
                    src_measured(lang)
                }
            )
        );
    }
    let cov = g["coverage"]["mean"].as_f64();
    let _ = write!(
        h,
        "<div class=\"card\"><h3>{}</h3><div class=\"big\">{}</div><div>{}</div>\
         <table><tr><td>{}</td><td class=\"n\">{}</td></tr><tr><td>{}</td><td class=\"n\">{}</td></tr>\
         <tr><td>{}</td><td class=\"n\">{}</td></tr></table>{}</div>",
        lang.t("数据覆盖率", "Data coverage"),
        fig(&format!("{prefix}coverage.mean"), cov, pct(lang, cov)),
        lang.t("实收样本 / 应收样本（企业均值）", "samples received / expected (enterprise mean)"),
        lang.t("有实测数据的规上企业", "above-scale enterprises with measured data"),
        fig(&format!("{prefix}enterprises_with_measured_data"), g["enterprises_with_measured_data"].as_f64(), g["enterprises_with_measured_data"].to_string()),
        lang.t("仅有申报数据", "declared only"),
        g["enterprises_declared_only"],
        lang.t("设备联网率（实测）", "equipment networking rate (measured)"),
        fig(&format!("{prefix}networking.measured.mean"), g["networking"]["measured"]["mean"].as_f64(), pct(lang, g["networking"]["measured"]["mean"].as_f64())),
        source(lang, period, src_measured(lang)),
    );
    h.push_str("</div>");
    h
}

fn visible_set(v: &View, facts: &[EnterpriseFacts]) -> BTreeSet<String> {
    facts
        .iter()
        .filter(|f| match v.token.role {
            Role::Admin | Role::Bureau | Role::Evaluator => true,
            Role::County => v.token.scope.as_deref() == Some(f.county.as_str()),
            Role::Enterprise => v.token.scope.as_deref() == Some(f.credit_code.as_str()),
        })
        .map(|f| f.credit_code.clone())
        .collect()
}

/// Energy and CO2 per month: chart and table.
fn energy_section(
    s: &WebState,
    v: &View,
    last: Period,
    members: Option<&BTreeSet<String>>,
) -> Result<String, StoreError> {
    let lang = v.lang;
    let months = queries::months_back(last, 12);
    let series = queries::monthly_energy(&*s.app.store, &months, members)?;
    let labels: Vec<String> = months.iter().map(|m| m.key()[5..].to_owned()).collect();
    let policy = s.policy.as_ref().as_ref().ok();
    let set = policy.and_then(|p| {
        p.factor_sets
            .get(&p.default_factor_set)
            .map(|f| (p.default_factor_set.clone(), f))
    });
    let elec = series.get(&("electricity".to_owned(), "kWh".to_owned()));
    let kwh: Vec<Option<f64>> = (0..months.len())
        .map(|i| elec.and_then(|e| e[i]).map(|(q, x)| q - x))
        .collect();
    let co2: Vec<Option<f64>> = kwh
        .iter()
        .map(|k| {
            k.zip(set.as_ref())
                .map(|(k, (_, f))| k * f.electricity_kgco2_per_kwh / 1000.0)
        })
        .collect();
    let kgce: Vec<Option<f64>> = (0..months.len())
        .map(|i| {
            let (mut total, mut any) = (0.0, false);
            for ((carrier, unit), vals) in &series {
                if let (Some((q, x)), Some((_, f))) = (vals[i], set.as_ref()) {
                    if let Some(c) = f.kgce.get(carrier).filter(|c| &c.unit == unit) {
                        total += (q - x) * c.per_unit;
                        any = true;
                    }
                }
            }
            any.then_some(total)
        })
        .collect();
    let mut h = format!(
        "<h2>{}</h2>",
        lang.t("能耗与碳排放趋势", "Energy and CO2 trend")
    );
    h.push_str(&svg::lines(
        &labels,
        &[
            (
                lang.t("电力 MWh", "electricity MWh"),
                "#0b5fa5",
                kwh.iter().map(|k| k.map(|k| k / 1000.0)).collect(),
            ),
            (lang.t("二氧化碳 t", "CO2 t"), "#b3261e", co2.clone()),
        ],
        "MWh / t",
    ));
    let _ = write!(
        h,
        "<table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("月份", "month"),
        lang.t("电力净耗（kWh）", "net electricity (kWh)"),
        lang.t("综合能耗（kgce）", "energy (kgce)"),
        lang.t("二氧化碳（t）", "CO2 (t)"),
    );
    for (i, m) in months.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            m.key(),
            fig(&format!("energy.{}.kwh", m.key()), kwh[i], qty(lang, kwh[i], "kWh")),
            qty(lang, kgce[i], "kgce"),
            qty(lang, co2[i], "t"),
        );
    }
    h.push_str("</table>");
    let factor = match &set {
        Some((name, f)) => format!(
            "{} {name}：{} kgCO2/kWh（{}；{}）",
            lang.t("排放因子集", "factor set"),
            f.electricity_kgco2_per_kwh,
            esc(&f.source),
            esc(&f.vintage)
        ),
        None => lang
            .t(
                "排放因子未加载（config/claims/thresholds.toml），CO2 数据不足",
                "factor sets not loaded (config/claims/thresholds.toml): CO2 insufficient",
            )
            .to_owned(),
    };
    h.push_str(&source(
        lang,
        &format!("{} – {}", months[0].key(), last.key()),
        &format!(
            "{}; {factor}",
            lang.t("电表计量，网关签名上报", "metered, signed gateway reports")
        ),
    ));
    Ok(h)
}

fn freshness_section(
    s: &WebState,
    v: &View,
    visible: &BTreeSet<String>,
    names: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let lang = v.lang;
    let fr = queries::freshness(&*s.app.store, &|e| visible.contains(e))?;
    let (mut fresh, mut stale, mut stopped, mut never) = (0, 0, 0, 0);
    let mut late = Vec::new();
    for f in fr.iter().filter(|f| !f.revoked) {
        match f.age(v.now) {
            None => {
                never += 1;
                late.push(f);
            }
            Some(a) if a <= 2 * 3600 => fresh += 1,
            Some(a) if a <= 86_400 => {
                stale += 1;
                late.push(f);
            }
            Some(_) => {
                stopped += 1;
                late.push(f);
            }
        }
    }
    let mut h = format!(
        "<h2>{}</h2><div class=\"cards\"><div class=\"card\"><table>\
         <tr><td>{}</td><td class=\"n ok\" data-key=\"fresh\">{fresh}</td></tr>\
         <tr><td>{}</td><td class=\"n warn\">{stale}</td></tr>\
         <tr><td>{}</td><td class=\"n bad\" data-key=\"stopped\">{stopped}</td></tr>\
         <tr><td>{}</td><td class=\"n\">{never}</td></tr></table></div></div>",
        lang.t("数据新鲜度", "Data freshness"),
        lang.t("2 小时内有数据的网关", "gateways with data in the last 2 h"),
        lang.t("2–24 小时无新数据", "no new data for 2–24 h"),
        lang.t(
            "超过 24 小时无数据（已停报）",
            "no data for over 24 h (stopped)"
        ),
        lang.t("已注册但从未上报", "enrolled, never reported"),
    );
    if !late.is_empty() {
        let _ = write!(
            h,
            "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
            lang.t("网关", "gateway"),
            lang.t("企业", "enterprise"),
            lang.t("最新数据截至", "latest data up to"),
        );
        for f in late.iter().take(50) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td><a href=\"/enterprises/{}\">{}</a></td><td>{}</td></tr>",
                esc(&f.agent_id),
                esc(&f.enterprise),
                esc(names
                    .get(&f.enterprise)
                    .map_or(f.enterprise.as_str(), String::as_str)),
                f.last_window_end.map_or_else(
                    || lang.t("无", "none").to_owned(),
                    |t| html::local_time(t, s.app.utc_offset_secs)
                ),
            );
        }
        h.push_str("</table>");
    }
    h.push_str(&source(
        lang,
        &html::local_time(v.now, s.app.utc_offset_secs),
        lang.t(
            "网关最新报告的窗口结束时间",
            "window end of each gateway's newest report",
        ),
    ));
    Ok(h)
}

/// The plan's target table with current values and gaps.
fn target_table(s: &WebState, v: &View, year: i32) -> Result<String, StoreError> {
    let lang = v.lang;
    let mut h = format!(
        "<h2>{}</h2>",
        lang.t("行动计划目标完成情况", "The plan's targets")
    );
    let t = match s.targets.as_ref() {
        Ok(t) => t,
        Err(why) => {
            let _ = write!(
                h,
                "<p class=\"na\">{}: {}</p>",
                lang.t("目标数据未加载", "targets not loaded"),
                esc(why)
            );
            return Ok(h);
        }
    };
    let counts = rollup::targets_json(&*s.app.store, &s.app.reference, year)?;
    let _ = write!(
        h,
        "<table><tr><th>#</th><th>{}</th><th class=\"n\">2023</th><th class=\"n\">2024</th><th class=\"n\">2025</th><th class=\"n\">{} ({year})</th><th class=\"n\">{}</th></tr>",
        lang.t("指标", "indicator"),
        lang.t("当前值", "current"),
        lang.t("距2025年目标", "gap to 2025"),
    );
    let show = |r: &super::targets::TargetRow, x: Option<f64>| match x {
        Some(x) if r.percent => format!("{:.0}%", x * 100.0),
        Some(x) => html::group(x).trim_end_matches(".0").to_owned(),
        None => "–".to_owned(),
    };
    for (i, r) in t.table().into_iter().enumerate() {
        let current = r
            .kind
            .as_deref()
            .map(|k| super::targets::count_of(&counts, k) as f64);
        let gap = current.zip(r.target(2025)).map(|(c, t)| (t - c).max(0.0));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            r.no.clone().unwrap_or_else(|| (i + 1).to_string()),
            esc(lang.t(&r.zh, &r.en)),
            show(r, r.target(2023)),
            show(r, r.target(2024)),
            show(r, r.target(2025)),
            match current {
                Some(c) => fig(&format!("target.{}.current", r.id), Some(c), show(r, Some(c))),
                None => format!("<span class=\"na\">{}</span>", lang.t("未统计", "not counted")),
            },
            match gap {
                Some(g) if g <= 0.0 => format!("<span class=\"ok\">{}</span>", lang.t("已完成", "met")),
                Some(g) => format!("<span class=\"bad\">{}</span>", show(r, Some(g))),
                None => "–".to_owned(),
            }
        );
    }
    h.push_str("</table>");
    h.push_str(&source(
        lang,
        &format!("{year}"),
        &format!(
            "{}; {}",
            esc(&t.source),
            lang.t(
                "当前值：登记的认定（累计）",
                "current: recognitions in the registry (cumulative)"
            )
        ),
    ));
    Ok(h)
}

/// `/`: the city overview (county and enterprise users go to their own page).
pub fn overview(s: &WebState, v: &View) -> Result<PageResult, StoreError> {
    match (v.token.role, v.token.scope.clone()) {
        (Role::County, Some(c)) => return county(s, v, &c),
        (Role::Enterprise, Some(e)) => return enterprise(s, v, &e),
        _ => {}
    }
    let app = &s.app;
    let lang = v.lang;
    let today = v.today(app.utc_offset_secs);
    let [month, _, year] = Period::containing(today);
    let period = v.period_or(year);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, period)?;
    let all: Vec<&EnterpriseFacts> = facts.iter().collect();
    let g = rollup::group_json(&all);
    let mut h = format!(
        "<h1>{} <small>{}</small></h1>",
        lang.t(
            "驻马店市制造业数字化转型概览",
            "Zhumadian manufacturing digital transformation"
        ),
        esc(&period.key())
    );
    h.push_str(&headline_cards(s, lang, &g, &period.key(), "city."));
    let y = match period {
        Period::Year(y) | Period::Quarter(y, _) | Period::Month(y, _) => y,
    };
    h.push_str(&target_table(s, v, y)?);
    // County ranking at a glance.
    let counties = app.store.counties()?;
    let mut rows: Vec<(String, Option<f64>)> = counties
        .iter()
        .map(|c| {
            let m: Vec<&EnterpriseFacts> = facts.iter().filter(|f| f.county == c.id).collect();
            (
                county_name(lang, c),
                rollup::group_json(&m)["digitization"]["measured"]["mean"].as_f64(),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.1.unwrap_or(-1.0).total_cmp(&a.1.unwrap_or(-1.0)));
    let _ = write!(
        h,
        "<h2>{}</h2>",
        lang.t(
            "县区生产设备数字化率（实测）",
            "Digitization rate by county (measured)"
        )
    );
    h.push_str(&svg::bars(&rows, target_2025(s, "digitization")));
    let _ = write!(
        h,
        "<p><a href=\"/counties\">{}</a></p>",
        lang.t("县区排名与明细 →", "County ranking and details →")
    );
    h.push_str(&energy_section(s, v, month, None)?);
    let names: BTreeMap<String, String> = facts
        .iter()
        .map(|f| (f.credit_code.clone(), f.name.clone()))
        .collect();
    let visible: BTreeSet<String> = names.keys().cloned().collect();
    h.push_str(&freshness_section(s, v, &visible, &names)?);
    Ok(PageResult::Ok(html::page(
        lang,
        lang.t("全市概览", "City overview"),
        Nav::Overview,
        &v.who(),
        &v.here,
        &h,
    )))
}

fn enterprise_table(lang: Lang, members: &[&EnterpriseFacts]) -> String {
    let mut h = format!(
        "<table><tr><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("企业", "enterprise"),
        lang.t("统一社会信用代码", "credit code"),
        lang.t("规上", "above scale"),
        lang.t("数字化率 实测", "digitization measured"),
        lang.t("数字化率 申报", "digitization declared"),
        lang.t("关键工序数控化率 实测", "key-process NC measured"),
        lang.t("数据覆盖率", "coverage"),
        lang.t("设备利用率", "utilisation"),
        lang.t("电力（kWh）", "electricity (kWh)"),
    );
    for f in members {
        let kwh = f
            .energy
            .iter()
            .filter(|e| e.carrier == "electricity")
            .map(|e| e.quantity - e.exported)
            .reduce(|a, b| a + b);
        let _ = write!(
            h,
            "<tr><td><a href=\"/enterprises/{code}\">{}</a></td><td>{code}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&f.name),
            if f.above_scale { lang.t("是", "yes") } else { lang.t("否", "no") },
            fig(&format!("{}.digitization.measured", f.credit_code), f.measured_digitization.value, pct(lang, f.measured_digitization.value)),
            pct(lang, f.declared_digitization),
            pct(lang, f.measured_key_process_nc.value),
            pct(lang, f.coverage.value),
            pct(lang, f.utilisation_of_known_time.value),
            qty(lang, kwh, ""),
            code = esc(&f.credit_code),
        );
    }
    h.push_str("</table>");
    h
}

/// `/counties`: comparison and ranking.
pub fn counties(s: &WebState, v: &View) -> Result<PageResult, StoreError> {
    if v.token.role == Role::County {
        if let Some(c) = v.token.scope.clone() {
            return county(s, v, &c);
        }
    }
    if !v.city_reader() {
        return Ok(PageResult::Forbidden(
            "county comparison is for the bureau, evaluators and admins".into(),
        ));
    }
    let app = &s.app;
    let lang = v.lang;
    let today = v.today(app.utc_offset_secs);
    let period = v.period_or(Period::containing(today)[2]);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, period)?;
    let y = match period {
        Period::Year(y) | Period::Quarter(y, _) | Period::Month(y, _) => y,
    };
    let assess = rollup::assessment_json(&*app.store, &app.reference, y)?;
    let mut rows = Vec::new();
    for c in app.store.counties()? {
        let m: Vec<&EnterpriseFacts> = facts.iter().filter(|f| f.county == c.id).collect();
        let g = rollup::group_json(&m);
        let a = assess["counties"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["county"] == c.id.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        rows.push((c, g, a));
    }
    rows.sort_by(|a, b| {
        let k = |g: &Value| {
            g["digitization"]["measured"]["mean"]
                .as_f64()
                .unwrap_or(-1.0)
        };
        k(&b.1).total_cmp(&k(&a.1))
    });
    let mut h = format!(
        "<h1>{} <small>{}</small></h1>",
        lang.t("县区对比与排名", "Counties: comparison and ranking"),
        esc(&period.key())
    );
    h.push_str(&svg::bars(
        &rows
            .iter()
            .map(|(c, g, _)| {
                (
                    county_name(lang, c),
                    g["digitization"]["measured"]["mean"].as_f64(),
                )
            })
            .collect::<Vec<_>>(),
        target_2025(s, "digitization"),
    ));
    let _ = write!(
        h,
        "<table><tr><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("排名", "rank"),
        lang.t("县区", "county"),
        lang.t("规上企业", "above-scale"),
        lang.t("有实测数据", "with measured data"),
        lang.t("生产设备数字化率 实测", "digitization measured"),
        lang.t("生产设备数字化率 申报", "digitization declared"),
        lang.t("关键工序数控化率 实测", "key-process NC measured"),
        lang.t("关键工序数控化率 申报", "key-process NC declared"),
        lang.t("数据覆盖率", "coverage"),
        lang.t("考核得分（16项）", "assessment score (16 items)"),
    );
    for (i, (c, g, a)) in rows.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td><a href=\"/counties/{}\">{}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            i + 1,
            esc(&c.id),
            esc(&county_name(lang, c)),
            g["enterprises_above_scale"],
            g["enterprises_with_measured_data"],
            fig(&format!("county.{}.digitization.measured.mean", c.id), g["digitization"]["measured"]["mean"].as_f64(), pct(lang, g["digitization"]["measured"]["mean"].as_f64())),
            pct(lang, g["digitization"]["declared_questionnaire"]["mean"].as_f64()),
            pct(lang, g["key_process_nc"]["measured"]["mean"].as_f64()),
            pct(lang, g["key_process_nc"]["declared_questionnaire"]["mean"].as_f64()),
            pct(lang, g["coverage"]["mean"].as_f64()),
            match a["items"].as_array() {
                Some(items) if !items.is_empty() => format!("{} ({} {})", a["total"], items.len(), lang.t("项已录入", "items recorded")),
                _ => format!("<span class=\"na\">{}</span>", lang.t("未录入", "not recorded")),
            },
        );
    }
    h.push_str("</table>");
    h.push_str(&source(
        lang,
        &period.key(),
        &format!(
            "{}; {}",
            src_measured(lang),
            lang.t(
                "考核得分：工信局录入（附证据）",
                "assessment: recorded by the bureau with evidence"
            )
        ),
    ));
    Ok(PageResult::Ok(html::page(
        lang,
        lang.t("县区", "Counties"),
        Nav::Counties,
        &v.who(),
        &v.here,
        &h,
    )))
}

/// `/counties/{id}`: a county's indicators and enterprises.
pub fn county(s: &WebState, v: &View, id: &str) -> Result<PageResult, StoreError> {
    if !may_see_county(&v.token, id) {
        return Ok(PageResult::Forbidden(format!(
            "this token may not read county `{id}`"
        )));
    }
    let app = &s.app;
    let lang = v.lang;
    let Some(c) = app.store.counties()?.into_iter().find(|c| c.id == id) else {
        return Ok(PageResult::NotFound(format!("no county `{id}`")));
    };
    let today = v.today(app.utc_offset_secs);
    let [month, _, year] = Period::containing(today);
    let period = v.period_or(year);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, period)?;
    let members: Vec<&EnterpriseFacts> = facts.iter().filter(|f| f.county == id).collect();
    let g = rollup::group_json(&members);
    let mut h = format!(
        "<h1>{} <small>{}</small></h1>",
        esc(&county_name(lang, &c)),
        esc(&period.key())
    );
    h.push_str(&headline_cards(s, lang, &g, &period.key(), "county."));
    let _ = write!(
        h,
        "<h2>{} ({})</h2>",
        lang.t("企业", "Enterprises"),
        members.len()
    );
    h.push_str(&enterprise_table(lang, &members));
    h.push_str(&source(lang, &period.key(), src_measured(lang)));
    let set: BTreeSet<String> = members.iter().map(|f| f.credit_code.clone()).collect();
    h.push_str(&energy_section(s, v, month, Some(&set))?);
    let names = members
        .iter()
        .map(|f| (f.credit_code.clone(), f.name.clone()))
        .collect();
    h.push_str(&freshness_section(s, v, &set, &names)?);
    Ok(PageResult::Ok(html::page(
        lang,
        &county_name(lang, &c),
        Nav::Counties,
        &v.who(),
        &v.here,
        &h,
    )))
}

/// `/chains`: the industry chains side by side.
pub fn chains(s: &WebState, v: &View) -> Result<PageResult, StoreError> {
    if !v.city_reader() {
        return Ok(PageResult::Forbidden(
            "industry chains are for the bureau, evaluators and admins".into(),
        ));
    }
    let app = &s.app;
    let lang = v.lang;
    let period = v.period_or(Period::containing(v.today(app.utc_offset_secs))[2]);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, period)?;
    let mut h = format!(
        "<h1>{} <small>{}</small></h1>",
        lang.t("重点产业链", "Key industry chains"),
        esc(&period.key())
    );
    let mut bars = Vec::new();
    let mut t = format!(
        "<table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("产业链", "chain"),
        lang.t("规上企业", "above-scale"),
        lang.t("生产设备数字化率 实测", "digitization measured"),
        lang.t("生产设备数字化率 申报", "digitization declared"),
        lang.t("关键工序数控化率 实测", "key-process NC measured"),
        lang.t("设备利用率", "utilisation"),
        lang.t("电力（kWh）", "electricity (kWh)"),
    );
    for ch in app.store.chains()? {
        let m: Vec<&EnterpriseFacts> = facts.iter().filter(|f| f.chain == ch.id).collect();
        let g = rollup::group_json(&m);
        let kwh = g["energy"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["carrier"] == "electricity")
            .filter_map(|e| Some(e["quantity"].as_f64()? - e["exported"].as_f64()?))
            .reduce(|a, b| a + b);
        bars.push((
            chain_name(lang, &ch),
            g["digitization"]["measured"]["mean"].as_f64(),
        ));
        let _ = write!(
            t,
            "<tr><td><a href=\"/enterprises?chain={}\">{}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&ch.id),
            esc(&chain_name(lang, &ch)),
            g["enterprises_above_scale"],
            fig(&format!("chain.{}.digitization.measured.mean", ch.id), g["digitization"]["measured"]["mean"].as_f64(), pct(lang, g["digitization"]["measured"]["mean"].as_f64())),
            pct(lang, g["digitization"]["declared_questionnaire"]["mean"].as_f64()),
            pct(lang, g["key_process_nc"]["measured"]["mean"].as_f64()),
            pct(lang, g["utilisation"]["productive_over_known_time"]["mean"].as_f64()),
            qty(lang, kwh, ""),
        );
    }
    t.push_str("</table>");
    h.push_str(&svg::bars(&bars, target_2025(s, "digitization")));
    h.push_str(&t);
    h.push_str(&source(lang, &period.key(), src_measured(lang)));
    Ok(PageResult::Ok(html::page(
        lang,
        lang.t("产业链", "Industry chains"),
        Nav::Chains,
        &v.who(),
        &v.here,
        &h,
    )))
}

/// `/enterprises`: search by name or credit code, filter by county or chain.
pub fn enterprises(s: &WebState, v: &View) -> Result<PageResult, StoreError> {
    if let (Role::Enterprise, Some(code)) = (v.token.role, v.token.scope.clone()) {
        return enterprise(s, v, &code);
    }
    let app = &s.app;
    let lang = v.lang;
    let period = v.period_or(Period::containing(v.today(app.utc_offset_secs))[2]);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, period)?;
    let visible = visible_set(v, &facts);
    let q = v
        .query
        .get("q")
        .map(|q| q.trim().to_lowercase())
        .unwrap_or_default();
    let county = v.query.get("county").cloned();
    let chain = v.query.get("chain").cloned();
    let members: Vec<&EnterpriseFacts> = facts
        .iter()
        .filter(|f| visible.contains(&f.credit_code))
        .filter(|f| {
            q.is_empty()
                || f.name.to_lowercase().contains(&q)
                || f.credit_code.to_lowercase().starts_with(&q)
        })
        .filter(|f| county.as_ref().is_none_or(|c| &f.county == c))
        .filter(|f| chain.as_ref().is_none_or(|c| &f.chain == c))
        .collect();
    let mut h = format!(
        "<h1>{}</h1><form class=\"search\" method=\"get\" action=\"/enterprises\"><input name=\"q\" value=\"{}\" placeholder=\"{}\"> <button type=\"submit\">{}</button></form>",
        lang.t("企业查询", "Enterprises"),
        esc(&q),
        lang.t("企业名称或统一社会信用代码", "name or credit code"),
        lang.t("查询", "Search"),
    );
    let _ = write!(
        h,
        "<p>{} {}</p>",
        members.len(),
        lang.t("家企业", "enterprises")
    );
    h.push_str(&enterprise_table(lang, &members));
    h.push_str(&source(lang, &period.key(), src_measured(lang)));
    Ok(PageResult::Ok(html::page(
        lang,
        lang.t("企业", "Enterprises"),
        Nav::Enterprises,
        &v.who(),
        &v.here,
        &h,
    )))
}

fn dominant(secs: &shuzhuan_common::state::StateSeconds) -> DeviceState {
    DeviceState::ALL
        .into_iter()
        .max_by_key(|s| secs.get(*s))
        .unwrap_or(DeviceState::Disconnected)
}

fn state_label(lang: Lang, s: DeviceState) -> &'static str {
    match lang {
        Lang::Zh => s.label_zh(),
        Lang::En => s.as_str(),
    }
}

/// `/enterprises/{code}`: equipment, live state, a day's timeline, energy,
/// measured vs declared, coverage and chain integrity.
pub fn enterprise(s: &WebState, v: &View, code: &str) -> Result<PageResult, StoreError> {
    let app = &s.app;
    let lang = v.lang;
    let Some(e) = app.store.enterprise(code)? else {
        return Ok(PageResult::NotFound(format!(
            "enterprise {code} is not in the registry"
        )));
    };
    if !may_see_enterprise(&v.token, &e) {
        return Ok(PageResult::Forbidden(format!(
            "this token may not read enterprise {code}"
        )));
    }
    let off = app.utc_offset_secs;
    let today = v.today(off);
    let [month, _, year] = Period::containing(today);
    let period = v.period_or(year);
    let facts = rollup::enterprise_facts(&*app.store, &app.reference, period)?;
    let Some(f) = facts.iter().find(|f| f.credit_code == code) else {
        return Ok(PageResult::NotFound(format!(
            "enterprise {code} has no facts"
        )));
    };
    let agents: Vec<_> = app
        .store
        .agents()?
        .into_iter()
        .filter(|a| a.enterprise == code)
        .collect();
    let inventory = app
        .store
        .inventories()?
        .into_iter()
        .find(|(c, _)| c == code)
        .map(|(_, i)| i)
        .unwrap_or_default();
    let county = app.store.counties()?.into_iter().find(|c| c.id == e.county);
    let chain = app.store.chains()?.into_iter().find(|c| c.id == e.chain);
    let recs: Vec<_> = app
        .store
        .recognitions()?
        .into_iter()
        .filter(|r| r.credit_code.as_str() == code)
        .collect();
    let mut h = format!(
        "<h1>{} <small>{}</small></h1><p>{} {} · {} {} · {} {} · {}</p>",
        esc(&e.name),
        esc(&period.key()),
        lang.t("统一社会信用代码", "credit code"),
        esc(code),
        lang.t("县区", "county"),
        esc(&county
            .as_ref()
            .map_or(e.county.clone(), |c| county_name(lang, c))),
        lang.t("产业链", "chain"),
        esc(&chain
            .as_ref()
            .map_or(e.chain.clone(), |c| chain_name(lang, c))),
        if e.above_scale {
            lang.t("规上企业", "above scale")
        } else {
            lang.t("规下企业", "below scale")
        },
    );
    if !recs.is_empty() {
        let _ = write!(
            h,
            "<p>{} {}</p>",
            lang.t("认定：", "Recognitions:"),
            recs.iter()
                .map(|r| format!("{:?} {} ({:?})", r.kind, r.year, r.level))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // Rates: measured vs declared.
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("实测与申报对比", "Measured vs declared"),
        lang.t("指标", "indicator"),
        lang.t("实测", "measured"),
        lang.t("设备清单申报", "declared (inventory)"),
        lang.t("问卷申报", "declared (questionnaire)"),
    );
    for (key, zh, en, m, i, d) in [
        (
            "digitization",
            "生产设备数字化率",
            "equipment digitization rate",
            f.measured_digitization,
            f.inventory_digitization,
            f.declared_digitization,
        ),
        (
            "networking",
            "设备联网率",
            "equipment networking rate",
            f.measured_networking,
            f.inventory_networking,
            f.declared_networking,
        ),
        (
            "key_process_nc",
            "关键工序数控化率",
            "key-process NC rate",
            f.measured_key_process_nc,
            f.inventory_key_process_nc,
            f.declared_key_process_nc,
        ),
    ] {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{} ({}/{})</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            lang.t(zh, en),
            fig(&format!("enterprise.{key}.measured"), m.value, pct(lang, m.value)),
            m.numerator, m.denominator,
            pct(lang, i.value),
            pct(lang, d),
        );
    }
    let _ = write!(
        h,
        "<tr><td>{}</td><td class=\"n\" colspan=\"3\">{}</td></tr><tr><td>{}</td><td class=\"n\" colspan=\"3\">{}</td></tr><tr><td>{}</td><td class=\"n\" colspan=\"3\">{}</td></tr></table>",
        lang.t("数据覆盖率（实收/应收样本）", "coverage (samples received / expected)"),
        fig("enterprise.coverage", f.coverage.value, pct(lang, f.coverage.value)),
        lang.t("设备利用率（生产时间/已知时间）", "utilisation (productive / known time)"),
        pct(lang, f.utilisation_of_known_time.value),
        lang.t("产量（件）", "parts"),
        f.parts,
    );
    h.push_str(&source(lang, &period.key(), src_measured(lang)));
    // Equipment list with live state and utilisation.
    let mut live: BTreeMap<String, (DeviceState, i64)> = BTreeMap::new();
    for a in &agents {
        if let Some(seq) = a.head_seq {
            if let Some(r) = queries::report(&*app.store, &a.agent_id, seq)? {
                for sm in &r.summaries {
                    live.insert(
                        sm.device_id.clone(),
                        (dominant(&sm.state_seconds), r.window_end),
                    );
                }
            }
        }
    }
    let per_device: BTreeMap<String, crate::store::DeviceTotals> = app
        .store
        .device_periods(&period.key())?
        .into_iter()
        .filter(|d| d.enterprise == code)
        .map(|d| (d.device_id.clone(), d))
        .collect();
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>",
        lang.t("设备清单与实时状态", "Equipment and live state"),
        lang.t("设备", "device"),
        lang.t("类型", "kind"),
        lang.t("申报", "declared"),
        lang.t("当前状态", "live state"),
        lang.t("截至", "as of"),
        lang.t("利用率", "utilisation"),
        lang.t("数据覆盖率", "coverage"),
    );
    for d in &inventory.devices {
        let (state, at) = match live.get(&d.id) {
            Some((st, t)) => (
                format!(
                    "<span style=\"color:{}\">■</span> {}",
                    svg::state_color(*st),
                    state_label(lang, *st)
                ),
                html::local_time(*t, off),
            ),
            None => (
                format!(
                    "<span class=\"na\">{}</span>",
                    lang.t("无数据（未数字化）", "no data (not digitized)")
                ),
                "–".into(),
            ),
        };
        let t = per_device.get(&d.id);
        let util = t.and_then(|t| {
            let known: u64 = t.state_seconds.iter().sum::<u64>()
                - t.state_seconds[DeviceState::Disconnected.index()];
            (known > 0)
                .then(|| t.state_seconds[DeviceState::Productive.index()] as f64 / known as f64)
        });
        let cov = t.and_then(|t| {
            (t.samples_expected > 0).then(|| t.samples_received as f64 / t.samples_expected as f64)
        });
        let _ = write!(
            h,
            "<tr><td>{} <small>{}</small></td><td>{:?}</td><td>{}{}{}</td><td data-device=\"{}\">{state}</td><td>{at}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&d.name),
            esc(&d.id),
            d.kind,
            if d.declared_digital { lang.t("数字化 ", "digital ") } else { "" },
            if d.declared_networked { lang.t("联网 ", "networked ") } else { "" },
            if d.declared_nc { lang.t("数控", "NC") } else { "" },
            esc(&d.id),
            pct(lang, util),
            pct(lang, cov),
        );
    }
    if inventory.devices.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"7\" class=\"na\">{}</td></tr>",
            lang.t(
                "网关尚未上报设备清单",
                "no inventory reported by a gateway yet"
            )
        );
    }
    h.push_str("</table>");
    h.push_str(&source(
        lang,
        &period.key(),
        lang.t(
            "设备清单与状态：网关签名上报",
            "inventory and state: signed gateway reports",
        ),
    ));
    // A day's timeline and energy by meter.
    let newest_day = live
        .values()
        .map(|(_, t)| crate::days::day_of(t - 1, off))
        .max();
    let day = v
        .query
        .get("day")
        .and_then(|d| crate::days::parse_day(d))
        .or(newest_day)
        .unwrap_or(today);
    let (from, to) = (day * 86_400 - off, (day + 1) * 86_400 - off);
    let mut rows: BTreeMap<String, Vec<(i64, i64, DeviceState)>> = BTreeMap::new();
    let mut meters: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for a in &agents {
        for r in queries::reports_between(&*app.store, a, from, to)? {
            for sm in &r.summaries {
                rows.entry(sm.device_id.clone()).or_default().push((
                    r.window_start - from,
                    r.window_end - r.window_start,
                    dominant(&sm.state_seconds),
                ));
                for en in &sm.energy {
                    *meters
                        .entry((en.meter.clone(), en.carrier.clone(), en.unit.clone()))
                        .or_default() += en.quantity - en.exported;
                }
            }
        }
    }
    let _ = write!(
        h,
        "<h2>{} {}</h2><p class=\"noprint\"><a href=\"?day={}\">← {}</a> · <a href=\"?day={}\">{} →</a></p>",
        lang.t("设备状态时间线", "State timeline"),
        crate::days::day_string(day),
        crate::days::day_string(day - 1),
        lang.t("前一天", "previous day"),
        crate::days::day_string(day + 1),
        lang.t("后一天", "next day"),
    );
    if rows.is_empty() {
        let _ = write!(
            h,
            "<p class=\"na\">{}</p>",
            lang.t("当天没有上报数据", "no reports for this day")
        );
    } else {
        let rows: Vec<_> = rows.into_iter().collect();
        h.push_str(&svg::timeline(&rows));
        h.push_str("<div class=\"legend\">");
        for st in DeviceState::ALL {
            let _ = write!(
                h,
                "<span><i style=\"background:{}\"></i>{}</span>",
                svg::state_color(st),
                state_label(lang, st)
            );
        }
        h.push_str("</div><table><tr><th>");
        h.push_str(lang.t("设备", "device"));
        for st in DeviceState::ALL {
            let _ = write!(h, "<th class=\"n\">{} (h)</th>", state_label(lang, st));
        }
        h.push_str("</tr>");
        for (dev, ws) in &rows {
            let _ = write!(h, "<tr><td>{}</td>", esc(dev));
            for st in DeviceState::ALL {
                let secs: i64 = ws.iter().filter(|w| w.2 == st).map(|w| w.1).sum();
                let _ = write!(h, "<td class=\"n\">{:.2}</td>", secs as f64 / 3600.0);
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>{} {}</h2><table><tr><th>{}</th><th>{}</th><th class=\"n\">{}</th></tr>",
        lang.t("分表分能源计量", "Energy by meter and carrier"),
        crate::days::day_string(day),
        lang.t("计量表", "meter"),
        lang.t("能源品种", "carrier"),
        lang.t("净用量", "net quantity"),
    );
    for ((meter, carrier, unit), q) in &meters {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(meter),
            esc(carrier),
            qty(lang, Some(*q), unit)
        );
    }
    if meters.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"3\" class=\"na\">{}</td></tr>",
            html::insufficient(lang)
        );
    }
    for en in &f.energy {
        let _ = write!(
            h,
            "<tr><td>{} {}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            lang.t("合计", "total"),
            esc(&period.key()),
            esc(&en.carrier),
            qty(lang, Some(en.quantity - en.exported), &en.unit)
        );
    }
    h.push_str("</table>");
    h.push_str(&source(
        lang,
        &crate::days::day_string(day),
        lang.t(
            "电表计数器差值，网关签名上报",
            "meter counter deltas, signed gateway reports",
        ),
    ));
    // Chain integrity.
    let gaps = app.store.gaps()?;
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr><th>{}</th><th class=\"n\">{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("报告链完整性", "Report chain integrity"),
        lang.t("网关", "gateway"),
        lang.t("最新序号", "head seq"),
        lang.t("注册时间", "enrolled"),
        lang.t("状态", "status"),
        lang.t("断链记录", "gaps"),
    );
    for a in &agents {
        let mine: Vec<_> = gaps.iter().filter(|g| g.agent_id == a.agent_id).collect();
        let open = mine.iter().filter(|g| !g.closed).count();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&a.agent_id),
            a.head_seq.map_or("–".into(), |s| s.to_string()),
            html::local_time(a.enrolled_at, off),
            if a.revoked_at.is_some() {
                lang.t("已吊销", "revoked")
            } else {
                lang.t("有效", "active")
            },
            if mine.is_empty() {
                format!(
                    "<span class=\"ok\">{}</span>",
                    lang.t("完整，无断链", "complete, no gaps")
                )
            } else {
                format!(
                    "<span class=\"{}\">{} {}, {} {}</span>",
                    if open > 0 { "bad" } else { "warn" },
                    mine.len(),
                    lang.t("处", "gaps"),
                    open,
                    lang.t("未补齐", "still open")
                )
            }
        );
    }
    if agents.is_empty() {
        let _ = write!(
            h,
            "<tr><td colspan=\"5\" class=\"na\">{}</td></tr>",
            lang.t("尚无网关注册", "no gateway enrolled")
        );
    }
    h.push_str("</table>");
    h.push_str(&source(
        lang,
        &html::local_time(v.now, off),
        lang.t(
            "哈希链与签名在入库时逐条校验",
            "hash chain and signatures checked on every report at ingest",
        ),
    ));
    let members: BTreeSet<String> = [code.to_owned()].into();
    h.push_str(&energy_section(s, v, month, Some(&members))?);
    Ok(PageResult::Ok(html::page(
        lang,
        &e.name,
        Nav::Enterprises,
        &v.who(),
        &v.here,
        &h,
    )))
}

/// `/claims`: an evaluator's view of award-claim verdicts over the example
/// claims in `config/claims/examples/` (verified against the evidence log).
pub fn claims(s: &WebState, v: &View) -> Result<PageResult, StoreError> {
    if !v.city_reader() {
        return Ok(PageResult::Forbidden(
            "claim checks are for evaluators, the bureau and admins".into(),
        ));
    }
    let lang = v.lang;
    let dir = s.reference_dir.join("claims/examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".toml"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut h = format!(
        "<h1>{}</h1><ul>",
        lang.t("申报核验（评估视图）", "Claim checks (evaluator view)")
    );
    for f in &files {
        let _ = write!(h, "<li><a href=\"/claims?claim={0}\">{0}</a></li>", esc(f));
    }
    h.push_str("</ul>");
    if let Some(name) = v.query.get("claim").filter(|n| files.contains(n)) {
        match (&s.app.evidence, s.policy.as_ref()) {
            (Some(ev), Ok(policy)) => {
                let outcome = crate::evidence::load_claim(&dir.join(format!("{name}.toml")))
                    .and_then(|c| crate::evidence::verify_claim(&ev.store, &ev.log, &c, policy));
                match outcome {
                    Ok(o) => {
                        let _ = write!(
                            h,
                            "<h2>{}</h2><table><tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th>{}</th></tr>",
                            esc(name),
                            lang.t("申报项", "figure"),
                            lang.t("申报值", "claimed"),
                            lang.t("实测值", "measured"),
                            lang.t("结论", "verdict"),
                        );
                        for f in &o.judgement.figures {
                            let _ = write!(
                                h,
                                "<tr><td>{}</td><td class=\"n\">{} {}</td><td class=\"n\">{}</td><td>{:?}</td></tr>",
                                esc(f.figure.key()),
                                f.claimed,
                                esc(f.unit),
                                f.measured.map_or_else(|| html::insufficient(lang).to_owned(), |m| format!("{m:.2}")),
                                f.verdict,
                            );
                        }
                        h.push_str("</table>");
                        let _ = write!(
                            h,
                            "<p>{} {}</p>",
                            lang.t("证据包校验：", "Evidence bundle:"),
                            if o.evidence.ok {
                                lang.t("通过", "verified")
                            } else {
                                lang.t("有问题", "problems found")
                            }
                        );
                    }
                    Err(e) => {
                        let _ = write!(h, "<p class=\"na\">{}</p>", esc(&e.to_string()));
                    }
                }
            }
            (None, _) => {
                let _ = write!(
                    h,
                    "<p class=\"na\">{}</p>",
                    lang.t(
                        "本服务未启用证据日志",
                        "this server runs without an evidence log"
                    )
                );
            }
            (_, Err(e)) => {
                let _ = write!(h, "<p class=\"na\">{}</p>", esc(e));
            }
        }
    }
    Ok(PageResult::Ok(html::page(
        lang,
        lang.t("申报核验", "Claim checks"),
        Nav::Claims,
        &v.who(),
        &v.here,
        &h,
    )))
}
