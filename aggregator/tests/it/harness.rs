//! Shared fixtures: a store on a temporary file seeded with a small city, the
//! router with a fixed clock, signed reports, and a one-call HTTP helper.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use shuzhuan_aggregator::api::{self, auth, AppState};
use shuzhuan_aggregator::config::Config;
use shuzhuan_aggregator::store::{NoHook, Role, SqliteStore, Store};
use shuzhuan_common::credit_code::CreditCode;
use shuzhuan_common::inventory::{Device, DeviceKind, IndustryType, Inventory, KeyProcess};
use shuzhuan_common::registry::{County, CountyKind, DeclaredRates, Enterprise, IndustryChain};
use shuzhuan_common::report::{verifying_key_to_b64, Hash32, Report, SignedReport, SCHEMA_VERSION};
use shuzhuan_common::state::{DeviceState, StateSeconds};
use shuzhuan_common::summary::{EnergyDelta, EnergyMethod, WindowSummary};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt as _;

/// 2026-11-28T00:00:00Z: the harness's "now".
pub const NOW: i64 = 1_795_824_000;
pub const WINDOW: i64 = 900;

pub fn code(n: u32) -> CreditCode {
    CreditCode::from_body(&format!("91411721{n:09}")).unwrap()
}

pub fn counties() -> Vec<County> {
    [("xiping", "西平县"), ("suiping", "遂平县")]
        .into_iter()
        .map(|(id, name)| County {
            id: id.into(),
            name: name.into(),
            name_en: id.into(),
            kind: CountyKind::County,
            division_code: None,
        })
        .collect()
}

pub fn chains() -> Vec<IndustryChain> {
    vec![IndustryChain {
        id: "equipment".into(),
        name: "装备制造".into(),
        name_en: "Equipment".into(),
        cluster: None,
        industry_type: IndustryType::Discrete,
    }]
}

pub fn enterprise(n: u32, county: &str) -> Enterprise {
    Enterprise {
        credit_code: code(n),
        name: format!("企业{n}"),
        county: county.into(),
        chain: "equipment".into(),
        above_scale: true,
        industry_type: IndustryType::Discrete,
        rd_design_tools: Some(n % 2 == 1),
        declared: DeclaredRates {
            digitization: Some(0.6),
            networking: Some(0.5),
            key_process_nc: Some(0.5),
        },
    }
}

pub struct Harness {
    pub state: AppState,
    pub store: Arc<SqliteStore>,
    pub admin: String,
    pub _dir: tempfile::TempDir,
}

