//! Tests that load the real files under `config/` and check their figures
//! against the plan's text, and broken copies that must point at the right
//! line and column.

use super::*;
use crate::indicators::energy::{
    electricity_co2, total_energy, CarrierQuantity, ElectricityBasis, EnergyOptions,
};
use crate::indicators::rates::Quorum;
use crate::indicators::{Period, Rate};
use crate::registry::{CountyKind, RecognitionKind};

const PLAN_TEXT: &str = include_str!("../../../config/plan/action-plan-2023-2025.zh.txt");
const TARGETS: &str = include_str!("../../../config/plan/targets.toml");
const NATIONAL: &str = include_str!("../../../config/plan/national.toml");
const ASSESSMENT: &str = include_str!("../../../config/plan/assessment.toml");
const UNITS: &str = include_str!("../../../config/city/units.toml");
const COEFFICIENTS: &str = include_str!("../../../config/energy/coefficients.toml");
const FACTORS: &str = include_str!("../../../config/energy/emission-factors.toml");
const BANDS: &str = include_str!("../../../config/scoring/bands.toml");
const MEASUREMENT: &str = include_str!("../../../config/scoring/measurement.toml");
const GREEN: &str = include_str!("../../../config/scoring/green-factory.toml");

fn text_of(path: &str) -> &'static str {
    match path {
        "plan/targets.toml" => TARGETS,
        "plan/national.toml" => NATIONAL,
        "plan/assessment.toml" => ASSESSMENT,
        "city/units.toml" => UNITS,
        "energy/coefficients.toml" => COEFFICIENTS,
        "energy/emission-factors.toml" => FACTORS,
        "scoring/bands.toml" => BANDS,
        "scoring/measurement.toml" => MEASUREMENT,
        "scoring/green-factory.toml" => GREEN,
        other => panic!("no such reference file {other}"),
    }
}

