//! Schemas and loaders of the reference data under `config/` (targets,
//! assessment items, counties, energy coefficients, emission factors,
//! questionnaire bands), each with its source and vintage.
