//! `shuzhuan-agent run`: sources → model → windows → sealed reports →
//! spool → shipper, with `/metrics` and the status page. [`run`] is also
//! the library entry the aggregator's demo uses to run agents in-process.

use crate::clock::Clock;
use crate::config::{AgentConfig, WhenFull as CfgWhenFull};
use crate::model::classify::PowerThresholds;
use crate::model::{window_of, DeviceModel, DeviceParams};
use crate::outputs::{router, AgentMetrics, DeviceStatus, Status};
use crate::reload::{DeviceChanges, LinkSet, ReloadMetrics, Trigger};
use crate::sample::SampleBatch;
use crate::ship::{self, HttpTransport, Sealer, ShipMetrics, ShipOptions};
use crate::shutdown::Coordinator;
use crate::spool::{Spool, SpoolOptions, WhenFull};
use shuzhuan_common::inventory::Inventory;
use std::collections::{BTreeMap, BTreeSet};
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
    /// The inventory in force (sent with the first report and at each day start).
    inventory: Inventory,
    /// Devices removed by a reload: sealed with the open window (flagged
    /// partial), then dropped.
    retiring: BTreeSet<String>,
}

/// Seal a window once the clock has passed its end by this much (wall), so
/// late batches of the window still count: two of the longest poll intervals.
fn grace_ms(cfg: &AgentConfig) -> i64 {
    cfg.devices
        .iter()
        .map(|d| d.poll_interval_ms as i64)
        .max()
        .unwrap_or(1000)
        * 2
}

fn device_status(d: &crate::config::DeviceConfig) -> DeviceStatus {
    DeviceStatus {
        name: d.inventory.name.clone(),
        link: d.link.clone(),
        ..DeviceStatus::default()
    }
}

/// Applies a reloaded config's devices to the open window: added devices
/// start a model now (their first window is flagged partial), changed ones
/// keep their accumulators and take the new parameters, removed ones are
/// marked to retire when the window seals.
fn apply_devices(
    w: &mut Windows,
    new: &AgentConfig,
    changes: &DeviceChanges,
    now: i64,
    status: &Mutex<Status>,
) {
    let params: BTreeMap<String, DeviceParams> = device_params(new)
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut st = status.lock().expect("status lock");
    for id in changes.added.iter().chain(&changes.changed) {
        let p = params[id].clone();
        w.retiring.remove(id);
        match w.models.get_mut(id) {
            Some(m) => m.params = p,
            None => {
                let mut m = DeviceModel::new(p);
                m.start_at(now);
                w.models.insert(id.clone(), m);
            }
        }
        if let Some(d) = new.device(id) {
            let e = st.devices.entry(id.clone()).or_default();
            e.name = d.inventory.name.clone();
            e.link = d.link.clone();
        }
    }
    for id in &changes.removed {
        w.retiring.insert(id.clone());
    }
}

