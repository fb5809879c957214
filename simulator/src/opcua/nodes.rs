//! The CNC address space: per machine an object under `Objects/Machines`
//! whose children carry the BrowseNames of OPC UA for Machine Tools
//! (OPC 40501-1) and Machinery (OPC 40001-1), and the mapping from a
//! [`CncSnapshot`] to the values of those variables.
//!
//! Type-level names are qualified with the companion specifications'
//! namespaces; instance names (the machine, `Channel1`, `Spindle1`) and the
//! custom `Power` live in the simulator's own namespace. NodeIds are strings
//! in the simulator's namespace, `<machine>.<path with dots>`.

use super::CncSnapshot;
use opcua::nodes::NodeSetNamespaceMapper;
use opcua::server::address_space::{
    AddressSpace, ImportedItem, NodeSetImport, ObjectBuilder, VariableBuilder,
};
use opcua::types::{
    DataTypeId, DataValue, LocalizedText, NodeId, ObjectId, ObjectTypeId, QualifiedName,
    VariableTypeId, Variant,
};

/// The simulator's own namespace (instance nodes).
pub const SIMULATOR_NS: &str = "urn:shuzhuan:simulator:cnc";
/// OPC 40501-1 OPC UA for Machine Tools.
pub const MACHINE_TOOL_NS: &str = "http://opcfoundation.org/UA/MachineTool/";
/// OPC 40001-1 OPC UA for Machinery.
pub const MACHINERY_NS: &str = "http://opcfoundation.org/UA/Machinery/";

/// Registers the three namespaces with the server (no nodes: those are
/// added per machine after the server is built).
pub(crate) struct CncNamespaces;

impl NodeSetImport for CncNamespaces {
    fn register_namespaces(&self, namespaces: &mut NodeSetNamespaceMapper) {
        namespaces.add_namespace(SIMULATOR_NS, 1);
        namespaces.add_namespace(MACHINE_TOOL_NS, 2);
        namespaces.add_namespace(MACHINERY_NS, 3);
    }

    fn get_own_namespaces(&self) -> Vec<String> {
        vec![
            SIMULATOR_NS.to_owned(),
            MACHINE_TOOL_NS.to_owned(),
            MACHINERY_NS.to_owned(),
        ]
    }

    fn load<'a>(
        &'a self,
        _namespaces: &'a NodeSetNamespaceMapper,
    ) -> Box<dyn Iterator<Item = ImportedItem> + 'a> {
        Box::new(std::iter::empty())
    }
}

/// Namespace indexes as assigned by this server instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NsIndexes {
    pub sim: u16,
    pub mt: u16,
    pub machinery: u16,
}

/// NodeIds of one machine's variables.
#[derive(Debug, Clone)]
pub(crate) struct MachineNodes {
    operation_mode: NodeId,
    channel_state: NodeId,
    channel_mode: NodeId,
    spindle_rotating: NodeId,
    power: NodeId,
    program_state: NodeId,
    parts_produced: NodeId,
    machinery_item_state: NodeId,
}

/// OPC 40001-1 MachineryItemState names by the numeric code of
/// [`CncSnapshot::machinery_item_state`].
pub fn machinery_item_state_name(code: u32) -> &'static str {
    match code {
        1 => "OutOfService",
        2 => "NotExecuting",
        3 => "Executing",
        _ => "NotAvailable",
    }
}

/// The `Machines` folder under `Objects` (OPC 40001-1 entry point).
pub(crate) fn add_machines_folder(space: &mut AddressSpace, ns: NsIndexes) -> NodeId {
    let id = NodeId::new(ns.sim, "Machines");
    ObjectBuilder::new(
        &id,
        QualifiedName::new(ns.machinery, "Machines"),
        "Machines",
    )
    .organized_by(ObjectId::ObjectsFolder)
    .has_type_definition(ObjectTypeId::FolderType)
    .insert(space);
    id
}

fn object(
    space: &mut AddressSpace,
    id: NodeId,
    name: QualifiedName,
    parent: &NodeId,
    type_def: ObjectTypeId,
) -> NodeId {
    let display = name.name.to_string();
    ObjectBuilder::new(&id, name, display.as_str())
        .component_of(parent.clone())
        .has_type_definition(type_def)
        .insert(space);
    id
}

