"""OPC UA: the plant as an OPC UA server (``server``), and the twin of a line that
speaks OPC UA (``source``). The address space follows ISA-95 (docs/opcua.md)."""
