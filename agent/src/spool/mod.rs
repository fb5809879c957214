//! The on-disk spool of sealed reports (format in docs/specs/spool.md).
