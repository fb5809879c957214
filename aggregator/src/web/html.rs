//! HTML building blocks of the dashboard: escaping, number formatting with
//! explicit "insufficient data", the page shell (navigation, language
//! switch) and the embedded stylesheet (screen and print). No asset is
//! fetched from anywhere: the CSS is inline and charts are inline SVG.

use std::fmt::Write as _;

/// The interface language: Chinese first, English as a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// Picks the Chinese or the English text.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
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

/// The words shown where a figure cannot be formed.
pub fn insufficient(lang: Lang) -> &'static str {
    lang.t("数据不足", "insufficient data")
}

/// A fraction as a percentage with one decimal, or "insufficient data".
pub fn pct(lang: Lang, v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => format!("<span class=\"na\">{}</span>", insufficient(lang)),
    }
}

/// A quantity with its unit and thousands separators, or "insufficient data".
pub fn qty(lang: Lang, v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{} {}", group(v), esc(unit)),
        _ => format!("<span class=\"na\">{}</span>", insufficient(lang)),
    }
}

/// `1234567.8` → `1,234,568` (no decimals from 100 up, one below).
pub fn group(v: f64) -> String {
    if v.abs() < 100.0 {
        return format!("{v:.1}");
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A UTC timestamp shown in the city's local time, `YYYY-MM-DD HH:MM`.
pub fn local_time(t: i64, utc_offset_secs: i64) -> String {
    let local = t + utc_offset_secs;
    let day = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}",
        crate::days::day_string(day),
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// A short "source, period" caption under a figure or table.
pub fn source(lang: Lang, period: &str, what: &str) -> String {
    format!(
        "<p class=\"src\">{} {} · {} {}</p>",
        lang.t("统计期：", "Period:"),
        esc(period),
        lang.t("来源：", "Source:"),
        what
    )
}

/// Which navigation entry is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Counties,
    Chains,
    Enterprises,
    Bulletin,
    Claims,
    None,
}

/// Wraps a page body into the full document.
pub fn page(
    lang: Lang,
    title: &str,
    nav: Nav,
    who: &str,
    path_and_query: &str,
    body: &str,
) -> String {
    let mut h = String::with_capacity(body.len() + 8192);
    let other = match lang {
        Lang::Zh => Lang::En,
        Lang::En => Lang::Zh,
    };
    let switch_href = with_lang(path_and_query, other);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · {}</title><style>{}</style></head><body>",
        lang.html_lang(),
        esc(title),
        lang.t(
            "数转 驻马店制造业数字化转型监测",
            "Shuzhuan digital-transformation monitor"
        ),
        CSS
    );
    let items = [
        (Nav::Overview, "/", "全市概览", "City overview"),
        (Nav::Counties, "/counties", "县区", "Counties"),
        (Nav::Chains, "/chains", "产业链", "Industry chains"),
        (Nav::Enterprises, "/enterprises", "企业", "Enterprises"),
        (Nav::Bulletin, "/bulletin", "月通报", "Monthly bulletin"),
        (Nav::Claims, "/claims", "申报核验", "Claim checks"),
    ];
    let _ = write!(
        h,
        "<header><div class=\"brand\">{}</div><nav>",
        lang.t("数转 · 驻马店市", "Shuzhuan · Zhumadian")
    );
    for (n, href, zh, en) in items {
        let _ = write!(
            h,
            "<a href=\"{href}\"{}>{}</a>",
            if n == nav { " class=\"on\"" } else { "" },
            lang.t(zh, en)
        );
    }
    let _ = write!(
        h,
        "</nav><div class=\"who\">{} · <a id=\"lang-switch\" href=\"{}\">{}</a> · <a href=\"/logout\">{}</a></div></header><main>",
        esc(who),
        esc(&switch_href),
        other.t("中文", "English"),
        lang.t("退出", "Log out"),
    );
    h.push_str(body);
    let _ = write!(
        h,
        "</main><footer>{}</footer></body></html>",
        lang.t(
            "实测数据来自企业智能网关签名上报；申报数据来自企业问卷与设备清单。“数据不足”表示无法计算，而非零。",
            "Measured figures come from signed gateway reports; declared figures from the enterprise questionnaire and inventory. \"Insufficient data\" means the figure cannot be formed, not zero."
        )
    );
    h
}

