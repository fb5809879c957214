//! Charts as inline SVG, rendered on the server: progress bars against a
//! target, trend lines, horizontal bars and a day's state timeline. Every
//! chart has its numbers in a table or text beside it (the callers add it),
//! and carries `role="img"` with a text label.

use super::html::esc;
use shuzhuan_common::state::DeviceState;
use std::fmt::Write as _;

/// A horizontal bar from 0 to 100% with the value filled and the target
/// marked by a line. `None` draws an empty bar (insufficient data).
pub fn progress(value: Option<f64>, target: Option<f64>, label: &str) -> String {
    let w = 300.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} 26\" width=\"{w}\" height=\"26\" role=\"img\" aria-label=\"{}\">\
         <rect x=\"0\" y=\"6\" width=\"{w}\" height=\"14\" fill=\"#e6ebf1\"/>",
        esc(label)
    );
    if let Some(v) = value.filter(|v| v.is_finite()) {
        let met = target.is_none_or(|t| v >= t);
        let _ = write!(
            s,
            "<rect x=\"0\" y=\"6\" width=\"{:.1}\" height=\"14\" fill=\"{}\"/>",
            (v.clamp(0.0, 1.0) * w),
            if met { "#1f8a4c" } else { "#0b5fa5" }
        );
    }
    if let Some(t) = target {
        let x = t.clamp(0.0, 1.0) * w;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"1\" y2=\"25\" stroke=\"#b3261e\" stroke-width=\"2\"/>"
        );
    }
    s.push_str("</svg>");
    s
}

/// A line chart of one or more series over shared x labels. Missing points
/// break the line.
pub fn lines(labels: &[String], series: &[(&str, &str, Vec<Option<f64>>)], unit: &str) -> String {
    let (w, h, left, bottom, top) = (640.0, 220.0, 64.0, 28.0, 12.0);
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let max = if max <= 0.0 { 1.0 } else { max * 1.1 };
    let n = labels.len().max(1);
    let step = (w - left - 10.0) / (n.max(2) - 1) as f64;
    let x = |i: usize| left + i as f64 * step;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(&format!("trend ({unit})"))
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e8ee\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - 10.0,
            left - 4.0,
            y(v) + 4.0,
            super::html::group(v),
            y = y(v)
        );
    }
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            h - 8.0,
            esc(l)
        );
    }
    for (_, color, values) in series {
        let mut d = String::new();
        let mut pen = false;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen = true;
                    let _ = write!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                        x(i),
                        y(*v)
                    );
                }
                None => pen = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                s,
                "<path d=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                d.trim_end()
            );
        }
    }
    s.push_str("</svg><div class=\"legend\">");
    for (name, color, _) in series {
        let _ = write!(
            s,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(name)
        );
    }
    s.push_str("</div>");
    s
}

/// Horizontal bars (fractions 0..1), one per row, with an optional target line.
pub fn bars(rows: &[(String, Option<f64>)], target: Option<f64>) -> String {
    let (w, row_h, left) = (640.0, 22.0, 150.0);
    let h = row_h * rows.len() as f64 + 8.0;
    let span = w - left - 60.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"ranking\">"
    );
    for (i, (name, v)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(name)
        );
        if let Some(v) = v {
            let _ = write!(
                s,
                "<rect x=\"{left}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#0b5fa5\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{:.1}%</text>",
                v.clamp(0.0, 1.0) * span,
                left + v.clamp(0.0, 1.0) * span + 4.0,
                y + 13.0,
                v * 100.0
            );
        } else {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#b26a00\">–</text>",
                left + 4.0,
                y + 13.0
            );
        }
    }
    if let Some(t) = target {
        let x = left + t.clamp(0.0, 1.0) * span;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{h}\" stroke=\"#b3261e\" stroke-dasharray=\"4 3\"/>"
        );
    }
    s.push_str("</svg>");
    s
}

/// The colour of a machine state.
pub fn state_color(s: DeviceState) -> &'static str {
    match s {
        DeviceState::Productive => "#1f8a4c",
        DeviceState::Standby => "#f2c94c",
        DeviceState::Engineering => "#56a0d3",
        DeviceState::ScheduledDown => "#9b8ec4",
        DeviceState::UnscheduledDown => "#d64545",
        DeviceState::NonScheduled => "#c9ced6",
        DeviceState::Disconnected => "#4a4f57",
    }
}

/// One window of a timeline: (seconds since local midnight, length, dominant state).
pub type Window = (i64, i64, DeviceState);

/// One row per device: the day split into windows coloured by their
/// dominant state. `windows` holds (seconds since local midnight, length,
/// state) per window; gaps stay white (no report).
pub fn timeline(rows: &[(String, Vec<Window>)]) -> String {
    let (w, row_h, left) = (900.0, 18.0, 120.0);
    let span = w - left - 6.0;
    let h = row_h * rows.len() as f64 + 22.0;
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"state timeline\">"
    );
    for hour in (0..=24).step_by(3) {
        let x = left + span * f64::from(hour) / 24.0;
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{:.1}\" stroke=\"#e3e8ee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{hour:02}:00</text>",
            h - 18.0,
            h - 4.0
        );
    }
    for (i, (name, windows)) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 13.0,
            esc(name)
        );
        for (start, len, st) in windows {
            let x = left + span * (*start as f64) / 86_400.0;
            let ww = (span * (*len as f64) / 86_400.0).max(0.5);
            let _ = write!(
                s,
                "<rect x=\"{x:.2}\" y=\"{:.1}\" width=\"{ww:.2}\" height=\"{}\" fill=\"{}\"><title>{}</title></rect>",
                y + 2.0,
                row_h - 4.0,
                state_color(*st),
                st.as_str()
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_self_contained_svg() {
        let p = progress(Some(0.5), Some(0.54), "x");
        assert!(p.starts_with("<svg") && p.contains("#b3261e"));
        let l = lines(
            &["01".into(), "02".into()],
            &[("kWh", "#000", vec![Some(1.0), None])],
            "kWh",
        );
        assert!(l.contains("<circle") && !l.contains("http"));
        let t = timeline(&[("m1".into(), vec![(0, 900, DeviceState::Productive)])]);
        assert!(t.contains("#1f8a4c"));
        assert!(bars(&[("a".into(), None)], Some(0.5)).contains("–"));
    }
}
