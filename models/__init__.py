"""Machine learning for the line (issue 6, in progress).

``models.optimizer``: setpoint recommendations searched with a surrogate
model on the simulator, measured against the brute-forced true optimum
(docs/optimizer.md). Datasets, defect detection, drift alarms, the registry
and live scoring come next. This package imports ``twin`` only and never
touches MQTT.
"""
