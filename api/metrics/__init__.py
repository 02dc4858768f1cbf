"""Prometheus metrics: the twin's KPIs, the data path's counters and API latency.

A scrape reads the sources as they are at that moment: one twin view, and the
``health()`` of the ingest, the plant's publisher and the history writer when the
app has them. Nothing runs between scrapes, so the numbers are the same ones
``/twin`` and ``/healthz`` show. Each app has its own ``CollectorRegistry``: tests
build many apps in one process, and the global registry would mix them.

A value the twin cannot give yet (a KPI whose denominator is still zero, a model
that is not loaded) is left out of the scrape rather than sent as NaN; a source
the app does not have (no ingest, no history) leaves its metrics out entirely.

Request latency is timed by a pure ASGI middleware, labelled with the route
template (``/stations/{station_id}``), never the raw path, so that the number of
series stays bounded whatever clients ask for. It passes each message straight
through, so streamed responses (SSE) are not buffered; their duration is the
stream's. See docs/api.md, "Metrics", for the list.

Modules: ``families`` (names, labels, the line-labelled families), ``twin`` (the
twin's and the data path's metrics), ``server`` (the stream hub's and the jobs'),
``http`` (request latency), ``install`` (an app's registry and its dependency).
"""
