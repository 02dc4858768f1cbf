"""Drift and anomaly alarms: the detector (``detector``), its telemetry windows
(``windows``), the alarms it raises (``alarm``) and their evaluation against the
known faults (``truth``)."""
