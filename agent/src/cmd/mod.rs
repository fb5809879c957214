//! The subcommands of `shuzhuan-agent`, one file each.

pub mod check_config;