pub fn config(dir: &Path) -> Config {
    Config::parse(
        "test.toml",
        "[store]\npath = \"agg.sqlite\"\n[ingest]\nmax_batch = 8\nmax_body_bytes = 200000\n",
        dir,
    )
    .unwrap()
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = Arc::new(SqliteStore::open(&cfg.store_path).unwrap());
        store.upsert_counties(&counties()).unwrap();
        store.upsert_chains(&chains()).unwrap();
        store
            .import_registry(&[enterprise(1, "xiping"), enterprise(2, "suiping")], &[])
            .unwrap();
        let admin = auth::create_api_token(&*store, "admin", Role::Admin, None, NOW).unwrap();
        let state = shuzhuan_aggregator::server::state(
            &cfg,
            store.clone(),
            Arc::new(NoHook),
            Arc::new(|| NOW),
        );
        Harness {
            state,
            store,
            admin,
            _dir: dir,
        }
    }

    /// Installs the evidence log (key file in the temporary folder) as the
    /// ingest hook and serves it under `/api/v1/evidence/`.
    pub fn with_evidence(mut self) -> Harness {
        let cfg = config(self._dir.path());
        let ev = shuzhuan_aggregator::server::open_evidence(&cfg, &self.store).unwrap();
        self.state.hook = ev.log.clone();
        self.state.evidence = Some(ev);
        self
    }

    pub fn token(&self, role: Role, scope: Option<&str>) -> String {
        auth::create_api_token(
            &*self.store,
            role.as_str(),
            role,
            scope.map(str::to_owned),
            NOW,
        )
        .unwrap()
    }

    /// One request; returns status and the JSON body (or the text as a JSON string).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let (status, bytes) = self.raw(method, path, token, body).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, v)
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = api::router(self.state.clone())
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    /// Creates an enrolment token for enterprise `n` and enrols `agent` with `key`.
    pub async fn enrol(&self, agent: &str, n: u32, key: &SigningKey) {
        let (s, v) = self
            .call(
                "POST",
                "/api/v1/enrolment-tokens",
                Some(&self.admin),
                json!({ "enterprise": code(n).to_string() }).to_string(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let body = json!({
            "token": v["token"], "agent_id": agent, "enterprise": code(n).to_string(),
            "public_key": verifying_key_to_b64(&key.verifying_key()),
        });
        let (s, v) = self
            .call("POST", "/api/v1/enroll", None, body.to_string())
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// Count of stored reports (evidence rows).
    pub fn stored_reports(&self) -> i64 {
        self.store
            .with_read(|c| Ok(c.query_row("SELECT COUNT(*) FROM reports", [], |r| r.get(0))?))
            .unwrap()
    }
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A device summary whose state seconds fill `secs`.
pub fn summary(device: &str, secs: u32, productive: u32, received: u32, kwh: f64) -> WindowSummary {
    let mut st = StateSeconds::default();
    st.add(DeviceState::Productive, productive);
    st.add(DeviceState::Standby, secs - productive);
    WindowSummary {
        device_id: device.into(),
        state_seconds: st,
        nc_seconds: productive / 2,
        energy: vec![EnergyDelta {
            meter: format!("{device}-m"),
            carrier: "electricity".into(),
            quantity: kwh,
            unit: "kWh".into(),
            method: EnergyMethod::Counter,
            exported: 0.0,
        }],
        parts: Some(u64::from(productive / 60)),
        samples_expected: secs,
        samples_received: received.min(secs),
        flags: vec![],
    }
}

pub fn inventory() -> Inventory {
    let dev = |id: &str, kp: Option<&str>| Device {
        id: id.into(),
        name: id.into(),
        kind: DeviceKind::CncMachineTool,
        production: true,
        declared_digital: true,
        declared_networked: true,
        declared_nc: true,
        key_process: kp.map(str::to_owned),
        original_value_cny: None,
    };
    Inventory {
        devices: vec![
            dev("cnc-1", Some("machining")),
            dev("cnc-2", None),
            dev("press-1", None),
        ],
        key_processes: vec![KeyProcess {
            id: "machining".into(),
            name: "精加工".into(),
            declared_nc: true,
        }],
    }
}

/// A chain of `n` signed reports for `agent` of enterprise `ent`, starting at
/// seq `from` after `prev`, one window each ending before NOW.
pub fn chain(
    key: &SigningKey,
    agent: &str,
    ent: u32,
    from: u64,
    prev: Hash32,
    n: u64,
) -> (Vec<SignedReport>, Hash32) {
    let mut out = Vec::new();
    let mut prev = prev;
    for seq in from..from + n {
        let start = NOW - 86_400 + (seq as i64) * WINDOW;
        let r = Report {
            schema: SCHEMA_VERSION,
            agent_id: agent.into(),
            enterprise: code(ent),
            seq,
            prev_hash: prev,
            window_start: start,
            window_end: start + WINDOW,
            created_at: start + WINDOW,
            inventory: (seq == 1).then(inventory),
            summaries: vec![
                summary("cnc-1", 900, 600, 900, 1.5),
                summary("cnc-2", 900, 300, 450, 0.5),
            ],
        };
        let (sr, h) = r.sign(key);
        out.push(sr);
        prev = h;
    }
    (out, prev)
}

pub fn batch(reports: &[SignedReport]) -> String {
    json!({ "reports": reports }).to_string()
}
