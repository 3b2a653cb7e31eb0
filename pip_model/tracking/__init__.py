"""MLflow: runs and their lineage, the tracking URI and its failures, metrics kept while the server is away."""
