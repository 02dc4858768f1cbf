"""Machine learning for the line (issue 6, in progress).

``models.dataset``: one row per part that left the line, from history (what
came over MQTT), from a batch simulation (with the true defect probability as an
oracle, for evaluation) or from an external CSV (docs/models.md).
``models.defect``: defect detection, a scikit-learn pipeline evaluated against
that oracle on later parts than it trained on (docs/models.md).
``models.optimizer``: setpoint recommendations searched with a surrogate
model on the simulator, measured against the brute-forced true optimum
(docs/optimizer.md). Drift alarms, the registry and live scoring come next.
This package imports ``twin`` only and never touches MQTT.
"""
