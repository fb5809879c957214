//! Ingest over real HTTP (`-- http`): the router `serve` runs
//! (`api::router` merged with the dashboard's, the evidence log as the
//! accept hook, the configuration's default limits) on 127.0.0.1:0, plain
//! and HTTPS (`server::tls_acceptor` + `server::TlsListener`, a self-signed
//! certificate from the `openssl` CLI), with N HTTP/1.1 keep-alive clients
//! (hyper, one connection each) posting the signed batches of the ingest
//! bench. Baseline in the same run: `ingest::ingest` called in-process on
//! the same bodies with the same hook and the same number of client threads.
//! After each run the rows are counted (every report stored once) and one
//! batch is posted again (acknowledged as duplicates, nothing added).

use super::{cpu_secs, ingest_bodies, ingest_run, ingest_store, ING_AGENTS, ING_DEVICES, ING_NOW};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use shuzhuan_aggregator::api::evidence::EvidenceService;
use shuzhuan_aggregator::config::{Config, ServerTls};
use shuzhuan_aggregator::evidence::EvidenceLog;
use shuzhuan_aggregator::store::{AcceptHook, SqliteStore};
use shuzhuan_aggregator::{api, server, web};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Reports per agent: 4 batches of 25 (4,000 reports, 800,000 summaries).
const HTTP_REPORTS: u64 = 100;

/// CPU seconds (user + system) of the calling thread.
pub fn thread_cpu_secs() -> f64 {
    super::stat_cpu_secs("/proc/thread-self/stat")
}

/// The configuration `serve` would read: defaults, the repo's reference data.
fn config(dir: &Path, tls: Option<&ServerTls>) -> Config {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let tls_lines = tls.map_or(String::new(), |t| {
        format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            t.cert_file.display(),
            t.key_file.display()
        )
    });
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{tls_lines}[store]\npath = \"bench.sqlite\"\n[city]\nreference_dir = \"{}\"\n",
        reference.display()
    );
    Config::parse("bench.toml", &text, dir).unwrap_or_else(|e| panic!("bench config: {e:?}"))
}

/// A running server: its address, its runtime, and the switch that stops it.
struct Server {
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The evidence log of a bench store (a fixed key), as `serve` opens it.
fn bench_log(store: &SqliteStore) -> EvidenceLog {
    EvidenceLog::open(
        store,
        "bench/evidence",
        ed25519_dalek::SigningKey::from_bytes(&[99; 32]),
    )
    .unwrap()
}

impl Server {
    /// Starts the `serve` router over `store` on a runtime like `main`'s
    /// (`Runtime::new()`: one worker per core, tokio's blocking pool).
    fn start(config: &Config, store: Arc<SqliteStore>) -> Server {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let log = Arc::new(bench_log(&store));
        let hook: Arc<dyn AcceptHook> = log.clone();
        let mut st = server::state(config, store.clone(), hook, Arc::new(|| ING_NOW));
        st.evidence = Some(Arc::new(EvidenceService { store, log }));
        let app = api::router(st.clone()).merge(web::router(st, &config.reference_dir));
        let acceptor = config
            .tls
            .as_ref()
            .map(|t| server::tls_acceptor(t).unwrap());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(config.listen))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(async move {
            let stopped = async {
                let _ = stopped.await;
            };
            match acceptor {
                Some(a) => axum::serve(server::TlsListener::new(listener, a).unwrap(), app)
                    .with_graceful_shutdown(stopped)
                    .await
                    .unwrap(),
                None => axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                    .unwrap(),
            }
        });
        Server {
            addr,
            rt,
            stop,
            task,
        }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.rt.block_on(self.task);
        self.rt.shutdown_timeout(std::time::Duration::from_secs(5));
    }
}

/// A self-signed certificate for 127.0.0.1 made by the `openssl` CLI
/// (tests/peers/install.sh installs it); `None` without it.
fn self_signed(dir: &Path) -> Option<ServerTls> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .args(["subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext"])
        // An end-entity certificate (the default is a CA, which rustls
        // refuses to see at the end of a chain).
        .args(["basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(ServerTls {
        cert_file: cert,
        key_file: key,
        client_ca_file: None,
    })
}

