//! Simulated plants speaking real Modbus TCP/RTU and OPC UA, with ground truth.
