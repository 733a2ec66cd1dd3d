"""Virtual patients: populations drawn from parameter distributions, run in batches and summarised, as
cohorts (``ilsim cohort``), grid sweeps (``ilsim sweep``) and sensitivity analyses (``ilsim sensitivity``)."""