/// A TLS client trusting only `cert`.
fn tls_connector(cert: &Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// What a run of clients got back.
#[derive(Default)]
struct Answers {
    accepted: u64,
    duplicates: u64,
    requests: u64,
}

/// One keep-alive connection posting `bodies` in order; every answer must
/// be 200.
async fn client(
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    bodies: Vec<Bytes>,
) -> Answers {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    match tls {
        None => exchange(tcp, bodies).await,
        Some(c) => {
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            exchange(c.connect(name, tcp).await.unwrap(), bodies).await
        }
    }
}

async fn exchange<S>(stream: S, bodies: Vec<Bytes>) -> Answers
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let mut a = Answers::default();
    for body in bodies {
        send.ready().await.unwrap();
        let req = hyper::Request::post("/api/v1/reports")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        a.accepted += v["accepted"].as_u64().unwrap();
        a.duplicates += v["duplicates"].as_u64().unwrap();
        a.requests += 1;
    }
    drop(send);
    let _ = conn.await;
    a
}

/// Posts every body with `clients` connections (agents dealt round-robin as
/// in `ingest_run`, each agent's batches in order, agents interleaved) from
/// one client thread. Returns (wall s, process CPU s, client thread CPU s,
/// answers).
fn http_run(
    addr: SocketAddr,
    tls: Option<&tokio_rustls::TlsConnector>,
    bodies: &[Vec<Bytes>],
    clients: usize,
) -> (f64, f64, f64, Answers) {
    let plans: Vec<Vec<Bytes>> = (0..clients)
        .map(|k| {
            let mine: Vec<&Vec<Bytes>> = bodies.iter().skip(k).step_by(clients).collect();
            let rounds = mine.iter().map(|b| b.len()).max().unwrap_or(0);
            (0..rounds)
                .flat_map(|r| mine.iter().filter_map(move |b| b.get(r).cloned()))
                .collect()
        })
        .collect();
    let (t, c) = (Instant::now(), cpu_secs());
    let (client_cpu, answers) = std::thread::Builder::new()
        .name("bench-client".into())
        .spawn({
            let tls = tls.cloned();
            move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let answers = rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for plan in plans {
                        set.spawn(client(addr, tls.clone(), plan));
                    }
                    let mut total = Answers::default();
                    while let Some(a) = set.join_next().await {
                        let a = a.unwrap();
                        total.accepted += a.accepted;
                        total.duplicates += a.duplicates;
                        total.requests += a.requests;
                    }
                    total
                });
                (thread_cpu_secs(), answers)
            }
        })
        .unwrap()
        .join()
        .unwrap();
    (
        t.elapsed().as_secs_f64(),
        cpu_secs() - c,
        client_cpu,
        answers,
    )
}

/// (reports, window rows, distinct `(agent_id, seq)`) in the database file.
fn stored(path: &Path) -> (u64, u64, u64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64;
    (
        one("SELECT COUNT(*) FROM reports"),
        one("SELECT COUNT(*) FROM window_summaries"),
        one("SELECT COUNT(*) FROM (SELECT DISTINCT agent_id, seq FROM reports)"),
    )
}

/// Asserts every report of the load is stored exactly once; returns a note.
fn check_stored(path: &Path) -> String {
    let reports = u64::from(ING_AGENTS) * HTTP_REPORTS;
    let (r, w, d) = stored(path);
    assert_eq!(
        (r, w, d),
        (reports, reports * ING_DEVICES as u64, reports),
        "reports, window rows, distinct (agent_id, seq)"
    );
    format!("stored: {r} reports once each, {w} window rows")
}

/// Experiment (bench side, not how `serve` runs): the writer connection's
/// automatic checkpoint off and a thread checkpointing the WAL (PASSIVE,
/// `synchronous = FULL`) on its own connection every 10 ms while `f` runs,
/// so the checkpoint leaves the writer's critical section. Returns `f`'s
/// result, the checkpoints that copied pages and the largest WAL seen (pages).
fn with_background_checkpoint<T>(
    store: &SqliteStore,
    db: &Path,
    f: impl FnOnce() -> T,
) -> (T, u64, i64) {
    store
        .with_write_tx(|tx| {
            tx.pragma_update(None, "wal_autocheckpoint", 0)?;
            Ok(())
        })
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let ckpt = scope.spawn(|| {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.pragma_update(None, "synchronous", "FULL").unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let (mut copied, mut max_wal) = (0u64, 0i64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (log, done): (i64, i64) = conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(1)?, r.get(2)?))
                    })
                    .unwrap();
                max_wal = max_wal.max(log);
                if done > 0 {
                    copied += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            (copied, max_wal)
        });
        let out = f();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (copied, max_wal) = ckpt.join().unwrap();
        (out, copied, max_wal)
    })
}

