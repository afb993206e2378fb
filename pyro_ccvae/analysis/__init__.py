"""Analysis of trained runs: metrics and figures (read a run directory, never training internals)."""
