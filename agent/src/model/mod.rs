//! The device model: machine state, energy and part counts from samples.
