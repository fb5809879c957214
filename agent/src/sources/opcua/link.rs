//! The task of one OPC UA link: keep a session (connect with backoff,
//! resolve every device's nodes again after each connect, subscribe or
//! fall back to polling), and per device emit one [`SampleBatch`] per poll
//! interval from the latest values, with per-tag quality.

use super::config::{AcquisitionMode, Deadband, OpcUaDeviceConfig, OpcUaLinkConfig};
use super::metrics::LinkMetrics;
use super::resolve::{self, PathJob};
use super::session::{self, Connected};
use super::values::{self, Reading};
use crate::clock::Clock;
use crate::sample::{Quality, Sample, SampleBatch};
use crate::shutdown::Shutdown;
use opcua::client::{MonitoredItem, Session, SubscriptionCallbacks};
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeTrigger, DataValue, DeadbandType, ExtensionObject,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, QualifiedName,
    ReadValueId, StatusCode, TimestampsToReturn, VariableId, Variant,
};
use shuzhuan_common::profile::OpcUaTag;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Chunk size when the server states no operation limit.
const DEFAULT_CHUNK: usize = 500;

/// Browse paths or monitored items per set-up request, at most (fewer
/// when the server says so). The client library keeps each session's send
/// storage at the size of the largest request it ever sent: 300 browse
/// paths or 100 monitored items in one request left 15 KiB per session,
/// 32 leave 4-5 KiB, for a few more round trips at set-up.
const SET_UP_BATCH: usize = 32;

/// Links setting up a session (server facts, path resolution, monitored
/// items) at the same time, agent-wide. Each set-up builds its requests and
/// answers for every tag of the link at once; when all links start (or
/// reconnect) together, their set-ups coincided and were the agent's peak
/// of heap, which glibc keeps resident afterwards (2.8 MiB at 20 links of
/// 100 items, docs/bench/agent-footprint.md). Two at a time costs a start
/// of one set-up round per two links; a link keeps its turn for one
/// request timeout at most.
static SETTING_UP: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Per tag of a device: the name and carrier its samples carry.
type TagLabels = Arc<[(Arc<str>, Option<Arc<str>>)]>;

/// What the emitters see of the link.
struct Shared {
    /// The session, while one is up and set up.
    active: Option<Active>,
    devices: Vec<DeviceState>,
}

#[derive(Clone)]
struct Active {
    session: Arc<Session>,
    /// Values come from Read requests at each poll (no subscription).
    polling: bool,
    max_read: usize,
}

struct DeviceState {
    /// Resolved node of each tag (`Err`: why it is not read).
    nodes: Vec<Result<NodeId, &'static str>>,
    readings: Vec<Reading>,
}

