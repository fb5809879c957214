//! The subcommands of `shuzhuan-agent`, one file each.
