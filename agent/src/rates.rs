//! The enterprise's own rates, computed on the gateway with the common engine over its last day of windows.
//!
//! Factory IT sees the digitization, networking and key-process NC rates the
//! city will compute, before the city does: declared (from the inventory in
//! the agent's config) beside measured (from the window summaries the agent
//! sealed over the last day). The measurement thresholds are the city's,
//! read from `scoring/measurement.toml` (see [`find_rules`]); without that
//! file only the declared rates are shown, never a guessed threshold.

use shuzhuan_common::indicators::rates::{
    declared_rates, measured_rates, DeviceData, EnterpriseRates, MeasuredData, MeasuredRates,
    MeasurementRules,
};
use shuzhuan_common::indicators::Period;
use shuzhuan_common::inventory::{IndustryType, Inventory};
use shuzhuan_common::summary::WindowSummary;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

/// What the status page and `/metrics` show.
#[derive(Debug, Clone, PartialEq)]
pub struct RatesSnapshot {
    pub declared: EnterpriseRates,
    /// `None` without measurement rules or before the first window.
    pub measured: Option<MeasuredRates>,
    /// Where the thresholds came from, or why there are none.
    pub rules_source: String,
}

/// Rolling per-device totals over the last `keep` windows.
#[derive(Debug)]
pub struct LocalRates {
    inventory: Inventory,
    industry: IndustryType,
    rules: Result<(MeasurementRules, PathBuf), String>,
    keep: usize,
    windows: VecDeque<(i64, i64, BTreeMap<String, DeviceData>)>,
}

/// Where the city's measurement rules are looked for, in order: beside the
/// profiles folder (`<profiles>/../scoring/`), beside the config, the
/// repository layout, the installed layout.
pub fn rules_candidates(config_dir: &Path, profiles_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = profiles_dir {
        c.push(p.join("../scoring/measurement.toml"));
    }
    c.push(config_dir.join("scoring/measurement.toml"));
    c.push(PathBuf::from("config/scoring/measurement.toml"));
    c.push(PathBuf::from(
        "/etc/shuzhuan-agent/scoring/measurement.toml",
    ));
    c
}

