"""Datasets of parts: rows joined from history or a simulation (``parts``,
``join``), train/test splits by time (``splits``) and the read-through cache of
live scoring's history reads (``tail_cache``)."""
