"""The simulated plant: the SimPy line (``plant``), its stations' physics and
processes (``machine``), a site of lines (``site_plant``), the real-time run of a
live line, its clock and its pacing (``live``, ``realtime``, ``pacing``), and a
run's report (``report``)."""
