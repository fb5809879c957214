//! Aggregator integration tests: the HTTP API (enrolment, ingest and its
//! refusals, roles, registry import, exports, metrics).

use crate::harness::*;
use axum::http::StatusCode;
use base64::Engine as _;
use serde_json::{json, Value};
use shuzhuan_aggregator::store::{Role, Store};
use shuzhuan_common::report::{Hash32, Report, SignedReport};

fn assert_error(status: StatusCode, v: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{v}");
    assert_eq!(v["code"], want_code, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|s| s.len() > 10),
        "error sentence missing: {v}"
    );
}

#[tokio::test]
async fn enrol_then_ingest_then_replay_is_a_duplicate() {
    let h = Harness::new();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (reports, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 3);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&reports))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({ "accepted": 3, "duplicates": 0, "head_seq": 3 }));
    // The same batch again: acknowledged, stored once.
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&reports))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({ "accepted": 0, "duplicates": 3, "head_seq": 3 }));
    assert_eq!(h.stored_reports(), 3);
    // The evidence is the exact signed payload.
    let (payload, sig) = h.store.raw_report("gw-1", 2).unwrap().unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(payload),
        reports[1].payload
    );
    assert_eq!(sig, reports[1].signature);
}

#[tokio::test]
async fn a_used_enrolment_token_cannot_be_used_again() {
    let h = Harness::new();
    let (_, v) = h
        .call(
            "POST",
            "/api/v1/enrolment-tokens",
            Some(&h.admin),
            json!({ "enterprise": code(1).to_string() }).to_string(),
        )
        .await;
    let body = |agent: &str, k: u8| {
        json!({ "token": v["token"], "agent_id": agent, "enterprise": code(1).to_string(),
                "public_key": shuzhuan_common::report::verifying_key_to_b64(&key(k).verifying_key()) })
        .to_string()
    };
    let (s, _) = h
        .call("POST", "/api/v1/enroll", None, body("gw-1", 1))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v2) = h
        .call("POST", "/api/v1/enroll", None, body("gw-2", 2))
        .await;
    assert_error(s, &v2, 401, "bad_token");
}

