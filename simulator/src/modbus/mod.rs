//! The simulator's Modbus side: framing and the register image of simulated devices.

pub mod frame;
pub mod regmap;
pub mod server;