/// The same path with `lang=` set.
pub fn with_lang(path_and_query: &str, lang: Lang) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut parts: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("lang="))
        .collect();
    let l = format!("lang={}", lang.code());
    parts.push(&l);
    format!("{path}?{}", parts.join("&"))
}

/// A message page (login needed, forbidden, not found).
pub fn message(lang: Lang, title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\"><title>{}</title><style>{}</style></head>\
         <body><main><h1>{}</h1><p>{}</p><p><a href=\"/login\">{}</a></p></main></body></html>",
        lang.html_lang(),
        esc(title),
        CSS,
        esc(title),
        text,
        lang.t("登录", "Log in")
    )
}

/// The stylesheet: laptop, large screen and print.
pub const CSS: &str = r#"
:root{--ink:#1d2733;--muted:#5b6775;--line:#d8dee6;--bg:#f5f7fa;--card:#fff;--acc:#0b5fa5;--ok:#1f8a4c;--bad:#b3261e;--warn:#b26a00}
*{box-sizing:border-box}
body{margin:0;font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",system-ui,sans-serif;color:var(--ink);background:var(--bg);font-size:15px;line-height:1.45}
header{display:flex;flex-wrap:wrap;align-items:center;gap:12px;padding:8px 20px;background:#0d2b45;color:#fff}
header a{color:#cfe3f7;text-decoration:none;padding:4px 8px;border-radius:4px}
header a.on,header a:hover{background:#1d4d78;color:#fff}
.brand{font-weight:700;margin-right:12px}
.who{margin-left:auto;font-size:13px;color:#cfe3f7}
main{max-width:1400px;margin:0 auto;padding:16px 20px}
h1{font-size:22px;margin:8px 0 12px}
h2{font-size:18px;margin:22px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card h3{margin:0 0 6px;font-size:16px}
.big{font-size:28px;font-weight:700}
.na{color:var(--warn);font-style:italic}
.src{color:var(--muted);font-size:12px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%;background:var(--card);font-size:14px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef2f7}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
svg{max-width:100%;height:auto}
svg text{font-size:11px;fill:var(--ink)}
.legend span{display:inline-block;margin-right:10px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
form.search input{padding:6px;width:320px;max-width:100%}
form.search button,a.button{padding:6px 12px;background:var(--acc);color:#fff;border:0;border-radius:4px;text-decoration:none;display:inline-block}
footer{max-width:1400px;margin:20px auto;padding:8px 20px;color:var(--muted);font-size:12px}
@media (min-width:1800px){body{font-size:18px}main{max-width:1800px}.big{font-size:36px}}
@media print{header nav,.who,form.search,a.button,.noprint{display:none}body{background:#fff;font-size:11pt}main{max-width:none;padding:0}.card{break-inside:avoid;border-color:#999}table{break-inside:auto}tr{break-inside:avoid}h2{break-after:avoid}header{background:#fff;color:#000}a{color:#000;text-decoration:none}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(group(1_234_567.8), "1,234,568");
        assert_eq!(group(12.34), "12.3");
        assert_eq!(pct(Lang::En, Some(0.5432)), "54.3%");
        assert!(pct(Lang::Zh, None).contains("数据不足"));
        assert_eq!(with_lang("/a?x=1&lang=zh", Lang::En), "/a?x=1&lang=en");
        assert_eq!(with_lang("/", Lang::Zh), "/?lang=zh");
        assert_eq!(local_time(0, 8 * 3600), "1970-01-01 08:00");
    }
}
