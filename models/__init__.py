"""Machine learning for the line: defect detection and yield optimisation.

Not built yet: this package lands with the ML issue. It will import ``twin``
only and never touch MQTT.
"""