/// The next reload request, or never when there is no source of them.
async fn next_reload(r: &mut Option<mpsc::Receiver<Trigger>>) -> Option<Trigger> {
    match r {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
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
    run_reloadable(cfg, shutdown, None).await
}

/// [`run`], also reloading the config file on every request from `reloads`
/// (see [`crate::reload`]).
pub async fn run_reloadable(
    mut cfg: AgentConfig,
    shutdown: impl Future<Output = ()>,
    mut reloads: Option<mpsc::Receiver<Trigger>>,
) -> anyhow::Result<()> {
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
            .map(|d| (d.id().to_owned(), device_status(d)))
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
    let reload_metrics = ReloadMetrics::register(&registry)?;
    let mut links = LinkSet::new(&registry, clock, tx)?;
    links.apply(&cfg).await;
    let influx = match &cfg.influxdb {
        Some(i) => Some(crate::outputs::influx::start(
            i,
            &cfg.agent.id,
            &cfg.agent.data_dir,
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
        inventory: cfg.inventory(),
        retiring: BTreeSet::new(),
    };
    tracing::info!(agent = %cfg.agent.id, devices = w.models.len(), window_start = start / 1000, "agent running");
    crate::notify::notify("READY=1");
    let mut watchdog = crate::notify::Watchdog::from_env();
    watchdog.feed(std::time::Instant::now());
    let config_dir = cfg.path.parent().unwrap_or(std::path::Path::new("."));
    let rules = crate::rates::find_rules(&crate::rates::rules_candidates(
        config_dir,
        cfg.agent.profiles_dir.as_deref(),
    ));
    if let Err(why) = &rules {
        tracing::warn!(%why, "local enterprise rates: declared only");
    }
    let local_rates = Mutex::new(crate::rates::LocalRates::new(
        w.inventory.clone(),
        cfg.agent.industry,
        rules,
        cfg.agent.window_secs,
    ));
    let rate_gauges = crate::rates::RateGauges::register(&registry)?;
    status.lock().expect("status lock").rates =
        Some(local_rates.lock().expect("rates lock").snapshot());
    // `stop`: where the agent's accounting ends: the window's end (`None`),
    // or the shutdown time for the last, partial window.
    let seal = |w: &mut Windows, partial: bool, stop: Option<i64>| {
        let summaries: Vec<_> = w
            .models
            .values_mut()
            .map(|m| {
                let retiring = w.retiring.contains(&m.params.id);
                m.seal_until(w.start, w.end, stop.unwrap_or(w.end), partial || retiring)
            })
            .collect();
        for id in std::mem::take(&mut w.retiring) {
            w.models.remove(&id);
            metrics.samples.remove(&[&id]);
            metrics.power.remove(&[&id]);
            metrics.device_state.remove(&id);
            status.lock().expect("status lock").devices.remove(&id);
        }
        let mut rates = local_rates.lock().expect("rates lock");
        rates.add_window(w.start / 1000, w.end / 1000, &summaries);
        let snapshot = rates.snapshot();
        drop(rates);
        rate_gauges.set(&snapshot);
        status.lock().expect("status lock").rates = Some(snapshot);
        if let Some(ix) = &influx {
            ix.push_window(w.start, w.end, &summaries);
        }
        for s in &summaries {
            for e in &s.energy {
                metrics
                    .energy
                    .set(&[&s.device_id, &e.meter, &e.carrier], e.quantity);
            }
        }
        let day_start = w.start.rem_euclid(86_400_000) == 0;
        let inv = (w.first || day_start).then(|| w.inventory.clone());
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

    let mut grace_ms = grace_ms(&cfg);
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
                    seal(&mut w, false, None);
                }
                if let Some(m) = w.models.get_mut(&*b.device) {
                    m.feed(&b);
                    if b.reachable {
                        metrics.samples.inc(&[&b.device]);
                    }
                    metrics.set_state(&b.device, m.state);
                    if let Some(ix) = &influx {
                        ix.push_batch(&b, m.state, m.last_power_kw);
                    }
                    if let Some(p) = m.last_power_kw {
                        metrics.power.set(&[&b.device], p);
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
                    seal(&mut w, false, None);
                }
                publish_spool(&spool, &metrics, &clock, &status);
            }
            Some(trigger) = next_reload(&mut reloads) => {
                let path = cfg.path.clone();
                let loaded = crate::blocking::off_runtime(|| crate::reload::load_checked(&path, &cfg));
                match loaded {
                    Err(why) => {
                        reload_metrics.refused();
                        for line in why.lines() {
                            tracing::error!(trigger = trigger.as_str(), "config reload refused, the running config stays: {line}");
                        }
                    }
                    Ok(new) => {
                        let changes = DeviceChanges::between(&cfg, &new);
                        let lc = links.apply(&new).await;
                        apply_devices(&mut w, &new, &changes, clock.now_ms(), &status);
                        let inv = new.inventory();
                        if inv != w.inventory {
                            local_rates
                                .lock()
                                .expect("rates lock")
                                .set_inventory(inv.clone());
                            w.inventory = inv;
                            // The next report carries the new inventory.
                            w.first = true;
                        }
                        grace_ms = self::grace_ms(&new);
                        cfg = new;
                        reload_metrics.applied();
                        tracing::info!(
                            trigger = trigger.as_str(),
                            added = ?changes.added, removed = ?changes.removed, changed = ?changes.changed,
                            links_started = ?lc.started, links_restarted = ?lc.restarted,
                            links_stopped = ?lc.stopped, links_kept = lc.kept.len(),
                            "config reloaded"
                        );
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    crate::notify::notify("STOPPING=1");
    tracing::info!("shutting down: sealing the open window");
    let stop = clock.now_ms();
    seal(&mut w, true, Some(stop));
    wake.notify_one();
    if tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(coord.shutdown(), links.shutdown())
    })
    .await
    .is_err()
    {
        tracing::warn!("some tasks did not stop within 10 s");
    }
    publish_spool(&spool, &metrics, &clock, &status);
    Ok(())
}
