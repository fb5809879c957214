//! The evidence log wired into ingest and served over HTTP: checkpoints
//! verify with the served key, inclusion and consistency proofs verify
//! against the checkpoint's root; the OpenAPI document names every route.

use crate::harness::*;
use axum::body::Body;
use axum::http::StatusCode;
use shuzhuan_aggregator::store::Role;
use shuzhuan_common::merkle::{verify_consistency, verify_inclusion, SignedCheckpoint};
use shuzhuan_common::report::{verifying_key_from_b64, Hash32};

fn hashes(v: &serde_json::Value) -> Vec<Hash32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash32::from_hex(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn accepted_reports_are_logged_and_proven_over_http() {
    let h = Harness::new().with_evidence();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (reports, head) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 3);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&reports))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, c1) = h
        .call(
            "GET",
            "/api/v1/evidence/checkpoint",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c1}");
    let log_key = verifying_key_from_b64(c1["log_public_key"].as_str().unwrap()).unwrap();
    let signed: SignedCheckpoint = serde_json::from_value(c1["signed_checkpoint"].clone()).unwrap();
    let cp1 = signed.verify(&log_key).unwrap().clone();
    assert_eq!(cp1.size, 3);

    // More reports, then a second checkpoint consistent with the first.
    let (more, _) = chain(&k, "gw-1", 1, 4, head, 2);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&more)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, c2) = h
        .call(
            "GET",
            "/api/v1/evidence/checkpoint",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    let signed2: SignedCheckpoint =
        serde_json::from_value(c2["signed_checkpoint"].clone()).unwrap();
    let cp2 = signed2.verify(&log_key).unwrap().clone();
    assert_eq!(cp2.size, 5);
    let (s, p) = h
        .call(
            "GET",
            "/api/v1/evidence/consistency?old=3&new=5",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    verify_consistency(
        3,
        5,
        &cp1.root_hash,
        &cp2.root_hash,
        &hashes(&p["consistency_proof"]),
    )
    .unwrap();

    // The leaf of report seq 2 is the hash of its payload, proven into cp2.
    let (s, p) = h
        .call(
            "GET",
            "/api/v1/evidence/inclusion?agent_id=gw-1&seq=2",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let leaf = Hash32::from_hex(p["leaf_hash"].as_str().unwrap()).unwrap();
    verify_inclusion(
        &leaf,
        p["leaf_index"].as_u64().unwrap(),
        5,
        &hashes(&p["inclusion_proof"]),
        &cp2.root_hash,
    )
    .unwrap();

    // A replay adds no leaf.
    let (s, _) = h.call("POST", "/api/v1/reports", None, batch(&more)).await;
    assert_eq!(s, StatusCode::OK);
    let (_, c3) = h
        .call(
            "GET",
            "/api/v1/evidence/checkpoint",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(c3["signed_checkpoint"]["checkpoint"]["size"], 5);

    // Unknown report, wrong role, no log.
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/evidence/inclusion?agent_id=gw-1&seq=99",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let ent = h.token(Role::Enterprise, Some(code(1).as_str()));
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/evidence/checkpoint",
            Some(&ent),
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let plain = Harness::new();
    let (s, v) = plain
        .call(
            "GET",
            "/api/v1/evidence/checkpoint",
            Some(&plain.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["code"].as_str()),
        (404, Some("evidence_disabled")),
        "{v}"
    );
}

#[test]
fn openapi_names_every_route() {
    let spec: serde_json::Value =
        serde_json::from_str(shuzhuan_aggregator::api::openapi::SPEC).unwrap();
    let routes = include_str!("../../src/api/routes.rs");
    let mut n = 0;
    for piece in routes.split(".route(").skip(1) {
        let path = piece.trim_start().trim_start_matches('"');
        let path = &path[..path.find('"').unwrap()];
        assert!(
            spec["paths"].get(path).is_some(),
            "openapi.json lacks {path}"
        );
        n += 1;
    }
    assert!(n >= 20, "found only {n} routes");
}