#[tokio::test]
async fn rotation_replaces_the_key_and_keeps_the_chain() {
    let h = Harness::new();
    let (old, new) = (key(1), key(2));
    h.enrol("gw-1", 1, &old).await;
    let (r1, head) = chain(&old, "gw-1", 1, 1, Hash32::GENESIS, 2);
    assert_eq!(
        h.call("POST", "/api/v1/reports", None, batch(&r1)).await.0,
        StatusCode::OK
    );
    h.enrol("gw-1", 1, &new).await;
    // The old key no longer verifies.
    let (stale, _) = chain(&old, "gw-1", 1, 3, head, 1);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&stale)).await;
    assert_error(s, &v, 401, "bad_signature");
    let (fresh, _) = chain(&new, "gw-1", 1, 3, head, 1);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&fresh)).await;
    assert_eq!(
        (s, v["head_seq"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{v}"
    );
}

#[tokio::test]
async fn refused_batches_store_nothing() {
    let h = Harness::new();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (good, head) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 2);
    assert_eq!(
        h.call("POST", "/api/v1/reports", None, batch(&good))
            .await
            .0,
        StatusCode::OK
    );

    // Malformed JSON.
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, "{\"reports\": [")
        .await;
    assert_error(s, &v, 400, "malformed");

    // Wrong schema version (a correctly signed report of schema 2).
    let (next, _) = chain(&k, "gw-1", 1, 3, head, 1);
    let mut r: Report = serde_json::from_slice(&next[0].peek().unwrap().1).unwrap();
    r.schema = 2;
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&[r.sign(&k).0]))
        .await;
    assert_error(s, &v, 400, "unsupported_schema");

    // Bad signature: signed by someone else.
    let (forged, _) = chain(&key(9), "gw-1", 1, 3, head, 1);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&forged))
        .await;
    assert_error(s, &v, 401, "bad_signature");

    // Unknown agent.
    let (stranger, _) = chain(&k, "gw-404", 1, 1, Hash32::GENESIS, 1);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&stranger))
        .await;
    assert_error(s, &v, 401, "unknown_agent");

    // Chain gap: seq 5 when 3 is expected; the gap is recorded and shown.
    let (ahead, _) = chain(&k, "gw-1", 1, 5, head, 1);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&ahead)).await;
    assert_error(s, &v, 409, "chain_gap");
    assert_eq!(v["expected_seq"], 3);
    let (_, gaps) = h
        .call("GET", "/api/v1/gaps", Some(&h.admin), Body::empty())
        .await;
    assert_eq!(gaps["gaps"][0]["expected_seq"], 3, "{gaps}");
    assert_eq!(gaps["gaps"][0]["closed"], false);

    // Fork: a different report 2.
    let (fork, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 1);
    let (mut alt, _) = chain(&k, "gw-1", 1, 2, Hash32::of(b"other"), 1);
    alt.insert(0, fork[0].clone());
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&alt)).await;
    assert_error(s, &v, 409, "chain_fork");

    // One bad link at the end of an otherwise good batch: nothing of it is stored.
    let (mut mixed, _) = chain(&k, "gw-1", 1, 3, head, 3);
    let (bad, _) = chain(&k, "gw-1", 1, 6, Hash32::of(b"x"), 1);
    mixed.extend(bad);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&mixed)).await;
    assert_error(s, &v, 409, "chain_fork");

    // Oversized body (limit 200000 bytes in the harness).
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, vec![b' '; 200_001])
        .await;
    assert_error(s, &v, 413, "body_too_large");

    // More reports than max_batch (8).
    let (many, _) = chain(&k, "gw-1", 1, 3, head, 9);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&many)).await;
    assert_error(s, &v, 413, "batch_too_large");

    assert_eq!(h.stored_reports(), 2, "refusals stored nothing");
    assert_eq!(h.store.agent("gw-1").unwrap().unwrap().head_seq, Some(2));

    // The metrics count each refusal by reason.
    let (s, text) = h.raw("GET", "/metrics", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("shuzhuan_aggregator_ingest_rejects_total{reason=\"chain_gap\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("shuzhuan_aggregator_reports_accepted_total 2"),
        "{text}"
    );
}

#[tokio::test]
async fn revoked_agents_are_refused() {
    let h = Harness::new();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (s, _) = h
        .call(
            "POST",
            "/api/v1/agents/gw-1/revoke",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (r, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 1);
    let (s, v) = h.call("POST", "/api/v1/reports", None, batch(&r)).await;
    assert_error(s, &v, 401, "revoked_agent");
    assert_eq!(h.stored_reports(), 0);
}

#[tokio::test]
async fn windows_too_old_or_in_the_future_are_refused() {
    let h = Harness::new();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    let (r, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 1);
    let mut rep: Report = serde_json::from_slice(&r[0].peek().unwrap().1).unwrap();
    for (shift, code) in [
        (2 * 86_400, "window_in_future"),
        (-500 * 86_400, "window_too_old"),
    ] {
        let mut x = rep.clone();
        x.window_start += shift;
        x.window_end += shift;
        let (s, v) = h
            .call("POST", "/api/v1/reports", None, batch(&[x.sign(&k).0]))
            .await;
        assert_error(s, &v, 422, code);
    }
    rep.enterprise = code(2);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&[rep.sign(&k).0]))
        .await;
    assert_error(s, &v, 401, "wrong_enterprise");
    assert_eq!(h.stored_reports(), 0);
}

