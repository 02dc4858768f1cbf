"""The stacks behind the API: everything that runs one line (``line``) or every
line of a site (``site``), the options they run with (``options``)."""
