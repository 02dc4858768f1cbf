"""The outer layer: FastAPI app, routes, the runtime that wires broker, plant,
ingest and API together, and the ``factory-twin`` command line."""
