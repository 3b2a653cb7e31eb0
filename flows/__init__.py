"""Prefect flows that orchestrate the DVC pipeline: `pipeline`, `sweep`, and their deployments."""
