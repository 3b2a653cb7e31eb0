"""What the tests import; ``tests/conftest.py`` holds only fixtures and hooks, which call these.

- ``stages``: the checkout's root, quiet progress, the environment a stage script runs in.
- ``models``: networks prepared for tests (a random output layer instead of the identity).
- ``pipeline``: a scratch git + DVC copy of the pipeline, and which stages a ``dvc repro`` ran.
- ``servers``: free ports, servers run in their own process group until a block ends, their environment.
- ``tracking``: the MLflow server's command, its basic-auth app and users, a throwaway PostgreSQL, the Prefect
  login.
- ``device_reads``: a dispatch mode that records reads of device values on the host.
- ``reference_weights``: the published PIP-Restormer's deterministic test weights.
"""
