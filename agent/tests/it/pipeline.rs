//! Agent integration tests: pipeline.
