//! `shuzhuan-agent run`: sources → model → windows → sealed reports →
//! spool → shipper, with `/metrics` and the status page. [`run`] is also
//! the library entry the aggregator's demo uses to run agents in-process.

use crate::clock::Clock;
use crate::config::{AgentConfig, WhenFull as CfgWhenFull};
use crate::model::classify::PowerThresholds;
use crate::model::{window_of, DeviceModel, DeviceParams};
use crate::outputs::{router, AgentMetrics, DeviceStatus, Status};
use crate::sample::SampleBatch;
use crate::ship::{self, HttpTransport, Sealer, ShipMetrics, ShipOptions};
use crate::shutdown::Coordinator;
use crate::spool::{Spool, SpoolOptions, WhenFull};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// Model parameters of every configured device.
pub fn device_params(cfg: &AgentConfig) -> Vec<DeviceParams> {
    cfg.devices
        .iter()
        .map(|d| {
            let mut p = DeviceParams::new(d.id(), d.poll_interval_ms);
            p.has_link = d.link.is_some();
            if let Some(t) = d.power_thresholds_kw {
                p.thresholds = PowerThresholds {
                    off: t.off,
                    running: t.running,
                    ..PowerThresholds::default()
                };
            }
            p
        })
        .collect()
}

/// Spool options from the config: `<data_dir>/spool`.
pub fn spool_options(cfg: &AgentConfig) -> SpoolOptions {
    let when = match cfg.spool.when_full {
        CfgWhenFull::DropOldest => WhenFull::DropOldest,
        CfgWhenFull::StopPolling => WhenFull::DropNewest,
    };
    SpoolOptions::new(
        cfg.agent.data_dir.join("spool"),
        cfg.spool.max_spool_bytes,
        when,
    )
}

struct Windows {
    models: BTreeMap<String, DeviceModel>,
    start: i64,
    end: i64,
    window_secs: u32,
    first: bool,
}

fn publish_spool(spool: &Mutex<Spool>, m: &AgentMetrics, clock: &Clock, status: &Mutex<Status>) {
    let st = spool.lock().expect("spool lock").stats();
    m.spool_reports.set(st.reports as i64);
    m.spool_bytes.set(st.bytes as i64);
    let now = clock.now_ms() / 1000;
    m.spool_oldest_age
        .set(st.oldest_created_at.map_or(0, |c| (now - c).max(0)));
    for (why, n) in &st.drops {
        let c = m.dropped.with_label_values(&[why]);
        if (n.saturating_sub(c.get())) > 0 {
            c.inc_by(n - c.get());
        }
    }
    status.lock().expect("status lock").spool_reports = st.reports;
}

