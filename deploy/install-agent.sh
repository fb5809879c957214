#!/usr/bin/env bash
# Installs the Shuzhuan gateway agent: binary, config, device profiles,
# systemd unit, sysusers and tmpfiles entries, under a root prefix.
#
# The config is checked FIRST with the new binary (`shuzhuan-agent
# check-config`); a config it refuses is printed with its errors and nothing
# is installed. Upgrading (no --config) re-checks the installed config with
# the new binary and leaves /var/lib/shuzhuan-agent (keys, spool) untouched.
#
# usage: deploy/install-agent.sh [--root DIR] [--binary FILE] [--config FILE]
#                                [--profiles DIR] [--no-reload]
#   --root DIR      install under DIR instead of / (a package build or a test);
#                   no service manager is touched then
#   --binary FILE   the agent binary (default: target/release/shuzhuan-agent)
#   --config FILE   agent.toml to install as /etc/shuzhuan-agent/agent.toml;
#                   omitted: keep the installed one (upgrade)
#   --profiles DIR  device profiles to install as /etc/shuzhuan-agent/profiles
#                   (default: config/profiles of this repository, when present)
#   --no-reload     do not run `systemctl daemon-reload` on /
# exit status: 0 installed, 1 config refused or install failed, 2 usage
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=/
binary="$repo/target/release/shuzhuan-agent"
config=""
profiles=""
[ -d "$repo/config/profiles" ] && profiles="$repo/config/profiles"
reload=1

say() { echo "install-agent: $*"; }
die() { echo "install-agent: $*" >&2; exit 1; }
usage() { sed -n '10,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
  case $1 in
    --root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
    --binary) [ $# -ge 2 ] || usage; binary=$2; shift 2 ;;
    --config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
    --profiles) [ $# -ge 2 ] || usage; profiles=$2; shift 2 ;;
    --no-reload) reload=0; shift ;;
    -h|--help) usage ;;
    *) echo "install-agent: unknown argument \`$1\`" >&2; usage ;;
  esac
done

[ -d "$root" ] || die "root \`$root\` is not a folder"
root=$(cd "$root" && pwd)
prefix=${root%/}   # "" for /, so "$prefix/etc" is /etc
[ -x "$binary" ] || die "agent binary \`$binary\` is missing or not executable (build it: cargo build --release -p shuzhuan-agent)"

etc="$prefix/etc/shuzhuan-agent"
if [ -z "$config" ]; then
  [ -f "$etc/agent.toml" ] || die "no --config given and no installed $etc/agent.toml to keep"
  config="$etc/agent.toml"
  upgrade=1
else
  [ -f "$config" ] || die "config \`$config\` does not exist"
  upgrade=0
fi

# 1. The gate: the new binary must accept the config, or nothing changes.
say "checking $config with $binary"
if ! out=$("$binary" check-config --config "$config" 2>&1); then
  echo "$out" >&2
  die "config \`$config\` refused by check-config (errors above); nothing installed"
fi
[ -n "$out" ] && echo "$out"

# The unit lets the agent write only to /var/lib/shuzhuan-agent.
data_dir=$(sed -n 's/^[[:space:]]*data_dir[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$config" | head -n 1)
if [ "$data_dir" != "/var/lib/shuzhuan-agent" ]; then
  say "warning: data_dir is \`${data_dir:-unset}\`, but the systemd unit only allows writes to /var/lib/shuzhuan-agent"
fi

# 2. Files. Each is written beside its target and renamed into place, so a
# running agent's binary is never overwritten in place and a failed copy
# leaves the old file.
place() { # mode src dst
  install -D -m "$1" "$2" "$3.new"
  mv -f "$3.new" "$3"
  say "installed $3"
}
place 0755 "$binary" "$prefix/usr/bin/shuzhuan-agent"
place 0644 "$repo/deploy/systemd/shuzhuan-agent.service" "$prefix/etc/systemd/system/shuzhuan-agent.service"
place 0644 "$repo/deploy/sysusers.d/shuzhuan-agent.conf" "$prefix/usr/lib/sysusers.d/shuzhuan-agent.conf"
place 0644 "$repo/deploy/tmpfiles.d/shuzhuan-agent.conf" "$prefix/usr/lib/tmpfiles.d/shuzhuan-agent.conf"

# The user and folders, before the config so it can be given to the group.
if [ "$prefix" = "" ]; then
  systemd-sysusers /usr/lib/sysusers.d/shuzhuan-agent.conf
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/shuzhuan-agent.conf
else
  systemd-sysusers --root="$root" "$prefix/usr/lib/sysusers.d/shuzhuan-agent.conf"
  systemd-tmpfiles --root="$root" --create "$prefix/usr/lib/tmpfiles.d/shuzhuan-agent.conf"
fi

if [ "$upgrade" = 0 ]; then
  place 0640 "$config" "$etc/agent.toml"
fi
if [ -n "$profiles" ]; then
  [ -d "$profiles" ] || die "profiles folder \`$profiles\` does not exist"
  mkdir -p "$etc/profiles.new"
  cp -R "$profiles/." "$etc/profiles.new/"
  rm -rf "$etc/profiles"
  mv "$etc/profiles.new" "$etc/profiles"
  say "installed $etc/profiles"
fi
# The city's measurement thresholds, for the enterprise rates on the agent's
# status page and /metrics (read from <profiles>/../scoring/measurement.toml).
if [ -f "$repo/config/scoring/measurement.toml" ]; then
  mkdir -p "$etc/scoring"
  cp "$repo/config/scoring/measurement.toml" "$etc/scoring/measurement.toml"
  say "installed $etc/scoring/measurement.toml"
fi
# Config and profiles: root writes, the agent's group reads (they may name
# credentials); the mode is set whatever umask the caller has.
chmod -R u=rwX,g=rX,o= "$etc"
if [ "$(id -u)" = 0 ]; then
  group=$(awk -F: '$1 == "shuzhuan-agent" { print $3 }' "$prefix/etc/group")
  [ -n "$group" ] || die "group shuzhuan-agent was not created in $prefix/etc/group"
  chown -R "0:$group" "$etc"
fi

# 3. The service manager, only on a live system.
if [ "$prefix" = "" ] && [ "$reload" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if [ "$upgrade" = 1 ] && systemctl is-active --quiet shuzhuan-agent; then
    say "restarting shuzhuan-agent (the spool in /var/lib/shuzhuan-agent is kept)"
    systemctl restart shuzhuan-agent
  fi
fi
if [ "$upgrade" = 0 ]; then
  say "next: enrol the agent (docs/operations.md, \"Enrolment\"),"
  say "      then: systemctl enable --now shuzhuan-agent"
fi
say "done"
