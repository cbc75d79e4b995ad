"""What operators watch: Prometheus metrics (the Temporal SDK's and ours) and JSON log lines."""
