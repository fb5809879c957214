//! Running the CNC server: build it from [`OpcUaServerConfig`], feed each
//! machine's variables from its `watch` channel, stop and start it again on
//! the same port (fault tests), and stop for good when the shutdown future
//! resolves.

use super::config::{EndpointSecurity, OpcUaServerConfig};
use super::nodes::{self, CncNamespaces, MachineNodes, NsIndexes};
use super::CncSnapshot;
use opcua::crypto::SecurityPolicy;
use opcua::server::diagnostics::DiagnosticsNodeManagerBuilder;
use opcua::server::node_manager::memory::{simple_node_manager_imports, SimpleNodeManager};
use opcua::server::{
    Server, ServerBuilder, ServerEndpoint, ServerHandle, ServerUserToken, ANONYMOUS_USER_TOKEN_ID,
};
use opcua::types::MessageSecurityMode;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum OpcUaServerError {
    #[error("opc ua server: invalid configuration: {0}")]
    Config(String),
    #[error("opc ua server: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("opc ua server: namespace `{0}` was not registered")]
    Namespace(&'static str),
    #[error("opc ua server: machine id `{0}` appears twice")]
    DuplicateMachine(String),
}

/// One machine fed into the server.
type Machine = (String, watch::Receiver<CncSnapshot>);

/// A server that is running (or stopped, between `stop` and `start`).
pub struct RunningServer {
    cfg: OpcUaServerConfig,
    machines: Vec<Machine>,
    instance: Option<Instance>,
    /// Flips to true when the caller's shutdown future resolves.
    shutdown: watch::Receiver<bool>,
    shutdown_task: JoinHandle<()>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("port", &self.cfg.port)
            .field("machines", &self.machines.len())
            .field("running", &self.instance.is_some())
            .finish()
    }
}

struct Instance {
    handle: ServerHandle,
    server_task: JoinHandle<()>,
    feeders: Vec<JoinHandle<()>>,
}

