"""The only place that talks to MLflow: store set-up, stage runs, sweep parent runs."""