/// Runs one OPC UA link until `shutdown`: one session, every device's
/// batches on `tx`. Never returns early for a server problem; it reconnects.
/// The session's futures (connect, set-up, close) are boxed while they run,
/// so the link's task does not carry their space for its whole life.
pub async fn run_link(
    cfg: OpcUaLinkConfig,
    devices: Vec<OpcUaDeviceConfig>,
    clock: Clock,
    tx: mpsc::Sender<SampleBatch>,
    registry: &prometheus::Registry,
    mut shutdown: Shutdown,
) {
    let metrics = LinkMetrics::register(registry, &cfg.id);
    let link = cfg.id.clone();
    let devices = Arc::new(devices);
    let now = clock.now_ms();
    let shared = Arc::new(Mutex::new(Shared {
        active: None,
        devices: devices
            .iter()
            .map(|d| DeviceState {
                nodes: vec![Err("disconnected"); d.tags.len()],
                readings: vec![Reading::bad("disconnected", now); d.tags.len()],
            })
            .collect(),
    }));

    let (stop_tx, stop_rx) = watch::channel(false);
    // The name and carrier every sample carries, per distinct tag list
    // (the devices of one profile share theirs).
    let mut labels: Vec<(Arc<[OpcUaTag]>, TagLabels)> = Vec::new();
    let emitters: Vec<_> = (0..devices.len())
        .map(|i| {
            let tags = &devices[i].tags;
            let shared_labels = match labels.iter().find(|(t, _)| Arc::ptr_eq(t, tags)) {
                Some((_, l)) => l.clone(),
                None => {
                    let l: TagLabels = tags
                        .iter()
                        .map(|t| {
                            (
                                Arc::from(t.name.as_str()),
                                t.carrier.as_deref().map(Arc::from),
                            )
                        })
                        .collect();
                    labels.push((tags.clone(), l.clone()));
                    l
                }
            };
            tokio::spawn(emit_device(
                i,
                shared_labels,
                devices.clone(),
                shared.clone(),
                clock,
                tx.clone(),
                metrics.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    let pki_dir = cfg
        .pki_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("pki/opcua"));
    // Without a usable configuration or client the devices still report,
    // as disconnected, until shutdown.
    let built = match cfg.validate() {
        Err(e) => {
            metrics.error("config");
            Err(format!("opc ua link not started: {e}"))
        }
        // The first start generates an RSA key: off the async workers, so
        // the emitters keep their cadence meanwhile.
        Ok(()) => {
            let (c, p) = (cfg.clone(), pki_dir.clone());
            let built = tokio::task::spawn_blocking(move || session::build_client(&c, &p))
                .await
                .unwrap_or_else(|e| Err(format!("panicked: {e}")));
            if built.is_err() {
                metrics.error("client");
            }
            built.map_err(|e| format!("opc ua client not created: {e}"))
        }
    };
    let mut client = match built {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(%link, error = %e, "opc ua link cannot run");
            None
        }
    };

    let mut attempt: u32 = 0;
    while let Some(client) = client.as_mut() {
        metrics.request("connect");
        let connected = tokio::select! {
            c = Box::pin(session::connect(client, &cfg)) => c,
            _ = shutdown.recv() => break,
        };
        match connected {
            Ok(mut conn) => {
                tracing::info!(%link, endpoint = %cfg.endpoint, "opc ua session up");
                let ended = match Box::pin(set_up(&cfg, &devices, &conn, &shared, &clock, &metrics))
                    .await
                {
                    Ok(()) => {
                        attempt = 0;
                        metrics.up.set(1);
                        let end = tokio::select! {
                            code = conn.lost() => Some(code),
                            _ = shutdown.recv() => None,
                        };
                        mark_down(&shared, &clock);
                        metrics.up.set(0);
                        end
                    }
                    Err(e) => {
                        tracing::warn!(%link, error = %e, "opc ua session set-up failed");
                        metrics.error(e.status().sub_code().name());
                        mark_down(&shared, &clock);
                        Some(e.status())
                    }
                };
                match ended {
                    Some(code) => {
                        tracing::warn!(%link, status = %code, "opc ua session lost; reconnecting");
                        metrics.error("session_lost");
                        Box::pin(conn.close(Duration::from_millis(500))).await;
                    }
                    None => {
                        Box::pin(conn.close(Duration::from_millis(cfg.timeout_ms.min(2_000))))
                            .await;
                        break;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%link, reason = e.reason, error = %e.detail, attempt, "opc ua connect failed");
                metrics.error(e.reason);
            }
        }
        let delay = session::backoff(
            attempt,
            Duration::from_millis(cfg.backoff_initial_ms),
            Duration::from_millis(cfg.backoff_max_ms),
            session::jitter(attempt),
        );
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.recv() => break,
        }
    }
    if client.is_none() {
        shutdown.recv().await;
    }
    let _ = stop_tx.send(true);
    for e in emitters {
        let _ = e.await;
    }
    tracing::info!(%link, "opc ua link stopped");
}

fn mark_down(shared: &Mutex<Shared>, clock: &Clock) {
    let now = clock.now_ms();
    let mut s = shared.lock().expect("link state lock");
    s.active = None;
    for d in &mut s.devices {
        for r in &mut d.readings {
            *r = Reading::bad("disconnected", now);
        }
    }
}

/// Server facts a session needs before resolving.
struct ServerInfo {
    namespaces: Vec<String>,
    max_read: usize,
    max_translate: usize,
    max_monitored_per_call: usize,
}

fn limit(dv: Option<&DataValue>) -> usize {
    match dv.and_then(|d| d.value.as_ref()) {
        Some(Variant::UInt32(n)) if *n > 0 => *n as usize,
        _ => DEFAULT_CHUNK,
    }
}

/// Reads the namespace array and the operation limits, one node per
/// request: a server's limit may be smaller than the four of them.
async fn server_info(
    session: &Session,
    metrics: &LinkMetrics,
) -> Result<ServerInfo, opcua::types::Error> {
    metrics.request("read");
    let ns = session
        .read(
            &[value_of(VariableId::Server_NamespaceArray.into())],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await?;
    let namespaces = match ns.first().and_then(|d| d.value.as_ref()) {
        Some(Variant::Array(a)) => a
            .values
            .iter()
            .map(|v| match v {
                Variant::String(s) => s.as_ref().to_owned(),
                _ => String::new(),
            })
            .collect(),
        _ => vec!["http://opcfoundation.org/UA/".to_owned()],
    };
    let mut limits = [DEFAULT_CHUNK; 3];
    let ids = [
        VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
        VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
    ];
    for (slot, id) in limits.iter_mut().zip(ids) {
        metrics.request("read");
        // A server without the variable has no stated limit.
        if let Ok(dvs) = session
            .read(&[value_of(id.into())], TimestampsToReturn::Neither, 0.0)
            .await
        {
            *slot = limit(dvs.first());
        }
    }
    Ok(ServerInfo {
        namespaces,
        max_read: limits[0],
        max_translate: limits[1].min(SET_UP_BATCH),
        max_monitored_per_call: limits[2].min(SET_UP_BATCH),
    })
}

fn value_of(node_id: NodeId) -> ReadValueId {
    ReadValueId {
        node_id,
        attribute_id: AttributeId::Value as u32,
        index_range: Default::default(),
        data_encoding: QualifiedName::null(),
    }
}

/// Resolves every device's nodes and starts acquisition on a fresh session.
async fn set_up(
    cfg: &OpcUaLinkConfig,
    devices: &[OpcUaDeviceConfig],
    conn: &Connected,
    shared: &Arc<Mutex<Shared>>,
    clock: &Clock,
    metrics: &LinkMetrics,
) -> Result<(), opcua::types::Error> {
    // Never closed, so acquiring only waits. A server that answers slowly
    // keeps its turn for one request timeout at most, then finishes its
    // set-up without it: it never holds up the other links for longer.
    let turn = SETTING_UP.acquire().await;
    let work = set_up_now(cfg, devices, conn, shared, clock, metrics);
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => done,
        _ = tokio::time::sleep(Duration::from_millis(cfg.timeout_ms.max(100))) => {
            drop(turn);
            work.await
        }
    }
}

async fn set_up_now(
    cfg: &OpcUaLinkConfig,
    devices: &[OpcUaDeviceConfig],
    conn: &Connected,
    shared: &Arc<Mutex<Shared>>,
    clock: &Clock,
    metrics: &LinkMetrics,
) -> Result<(), opcua::types::Error> {
    let session = &conn.session;
    let info = server_info(session, metrics).await?;
    let nodes = resolve_devices(session, &info, devices, metrics).await?;
    for (d, dev_nodes) in devices.iter().zip(&nodes) {
        for (tag, n) in d.tags.iter().zip(dev_nodes) {
            if let Err(reason) = n {
                tracing::warn!(link = %cfg.id, device = %d.id, tag = %tag.name, reason, "opc ua tag not resolved");
            }
        }
    }
    let now = clock.now_ms();
    {
        let mut s = shared.lock().expect("link state lock");
        for (state, dev_nodes) in s.devices.iter_mut().zip(nodes) {
            state.readings = dev_nodes
                .iter()
                .map(|n| Reading::bad(n.as_ref().err().copied().unwrap_or("no_data"), now))
                .collect();
            state.nodes = dev_nodes;
        }
    }
    let polling = match cfg.mode {
        AcquisitionMode::Poll => true,
        AcquisitionMode::Subscribe => match subscribe(
            cfg,
            devices,
            session,
            shared,
            clock,
            metrics,
            info.max_monitored_per_call,
        )
        .await
        {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(link = %cfg.id, error = %e, "opc ua subscription refused; polling instead");
                metrics.error("subscription_refused");
                true
            }
        },
    };
    shared.lock().expect("link state lock").active = Some(Active {
        session: session.clone(),
        polling,
        max_read: info.max_read,
    });
    Ok(())
}

/// Each device's tag nodes: roots first (NodeId or path from Objects), then
/// tag paths from the roots. A tag with a NodeId does not need its root.
async fn resolve_devices(
    session: &Session,
    info: &ServerInfo,
    devices: &[OpcUaDeviceConfig],
    metrics: &LinkMetrics,
) -> Result<Vec<Vec<Result<NodeId, &'static str>>>, opcua::types::Error> {
    let count = || metrics.request("translate_browse_paths");
    // Roots.
    let mut roots: Vec<Result<NodeId, &'static str>> = Vec::with_capacity(devices.len());
    let mut root_jobs = Vec::new();
    let mut root_job_of = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        if resolve::looks_like_node_id(&d.root) {
            roots.push(resolve::parse_node_id(&d.root, &info.namespaces));
        } else {
            match resolve::parse_browse_path(&d.root) {
                Ok(elements) => {
                    root_job_of.push(i);
                    root_jobs.push(PathJob {
                        start: resolve::objects_folder(),
                        elements,
                    });
                    roots.push(Err("unresolved_root"));
                }
                Err(_) => roots.push(Err("bad_path")),
            }
        }
    }
    let resolved = resolve::resolve_paths(
        session,
        &info.namespaces,
        &root_jobs,
        info.max_translate,
        count,
    )
    .await?;
    for (i, r) in root_job_of.into_iter().zip(resolved) {
        roots[i] = r.map_err(|_| "unresolved_root");
    }
    // Tags.
    let mut out: Vec<Vec<Result<NodeId, &'static str>>> = Vec::with_capacity(devices.len());
    let mut jobs = Vec::new();
    let mut job_of = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let mut tags = Vec::with_capacity(d.tags.len());
        for (t, tag) in d.tags.iter().enumerate() {
            let r = match (&tag.node_id, &tag.browse_path) {
                (Some(id), _) => resolve::parse_node_id(id, &info.namespaces),
                (None, Some(path)) => match (&roots[i], resolve::parse_browse_path(path)) {
                    (Ok(root), Ok(elements)) => {
                        job_of.push((i, t));
                        jobs.push(PathJob {
                            start: root.clone(),
                            elements,
                        });
                        Err("unresolved")
                    }
                    (Err(reason), _) => Err(*reason),
                    (_, Err(_)) => Err("bad_path"),
                },
                (None, None) => Err("no_address"),
            };
            tags.push(r);
        }
        out.push(tags);
    }
    let count = || metrics.request("translate_browse_paths");
    let resolved =
        resolve::resolve_paths(session, &info.namespaces, &jobs, info.max_translate, count).await?;
    for ((i, t), r) in job_of.into_iter().zip(resolved) {
        out[i][t] = r.map_err(|r| if r == "no_match" { "unresolved" } else { r });
    }
    Ok(out)
}

