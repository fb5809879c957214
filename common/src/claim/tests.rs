//! Tests of claim parsing and judging against synthetic signed evidence:
//! a truthful claim is supported, an inflated one is not (with the measured
//! figure shown), and an outage or tampering makes the data insufficient.

use super::*;
use crate::evidence::fixture::*;
use crate::evidence::verify_bundle_windows;

const POLICY: &str = include_str!("../../../config/claims/thresholds.toml");
const N: u64 = 24;

fn policy() -> ClaimPolicy {
    ClaimPolicy::parse("thresholds.toml", POLICY).unwrap()
}

/// A claim over the fixture's `N` windows (UTC), with these `[figures]` lines.
fn claim(figures: &str) -> Claim {
    let text = format!(
        "enterprise = \"{ENTERPRISE}\"\nrecognition = \"smart_workshop\"\n\n[window]\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-01T06:00:00Z\n\n[figures]\n{figures}\n"
    );
    Claim::parse("claim.toml", &text).unwrap()
}

fn judged(claim: &Claim, plant: &Plant) -> ClaimJudgement {
    let w = world(N, plant);
    let b = w.bundle(N);
    let v = verify_bundle_windows(&b, &log_key().verifying_key(), &claim.windows());
    judge(claim, &v, &policy())
}

fn only(j: &ClaimJudgement, k: FigureKind) -> &FigureJudgement {
    j.figures.iter().find(|f| f.figure == k).unwrap()
}

#[test]
fn the_shipped_policy_and_examples_parse() {
    let p = policy();
    assert!(p.source.status.contains("unverified"));
    for (name, text) in [
        (
            "truthful.toml",
            include_str!("../../../config/claims/examples/truthful.toml"),
        ),
        (
            "reduction.toml",
            include_str!("../../../config/claims/examples/reduction.toml"),
        ),
    ] {
        let c = Claim::parse(name, text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(p.recognitions.contains_key(&c.recognition), "{name}");
    }
    let c = Claim::parse(
        "t",
        include_str!("../../../config/claims/examples/truthful.toml"),
    )
    .unwrap();
    // 2026-01-01T00:00:00+08:00 is 2025-12-31T16:00:00Z.
    assert_eq!(c.window_start, 1_767_196_800);
}

#[test]
fn a_truthful_claim_is_supported() {
    let c = claim(
        "devices_connected = 6\ndigitization_rate_pct = 100\nnetworking_rate_pct = 100\nkey_process_nc_rate_pct = 100\nutilisation_pct = 66\nenergy_intensity_kgce_per_part = 0.031\ncarbon_intensity_kgco2_per_part = 0.15",
    );
    let j = judged(&c, &Plant::default());
    for f in &j.figures {
        assert_eq!(f.verdict, Verdict::Supported, "{f:?}");
    }
    let u = only(&j, FigureKind::UtilisationPct);
    assert!((u.measured.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    // 2.5 kWh × 0.1229 kgce/kWh per 10 parts.
    let e = only(&j, FigureKind::EnergyIntensityKgcePerPart);
    assert!((e.measured.unwrap() - 0.25 * 0.1229).abs() < 1e-12);
    assert!(
        e.why.iter().any(|w| w.contains("henan-2023")),
        "{:?}",
        e.why
    );
    let d = only(&j, FigureKind::DigitizationRatePct);
    assert_eq!(d.threshold.as_ref().unwrap().met, Some(true));
}

#[test]
fn an_inflated_claim_is_not_supported_and_shows_the_measurement() {
    let c =
        claim("devices_connected = 8\nutilisation_pct = 80\nenergy_intensity_kgce_per_part = 0.02");
    let j = judged(&c, &Plant::default());
    for f in &j.figures {
        assert_eq!(f.verdict, Verdict::NotSupported, "{f:?}");
        assert!(f.why[0].starts_with("measured"), "{:?}", f.why);
    }
    assert_eq!(only(&j, FigureKind::DevicesConnected).measured, Some(6.0));
    assert!(only(&j, FigureKind::UtilisationPct).why[0].contains("66.67"));
}

#[test]
fn a_window_with_an_outage_has_insufficient_data() {
    let c = claim("utilisation_pct = 66");
    let j = judged(
        &c,
        &Plant {
            outage: Some((4, 10)),
            ..Plant::default()
        },
    );
    let u = only(&j, FigureKind::UtilisationPct);
    assert_eq!(u.verdict, Verdict::InsufficientData);
    assert!(u.why[0].contains("87.5 %"), "{:?}", u.why);
    // The measurement is still shown beside the verdict.
    assert!(u.measured.is_some());
}

#[test]
fn tampered_evidence_gives_insufficient_data() {
    let c = claim("utilisation_pct = 66");
    let w = world(N, &Plant::default());
    let mut b = w.bundle(N);
    b.entries.remove(7);
    let v = verify_bundle_windows(&b, &log_key().verifying_key(), &c.windows());
    let j = judge(&c, &v, &policy());
    let u = only(&j, FigureKind::UtilisationPct);
    assert_eq!(u.verdict, Verdict::InsufficientData);
    assert!(u.why[0].contains("Chain"), "{:?}", u.why);
}

#[test]
fn a_reduction_needs_and_uses_the_baseline() {
    let text = format!(
        "enterprise = \"{ENTERPRISE}\"\nrecognition = \"green_factory\"\n[window]\nstart = 2026-01-01T03:00:00Z\nend = 2026-01-01T06:00:00Z\n[baseline]\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-01T03:00:00Z\n[figures]\nenergy_intensity_reduction_pct = 5\n"
    );
    let c = Claim::parse("c.toml", &text).unwrap();
    let j = judged(&c, &Plant::default());
    let r = only(&j, FigureKind::EnergyIntensityReductionPct);
    // The synthetic plant is steady: no reduction.
    assert_eq!(r.verdict, Verdict::NotSupported, "{r:?}");
    assert!(r.measured.unwrap().abs() < 1e-9);
}

#[test]
fn claim_errors_carry_line_and_column() {
    let err = Claim::parse("c.toml", "enterprise = \"x\"\nrecognitoin = \"a\"\n").unwrap_err();
    assert_eq!((err[0].line, err[0].column), (2, 1), "{err:?}");
    let text = format!(
        "enterprise = \"{ENTERPRISE}\"\nrecognition = \"smart_workshop\"\n[window]\nstart = 2026-01-02T00:00:00Z\nend = 2026-01-01\n[figures]\nspeed_pct = 3\n"
    );
    let err = Claim::parse("c.toml", &text).unwrap_err();
    let msgs: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("c.toml:5:1:") && m.contains("UTC offset")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("c.toml:7:1:") && m.contains("speed_pct")),
        "{msgs:?}"
    );
}

#[test]
fn policy_errors_carry_line_and_column() {
    let bad = POLICY.replace("nc_min_share = 0.50", "nc_min_share = 50");
    let err = ClaimPolicy::parse("p.toml", &bad).unwrap_err();
    assert!(err[0].to_string().contains("nc_min_share"), "{err:?}");
    assert!(err[0].line > 0);
}
