//! The city service: enrolment, ingest, registry, roll-ups, dashboard, verification.
