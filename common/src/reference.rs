//! Schemas and loaders of the reference data under `config/` (targets,
//! assessment items, counties, energy coefficients, emission factors,
//! questionnaire bands), each with its source and vintage.

use serde::{Deserialize, Serialize};

/// How well a reference figure is established (INDICATORS.md's markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Checked against the published source named.
    Src,
    /// From a secondary transcription of a published source.
    Sec,
    /// Common practice, not yet checked against the standard's text.
    Unverified,
}