fn variable(
    space: &mut AddressSpace,
    id: NodeId,
    name: QualifiedName,
    parent: &NodeId,
    data_type: DataTypeId,
    type_def: VariableTypeId,
    initial: Variant,
) -> NodeId {
    let display = name.name.to_string();
    VariableBuilder::new(&id, name, display.as_str())
        .component_of(parent.clone())
        .data_type(data_type)
        .has_type_definition(type_def)
        .value(initial)
        .insert(space);
    id
}

/// Adds machine `machine_id` under `machines` and returns its variables.
pub(crate) fn add_machine(
    space: &mut AddressSpace,
    ns: NsIndexes,
    machines: &NodeId,
    machine_id: &str,
) -> MachineNodes {
    let id = |path: &str| NodeId::new(ns.sim, format!("{machine_id}.{path}"));
    let mt = |name: &str| QualifiedName::new(ns.mt, name);
    let sim = |name: &str| QualifiedName::new(ns.sim, name);
    let base = ObjectTypeId::BaseObjectType;
    let data = VariableTypeId::BaseDataVariableType;

    let machine = NodeId::new(ns.sim, machine_id.to_owned());
    ObjectBuilder::new(&machine, sim(machine_id), machine_id)
        .organized_by(machines.clone())
        .has_type_definition(base)
        .insert(space);

    let monitoring = object(space, id("Monitoring"), mt("Monitoring"), &machine, base);
    let mt_mon = object(
        space,
        id("Monitoring.MachineTool"),
        mt("MachineTool"),
        &monitoring,
        base,
    );
    let operation_mode = variable(
        space,
        id("Monitoring.MachineTool.OperationMode"),
        mt("OperationMode"),
        &mt_mon,
        DataTypeId::Int32,
        data,
        Variant::Int32(0),
    );
    let power = variable(
        space,
        id("Monitoring.MachineTool.Power"),
        sim("Power"),
        &mt_mon,
        DataTypeId::Double,
        data,
        Variant::Double(0.0),
    );
    let channel = object(
        space,
        id("Monitoring.Channel1"),
        sim("Channel1"),
        &monitoring,
        base,
    );
    let channel_state = variable(
        space,
        id("Monitoring.Channel1.ChannelState"),
        mt("ChannelState"),
        &channel,
        DataTypeId::Int32,
        data,
        Variant::Int32(2),
    );
    let channel_mode = variable(
        space,
        id("Monitoring.Channel1.ChannelMode"),
        mt("ChannelMode"),
        &channel,
        DataTypeId::Int32,
        data,
        Variant::Int32(0),
    );
    let spindle = object(
        space,
        id("Monitoring.Spindle1"),
        sim("Spindle1"),
        &monitoring,
        base,
    );
    let spindle_rotating = variable(
        space,
        id("Monitoring.Spindle1.IsRotating"),
        mt("IsRotating"),
        &spindle,
        DataTypeId::Boolean,
        data,
        Variant::Boolean(false),
    );

    let production = object(space, id("Production"), mt("Production"), &machine, base);
    let program = object(
        space,
        id("Production.ActiveProgram"),
        mt("ActiveProgram"),
        &production,
        base,
    );
    let state = object(
        space,
        id("Production.ActiveProgram.State"),
        mt("State"),
        &program,
        ObjectTypeId::FiniteStateMachineType,
    );
    let program_state = variable(
        space,
        id("Production.ActiveProgram.State.CurrentState"),
        QualifiedName::new(0, "CurrentState"),
        &state,
        DataTypeId::LocalizedText,
        VariableTypeId::FiniteStateVariableType,
        Variant::from(LocalizedText::new("", "Ended")),
    );
    let statistics = object(
        space,
        id("Production.Statistics"),
        mt("Statistics"),
        &production,
        base,
    );
    let parts_produced = variable(
        space,
        id("Production.Statistics.PartsProducedInLifetime"),
        mt("PartsProducedInLifetime"),
        &statistics,
        DataTypeId::UInt32,
        data,
        Variant::UInt32(0),
    );

    let item_state = object(
        space,
        id("MachineryItemState"),
        QualifiedName::new(ns.machinery, "MachineryItemState"),
        &machine,
        ObjectTypeId::FiniteStateMachineType,
    );
    let machinery_item_state = variable(
        space,
        id("MachineryItemState.CurrentState"),
        QualifiedName::new(0, "CurrentState"),
        &item_state,
        DataTypeId::LocalizedText,
        VariableTypeId::FiniteStateVariableType,
        Variant::from(LocalizedText::new("", "NotAvailable")),
    );

    MachineNodes {
        operation_mode,
        channel_state,
        channel_mode,
        spindle_rotating,
        power,
        program_state,
        parts_produced,
        machinery_item_state,
    }
}

