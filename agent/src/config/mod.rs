//! Agent configuration (`agent.toml`): raw parse with positions, then validation into typed config.
