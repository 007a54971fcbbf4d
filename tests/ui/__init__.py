"""Browser tests of the real MLflow UI (`pytest -m ui`, `make test-ui`); they need Playwright and a chromium."""