/// Runs the agent until `shutdown` completes; then seals the open window
/// (flagged partial), lets the shipper make a last attempt and returns.
pub async fn run(cfg: AgentConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let clock = cfg.clock();
    let data_dir = cfg.agent.data_dir.clone();
    let key = crate::keys::load_or_create(&data_dir)?;
    let spool = Arc::new(Mutex::new(Spool::open(spool_options(&cfg))?));
    let registry = prometheus::Registry::new();
    let metrics = AgentMetrics::register(&registry)?;
    let status = Arc::new(Mutex::new(Status {
        agent_id: cfg.agent.id.clone(),
        devices: cfg
            .devices
            .iter()
            .map(|d| {
                (
                    d.id().to_owned(),
                    DeviceStatus {
                        name: d.inventory.name.clone(),
                        link: d.link.clone(),
                        ..DeviceStatus::default()
                    },
                )
            })
            .collect(),
        ..Status::default()
    }));
    let coord = Coordinator::new();

    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("[http] listen {}: {e}", cfg.http.listen))?;
    let app = router(registry.clone(), status.clone());
    let mut http_stop = coord.handle();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_stop.recv().await })
            .await;
    });

    let (tx, mut rx) = mpsc::channel::<SampleBatch>(4096);
    // Held so the channel stays open when no link is configured (every
    // device then reports as disconnected); shutdown is the only way out.
    let _keep_open = tx.clone();
    let _sources = crate::sources::spawn_all(&cfg, clock, tx, &registry, &coord);
    let influx = match &cfg.influxdb {
        Some(i) => Some(crate::outputs::influx::start(
            i,
            &cfg.agent.id,
            &registry,
            coord.handle(),
        )?),
        None => None,
    };

    let wake = Arc::new(Notify::new());
    if let Some(agg) = &cfg.aggregator {
        let endpoint = ship::http::Endpoint::from_config(agg).map_err(|e| anyhow::anyhow!(e))?;
        let transport = HttpTransport {
            endpoint,
            timeout: Duration::from_secs(30),
        };
        let sm = ShipMetrics {
            shipped: metrics.shipped.clone(),
            rejected: metrics.rejected.clone(),
        };
        tokio::spawn(ship::run_shipper(
            spool.clone(),
            transport,
            ShipOptions::default(),
            sm,
            wake.clone(),
            coord.handle(),
        ));
    } else {
        tracing::info!("no [aggregator]: reports stay in the spool");
    }

    let sealer = Sealer {
        agent_id: cfg.agent.id.clone(),
        enterprise: cfg.agent.enterprise.clone(),
        key,
    };
    let now = clock.now_ms();
    let (start, end) = window_of(now, cfg.agent.window_secs);
    let mut w = Windows {
        models: device_params(&cfg)
            .into_iter()
            .map(|p| {
                let mut m = DeviceModel::new(p);
                m.start_at(now);
                (m.params.id.clone(), m)
            })
            .collect(),
        start,
        end,
        window_secs: cfg.agent.window_secs,
        first: true,
    };
    tracing::info!(agent = %cfg.agent.id, devices = w.models.len(), window_start = start / 1000, "agent running");
    crate::notify::notify("READY=1");
    let mut watchdog = crate::notify::Watchdog::from_env();
    watchdog.feed(std::time::Instant::now());
    let inventory = cfg.inventory();
    let config_dir = cfg.path.parent().unwrap_or(std::path::Path::new("."));
    let rules = crate::rates::find_rules(&crate::rates::rules_candidates(
        config_dir,
        cfg.agent.profiles_dir.as_deref(),
    ));
    if let Err(why) = &rules {
        tracing::warn!(%why, "local enterprise rates: declared only");
    }
    let mut local_rates = crate::rates::LocalRates::new(
        inventory.clone(),
        cfg.agent.industry,
        rules,
        cfg.agent.window_secs,
    );
    let rate_gauges = crate::rates::RateGauges::register(&registry)?;
    status.lock().expect("status lock").rates = Some(local_rates.snapshot());
    let mut seal = |w: &mut Windows, partial: bool| {
        let summaries: Vec<_> = w
            .models
            .values_mut()
            .map(|m| m.seal(w.start, w.end, partial))
            .collect();
        local_rates.add_window(w.start / 1000, w.end / 1000, &summaries);
        let snapshot = local_rates.snapshot();
        rate_gauges.set(&snapshot);
        status.lock().expect("status lock").rates = Some(snapshot);
        if let Some(ix) = &influx {
            ix.push_window(w.start, w.end, &summaries);
        }
        for s in &summaries {
            for e in &s.energy {
                metrics
                    .energy
                    .with_label_values(&[&s.device_id, &e.meter, &e.carrier])
                    .set(e.quantity);
            }
        }
        let day_start = w.start.rem_euclid(86_400_000) == 0;
        let inv = (w.first || day_start).then(|| inventory.clone());
        let created = clock.now_ms().max(w.end) / 1000;
        // Signing and the fsynced append run off the runtime so the polls keep time.
        match crate::blocking::off_runtime(|| {
            sealer.seal(
                &spool,
                w.start / 1000,
                w.end / 1000,
                created,
                inv,
                summaries,
            )
        }) {
            Ok(seq) => {
                w.first = false;
                metrics.reports_sealed.inc();
                status.lock().expect("status lock").last_report =
                    Some((seq, w.start / 1000, w.end / 1000));
                tracing::info!(seq, window_start = w.start / 1000, partial, "report sealed");
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "report not stored"),
        }
        publish_spool(&spool, &metrics, &clock, &status);
        w.start = w.end;
        w.end += i64::from(w.window_secs) * 1000;
    };

    // Seal a window once the clock has passed its end by this much (wall),
    // so late batches of the window still count.
    let grace_ms = cfg
        .devices
        .iter()
        .map(|d| d.poll_interval_ms as i64)
        .max()
        .unwrap_or(1000)
        * 2;
    let tick = clock
        .wall_duration(Duration::from_millis(1000))
        .max(Duration::from_millis(20));
    let mut ticker = tokio::time::interval(tick);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            b = rx.recv() => {
                let Some(b) = b else { break };
                while b.ts_ms >= w.end {
                    seal(&mut w, false);
                }
                if let Some(m) = w.models.get_mut(&*b.device) {
                    m.feed(&b);
                    if b.reachable {
                        metrics.samples.with_label_values(&[&b.device]).inc();
                    }
                    metrics.set_state(&b.device, m.state);
                    if let Some(ix) = &influx {
                        ix.push_batch(&b, m.state, m.last_power_kw);
                    }
                    if let Some(p) = m.last_power_kw {
                        metrics.power.with_label_values(&[&b.device]).set(p);
                    }
                    let mut st = status.lock().expect("status lock");
                    if let Some(d) = st.devices.get_mut(&*b.device) {
                        d.state = Some(m.state);
                        d.power_kw = m.last_power_kw;
                        d.last_ts_ms = Some(b.ts_ms);
                    }
                }
            }
            _ = ticker.tick() => {
                watchdog.feed(std::time::Instant::now());
                while clock.now_ms() >= w.end + grace_ms {
                    seal(&mut w, false);
                }
                publish_spool(&spool, &metrics, &clock, &status);
            }
            _ = &mut shutdown => break,
        }
    }
    crate::notify::notify("STOPPING=1");
    tracing::info!("shutting down: sealing the open window");
    seal(&mut w, true);
    wake.notify_one();
    if tokio::time::timeout(Duration::from_secs(10), coord.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within 10 s");
    }
    publish_spool(&spool, &metrics, &clock, &status);
    Ok(())
}
