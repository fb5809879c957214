//! An opt-in leaner namespace 0 for the simulator's OPC UA servers.
//!
//! Each async-opcua server imports its own copy of the standard address space
//! (5,118 nodes in async-opcua 0.19), about 9 MB of the ~11.5 MB one idle
//! server costs (heaptrack: `AddressSpace::import_node_set`; no buffer size,
//! limit or thread pool of the server weighs in). Most of those nodes are the
//! instance declarations of the standard types: the properties and
//! components a type declares for its instances (the children of
//! `AlarmConditionType`, `ServerType` and so on), marked by a
//! `HasModellingRule` reference. The lean core keeps every type, reference
//! type, data type and encoding, the `Objects`, `Types` and `Views` folders
//! and the `Server` object with its children (namespace array, server
//! status, capabilities), and leaves those declarations out of the import
//! (2,715 of the 5,118 nodes).
//!
//! What a client loses: browsing a standard type no longer shows the
//! children it declares, and event filters that select type fields by
//! browse path find nothing (the simulator raises no events). Reads,
//! browsing and TranslateBrowsePaths on the machines, the namespace array
//! and the server status are unchanged.

use opcua::nodes::{ImportedItem, NodeSetImport, NodeSetNamespaceMapper};
use opcua::server::address_space::{AddressSpace, CoreNamespace};
use opcua::server::node_manager::memory::{
    CoreNodeManagerBuilder, CoreNodeManagerImpl, InMemoryNodeManagerBuilder,
    InMemoryNodeManagerImplBuilder,
};
use opcua::server::node_manager::ServerContext;
use opcua::types::{NodeId, ReferenceTypeId};

/// Whether an imported node is an instance declaration (it has a forward
/// `HasModellingRule` reference).
fn is_declaration(item: &ImportedItem) -> bool {
    let rule: NodeId = ReferenceTypeId::HasModellingRule.into();
    item.references
        .iter()
        .any(|r| r.is_forward && r.type_id == rule)
}

/// Namespace 0 without its instance declarations.
struct LeanNamespace0;

impl NodeSetImport for LeanNamespace0 {
    fn register_namespaces(&self, namespaces: &mut NodeSetNamespaceMapper) {
        CoreNamespace.register_namespaces(namespaces);
    }

    fn get_own_namespaces(&self) -> Vec<String> {
        CoreNamespace.get_own_namespaces()
    }

    fn load<'a>(
        &'a self,
        namespaces: &'a NodeSetNamespaceMapper,
    ) -> Box<dyn Iterator<Item = ImportedItem> + 'a> {
        Box::new(
            CoreNamespace
                .load(namespaces)
                .filter(|item| !is_declaration(item)),
        )
    }
}

/// The core node manager of async-opcua over [`LeanNamespace0`].
pub(crate) fn lean_core_node_manager() -> InMemoryNodeManagerBuilder<LeanCore> {
    InMemoryNodeManagerBuilder::new(LeanCore)
}

/// Builder of the lean core node manager (see the module docs).
pub(crate) struct LeanCore;

impl InMemoryNodeManagerImplBuilder for LeanCore {
    type Impl = CoreNodeManagerImpl;

    fn build(self, context: ServerContext, address_space: &mut AddressSpace) -> Self::Impl {
        // async-opcua builds its core node manager only together with the
        // full import: do that into a scratch space that is dropped at once,
        // and import the lean set into the space the server keeps (so its
        // tables are sized for the nodes kept).
        let type_tree = context.type_tree.clone();
        let core = CoreNodeManagerBuilder.build(context, &mut AddressSpace::new());
        address_space.import_node_set(&LeanNamespace0, type_tree.write().namespaces_mut());
        core
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{ObjectId, VariableId};

    #[test]
    fn declarations_are_most_of_namespace_0_and_spare_the_server_object() {
        let mut namespaces = opcua::types::NamespaceMap::new();
        let mut map = NodeSetNamespaceMapper::new(&mut namespaces);
        LeanNamespace0.register_namespaces(&mut map);
        let all = CoreNamespace.load(&map).count();
        let ids: Vec<NodeId> = LeanNamespace0
            .load(&map)
            .map(|item| item.node.as_node().node_id().clone())
            .collect();
        assert!(ids.len() < all / 2 + 100, "{} of {all} kept", ids.len());
        for kept in [
            NodeId::from(ObjectId::ObjectsFolder),
            NodeId::from(ObjectId::Server),
            NodeId::from(VariableId::Server_NamespaceArray),
            NodeId::from(VariableId::Server_ServerStatus),
            NodeId::from(VariableId::Server_ServerStatus_State),
        ] {
            assert!(ids.contains(&kept), "{kept} must stay");
        }
    }
}
