"""factory-twin core: line configuration, SimPy plant, KPI maths and twin state.

This package imports nothing from ``sensors``, ``models`` or ``api``.
"""

__version__ = "0.1.0"