/// Starts the server on `cfg.host:cfg.port` (port 0: any free port) with one
/// object per machine under `Objects/Machines`. It stops when `shutdown`
/// resolves or [`RunningServer::stop`] is called.
pub async fn serve(
    cfg: OpcUaServerConfig,
    machines: Vec<(String, watch::Receiver<CncSnapshot>)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningServer, OpcUaServerError> {
    let mut seen = std::collections::HashSet::new();
    for (id, _) in &machines {
        if !seen.insert(id.as_str()) {
            return Err(OpcUaServerError::DuplicateMachine(id.clone()));
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown_task = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut server = RunningServer {
        cfg,
        machines,
        instance: None,
        shutdown: stop_rx,
        shutdown_task,
    };
    server.start().await?;
    Ok(server)
}

impl RunningServer {
    /// The bound TCP port (stable across `stop`/`start`).
    pub fn port(&self) -> u16 {
        self.cfg.port
    }

    /// `opc.tcp://host:port/`.
    pub fn endpoint_url(&self) -> String {
        format!("opc.tcp://{}:{}/", self.cfg.host, self.cfg.port)
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.instance
            .as_ref()
            .is_some_and(|i| !i.server_task.is_finished())
    }

    /// Starts the server again on the same port after [`Self::stop`]. Does
    /// nothing when it is running.
    pub async fn start(&mut self) -> Result<(), OpcUaServerError> {
        if self.is_running() {
            return Ok(());
        }
        let addr = format!("{}:{}", self.cfg.host, self.cfg.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| OpcUaServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local: SocketAddr = listener
            .local_addr()
            .map_err(|source| OpcUaServerError::Bind { addr, source })?;
        self.cfg.port = local.port();
        // The first start generates the server's RSA key: off the async
        // workers, so the simulator's other servers keep answering.
        let cfg = self.cfg.clone();
        let built = tokio::task::spawn_blocking(move || builder(&cfg).build())
            .await
            .map_err(|e| OpcUaServerError::Config(format!("server build panicked: {e}")))?
            .map_err(OpcUaServerError::Config)?;
        self.instance = Some(self.launch(built, listener)?);
        tracing::info!(
            port = self.cfg.port,
            machines = self.machines.len(),
            "opc ua server listening"
        );
        Ok(())
    }

    /// Stops the server: open sessions are closed and the port is released.
    pub async fn stop(&mut self) {
        let Some(instance) = self.instance.take() else {
            return;
        };
        instance.handle.cancel();
        for f in &instance.feeders {
            f.abort();
        }
        let mut task = instance.server_task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            tracing::warn!(
                port = self.cfg.port,
                "opc ua server did not close its sessions in 5 s; aborting it"
            );
            task.abort();
        }
        tracing::info!(port = self.cfg.port, "opc ua server stopped");
    }

    /// Stops and starts again on the same port.
    pub async fn restart(&mut self) -> Result<(), OpcUaServerError> {
        self.stop().await;
        self.start().await
    }

    /// Waits until the shutdown future given to [`serve`] resolves, then stops.
    pub async fn wait(mut self) {
        let _ = self.shutdown.wait_for(|s| *s).await;
        self.stop().await;
    }

    fn launch(
        &self,
        (server, handle): (Server, ServerHandle),
        listener: TcpListener,
    ) -> Result<Instance, OpcUaServerError> {
        let manager = handle
            .node_managers()
            .get_of_type::<SimpleNodeManager>()
            .ok_or(OpcUaServerError::Namespace(nodes::SIMULATOR_NS))?;
        let ns = NsIndexes {
            sim: namespace(&handle, nodes::SIMULATOR_NS)?,
            mt: namespace(&handle, nodes::MACHINE_TOOL_NS)?,
            machinery: namespace(&handle, nodes::MACHINERY_NS)?,
        };
        let mut machine_nodes = Vec::with_capacity(self.machines.len());
        {
            let mut space = manager.address_space().write();
            let folder = nodes::add_machines_folder(&mut space, ns);
            for (id, _) in &self.machines {
                machine_nodes.push(nodes::add_machine(&mut space, ns, &folder, id));
            }
        }
        let mut feeders: Vec<JoinHandle<()>> = self
            .machines
            .iter()
            .zip(machine_nodes)
            .map(|((id, rx), nodes)| {
                tokio::spawn(feed(
                    id.clone(),
                    rx.clone(),
                    nodes,
                    manager.clone(),
                    handle.clone(),
                ))
            })
            .collect();

        let port = self.cfg.port;
        let server_task = tokio::spawn(async move {
            if let Err(e) = server.run_with(listener).await {
                tracing::error!(port, error = %e, "opc ua server failed");
            }
        });
        let canceller = handle.clone();
        let mut stop = self.shutdown.clone();
        let stop_watch = tokio::spawn(async move {
            if stop.wait_for(|s| *s).await.is_ok() {
                canceller.cancel();
            }
        });
        feeders.push(stop_watch);
        Ok(Instance {
            handle,
            server_task,
            feeders,
        })
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown_task.abort();
        if let Some(i) = self.instance.take() {
            i.handle.cancel();
            for f in &i.feeders {
                f.abort();
            }
        }
    }
}

/// The server as configured: endpoints, users, PKI, limits, and the node
/// manager that registers the CNC namespaces.
fn builder(cfg: &OpcUaServerConfig) -> ServerBuilder {
    let mut token_ids = vec![ANONYMOUS_USER_TOKEN_ID.to_owned()];
    let mut b = ServerBuilder::new();
    if cfg.lean_namespace0 {
        // The same node managers as `ServerBuilder::new`, the core one leaner.
        b = b
            .without_node_managers()
            .with_node_manager(super::lean::lean_core_node_manager())
            .with_node_manager(DiagnosticsNodeManagerBuilder);
    }
    b = b
        .with_node_manager(simple_node_manager_imports(
            vec![Box::new(CncNamespaces)],
            "shuzhuan-cnc",
        ))
        .application_name("Shuzhuan CNC simulator")
        .application_uri("urn:shuzhuan:simulator")
        .product_uri("urn:shuzhuan:simulator")
        .create_sample_keypair(true)
        .pki_dir(&cfg.pki_dir)
        .trust_client_certs(cfg.trust_client_certs)
        .host(cfg.host.clone())
        .port(cfg.port)
        .discovery_urls(vec!["/".to_owned()]);
    for (i, user) in cfg.users.iter().enumerate() {
        let id = format!("user-{i}");
        b = b.add_user_token(
            id.clone(),
            ServerUserToken {
                user: user.username.clone(),
                pass: user.password.clone(),
                x509: user.cert.as_ref().map(|p| p.display().to_string()),
                ..Default::default()
            },
        );
        token_ids.push(id);
    }
    for sec in &cfg.security {
        let (name, policy, mode) = match sec {
            EndpointSecurity::None => ("none", SecurityPolicy::None, MessageSecurityMode::None),
            EndpointSecurity::Basic256Sha256Sign => (
                "basic256sha256_sign",
                SecurityPolicy::Basic256Sha256,
                MessageSecurityMode::Sign,
            ),
            EndpointSecurity::Basic256Sha256SignAndEncrypt => (
                "basic256sha256_sign_encrypt",
                SecurityPolicy::Basic256Sha256,
                MessageSecurityMode::SignAndEncrypt,
            ),
        };
        b = b.add_endpoint(name, ServerEndpoint::new("/", policy, mode, &token_ids));
    }
    if cfg.max_nodes_per_read > 0 {
        b.limits_mut().operational.max_nodes_per_read = cfg.max_nodes_per_read;
    }
    if cfg.max_monitored_items_per_call > 0 {
        b.limits_mut().operational.max_monitored_items_per_call = cfg.max_monitored_items_per_call;
    }
    b
}

fn namespace(handle: &ServerHandle, uri: &'static str) -> Result<u16, OpcUaServerError> {
    handle
        .get_namespace_index(uri)
        .ok_or(OpcUaServerError::Namespace(uri))
}

/// Copies each new snapshot of one machine into its variables, notifying
/// subscribers of what changed.
async fn feed(
    machine: String,
    mut rx: watch::Receiver<CncSnapshot>,
    nodes: MachineNodes,
    manager: Arc<SimpleNodeManager>,
    handle: ServerHandle,
) {
    let mut prev: Option<CncSnapshot> = None;
    loop {
        let now = rx.borrow_and_update().clone();
        let changes = nodes.changes(prev.as_ref(), &now);
        if !changes.is_empty() {
            let updates = changes.iter().map(|(id, dv)| (id, None, dv.clone()));
            if let Err(status) = manager.set_values(handle.subscriptions(), updates) {
                tracing::warn!(%machine, %status, "cannot update opc ua variables");
            }
        }
        prev = Some(now);
        if rx.changed().await.is_err() {
            // The machine process ended: its last values stay readable.
            return;
        }
    }
}
