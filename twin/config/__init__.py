"""What a line is: the line file's schema and its loading (``line``), the sampling
distributions it names (``distributions``) and sites of several lines (``site``).
The packaged line files are in ``twin/lines/``."""
