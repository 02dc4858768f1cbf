"""Alarms as plants run them: the ISA-18.2 lifecycle (``lifecycle``) and the
alarm-system figures it defines (``kpis``)."""