fn filter(deadband: Option<Deadband>) -> ExtensionObject {
    let Some(d) = deadband else {
        return ExtensionObject::null();
    };
    let (kind, value) = match d {
        Deadband::Absolute(v) => (DeadbandType::Absolute, v),
        Deadband::Percent(v) => (DeadbandType::Percent, v),
    };
    ExtensionObject::from_message(DataChangeFilter {
        trigger: DataChangeTrigger::StatusValue,
        deadband_type: kind as u32,
        deadband_value: value,
    })
}

fn is_filter_refusal(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::BadFilterNotAllowed
            | StatusCode::BadMonitoredItemFilterUnsupported
            | StatusCode::BadMonitoredItemFilterInvalid
            | StatusCode::BadDeadbandFilterInvalid
    )
}

/// One subscription for the whole link; each resolved tag a monitored item
/// whose client handle indexes `targets`. Values land in the shared state.
async fn subscribe(
    cfg: &OpcUaLinkConfig,
    devices: &[OpcUaDeviceConfig],
    session: &Arc<Session>,
    shared: &Arc<Mutex<Shared>>,
    clock: &Clock,
    metrics: &LinkMetrics,
    max_per_call: usize,
) -> Result<(), opcua::types::Error> {
    // (device, tag, scale) per monitored item; client handle = index + 1.
    // The item's node stays in the shared state (set-up alone writes it),
    // not copied here: the callback keeps this list for the session's life.
    let targets: Vec<(usize, usize, f64)> = {
        let s = shared.lock().expect("link state lock");
        s.devices
            .iter()
            .enumerate()
            .flat_map(|(d, st)| {
                st.nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.is_ok())
                    .map(move |(t, _)| (d, t))
            })
            .map(|(d, t)| (d, t, devices[d].tags[t].scale))
            .collect()
    };
    let targets = Arc::new(targets);
    let node_of = |i: usize| -> NodeId {
        let (d, t, _) = targets[i];
        let s = shared.lock().expect("link state lock");
        s.devices[d].nodes[t]
            .clone()
            .unwrap_or_else(|_| NodeId::null())
    };
    let on_data = {
        let shared = shared.clone();
        let targets = targets.clone();
        let clock = *clock;
        move |dv: DataValue, item: &MonitoredItem| {
            let Some((d, t, scale)) = (item.client_handle() as usize)
                .checked_sub(1)
                .and_then(|i| targets.get(i))
            else {
                return;
            };
            let r = values::reading(&dv, *scale, &clock, clock.now_ms());
            let mut s = shared.lock().expect("link state lock");
            if let Some(slot) = s
                .devices
                .get_mut(*d)
                .and_then(|dev| dev.readings.get_mut(*t))
            {
                *slot = r;
            }
        }
    };
    let on_status = {
        let session = session.clone();
        let link = cfg.id.clone();
        move |n: opcua::types::StatusChangeNotification| {
            if n.status.is_bad() {
                // The server dropped the subscription (e.g. BadTimeout):
                // close the session so the link reconnects and subscribes anew.
                tracing::warn!(%link, status = %n.status, "opc ua subscription ended by the server");
                let s = session.clone();
                tokio::spawn(async move {
                    let _ = s.disconnect().await;
                });
            }
        }
    };
    let publishing = Duration::from_millis(cfg.publishing_interval_ms.max(50));
    let keep_alive = (10_000 / publishing.as_millis().max(1) as u32).clamp(3, 100);
    metrics.request("create_subscription");
    let sub = session
        .create_subscription(
            publishing,
            keep_alive * 3,
            keep_alive,
            0,
            0,
            true,
            SubscriptionCallbacks::new(on_status, on_data, |_, _| {}),
        )
        .await?;

    let sampling = cfg
        .sampling_interval_ms
        .unwrap_or(publishing.as_millis() as f64);
    let request = |i: usize, node: &NodeId, with_filter: bool| MonitoredItemCreateRequest {
        item_to_monitor: value_of(node.clone()),
        monitoring_mode: MonitoringMode::Reporting,
        requested_parameters: MonitoringParameters {
            client_handle: (i + 1) as u32,
            sampling_interval: sampling,
            filter: if with_filter {
                filter(cfg.deadband)
            } else {
                ExtensionObject::null()
            },
            queue_size: cfg.queue_size.max(1),
            discard_oldest: true,
        },
    };
    let mut refused_filter = Vec::new();
    let mut failed: Vec<(usize, StatusCode)> = Vec::new();
    let indexes: Vec<usize> = (0..targets.len()).collect();
    for chunk in indexes.chunks(max_per_call.max(1)) {
        let items = chunk
            .iter()
            .map(|&i| request(i, &node_of(i), cfg.deadband.is_some()))
            .collect();
        metrics.request("create_monitored_items");
        let results = session
            .create_monitored_items(sub, TimestampsToReturn::Both, items)
            .await?;
        for (&i, r) in chunk.iter().zip(results) {
            let status = r.result.status_code;
            if status.is_bad() {
                if cfg.deadband.is_some() && is_filter_refusal(status) {
                    refused_filter.push(i);
                } else {
                    failed.push((i, status));
                }
            }
        }
    }
    // Non-numeric variables refuse a deadband: monitor them without one.
    for chunk in refused_filter.chunks(max_per_call.max(1)) {
        let items = chunk
            .iter()
            .map(|&i| request(i, &node_of(i), false))
            .collect();
        metrics.request("create_monitored_items");
        let results = session
            .create_monitored_items(sub, TimestampsToReturn::Both, items)
            .await?;
        for (&i, r) in chunk.iter().zip(results) {
            if r.result.status_code.is_bad() {
                failed.push((i, r.result.status_code));
            }
        }
    }
    if !failed.is_empty() {
        let now = clock.now_ms();
        let mut s = shared.lock().expect("link state lock");
        for (i, status) in failed {
            let (d, t, _) = targets[i];
            let node = s.devices[d].nodes[t]
                .clone()
                .unwrap_or_else(|_| NodeId::null());
            tracing::warn!(link = %cfg.id, device = %devices[d].id, %node, %status, "opc ua monitored item refused");
            metrics.error("monitored_item_refused");
            s.devices[d].readings[t] = Reading::bad(status.sub_code().name(), now);
        }
    }
    Ok(())
}