#[tokio::test]
async fn every_path_checks_the_role() {
    let h = Harness::new();
    let county = h.token(Role::County, Some("xiping"));
    let ent = h.token(Role::Enterprise, Some(code(2).as_str()));
    let bureau = h.token(Role::Bureau, None);
    // No token, unknown token.
    let (s, v) = h
        .call("GET", "/api/v1/enterprises", None, Body::empty())
        .await;
    assert_error(s, &v, 401, "unauthenticated");
    let (s, v) = h
        .call("GET", "/api/v1/enterprises", Some("nope"), Body::empty())
        .await;
    assert_error(s, &v, 401, "unauthenticated");
    // Wrong role for the path.
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/enrolment-tokens",
            Some(&bureau),
            json!({ "enterprise": code(1).to_string() }).to_string(),
        )
        .await;
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = h
        .call("GET", "/api/v1/agents", Some(&county), Body::empty())
        .await;
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/exports/enterprises.csv",
            Some(&ent),
            Body::empty(),
        )
        .await;
    assert_error(s, &v, 403, "forbidden");
    // Scopes: a county sees its own enterprises only; an enterprise itself only.
    let (_, v) = h
        .call("GET", "/api/v1/enterprises", Some(&county), Body::empty())
        .await;
    let codes: Vec<&str> = v["enterprises"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["credit_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, vec![code(1).as_str()]);
    let (s, v) = h
        .call(
            "GET",
            &format!("/api/v1/enterprises/{}", code(1)),
            Some(&ent),
            Body::empty(),
        )
        .await;
    assert_error(s, &v, 403, "forbidden");
    let (s, _) = h
        .call(
            "GET",
            &format!("/api/v1/enterprises/{}", code(2)),
            Some(&ent),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/indicators?period=2026&level=county&id=suiping",
            Some(&county),
            Body::empty(),
        )
        .await;
    assert_error(s, &v, 403, "forbidden");
    let (s, _) = h
        .call(
            "GET",
            "/api/v1/indicators?period=2026&level=county&id=xiping",
            Some(&county),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Bureau records scores, counties cannot.
    let score = json!({ "year": 2026, "score": 4.0, "evidence": "驻工信〔2026〕5号" }).to_string();
    let (s, v) = h
        .call(
            "PUT",
            "/api/v1/assessment/xiping/policy-1",
            Some(&county),
            score.clone(),
        )
        .await;
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = h
        .call(
            "PUT",
            "/api/v1/assessment/xiping/policy-1",
            Some(&bureau),
            score,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = h
        .call(
            "GET",
            "/api/v1/assessment?year=2026",
            Some(&bureau),
            Body::empty(),
        )
        .await;
    assert_eq!(
        (
            v["counties"][0]["county"].as_str(),
            v["counties"][0]["rank"].as_u64()
        ),
        (Some("xiping"), Some(1)),
        "{v}"
    );
}

#[tokio::test]
async fn csv_import_reports_bad_rows_and_imports_nothing() {
    let h = Harness::new();
    let cols = shuzhuan_aggregator::registry::ENTERPRISE_COLUMNS.join(",");
    let csv = format!(
        "{cols}\n{},新厂,xiping,equipment,true,,,,,\n914117210000000009,坏码,xiping,equipment,true,,,,,\n{},无县,atlantis,equipment,true,,,,,\n",
        code(10),
        code(11)
    );
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/registry/enterprises",
            Some(&h.admin),
            csv.clone(),
        )
        .await;
    assert_error(s, &v, 422, "bad_rows");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("line 3")
            && msg.contains("check character")
            && msg.contains("line 4")
            && msg.contains("atlantis"),
        "{msg}"
    );
    assert_eq!(h.store.enterprises().unwrap().len(), 2, "nothing imported");
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/registry/enterprises?skip_bad_rows=true",
            Some(&h.admin),
            csv,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["imported"].as_u64(),
            v["skipped"].as_array().map(Vec::len)
        ),
        (Some(1), Some(2))
    );
    assert_eq!(h.store.enterprises().unwrap().len(), 3);
}

