//! The OpenAPI document of the API, served at `/api/v1/openapi.json`; the
//! file lives in `docs/api/openapi.json` and a test checks that it names
//! every route.

/// The document, compiled in.
pub const SPEC: &str = include_str!("../../../docs/api/openapi.json");
