"""What a point is: the catalogue of strategies (read from the native registrations), the
parameter table, the YAML config and its validation, cost profiles, host limits and the
points.csv schema.

Imports only `iommubench.core`.
"""