/// Reads the first rules file found; the error names every place looked at,
/// or the file and position of a bad value.
pub fn find_rules(candidates: &[PathBuf]) -> Result<(MeasurementRules, PathBuf), String> {
    for p in candidates {
        if let Ok(text) = std::fs::read_to_string(p) {
            let name = p.display().to_string();
            return shuzhuan_common::reference::load_measurement(&name, &text)
                .map(|m| (m.rules, p.clone()))
                .map_err(|e| e.to_string());
        }
    }
    Err(format!(
        "no measurement rules: looked for {}",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl LocalRates {
    /// Keeps a day of windows of `window_secs`.
    pub fn new(
        inventory: Inventory,
        industry: IndustryType,
        rules: Result<(MeasurementRules, PathBuf), String>,
        window_secs: u32,
    ) -> LocalRates {
        LocalRates {
            inventory,
            industry,
            rules,
            keep: (86_400 / window_secs.max(1)).max(1) as usize,
            windows: VecDeque::new(),
        }
    }

    /// Replaces the inventory (a config reload); the windows kept stay.
    pub fn set_inventory(&mut self, inventory: Inventory) {
        self.inventory = inventory;
    }

    /// Adds a sealed window (seconds since the epoch).
    pub fn add_window(&mut self, start: i64, end: i64, summaries: &[WindowSummary]) {
        let mut devices: BTreeMap<String, DeviceData> = BTreeMap::new();
        for s in summaries {
            devices
                .entry(s.device_id.clone())
                .or_default()
                .add_summary(s);
        }
        self.windows.push_back((start, end, devices));
        while self.windows.len() > self.keep {
            self.windows.pop_front();
        }
    }

    /// Declared and measured rates over the windows kept. The measured
    /// window is the last day ending at the newest window, so the first
    /// hours after a start show low report coverage, as the city would.
    pub fn snapshot(&self) -> RatesSnapshot {
        let quorum = match &self.rules {
            Ok((r, _)) => r.key_process_quorum,
            Err(_) => shuzhuan_common::indicators::rates::Quorum::All,
        };
        let declared = declared_rates(&self.inventory, self.industry, quorum);
        let (measured, rules_source) = match (&self.rules, self.windows.back()) {
            (Err(why), _) => (None, why.clone()),
            (Ok((_, path)), None) => (None, path.display().to_string()),
            (Ok((rules, path)), Some(&(_, end, _))) => {
                let window_secs = self.windows.front().map_or(0, |w| w.1 - w.0);
                let start = end - window_secs * self.keep as i64;
                let mut devices: BTreeMap<String, DeviceData> = BTreeMap::new();
                let mut reported = 0u64;
                for (s, e, d) in &self.windows {
                    reported += (e - s).max(0) as u64;
                    for (id, x) in d {
                        let t = devices.entry(id.clone()).or_default();
                        t.samples_expected += x.samples_expected;
                        t.samples_received += x.samples_received;
                        t.productive_seconds += x.productive_seconds;
                        t.nc_seconds += x.nc_seconds;
                    }
                }
                let data = MeasuredData {
                    window: Period::new(start, end),
                    reported_seconds: reported,
                    devices,
                };
                (
                    Some(measured_rates(&self.inventory, self.industry, &data, rules)),
                    path.display().to_string(),
                )
            }
        };
        RatesSnapshot {
            declared,
            measured,
            rules_source,
        }
    }
}

/// `shuzhuan_agent_enterprise_rate{basis, rate}`: the snapshot's values; a
/// rate with insufficient data has no series (absent, not zero).
#[derive(Debug, Clone)]
pub struct RateGauges(prometheus::GaugeVec);

impl RateGauges {
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<RateGauges> {
        let g = prometheus::GaugeVec::new(
            prometheus::Opts::new(
                "shuzhuan_agent_enterprise_rate",
                "The enterprise's rates over the last day of windows (ratio 0..1), declared from the inventory and measured from the windows",
            ),
            &["basis", "rate"],
        )?;
        registry.register(Box::new(g.clone()))?;
        Ok(RateGauges(g))
    }

    pub fn set(&self, s: &RatesSnapshot) {
        let put = |basis: &str, r: &EnterpriseRates| {
            for (name, rate) in [
                ("digitization", &r.digitization),
                ("networking", &r.networking),
                ("key_process_nc", &r.key_process_nc),
            ] {
                match rate.value() {
                    Some(v) => self.0.with_label_values(&[basis, name]).set(v),
                    None => {
                        let _ = self.0.remove_label_values(&[basis, name]);
                    }
                }
            }
        };
        put("declared", &s.declared);
        if let Some(m) = &s.measured {
            put("measured", &m.rates);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shuzhuan_common::indicators::rates::Quorum;
    use shuzhuan_common::inventory::{Device, DeviceKind};
    use shuzhuan_common::state::{DeviceState, StateSeconds};

    fn device(id: &str, digital: bool) -> Device {
        Device {
            id: id.into(),
            name: id.into(),
            kind: DeviceKind::Press,
            production: true,
            declared_digital: digital,
            declared_networked: digital,
            declared_nc: false,
            key_process: None,
            original_value_cny: Some(1000.0),
        }
    }

    fn rules() -> MeasurementRules {
        MeasurementRules {
            networked_min_coverage: 0.9,
            nc_min_share: 0.5,
            min_report_coverage: 0.5,
            key_process_quorum: Quorum::All,
        }
    }

    fn summary(id: &str, expected: u32, received: u32) -> WindowSummary {
        let mut st = StateSeconds::default();
        st.add(DeviceState::Productive, 900);
        WindowSummary {
            device_id: id.into(),
            state_seconds: st,
            nc_seconds: 0,
            energy: vec![],
            parts: None,
            samples_expected: expected,
            samples_received: received,
            flags: vec![],
        }
    }

    fn inv() -> Inventory {
        Inventory {
            devices: vec![device("a", true), device("b", true), device("c", false)],
            key_processes: vec![],
        }
    }

    #[test]
    fn measured_follows_what_was_delivered_and_declared_follows_the_inventory() {
        let mut r = LocalRates::new(
            inv(),
            IndustryType::Discrete,
            Ok((rules(), "m.toml".into())),
            900,
        );
        // A full day: `a` delivers everything, `b` a third, `c` nothing.
        for w in 0..96 {
            let t = w * 900;
            r.add_window(
                t,
                t + 900,
                &[summary("a", 900, 900), summary("b", 900, 300)],
            );
        }
        let s = r.snapshot();
        assert_eq!(s.declared.digitization.value(), Some(2.0 / 3.0));
        let m = s.measured.expect("rules given");
        // Digitized (any data): a and b; networked (>= 90 % of samples): a only.
        assert_eq!(m.rates.digitization.value(), Some(2.0 / 3.0));
        assert_eq!(m.rates.networking.value(), Some(1.0 / 3.0));
        assert_eq!(s.rules_source, "m.toml");
    }

    #[test]
    fn an_hour_of_windows_is_too_little_coverage_and_old_windows_roll_off() {
        let mut r = LocalRates::new(
            inv(),
            IndustryType::Discrete,
            Ok((rules(), "m.toml".into())),
            900,
        );
        for w in 0..4 {
            r.add_window(w * 900, w * 900 + 900, &[summary("a", 900, 900)]);
        }
        let m = r.snapshot().measured.unwrap();
        assert_eq!(
            m.rates.digitization.value(),
            None,
            "1 h of 24 h is below 50 % coverage"
        );
        // 200 windows later only the last day counts: b delivered fully there.
        for w in 4..200 {
            r.add_window(w * 900, w * 900 + 900, &[summary("b", 900, 900)]);
        }
        let m = r.snapshot().measured.unwrap();
        assert_eq!(m.rates.networking.value(), Some(1.0 / 3.0));
        assert_eq!(m.coverage.devices_with_data, 1, "a's windows rolled off");
    }

    #[test]
    fn without_rules_only_declared_rates_and_the_places_looked_at() {
        let err = find_rules(&[PathBuf::from("/nonexistent/m.toml")]).unwrap_err();
        assert!(err.contains("/nonexistent/m.toml"), "{err}");
        let mut r = LocalRates::new(inv(), IndustryType::Discrete, Err(err.clone()), 900);
        r.add_window(0, 900, &[summary("a", 900, 900)]);
        let s = r.snapshot();
        assert!(s.measured.is_none());
        assert_eq!(s.rules_source, err);
    }

    #[test]
    fn gauges_carry_values_and_drop_insufficient_rates() {
        let reg = prometheus::Registry::new();
        let g = RateGauges::register(&reg).unwrap();
        let mut r = LocalRates::new(
            inv(),
            IndustryType::Discrete,
            Ok((rules(), "m.toml".into())),
            900,
        );
        r.add_window(0, 900, &[summary("a", 900, 900)]);
        g.set(&r.snapshot());
        let text = {
            let mut b = Vec::new();
            prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &reg.gather(), &mut b)
                .unwrap();
            String::from_utf8(b).unwrap()
        };
        assert!(text.contains(r#"shuzhuan_agent_enterprise_rate{basis="declared",rate="digitization"} 0.6666666666666666"#), "{text}");
        // Measured over 15 minutes of a day: insufficient, so no series.
        assert!(!text.contains(r#"basis="measured""#), "{text}");
    }

    #[test]
    fn the_repository_rules_file_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let (rules, path) = find_rules(&rules_candidates(&root.join("config"), None)).unwrap();
        assert!(path.ends_with("scoring/measurement.toml"));
        assert!(rules.networked_min_coverage > 0.0 && rules.networked_min_coverage <= 1.0);
    }
}
