"""The sensor watch: each sensor's expected reading learned from the stream
(``expected``), the watch that judges every reading against it (``watch``), the
watch in the running twin (``live_watch``), what it saw and expected kept for
the trend around an alarm (``trace``) and its alarms scored against the known
faults (``sensor_truth``)."""
