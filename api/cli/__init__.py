"""The ``factory-twin`` command line: one module per command (``main`` builds the
parser and dispatches; ``common`` holds what the commands share).

    factory-twin up        broker + live plant + ingest + API, until Ctrl-C (--site: many lines)
    factory-twin simulate  run a line as fast as possible and print its KPIs
    factory-twin cmd       send a command to the running line, print the answer
    factory-twin schemas   write (or check) the contract's JSON Schema files
    factory-twin train     fit, report and register the defect and station models
    factory-twin tune      tune the defect model (time-aware CV), then train
    factory-twin optimize  recommend setpoints; --apply sends them to the running line
    factory-twin whatif    forecast KPIs from a snapshot of the twin, with and without changes
    factory-twin learn     learn the line's parameters from its history
    factory-twin sweep     a design of experiments with replications (process pool or Dask)

Exit codes: 0 success; 1 a runtime failure (broker unreachable, port taken);
2 bad usage or an invalid config, with a message that names the field;
cmd only: 3 the line rejected the command, 4 no answer in time.
"""
