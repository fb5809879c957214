//! Targets from the real reference data (`config/plan/targets.toml` through
//! `common::reference`): every row of the plan's table with its target,
//! current value, gap and status; assessment items restricted to the 16 of
//! `config/plan/assessment.toml`.

use crate::harness::*;
use axum::body::Body;
use axum::http::StatusCode;
use serde_json::json;
use shuzhuan_aggregator::rollup::Reference;
use shuzhuan_aggregator::store::Store as _;
use shuzhuan_common::registry::{Recognition, RecognitionKind, RecognitionLevel};
use shuzhuan_common::report::Hash32;
use std::sync::Arc;

fn with_reference(mut h: Harness) -> Harness {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let r = Reference::load(&dir).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.assessment_items.len(), 16);
    h.state.reference = Arc::new(r);
    h
}

#[tokio::test]
async fn target_rows_carry_target_value_gap_and_status() {
    let h = with_reference(Harness::new());
    let recs: Vec<Recognition> = (0..3)
        .map(|i| Recognition {
            credit_code: code(1 + i % 2),
            kind: RecognitionKind::SmartWorkshop,
            level: RecognitionLevel::City,
            year: 2023 + i as u16,
            evidence: format!("doc-{i}"),
        })
        .collect();
    h.store.import_registry(&[], &recs).unwrap();
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/targets?year=2024",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert!(rows.len() >= 20, "{v}");
    let ws = rows.iter().find(|r| r["id"] == "smart_workshop").unwrap();
    assert_eq!(ws["target"], 37.0);
    assert_eq!(ws["value"], 2.0, "cumulative to 2024: {ws}");
    assert_eq!(ws["basis"], "recognitions");
    assert_eq!(ws["progress"]["gap"], 35.0, "{ws}");
    assert_eq!(ws["status"], "behind");
    let dig = rows
        .iter()
        .find(|r| r["id"] == "equipment_digitization")
        .unwrap();
    assert_eq!(dig["basis"], "measured");
    // No measured data in 2024 and no 2024 target for the headline rates.
    assert_eq!(dig["status"], "no_data", "{dig}");
    assert!(v["source"]["vintage"].is_string(), "{v}");

    // Scores only for the plan's assessment items.
    let (s, v) = h
        .call(
            "PUT",
            "/api/v1/assessment/xiping/no_such_item",
            Some(&h.admin),
            json!({"year": 2024, "score": 3.0, "evidence": "minutes 12"}).to_string(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (422, Some("bad_score")),
        "{v}"
    );
}

#[tokio::test]
async fn energy_is_converted_to_kgce_and_co2_with_the_factor_set_named() {
    let h = with_reference(Harness::new());
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (reports, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 8);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&reports))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.store.refresh_periods().unwrap();
    let path = format!(
        "/api/v1/indicators?period=2026-11&level=enterprise&id={}",
        code(1)
    );
    let (s, v) = h.call("GET", &path, Some(&h.admin), Body::empty()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e = &v["enterprise"];
    let kwh: f64 = e["energy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["carrier"] == "electricity")
        .map(|x| x["quantity"].as_f64().unwrap() - x["exported"].as_f64().unwrap())
        .sum();
    assert!(kwh > 0.0, "{e}");
    let set = h.state.reference.set.clone().unwrap();
    let coeff = set
        .coefficients
        .set
        .carrier("electricity")
        .unwrap()
        .coefficient;
    let factor = set.emission_factors.default_factor();
    let c = &e["energy_converted"];
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
    assert!(close(c["kgce"].as_f64().unwrap(), kwh * coeff), "{c}");
    assert!(
        close(c["co2_kg"].as_f64().unwrap(), kwh * factor.value),
        "{c}"
    );
    assert_eq!(c["emission_factor"]["id"], factor.id.as_str());
    assert!(c["coefficient_set"]["document"].is_string(), "{c}");
    // The city page converts its totals too.
    let (_, v) = h
        .call(
            "GET",
            "/api/v1/indicators?period=2026-11",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert!(
        v["indicators"]["energy_converted"]["kgce"]
            .as_f64()
            .is_some(),
        "{v}"
    );
    assert!(
        v["counties"][0]["indicators"]["energy_converted"].is_object(),
        "{v}"
    );
}
