"""The data step: `python -m data` (or `make data`) fetches and verifies the data files."""
