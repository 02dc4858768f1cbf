"""The sensor watch: each sensor's expected reading learned from the stream
(``expected``), the watch that judges every reading against it (``watch``), the
watch in the running twin (``live_watch``) and its alarms scored against the
known faults (``sensor_truth``)."""
