"""Line configurations shipped with factory-twin (``default.yaml``)."""
