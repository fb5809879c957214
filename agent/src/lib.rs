//! The factory gateway daemon: acquisition over Modbus and OPC UA, device model, windows, spool, signed reports.
