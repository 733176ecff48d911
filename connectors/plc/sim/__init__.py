"""PLC simulators: real Modbus TCP and OPC UA servers that stand in for the plant's PLCs."""