#[tokio::test]
async fn exports_and_openapi() {
    let h = Harness::new();
    let (s, body) = h
        .raw(
            "GET",
            "/api/v1/exports/enterprises.csv",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with("credit_code,name,county"), "{text}");
    assert_eq!(text.lines().count(), 3);
    let (s, body) = h
        .raw(
            "GET",
            "/api/v1/exports/device_days.xlsx",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!((s, &body[..2]), (StatusCode::OK, &b"PK"[..]));
    let (s, v) = h
        .call(
            "GET",
            "/api/v1/exports/api_tokens.csv",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = h
        .call("GET", "/api/v1/openapi.json", None, Body::empty())
        .await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/api/v1/enroll",
        "/api/v1/reports",
        "/api/v1/indicators",
        "/api/v1/exports/{file}",
        "/metrics",
    ] {
        assert!(v["paths"].get(p).is_some(), "openapi lacks {p}");
    }
}

#[tokio::test]
async fn metrics_use_the_prometheus_text_content_type() {
    let h = Harness::new();
    let resp_type = {
        use tower::ServiceExt as _;
        let req = axum::http::Request::get("/metrics")
            .body(Body::empty())
            .unwrap();
        let resp = shuzhuan_aggregator::api::router(h.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        resp.headers()["content-type"].to_str().unwrap().to_owned()
    };
    assert_eq!(resp_type, "text/plain; version=0.0.4");
}

#[test]
fn signed_report_round_trips_in_a_batch() {
    // Guards the harness: a batch body is exactly {"reports": [...]}.
    let (r, _) = chain(&key(1), "gw-1", 1, 1, Hash32::GENESIS, 1);
    let v: Value = serde_json::from_str(&batch(&r)).unwrap();
    let back: Vec<SignedReport> = serde_json::from_value(v["reports"].clone()).unwrap();
    assert_eq!(back, r);
}

use axum::body::Body;

/// An XLSX workbook with one sheet of `rows` (all text cells).
fn workbook(rows: &[Vec<String>]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if !cell.is_empty() {
                ws.write_string(r as u32, c as u16, cell).unwrap();
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

#[tokio::test]
async fn xlsx_import_reports_bad_rows_by_sheet_row_and_round_trips_the_export() {
    let h = Harness::new();
    let header: Vec<String> = shuzhuan_aggregator::registry::ENTERPRISE_COLUMNS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let row = |code: &str, name: &str, county: &str, rate: &str| -> Vec<String> {
        [code, name, county, "equipment", "是", "", "", rate, "", ""]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    // Row 3 is left empty, as people do in Excel.
    let rows = vec![
        header.clone(),
        row(code(10).as_str(), "新厂", "xiping", "54%"),
        vec![],
        row("914117210000000009", "坏码", "xiping", ""),
        row(code(11).as_str(), "无县", "atlantis", "1.7"),
    ];
    let xlsx = workbook(&rows);
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/registry/enterprises",
            Some(&h.admin),
            xlsx.clone(),
        )
        .await;
    assert_error(s, &v, 422, "bad_rows");
    let bad: Vec<(u64, String)> = v["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(bad.len(), 2, "{v}");
    assert_eq!(bad[0].0, 4, "{v}");
    assert!(bad[0].1.contains("check character"), "{v}");
    assert_eq!(bad[1].0, 5, "{v}");
    assert!(
        bad[1].1.contains("atlantis") && bad[1].1.contains("declared_digitization"),
        "{v}"
    );
    assert_eq!(h.store.enterprises().unwrap().len(), 2, "nothing imported");

    let (s, v) = h
        .call(
            "POST",
            "/api/v1/registry/enterprises?skip_bad_rows=true",
            Some(&h.admin),
            xlsx,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 1);
    let e = h.store.enterprise(code(10).as_str()).unwrap().unwrap();
    assert_eq!(e.declared.digitization, Some(0.54));

    // The XLSX export imports back unchanged.
    let (s, bytes) = h
        .raw(
            "GET",
            "/api/v1/exports/enterprises.xlsx",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let before = h.store.enterprises().unwrap();
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/registry/enterprises",
            Some(&h.admin),
            bytes,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["imported"], 3);
    assert_eq!(h.store.enterprises().unwrap(), before);

    // A file that is not a workbook is refused as a whole.
    let (s, v) = h
        .call(
            "POST",
            "/api/v1/registry/recognitions",
            Some(&h.admin),
            b"PK\x03\x04 broken".to_vec(),
        )
        .await;
    assert_error(s, &v, 400, "bad_file");
}
