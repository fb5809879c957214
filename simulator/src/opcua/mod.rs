//! The simulator's OPC UA server: CNC machine tools exposed with the names of
//! OPC UA for Machine Tools (OPC 40501-1).
//!
//! `config` says how the server runs, `nodes` lays out the address space and
//! maps snapshots to values, `server` runs it (with stop/start for fault tests).

mod config;
mod lean;
mod nodes;
mod server;

pub use config::{set_lean_namespace0_default, EndpointSecurity, OpcUaServerConfig, ServerUser};
pub use nodes::{machinery_item_state_name, MACHINERY_NS, MACHINE_TOOL_NS, SIMULATOR_NS};
pub use server::{serve, OpcUaServerError, RunningServer};

/// What a CNC machine tool shows its OPC UA clients at one instant. The
/// machine's state process (elsewhere in the simulator) publishes these
/// through a `tokio::sync::watch` channel; the server only reflects them.
#[derive(Debug, Clone, PartialEq)]
pub struct CncSnapshot {
    /// `Monitoring/MachineTool/OperationMode`: Manual=0, Automatic=1 (OPC 40501-1 MachineOperationMode).
    pub operation_mode: u32,
    /// `Monitoring/<Channel>/ChannelState`: Active=0, Interrupted=1, Reset=2.
    pub channel_state: u32,
    /// `Monitoring/<Channel>/ChannelMode`: Automatic=0, MdaMdi=1, JogManual=2 …
    pub channel_mode: u32,
    /// `Monitoring/<Spindle>/IsRotating`.
    pub spindle_rotating: bool,
    /// `Production/ActiveProgram/State/CurrentState`: "Running", "Ended", "Interrupted", "Aborted".
    pub program_state: &'static str,
    /// `Production/Statistics/PartsProducedInLifetime` (UInt32).
    pub parts_produced: u32,
    /// OPC 40001-1 `MachineryItemState`: NotAvailable=0, OutOfService=1, NotExecuting=2, Executing=3.
    pub machinery_item_state: u32,
    /// Active power in kW (a custom variable under `Monitoring`).
    pub power_kw: f64,
}
