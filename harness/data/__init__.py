"""The data step: `python -m harness.data` (or `make data`) fetches and verifies the data files."""
