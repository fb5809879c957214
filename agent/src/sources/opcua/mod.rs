//! OPC UA acquisition through async-opcua: sessions, subscriptions, browse-path resolution, PKI.