/// Reads the device's resolved nodes in chunks of the server's limit.
async fn poll(
    session: &Session,
    nodes: &[(usize, NodeId)],
    max_read: usize,
    metrics: &LinkMetrics,
) -> Vec<(usize, Result<DataValue, StatusCode>)> {
    let mut out = Vec::with_capacity(nodes.len());
    for chunk in nodes.chunks(max_read.max(1)) {
        let reads: Vec<ReadValueId> = chunk.iter().map(|(_, n)| value_of(n.clone())).collect();
        metrics.request("read");
        match session.read(&reads, TimestampsToReturn::Both, 0.0).await {
            Ok(dvs) => {
                for (k, (t, _)) in chunk.iter().enumerate() {
                    out.push((
                        *t,
                        dvs.get(k).cloned().ok_or(StatusCode::BadUnexpectedError),
                    ));
                }
            }
            Err(e) if e.status() == StatusCode::BadTooManyOperations && chunk.len() > 1 => {
                // The stated limit was wrong: ask one node at a time.
                metrics.error("BadTooManyOperations");
                for (t, n) in chunk {
                    metrics.request("read");
                    let r = session
                        .read(&[value_of(n.clone())], TimestampsToReturn::Both, 0.0)
                        .await;
                    out.push((
                        *t,
                        r.map_err(|e| e.status()).and_then(|d| {
                            d.into_iter().next().ok_or(StatusCode::BadUnexpectedError)
                        }),
                    ));
                }
            }
            Err(e) => {
                metrics.error(e.status().sub_code().name());
                out.extend(chunk.iter().map(|(t, _)| (*t, Err(e.status()))));
            }
        }
    }
    out
}

