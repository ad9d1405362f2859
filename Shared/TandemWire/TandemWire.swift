// TandemWire module.