impl MachineNodes {
    /// The values that differ between `prev` and `now` (all of them when
    /// there is no `prev`), so unchanged variables keep their source
    /// timestamps.
    pub(crate) fn changes(
        &self,
        prev: Option<&CncSnapshot>,
        now: &CncSnapshot,
    ) -> Vec<(NodeId, DataValue)> {
        let mut out = Vec::new();
        let mut put = |differs: bool, id: &NodeId, v: Variant| {
            if differs {
                out.push((id.clone(), DataValue::new_now(v)));
            }
        };
        let all = prev.is_none();
        let p = prev.unwrap_or(now);
        put(
            all || p.operation_mode != now.operation_mode,
            &self.operation_mode,
            Variant::Int32(now.operation_mode as i32),
        );
        put(
            all || p.channel_state != now.channel_state,
            &self.channel_state,
            Variant::Int32(now.channel_state as i32),
        );
        put(
            all || p.channel_mode != now.channel_mode,
            &self.channel_mode,
            Variant::Int32(now.channel_mode as i32),
        );
        put(
            all || p.spindle_rotating != now.spindle_rotating,
            &self.spindle_rotating,
            Variant::Boolean(now.spindle_rotating),
        );
        put(
            all || p.power_kw != now.power_kw,
            &self.power,
            Variant::Double(now.power_kw),
        );
        put(
            all || p.program_state != now.program_state,
            &self.program_state,
            Variant::from(LocalizedText::new("", now.program_state)),
        );
        put(
            all || p.parts_produced != now.parts_produced,
            &self.parts_produced,
            Variant::UInt32(now.parts_produced),
        );
        put(
            all || p.machinery_item_state != now.machinery_item_state,
            &self.machinery_item_state,
            Variant::from(LocalizedText::new(
                "",
                machinery_item_state_name(now.machinery_item_state),
            )),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> CncSnapshot {
        CncSnapshot {
            operation_mode: 1,
            channel_state: 0,
            channel_mode: 0,
            spindle_rotating: true,
            program_state: "Running",
            parts_produced: 7,
            machinery_item_state: 3,
            power_kw: 11.5,
        }
    }

    fn nodes() -> MachineNodes {
        let mut space = AddressSpace::new();
        space.add_namespace(SIMULATOR_NS, 1);
        space.add_namespace(MACHINE_TOOL_NS, 2);
        space.add_namespace(MACHINERY_NS, 3);
        let ns = NsIndexes {
            sim: 1,
            mt: 2,
            machinery: 3,
        };
        let machines = add_machines_folder(&mut space, ns);
        add_machine(&mut space, ns, &machines, "cnc-01")
    }

    #[test]
    fn first_snapshot_writes_everything_then_only_changes() {
        let n = nodes();
        let a = snap();
        assert_eq!(n.changes(None, &a).len(), 8);
        let mut b = a.clone();
        b.parts_produced = 8;
        b.program_state = "Ended";
        let ch = n.changes(Some(&a), &b);
        let ids: Vec<String> = ch.iter().map(|(id, _)| id.to_string()).collect();
        assert_eq!(
            ids,
            vec![
                "ns=1;s=cnc-01.Production.ActiveProgram.State.CurrentState",
                "ns=1;s=cnc-01.Production.Statistics.PartsProducedInLifetime"
            ]
        );
        assert_eq!(ch[1].1.value, Some(Variant::UInt32(8)));
    }

    #[test]
    fn machinery_item_state_names_follow_opc_40001() {
        assert_eq!(machinery_item_state_name(3), "Executing");
        assert_eq!(machinery_item_state_name(0), "NotAvailable");
        assert_eq!(machinery_item_state_name(99), "NotAvailable");
    }
}
