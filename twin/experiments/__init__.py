"""Experiments on the simulated line: replications and their statistics
(``experiment``), designs and sweeps (``doe``, ``sweep``, ``sweep_backends``,
``sweep_report``) and what-if scenarios from the live state (``whatif``,
``whatif_kpis``)."""
