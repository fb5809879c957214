//! Modbus TCP, RTU and RTU-over-TCP acquisition: planner, decoding, polling with error isolation.
