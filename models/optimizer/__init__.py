"""The yield optimizer: the search over setpoints on the simulated line
(``search``), the confirmation of a recommendation on fresh seeds
(``confirmation``) and its report (``report``)."""