fn all() -> ReferenceSet {
    ReferenceSet::load(|p| Ok((format!("config/{p}"), text_of(p).to_owned())))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[test]
fn every_reference_file_loads() {
    let r = all();
    for s in [
        &r.targets.source,
        &r.national.source,
        &r.assessment.source,
        &r.city.counties_source,
        &r.city.chains_source,
        &r.coefficients.source,
        &r.emission_factors.source,
        &r.bands.source,
        &r.measurement.source,
        &r.green_factory.source,
    ] {
        assert!(s.vintage_year().is_some(), "{s:?}");
    }
}

#[test]
fn headline_rates_are_the_plans() {
    let t = all().targets;
    // 一(二): 研发设计工具普及率达到85%以上、生产设备数字化率达到54%以上、关键工序数控化率达到58%以上
    assert_eq!(
        t.row("rd_design_tool_penetration").unwrap().target(2025),
        Some(0.85)
    );
    assert_eq!(
        t.row("equipment_digitization").unwrap().target(2025),
        Some(0.54)
    );
    assert_eq!(t.row("key_process_nc").unwrap().target(2025), Some(0.58));
    assert!(t.headline.iter().all(|r| r.unit == TargetUnit::Share));
}

#[test]
fn the_target_table_has_every_row() {
    let t = all().targets;
    // rows 1 … 15, row 14 split in two
    let nos: Vec<&str> = t.target.iter().filter_map(|r| r.no.as_deref()).collect();
    let mut want: Vec<String> = (1..=13).map(|n| n.to_string()).collect();
    want.extend(["14a".into(), "14b".into(), "15".into()]);
    assert_eq!(nos, want);
    let row = |id: &str| t.row(id).unwrap();
    let years = |id: &str| -> Vec<f64> { row(id).targets.values().copied().collect() };
    assert_eq!(years("digital_leader"), [0.0, 1.0, 2.0]);
    assert_eq!(years("sme_benchmark"), [5.0, 10.0, 15.0]);
    assert_eq!(years("demonstration_zone"), [1.0, 1.0, 2.0]);
    assert_eq!(years("service_manufacturing"), [3.0, 4.0, 5.0]);
    assert_eq!(years("smart_scene_coverage"), [0.30, 0.60, 1.00]);
    assert_eq!(years("smart_workshop"), [34.0, 37.0, 40.0]);
    assert_eq!(years("smart_factory"), [16.0, 17.0, 18.0]);
    assert_eq!(years("green_factory"), [22.0, 24.0, 25.0]);
    assert_eq!(years("green_supply_chain"), [2.0, 3.0, 4.0]);
    assert_eq!(years("first_version_software"), [0.0, 1.0, 2.0]);
    assert_eq!(years("first_set_equipment"), [0.0, 1.0, 2.0]);
    assert_eq!(years("empowerment_centre"), [0.0, 1.0, 2.0]);
    assert_eq!(years("intranet_benchmark"), [3.0, 6.0, 9.0]);
    assert_eq!(years("integration_certified"), [10.0, 30.0, 50.0]);
    assert_eq!(years("integration_diagnosed"), [100.0, 300.0, 500.0]);
    assert_eq!(years("dcmm"), [2.0, 4.0, 6.0]);
    for r in &t.target {
        assert_eq!(
            r.targets.keys().copied().collect::<Vec<_>>(),
            [2023, 2024, 2025]
        );
    }
    // every recognition kind the registry knows is counted by one row
    for k in [
        RecognitionKind::DigitalLeader,
        RecognitionKind::SmeBenchmark,
        RecognitionKind::DemonstrationZone,
        RecognitionKind::ServiceManufacturing,
        RecognitionKind::SmartWorkshop,
        RecognitionKind::SmartFactory,
        RecognitionKind::GreenFactory,
        RecognitionKind::GreenSupplyChain,
        RecognitionKind::FirstVersionSoftware,
        RecognitionKind::FirstSetEquipment,
        RecognitionKind::EmpowermentCentre,
        RecognitionKind::IntranetBenchmark,
        RecognitionKind::IntegrationCertified,
        RecognitionKind::IntegrationDiagnosed,
        RecognitionKind::Dcmm,
    ] {
        assert!(t.for_recognition(k).is_some(), "{k:?}");
    }
    assert_eq!(
        t.goal
            .iter()
            .find(|g| g.id == "robots_replace_people")
            .unwrap()
            .target(2025),
        Some(3.0)
    );
}

#[test]
fn every_row_is_quoted_from_the_plan() {
    let t = all().targets;
    let missing: Vec<&str> = t
        .unquoted(PLAN_TEXT)
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert!(missing.is_empty(), "quotes not in the plan: {missing:?}");
    // and each quote holds the row's 2025 figure as the plan writes it
    for r in t.rows() {
        let v = r.target(2025).unwrap();
        let written = match r.unit {
            TargetUnit::Share => format!("{}%", (v * 100.0).round()),
            TargetUnit::Count => format!("{v}"),
        };
        let q = plan::squeeze(&r.quote);
        let whole = r.unit == TargetUnit::Share && v == 1.0 && q.contains("全覆盖");
        assert!(
            q.contains(&written) || whole,
            "{}: {written} not in {q}",
            r.id
        );
    }
    // a made-up quote is caught
    let mut bad = t.clone();
    bad.target[5].quote = "6 智能车间 35 个 37 个 40 个".into();
    assert_eq!(bad.unquoted(PLAN_TEXT).len(), 1);
}

#[test]
fn progress_against_the_table() {
    let t = all().targets;
    // smart workshops mid-2024: 34 + (37 − 34) × 0.5 = 35.5; 36 is on track
    let p = t
        .row("smart_workshop")
        .unwrap()
        .progress(2024, 36.0, 0.5)
        .unwrap();
    assert_eq!((p.milestone, p.gap, p.on_track), (35.5, 1.0, true));
    // the headline rate has only a 2025 target: no ramp
    let p = t
        .row("equipment_digitization")
        .unwrap()
        .progress(2025, 0.575, 0.5)
        .unwrap();
    assert!(p.met && close(p.gap, 0.54 - 0.575));
    assert!(t
        .row("equipment_digitization")
        .unwrap()
        .progress(2024, 0.5, 0.5)
        .is_none());
}

#[test]
fn assessment_has_sixteen_items_in_five_categories() {
    let a = all().assessment;
    assert_eq!(a.category.len(), 5);
    assert_eq!(a.item.len(), 16);
    let sizes: Vec<usize> = a
        .category
        .iter()
        .map(|c| a.items_of(&c.id).count())
        .collect();
    // policy 1-2, benchmarks 3-7, projects 8-9, foundations 10-12, key work 13-16
    assert_eq!(sizes, [2, 5, 2, 3, 4]);
    let measured: Vec<u8> = a
        .item
        .iter()
        .filter(|i| i.basis == EvidenceBasis::Measured)
        .map(|i| i.no)
        .collect();
    assert_eq!(measured, [5, 7, 9, 14]);
    let plan = plan::squeeze(PLAN_TEXT);
    for it in &a.item {
        assert!(
            plan.contains(&plan::squeeze(&it.zh)),
            "item {} not in the annex",
            it.no
        );
    }
    for c in &a.category {
        assert!(PLAN_TEXT.contains(&c.zh), "{}", c.zh);
    }
    assert_eq!(a.item_ids().len(), 16);
}

#[test]
fn city_units_are_zhumadians() {
    let u = all().city;
    assert_eq!(u.city.division_code, "411700");
    let names: Vec<&str> = u.counties.iter().map(|c| c.name.as_str()).collect();
    for n in [
        "驿城区",
        "西平县",
        "上蔡县",
        "平舆县",
        "正阳县",
        "确山县",
        "泌阳县",
        "汝南县",
        "遂平县",
        "新蔡县",
        "市城乡一体化示范区",
        "经济开发区",
        "高新技术产业开发区",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let count = |k: CountyKind| u.counties.iter().filter(|c| c.kind == k).count();
    assert_eq!(
        (
            count(CountyKind::District),
            count(CountyKind::County),
            count(CountyKind::Zone)
        ),
        (1, 9, 3)
    );
    assert_eq!(
        u.county("xiping").unwrap().division_code.as_deref(),
        Some("411721")
    );
    assert_eq!(
        u.county("xincai").unwrap().division_code.as_deref(),
        Some("411729")
    );
    // the industries the plan names
    for n in ["汽车及零部件", "装备制造", "新材料", "食品", "医药"] {
        assert!(u.chains.iter().any(|c| c.name == n), "{n}");
        assert!(PLAN_TEXT.contains(n), "{n}");
    }
}

#[test]
fn coefficients_convert_a_month() {
    let r = all();
    let set = &r.coefficients.set;
    assert_eq!(set.carrier("electricity").unwrap().coefficient, 0.1229);
    assert_eq!(set.carrier("natural_gas").unwrap().coefficient, 1.2143);
    assert_eq!(set.carrier("raw_coal").unwrap().coefficient, 0.7143);
    let q = |c: &str, u: &str, x: f64| CarrierQuantity {
        carrier: c.into(),
        unit: u.into(),
        quantity: x,
        exported: 0.0,
    };
    let month = [
        q("electricity", "kWh", 120_000.0),
        q("natural_gas", "m3", 8_000.0),
    ];
    let p = Period::new(1_761_926_400, 1_764_518_400);
    // 120,000 × 0.1229 + 8,000 × 1.2143 = 14,748 + 9,714.4 = 24,462.4 kgce
    let t = total_energy(&month, set, &EnergyOptions::default(), p).unwrap();
    assert!(close(t.net.value, 24_462.4), "{}", t.net.value);
    // equal value (0.30) and oilfield gas (1.33): 36,000 + 10,640 = 46,640 kgce
    let opts = EnergyOptions {
        electricity: ElectricityBasis::EqualValue,
        variants: [("natural_gas".to_owned(), "oilfield".to_owned())].into(),
    };
    let t = total_energy(&month, set, &opts, p).unwrap();
    assert!(close(t.net.value, 46_640.0), "{}", t.net.value);
    // CO2 with two vintages: 120,000 × 0.5366 = 64,392; × 0.5897 (Henan 2023) = 70,764
    let f = &r.emission_factors;
    let a = electricity_co2(&month, f.location_based(2022, "national").unwrap(), p).unwrap();
    assert!(close(a.co2.value, 64_392.0));
    let b = electricity_co2(&month, f.location_based(2023, "henan").unwrap(), p).unwrap();
    assert!(close(b.co2.value, 70_764.0));
    assert_eq!(f.default_factor().value, 0.5306);
    assert_eq!(f.latest_for(2025, "national").unwrap().vintage, 2023);
    assert!(f.latest_for(2021, "national").is_none());
}

#[test]
fn scoring_files_match_indicators_md() {
    let r = all();
    let s = r.bands.scale("equipment_digitization").unwrap();
    // 23 / 40 = 57.5% → (40, 60] → 4.5 of 6
    assert_eq!(s.score_rate(&Rate::of_counts(23, 40)).unwrap().score, 4.5);
    assert_eq!(s.score(0.10).unwrap().score, 0.0);
    assert!(r.bands.scale("equipment_networking").is_some());
    let m = r.measurement.rules;
    assert_eq!(m.networked_min_coverage, 0.9);
    assert_eq!(m.key_process_quorum, Quorum::All);
    let g = &r.green_factory;
    assert_eq!(g.dimension.len(), 5);
    assert_eq!(g.gates.len(), 6);
    // no weights or bounds are shipped: everything listed, nothing scored
    assert!(g.scorable().is_empty());
    assert_eq!(g.unscored().len(), g.indicator.len());
}

#[test]
fn green_indicators_score_once_bounds_are_set() {
    let text = GREEN.replace(
        "unit = \"kgce/t\"\nbasis = \"measured\"",
        "unit = \"kgce/t\"\nbasis = \"measured\"\nweight = 6.0\nbenchmark = 120.0\nleading = 100.0",
    );
    let g = load_green_factory("g.toml", &text).unwrap();
    let s = g.scorable();
    // 6 × (120 − 105) / (120 − 100) = 4.5
    assert_eq!(s["unit_product_energy"].score(105.0).unwrap().points, 4.5);
    // leading on the wrong side of the benchmark for lower-is-better
    let bad = text.replace("leading = 100.0", "leading = 130.0");
    let e = load_green_factory("g.toml", &bad).unwrap_err();
    let line = bad[..bad.find("leading = 130.0").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert_eq!((e.line, e.column), (line, 1), "{e}");
    // only some of the three
    let half = text.replace("leading = 100.0\n", "");
    assert!(load_green_factory("g.toml", &half)
        .unwrap_err()
        .message
        .contains("together"));
}

/// The 1-based line of the `n`-th (0-based) occurrence of `needle`.
fn line_of(text: &str, needle: &str, n: usize) -> usize {
    let at = text.match_indices(needle).nth(n).unwrap().0;
    text[..at].matches('\n').count() + 1
}

#[test]
fn broken_copies_point_at_line_and_column() {
    // a share written as a percentage
    let t = TARGETS.replace("targets = { 2025 = 0.54 }", "targets = { 2025 = 54 }");
    let e = load_targets("targets.toml", &t).unwrap_err();
    assert_eq!(e.line, line_of(&t, "targets = { 2025 = 54 }", 0), "{e}");
    assert_eq!(e.column, 1);
    assert!(e.to_string().starts_with("targets.toml:"), "{e}");
    assert!(e.message.contains("0.85"), "{e}");

    // a cumulative count that falls
    let t = TARGETS.replace(
        "targets = { 2023 = 22, 2024 = 24, 2025 = 25 }",
        "targets = { 2023 = 22, 2024 = 24, 2025 = 23 }",
    );
    let e = load_targets("targets.toml", &t).unwrap_err();
    assert_eq!(e.line, line_of(&t, "2025 = 23 }", 0), "{e}");
    assert!(e.message.contains("cumulative"), "{e}");

    // a misspelt key: toml's own error, with its column
    let t = TARGETS.replacen("unit_zh = \"个\"", "unit_zh = \"个\"\nunits = 1", 1);
    let e = load_targets("targets.toml", &t).unwrap_err();
    assert_eq!((e.line, e.column), (line_of(&t, "units = 1", 0), 1), "{e}");
    assert!(e.message.contains("unknown field `units`"), "{e}");

    // a year that is not a year
    let t = TARGETS.replace("targets = { 2025 = 0.58 }", "targets = { twenty = 0.58 }");
    let e = load_targets("targets.toml", &t).unwrap_err();
    assert_eq!(e.line, line_of(&t, "twenty", 0), "{e}");

    // a county id used twice: the second entry's id line
    let u = UNITS.replace("id = \"runan\"", "id = \"xiping\"");
    let e = load_city("units.toml", &u).unwrap_err();
    assert_eq!(
        (e.line, e.column),
        (line_of(&u, "id = \"xiping\"", 1), 1),
        "{e}"
    );

    // a division code outside the city
    let u = UNITS.replace("\"411727\"", "\"410727\"");
    let e = load_city("units.toml", &u).unwrap_err();
    assert_eq!(e.line, line_of(&u, "410727", 0), "{e}");

    // an unknown unit in the coefficient table
    let c = COEFFICIENTS.replace("unit = \"MJ\"", "unit = \"GJ\"");
    let e = load_coefficients("coefficients.toml", &c).unwrap_err();
    assert_eq!(
        (e.line, e.column),
        (line_of(&c, "unit = \"GJ\"", 0), 1),
        "{e}"
    );

    // a factor published before the year it describes
    let f = FACTORS.replacen("published = \"2024-12\"", "published = \"2021-12\"", 1);
    let e = load_emission_factors("f.toml", &f).unwrap_err();
    assert_eq!(e.line, line_of(&f, "published = \"2021-12\"", 0), "{e}");

    // a band out of order
    let b = BANDS.replacen(
        "{ upper = 0.40, score = 3.0 }",
        "{ upper = 0.15, score = 3.0 }",
        1,
    );
    let e = load_bands("bands.toml", &b).unwrap_err();
    assert_eq!(e.line, line_of(&b, "band = [", 0), "{e}");
    assert!(e.message.contains("band 3"), "{e}");

    // a threshold above 1
    let m = MEASUREMENT.replace(
        "networked_min_coverage = 0.9",
        "networked_min_coverage = 90",
    );
    let e = load_measurement("m.toml", &m).unwrap_err();
    assert_eq!(
        (e.line, e.column),
        (line_of(&m, "networked_min_coverage = 90", 0), 1),
        "{e}"
    );

    // a source without a usable vintage
    let a = ASSESSMENT.replacen("vintage = \"2023-11-21\"", "vintage = \"late 2023\"", 1);
    let e = load_assessment("a.toml", &a).unwrap_err();
    assert_eq!(e.line, line_of(&a, "vintage = \"late 2023\"", 0), "{e}");

    // assessment items out of order
    let a = ASSESSMENT.replacen("no = 2\n", "no = 3\n", 1);
    let e = load_assessment("a.toml", &a).unwrap_err();
    assert_eq!(e.line, line_of(&a, "no = 3\n", 0), "{e}");
}

#[test]
fn reference_set_reports_every_broken_file() {
    let errs = ReferenceSet::load(|p| {
        let text = match p {
            "city/units.toml" => "[city]\nid = 1\n".to_owned(),
            "scoring/bands.toml" => {
                return Err(Located {
                    file: "config/scoring/bands.toml".into(),
                    line: 0,
                    column: 0,
                    message: "cannot read: missing".into(),
                })
            }
            p => text_of(p).to_owned(),
        };
        Ok((format!("config/{p}"), text))
    })
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs
        .iter()
        .any(|e| e.file == "config/city/units.toml" && e.line == 2));
}

#[test]
fn national_reference_values() {
    let r = all();
    // MIIT 2022-02-28: key-process NC 55.3%, R&D design tools 74.7%
    assert_eq!(r.national.get("key_process_nc").unwrap().value, 0.553);
    assert_eq!(
        r.national.get("rd_design_tool_penetration").unwrap().value,
        0.747
    );
    let bad = NATIONAL.replace("value = 0.553", "value = 55.3");
    let e = load_national("n.toml", &bad).unwrap_err();
    assert_eq!(e.line, line_of(&bad, "value = 55.3", 0), "{e}");
    // an id that is not a headline rate is refused by the set
    let errs = ReferenceSet::load(|p| {
        let t = if p == "plan/national.toml" {
            NATIONAL.replace("id = \"key_process_nc\"", "id = \"nc\"")
        } else {
            text_of(p).to_owned()
        };
        Ok((p.to_owned(), t))
    })
    .unwrap_err();
    assert!(
        errs[0].message.contains("`nc` is not a headline rate"),
        "{errs:?}"
    );
}

#[test]
fn dates_are_checked() {
    assert_eq!(date_year("2023-11-21"), Some(2023));
    assert_eq!(date_year("2025-12"), Some(2025));
    assert_eq!(date_year("2020"), Some(2020));
    for bad in ["2023-13", "23", "2023-1-1", "late 2023", "", "2023-11-21-1"] {
        assert_eq!(date_year(bad), None, "{bad}");
    }
}
