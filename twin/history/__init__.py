"""History: points, series and the store protocol (``points``), the embedded
SQLite store (``store``), the recorder that turns the twin's messages and KPI
snapshots into points (``recorder``), and the sink that copies the store to
InfluxDB (``influx``, ``influx_logs``)."""
