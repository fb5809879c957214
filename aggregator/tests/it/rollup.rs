//! Aggregator integration tests: roll-ups (day sums equal window sums,
//! independence from batch split and agent interleaving, period rows and the
//! indicator page built from them).

use crate::harness::*;
use axum::body::Body;
use axum::http::StatusCode;
use proptest::prelude::*;
use shuzhuan_aggregator::store::{NoHook, SqliteStore, Store};
use shuzhuan_common::report::{Hash32, Report, VerifiedReport, SCHEMA_VERSION};

/// Per report: (window index, [(device, productive secs, received samples, kWh)]).
type Plan = Vec<(u32, Vec<(u8, u32, u32, u16)>)>;

fn build(agent: &str, ent: u32, plan: &Plan) -> Vec<(VerifiedReport, String)> {
    let k = key(ent as u8);
    let mut prev = Hash32::GENESIS;
    let mut out = Vec::new();
    for (i, (w, devs)) in plan.iter().enumerate() {
        let start = NOW - 3 * 86_400 + i64::from(*w) * WINDOW;
        let mut seen = std::collections::BTreeSet::new();
        let summaries = devs
            .iter()
            .filter(|d| seen.insert(d.0))
            .map(|&(d, p, r, kwh)| {
                summary(
                    &format!("dev-{d}"),
                    WINDOW as u32,
                    p,
                    r,
                    f64::from(kwh) / 8.0,
                )
            })
            .collect();
        let r = Report {
            schema: SCHEMA_VERSION,
            agent_id: agent.into(),
            enterprise: code(ent),
            seq: i as u64 + 1,
            prev_hash: prev,
            window_start: start,
            window_end: start + WINDOW,
            created_at: start + WINDOW,
            inventory: None,
            summaries,
        };
        let (sr, h) = r.sign(&k);
        prev = h;
        out.push((sr.verify(&k.verifying_key()).unwrap(), sr.signature));
    }
    out
}

fn store_with_agents() -> SqliteStore {
    let s = SqliteStore::in_memory().unwrap();
    with_agents(s)
}

fn with_agents(s: SqliteStore) -> SqliteStore {
    s.upsert_counties(&counties()).unwrap();
    s.upsert_chains(&chains()).unwrap();
    s.import_registry(&[enterprise(1, "xiping"), enterprise(2, "suiping")], &[])
        .unwrap();
    for (agent, ent) in [("a", 1u32), ("b", 2)] {
        let token = format!("t-{agent}");
        s.create_enrol_token(
            &shuzhuan_aggregator::enroll::secret_hash(&token),
            &code(ent),
            NOW,
            NOW + 60,
        )
        .unwrap();
        let pk = shuzhuan_common::report::verifying_key_to_b64(&key(ent as u8).verifying_key());
        s.enroll(
            &shuzhuan_aggregator::enroll::secret_hash(&token),
            agent,
            &code(ent),
            &pk,
            NOW,
        )
        .unwrap();
    }
    s
}

