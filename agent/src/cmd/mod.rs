//! The subcommands of `shuzhuan-agent`, one file each.

pub mod check_config;
pub mod enroll;
pub mod run;
pub mod spool_stress;
