"""Machine learning for the line: everything is measured against the plant's truth.

- ``models.dataset.parts`` (with ``models.dataset.join``): one row per part that left the
  line, from history (what came over MQTT), from a batch simulation (with the
  true defect probability as an oracle) or from an external CSV (docs/models.md).
- ``models.defect``: defect detection, a scikit-learn pipeline evaluated against
  that oracle on later parts than it trained on.
- ``models.anomaly.watch`` (with ``expected``, ``live_watch`` and ``sensor_truth``): the
  sensor watch, which names a faulty sensor and the kind of its fault, measured
  against injected faults and tool wear (docs/alarms.md).
- ``models.optimizer.search`` (with ``space`` and ``evaluation``): setpoint
  recommendations searched with a surrogate model on the simulator, measured
  against the brute-forced optimum (docs/optimizer.md).
- ``models.tuning`` and ``models.report`` (with ``optimizer_report`` and
  ``report_files``): time-aware hyperparameter search and the run reports with
  their PNG plots.
- ``models.registry.store`` (with ``models.registry.cards``): skops files with model cards,
  versions and the active model (docs/registry.md).
- ``models.live`` (with ``models.dataset.tail_cache``): the running twin's micro-batch
  scoring; ``models.scoring_loop``: the thread that keeps it stepping and follows the
  registry's active models.

This package imports ``twin`` only and never touches MQTT.
"""
