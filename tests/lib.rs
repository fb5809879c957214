//! Helpers shared by the workspace-level end-to-end tests (peer processes,
//! free ports, the Python venv); the tests themselves are under `tests/e2e/`.
