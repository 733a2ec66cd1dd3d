"""Virtual cohorts: patients drawn from parameter distributions, run in batches, summarised."""