/// One device's emitter: a batch every poll interval (on the agent clock).
#[allow(clippy::too_many_arguments)]
async fn emit_device(
    index: usize,
    tags: TagLabels,
    devices: Arc<Vec<OpcUaDeviceConfig>>,
    shared: Arc<Mutex<Shared>>,
    clock: Clock,
    tx: mpsc::Sender<SampleBatch>,
    metrics: LinkMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let dev = &devices[index];
    let device: Arc<str> = Arc::from(dev.id.as_str());
    let period = clock
        .wall_duration(Duration::from_millis(dev.poll_interval_ms.max(1)))
        .max(Duration::from_millis(1));
    // The device's error series exists (at 0) from the start.
    metrics.read_errors.touch(&[&dev.id]);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Subscribed links need nothing here: their values arrive in `readings`.
        let polled = {
            let s = shared.lock().expect("link state lock");
            s.active.as_ref().filter(|a| a.polling).map(|a| {
                let nodes: Vec<(usize, NodeId)> = s.devices[index]
                    .nodes
                    .iter()
                    .enumerate()
                    .filter_map(|(t, n)| n.as_ref().ok().map(|n| (t, n.clone())))
                    .collect();
                (a.clone(), nodes)
            })
        };
        if let Some((a, nodes)) = polled {
            // Boxed: the read's future is large, and 250 emitters of
            // subscribed links would each carry its space without reading.
            let results = Box::pin(poll(&a.session, &nodes, a.max_read, &metrics)).await;
            let now = clock.now_ms();
            let mut s = shared.lock().expect("link state lock");
            // The session may have dropped while reading: its values stay "disconnected".
            if s.active.is_some() {
                for (t, r) in results {
                    s.devices[index].readings[t] = match r {
                        Ok(dv) => values::reading(&dv, dev.tags[t].scale, &clock, now),
                        Err(status) => Reading::bad(status.sub_code().name(), now),
                    };
                }
            }
        }
        let now = clock.now_ms();
        let readings = {
            let s = shared.lock().expect("link state lock");
            if s.active.is_some() {
                s.devices[index].readings.clone()
            } else {
                // Down, or still setting up: late notifications of a closed
                // session must not pass for current values.
                vec![Reading::bad("disconnected", now); dev.tags.len()]
            }
        };
        let samples: Vec<Sample> = dev
            .tags
            .iter()
            .zip(tags.iter())
            .zip(readings)
            .map(|((tag, (name, carrier)), r)| Sample {
                tag: name.clone(),
                role: tag.role,
                carrier: carrier.clone(),
                ts_ms: r.ts_ms,
                value: r.value,
                quality: r.quality,
            })
            .collect();
        // Reads the server answered with a bad status or an unusable value;
        // configuration problems (unresolved paths) and a down session are
        // reported elsewhere.
        let bad = samples
            .iter()
            .filter(|s| {
                matches!(s.quality, Quality::Bad(r)
                    if r.starts_with("Bad") || r == "no_value" || r == "unsupported_type")
            })
            .count();
        if bad > 0 {
            metrics.read_errors.inc_by(&[&dev.id], bad as f64);
        }
        if let Some(newest) = samples
            .iter()
            .filter(|s| s.quality.is_good())
            .map(|s| s.ts_ms)
            .max()
        {
            metrics.last_good.set(&[&dev.id], newest as f64 / 1000.0);
        }
        let batch = SampleBatch {
            device: device.clone(),
            ts_ms: now,
            reachable: samples.iter().any(|s| s.quality.is_good()),
            samples,
        };
        tokio::select! {
            sent = tx.send(batch) => if sent.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
