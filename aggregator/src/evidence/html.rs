//! The printable claim report: one self-contained HTML page (inline CSS, no
//! scripts, no external requests) an evaluator can print or file, showing
//! each claimed figure beside its measurement, verdict and reasons, the
//! evidence checks, the factor set and the policy's source.

use shuzhuan_common::claim::{ClaimJudgement, Verdict};
use shuzhuan_common::evidence::BundleVerdict;
use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` of Unix seconds.
pub fn utc(t: i64) -> String {
    let day = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        crate::days::day_string(day),
        secs / 3600,
        secs % 3600 / 60
    )
}

fn verdict_cell(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Supported => ("ok", "Supported 支持"),
        Verdict::NotSupported => ("bad", "Not supported 不支持"),
        Verdict::InsufficientData => ("unk", "Insufficient data 数据不足"),
    }
}

/// Renders the report.
pub fn render(j: &ClaimJudgement, ev: &BundleVerdict) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><title>Claim verification {ent}</title>\
<style>body{{font-family:sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse;width:100%;margin:1em 0}}\
td,th{{border:1px solid #999;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#eee}}\
.ok{{background:#d8f5d8}}.bad{{background:#f8d0d0}}.unk{{background:#f5ecc8}}small{{color:#555}}\
@media print{{body{{margin:0}}}}</style></head><body>\
<h1>Claim verification 申报核验</h1>\
<p>Enterprise 企业: <b>{ent}</b><br>Recognition 申报项目: <b>{rec}</b> <small>({rec_id})</small><br>\
Window 评估期: {ws} – {we}<br>Evidence: {reports} reports, checkpoint size {cp}, \
time coverage {tc:.1} %, sample coverage {sc}</p>",
        ent = esc(j.enterprise.as_str()),
        rec = esc(&j.recognition_name),
        rec_id = esc(&j.recognition),
        ws = utc(j.window_start),
        we = utc(j.window_end),
        reports = j.reports,
        cp = ev.checkpoint_size,
        tc = j.time_coverage * 100.0,
        sc = j.sample_coverage.map_or_else(|| "none".to_owned(), |c| format!("{:.1} %", c * 100.0)),
    );
    let _ = write!(
        h,
        "<h2>Figures 指标</h2><table><tr><th>figure</th><th>claimed 申报</th><th>measured 实测</th>\
<th>verdict 结论</th><th>threshold 门槛</th><th>why 依据</th></tr>"
    );
    for f in &j.figures {
        let (class, text) = verdict_cell(f.verdict);
        // Intensities are small numbers: four decimals; rates and counts two.
        let digits = if f.unit.ends_with("/part") { 4 } else { 2 };
        let measured = f
            .measured
            .map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$} {}", f.unit));
        let threshold = f.threshold.as_ref().map_or_else(
            || "none configured".to_owned(),
            |t| {
                let met = match t.met {
                    Some(true) => "met",
                    Some(false) => "not met",
                    None => "unknown",
                };
                format!("{} {} {}: {met}", t.bound, t.value, f.unit)
            },
        );
        let why: Vec<String> = f.why.iter().map(|w| esc(w)).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td class=\"{class}\">{text}</td><td>{}</td><td>{}</td></tr>",
            esc(f.label),
            f.claimed,
            f.unit,
            esc(&measured),
            esc(&threshold),
            why.join("<br>")
        );
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<h2>Evidence checks 证据校验</h2><p class=\"{}\">{}</p>",
        if ev.ok { "ok" } else { "bad" },
        if ev.ok {
            "Every signature, chain link, inclusion proof and the checkpoint verified."
        } else {
            "The evidence failed checks: see below. Figures from it are not judged."
        }
    );
    if !ev.problems.is_empty() {
        h.push_str("<ul>");
        for p in ev.problems.iter().take(100) {
            let _ = write!(h, "<li>{:?}: {}</li>", p.kind, esc(&p.message));
        }
        if ev.problems.len() > 100 {
            let _ = write!(h, "<li>… and {} more</li>", ev.problems.len() - 100);
        }
        h.push_str("</ul>");
    }
    let _ = write!(
        h,
        "<h2>Reference data 依据</h2><p>Factor set: {} — {}<br>Recognition thresholds: {}<br>\
Policy: {} ({}); status: {}</p></body></html>",
        esc(&j.factor_set),
        esc(&j.factor_source),
        esc(&j.recognition_source),
        esc(&j.policy.title),
        esc(&j.policy.vintage),
        esc(&j.policy.status),
    );
    h.push('\n');
    h
}