fn dump(s: &SqliteStore, sql: &str) -> Vec<String> {
    s.with_read(|c| {
        let mut st = c.prepare(sql)?;
        let n = st.column_count();
        let rows = st.query_map([], |r| {
            (0..n)
                .map(|i| {
                    r.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows
            .map(|r| r.map(|v| v.join("|")))
            .collect::<Result<Vec<_>, _>>()?)
    })
    .unwrap()
}

/// Retention: window rows older than the cut go, daily rows and their energy
/// stay exactly as they were.
#[test]
fn prune_fine_keeps_daily_rows() {
    let s = store_with_agents();
    let p: Plan = (0..8)
        .map(|w| (w * 40, vec![(0, 600, 900, 16), (1, 300, 450, 8)]))
        .collect();
    s.ingest_batch("a", &build("a", 1, &p), NOW, 8 * 3600, &NoHook)
        .unwrap();
    let days = "SELECT day, device_id, productive, samples_received FROM device_days ORDER BY 1, 2";
    let energy = "SELECT day, device_id, ROUND(quantity, 6) FROM device_day_energy ORDER BY 1, 2";
    let (d0, e0) = (dump(&s, days), dump(&s, energy));
    let before_cut = dump(&s, "SELECT COUNT(*) FROM window_summaries WHERE window_start < (SELECT MAX(window_start) FROM window_summaries)");
    let cut: i64 = s
        .with_read(|c| {
            Ok(
                c.query_row("SELECT MAX(window_start) FROM window_summaries", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap();
    let removed = s.prune_fine(cut).unwrap();
    assert_eq!(vec![format!("Integer({removed})")], before_cut);
    assert!(removed > 0);
    assert_eq!(
        dump(&s, "SELECT COUNT(*) FROM window_summaries WHERE window_start < (SELECT MAX(window_start) FROM window_summaries)"),
        vec!["Integer(0)".to_string()]
    );
    assert_eq!(dump(&s, days), d0);
    assert_eq!(dump(&s, energy), e0);
}

fn plan() -> impl Strategy<Value = Plan> {
    prop::collection::vec(
        (
            0u32..400,
            prop::collection::vec((0u8..4, 0u32..=900, 0u32..=900, 0u16..100), 1..4),
        ),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn day_sums_equal_window_sums(pa in plan()) {
        let s = store_with_agents();
        let reports = build("a", 1, &pa);
        s.ingest_batch("a", &reports, NOW, 8 * 3600, &NoHook).unwrap();
        let sums = "SUM(productive), SUM(standby), SUM(nc_seconds), SUM(samples_expected), SUM(samples_received)";
        let w = dump(&s, &format!("SELECT {sums}, COUNT(*) FROM window_summaries"));
        let d = dump(&s, &format!("SELECT {sums}, SUM(windows) FROM device_days"));
        prop_assert_eq!(w, d);
        let e1 = dump(&s, "SELECT ROUND(SUM(json_extract(e.value, '$.quantity')), 6) FROM window_summaries w, json_each(w.energy) e");
        let e2 = dump(&s, "SELECT ROUND(SUM(quantity), 6) FROM device_day_energy");
        prop_assert_eq!(e1, e2);
        // Period rows: the year holds every day's productive seconds.
        s.refresh_periods().unwrap();
        let y = dump(&s, "SELECT SUM(productive), SUM(samples_received) FROM device_periods WHERE period = '2026'");
        let dd = dump(&s, "SELECT SUM(productive), SUM(samples_received) FROM device_days");
        prop_assert_eq!(y, dd);
    }

    #[test]
    fn batch_split_and_interleaving_do_not_change_days(
        pa in plan(), pb in plan(), cut_a in 0usize..12, cut_b in 0usize..12, b_first in any::<bool>()
    ) {
        let ra = build("a", 1, &pa);
        let rb = build("b", 2, &pb);
        // One batch per agent, in one order.
        let one = store_with_agents();
        one.ingest_batch("a", &ra, NOW, 8 * 3600, &NoHook).unwrap();
        one.ingest_batch("b", &rb, NOW, 8 * 3600, &NoHook).unwrap();
        // Split batches, interleaved the other way, with a replayed batch.
        let two = store_with_agents();
        let (a1, a2) = ra.split_at(cut_a.min(ra.len()));
        let (b1, b2) = rb.split_at(cut_b.min(rb.len()));
        let steps: Vec<(&str, &[(VerifiedReport, String)])> = if b_first {
            vec![("b", b1), ("a", a1), ("b", b2), ("a", a2), ("a", a1)]
        } else {
            vec![("a", a1), ("b", b1), ("a", a2), ("a", a2), ("b", b2)]
        };
        for (agent, part) in steps {
            if !part.is_empty() {
                two.ingest_batch(agent, part, NOW, 8 * 3600, &NoHook).unwrap();
            }
        }
        let q = "SELECT * FROM device_days ORDER BY enterprise, device_id, day";
        prop_assert_eq!(dump(&one, q), dump(&two, q));
        one.refresh_periods().unwrap();
        two.refresh_periods().unwrap();
        let q = "SELECT * FROM device_periods ORDER BY enterprise, period, device_id";
        prop_assert_eq!(dump(&one, q), dump(&two, q));
    }
}

#[tokio::test]
async fn indicator_page_shows_measured_beside_declared() {
    let h = Harness::new();
    let k = key(1);
    h.enrol("gw-1", 1, &k).await;
    // Two days of windows: cnc-1 delivers everything, cnc-2 half, press-1 nothing.
    let (reports, _) = chain(&k, "gw-1", 1, 1, Hash32::GENESIS, 8);
    let (s, v) = h
        .call("POST", "/api/v1/reports", None, batch(&reports))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        h.store.refresh_periods().unwrap(),
        3,
        "one month, quarter and year"
    );
    let path = format!(
        "/api/v1/indicators?period=2026-11&level=enterprise&id={}",
        code(1)
    );
    let (s, v) = h.call("GET", &path, Some(&h.admin), Body::empty()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e = &v["enterprise"];
    assert_eq!(e["production_devices"], 3);
    assert_eq!(
        e["measured_digitization"]["value"].as_f64(),
        Some(2.0 / 3.0),
        "{e}"
    );
    assert_eq!(
        e["measured_networking"]["value"].as_f64(),
        Some(1.0 / 3.0),
        "{e}"
    );
    assert_eq!(
        e["measured_key_process_nc"]["value"].as_f64(),
        Some(1.0),
        "{e}"
    );
    assert_eq!(e["inventory_digitization"]["value"].as_f64(), Some(1.0));
    assert_eq!(e["declared_digitization"].as_f64(), Some(0.6));
    assert_eq!(e["coverage"]["value"].as_f64(), Some(1350.0 / 1800.0));
    assert_eq!(
        e["utilisation_of_calendar_time"]["value"].as_f64(),
        Some(900.0 / 1800.0)
    );
    // The city page: enterprise 2 has no data, so measured means come from one enterprise.
    let (_, v) = h
        .call(
            "GET",
            "/api/v1/indicators?period=2026",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    let ind = &v["indicators"];
    assert_eq!(ind["enterprises_with_measured_data"], 1, "{ind}");
    assert_eq!(ind["enterprises_declared_only"], 1, "{ind}");
    assert_eq!(
        ind["digitization"]["measured"]["mean"].as_f64(),
        Some(2.0 / 3.0),
        "{ind}"
    );
    assert_eq!(
        ind["digitization"]["declared_questionnaire"]["mean"].as_f64(),
        Some(0.6)
    );
    assert_eq!(
        ind["rd_design_tools"]["declared"]["mean"].as_f64(),
        Some(0.5)
    );
    // A period with no data says so instead of showing zero.
    let (_, v) = h
        .call(
            "GET",
            "/api/v1/indicators?period=2025",
            Some(&h.admin),
            Body::empty(),
        )
        .await;
    assert_eq!(
        v["indicators"]["networking"]["measured"]["status"], "insufficient data",
        "{v}"
    );
    assert!(v["indicators"]["networking"]["measured"]["mean"].is_null());
    // Days page.
    let path = format!(
        "/api/v1/enterprises/{}/days?from=2026-11-26&to=2026-11-28",
        code(1)
    );
    let (s, v) = h.call("GET", &path, Some(&h.admin), Body::empty()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let windows: u64 = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state_seconds"]["productive"].as_u64().unwrap())
        .sum();
    assert_eq!(windows, 8 * 900, "600 + 300 productive seconds per window");
}

/// The enterprise facts a page reads are built once per roll-up generation:
/// reports ingested since the last refresh reach them with the next refresh,
/// a registry import at once, and a write through another handle on the same
/// file (another process) is seen too.
#[test]
fn enterprise_facts_follow_the_rollup_generation() {
    use shuzhuan_aggregator::rollup::{build_enterprise_facts, enterprise_facts, Reference};
    use shuzhuan_aggregator::store::Period;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.sqlite");
    let s = with_agents(SqliteStore::open(&path).unwrap());
    let other = SqliteStore::open(&path).unwrap();
    let reference = Reference::default();
    let year = Period::Year(2026);
    let productive = |f: &[shuzhuan_aggregator::rollup::EnterpriseFacts]| {
        f.iter()
            .find(|e| e.credit_code == code(1).to_string())
            .map(|e| e.utilisation_of_calendar_time.numerator)
            .unwrap()
    };
    let p: Plan = (0..8).map(|w| (w * 40, vec![(0, 600, 900, 16)])).collect();
    let reports = build("a", 1, &p);
    s.ingest_batch("a", &reports[..4], NOW, 8 * 3600, &NoHook)
        .unwrap();
    s.refresh_periods().unwrap();
    let g0 = s.rollup_generation().unwrap();
    let first = enterprise_facts(&s, &reference, year).unwrap();
    assert_eq!(productive(&first), 4.0 * 600.0);
    // Cached: the same build is handed out again.
    let again = enterprise_facts(&s, &reference, year).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    // Ingest alone does not move the generation: the pages stay as of the last roll-up.
    s.ingest_batch("a", &reports[4..], NOW, 8 * 3600, &NoHook)
        .unwrap();
    assert_eq!(s.rollup_generation().unwrap(), g0);
    assert_eq!(
        productive(&enterprise_facts(&s, &reference, year).unwrap()),
        4.0 * 600.0
    );
    // The refresh redoes the period rows and the facts with them.
    assert_eq!(s.refresh_periods().unwrap(), 3);
    assert!(s.rollup_generation().unwrap() > g0);
    let after = enterprise_facts(&s, &reference, year).unwrap();
    assert_eq!(productive(&after), 8.0 * 600.0);
    assert_eq!(
        *after,
        build_enterprise_facts(&s, &reference, year).unwrap()
    );
    // A refresh with nothing dirty keeps the cache.
    let g1 = s.rollup_generation().unwrap();
    assert_eq!(s.refresh_periods().unwrap(), 0);
    assert_eq!(s.rollup_generation().unwrap(), g1);
    assert!(std::sync::Arc::ptr_eq(
        &after,
        &enterprise_facts(&s, &reference, year).unwrap()
    ));
    // A registry import through another handle on the file shows at once.
    let mut e1 = enterprise(1, "xiping");
    e1.declared.digitization = Some(0.9);
    other.import_registry(&[e1], &[]).unwrap();
    let imported = enterprise_facts(&s, &reference, year).unwrap();
    let f1 = imported
        .iter()
        .find(|e| e.credit_code == code(1).to_string())
        .unwrap();
    assert_eq!(f1.declared_digitization, Some(0.9));
    // Different measurement rules are a different build, not a cache hit.
    let mut strict = reference.clone();
    strict.rules.min_report_coverage = 1.0;
    let strict_facts = enterprise_facts(&s, &strict, year).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&imported, &strict_facts));
    assert_eq!(
        *strict_facts,
        build_enterprise_facts(&s, &strict, year).unwrap()
    );
}
