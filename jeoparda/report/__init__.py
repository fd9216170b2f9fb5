"""Analysis of finished runs: scaling tables, plots, projections and the report."""
