"""The twin itself, built only from the line's messages: the line's state
(``line.TwinState``), what it admits (``admission``) and when it has heard all
(``watermark``), its views, the KPI maths (``kpi``), economics, the calendar
clock and the snapshot a what-if starts from. Nothing here needs the simulator."""
