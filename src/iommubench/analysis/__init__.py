"""Reading runs and deciding what they say: the run reader, estimators and intervals,
placement states, per-point summaries and flags, scaling and winners, the USL fit, lock
attribution, strategies side by side, and `compare`.

Imports the layers below (core, spec, run) and nothing above.
"""
