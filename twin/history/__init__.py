"""History: points, series and the store protocol (``points``), the embedded
SQLite store (``store``) and the recorder that turns the twin's messages and
KPI snapshots into points (``recorder``)."""
