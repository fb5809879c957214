//! The Shuzhuan plant simulator: machines with a state process, meters whose
//! counters integrate their power, served over real Modbus TCP/RTU and OPC UA,
//! with the ground truth written down for tests to compare against.

pub mod agentcfg;
pub mod city;
pub mod clock;
pub mod control;
pub mod device;
pub mod machine;
pub mod modbus;
pub mod opcua;
pub mod plant;
pub mod profiles;
pub mod rng;
pub mod run;
