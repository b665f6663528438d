"""Campaign logic: triggers, audience rules, holdout, send windows. Pure functions, no Dagster."""