pub fn bench_http(out: &mut impl std::io::Write) {
    let bodies = ingest_bodies(HTTP_REPORTS);
    let total_bytes: usize = bodies.iter().flatten().map(|b| b.len()).sum();
    let batches: usize = bodies.iter().map(|b| b.len()).sum();
    let reports = u64::from(ING_AGENTS) * HTTP_REPORTS;
    let certs = tempfile::tempdir().unwrap();
    let tls = self_signed(certs.path());
    writeln!(
        out,
        "http: {batches} batches of 25 reports of {ING_DEVICES} summaries from {ING_AGENTS} agents ({reports} reports, {:.1} MB JSON); TLS {}; load average {}",
        total_bytes as f64 / 1e6,
        if tls.is_some() { "with a self-signed P-256 certificate" } else { "skipped (no openssl CLI)" },
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    )
    .unwrap();
    let http_bodies: Vec<Vec<Bytes>> = bodies
        .iter()
        .map(|a| a.iter().map(|b| Bytes::from(b.clone())).collect())
        .collect();
    let connector = tls.as_ref().map(|t| tls_connector(&t.cert_file));
    let rate = |n: u64, wall: f64| (n as f64 / wall, n as f64 / wall / ING_DEVICES as f64);
    // SHUZHUAN_BENCH_HTTP_CLIENTS=2 (a list: 1,2) runs only those client
    // counts (for profiling one run).
    let counts: Vec<usize> = std::env::var("SHUZHUAN_BENCH_HTTP_CLIENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4]);
    for clients in counts {
        // Baseline: in-process, the same hook and limits as the server.
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), None);
        let store = ingest_store(dir.path());
        let log = bench_log(&store);
        let (wall, cpu, n) = ingest_run(&store, &log, &cfg.ingest, &bodies, clients);
        drop(store);
        let note = check_stored(&dir.path().join("bench.sqlite"));
        let (base_s, base_r) = rate(n, wall);
        writeln!(
            out,
            "http baseline in-process `ingest`, {clients} client thread(s): {base_s:.0} summaries/s ({base_r:.0} reports/s) in {wall:.2} s; CPU {cpu:.2} s; {note}"
        )
        .unwrap();
        if std::env::var_os("SHUZHUAN_BENCH_CHECKPOINT").is_some() {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("bench.sqlite");
            let store = ingest_store(dir.path());
            let log = bench_log(&store);
            let ((wall, cpu, n), copied, max_wal) = with_background_checkpoint(&store, &db, || {
                ingest_run(&store, &log, &cfg.ingest, &bodies, clients)
            });
            drop(store);
            let note = check_stored(&db);
            let (s, r) = rate(n, wall);
            writeln!(
                out,
                "http experiment: in-process `ingest`, {clients} client thread(s), checkpoints on a background connection: {s:.0} summaries/s ({r:.0} reports/s) in {wall:.2} s; CPU {cpu:.2} s; {copied} checkpoints, WAL at most {max_wal} pages; {note}; / in-process = {:.2}",
                s / base_s
            )
            .unwrap();
        }
        let modes: Vec<(&str, Option<&ServerTls>)> = std::iter::once(("HTTP", None))
            .chain(tls.as_ref().map(|t| ("HTTPS", Some(t))))
            .collect();
        for (mode, server_tls) in modes {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(dir.path(), server_tls);
            let store = Arc::new(ingest_store(dir.path()));
            let db: PathBuf = dir.path().join("bench.sqlite");
            let server = Server::start(&cfg, store.clone());
            let conn = server_tls.and(connector.as_ref());
            let (wall, cpu, client_cpu, a) = http_run(server.addr, conn, &http_bodies, clients);
            assert_eq!((a.accepted, a.duplicates), (reports, 0));
            // A replay of one batch: acknowledged, nothing stored twice.
            let (_, _, _, again) =
                http_run(server.addr, conn, &[vec![http_bodies[0][0].clone()]], 1);
            assert_eq!((again.accepted, again.duplicates), (0, 25));
            server.stop();
            drop(store);
            let note = check_stored(&db);
            let (s, r) = rate(a.accepted * ING_DEVICES as u64, wall);
            writeln!(
                out,
                "http {mode}, {clients} keep-alive client(s): {s:.0} summaries/s ({r:.0} reports/s, {} requests) in {wall:.2} s; CPU {cpu:.2} s (server {:.2} s = {:.0} summaries per server CPU-second, client thread {client_cpu:.2} s); {note}, a replayed batch acknowledged as 25 duplicates; {mode} / in-process = {:.2}",
                a.requests,
                cpu - client_cpu,
                (a.accepted * ING_DEVICES as u64) as f64 / (cpu - client_cpu).max(0.01),
                s / base_s
            )
            .unwrap();
        }
    }
}
