#!/usr/bin/env python3
"""Builds the agent's Debian package with dpkg-deb, from agent/Cargo.toml.

One source of truth: the `[package.metadata.deb]` table of agent/Cargo.toml
(the cargo-deb format: assets, maintainer-scripts, systemd-units, depends,
section, priority, extended-description). This script reads that table,
stages the files, writes DEBIAN/{control,conffiles,md5sums} and the
maintainer scripts, and calls `dpkg-deb --build`. Run through
deploy/deb/build.sh; `build.sh --help` lists the options.

What it fills in (as cargo-deb would):
- Architecture: from the Rust target (`--target`, default the host's), and
  the binary's ELF machine must match it.
- `$auto` in depends: the packages of the binary's shared libraries
  (DT_NEEDED), each with the newest symbol version it uses (`readelf`),
  for the glibc and libgcc sonames in SONAME_PACKAGES. An unknown soname is
  an error naming it.
- conffiles: every file under etc/.
- `#DEBHELPER#` in a maintainer script: the systemd snippets for
  `systemd-units` (daemon-reload; on upgrade try-restart, never a start).
- usr/share/doc/<package>/copyright from the crate's license.
"""

from __future__ import annotations

import argparse
import email.utils
import glob
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "agent"

# Rust target triple -> (Debian architecture, GNU tool prefix, ELF machine
# as `readelf -h` names it, ELF class).
TARGETS = {
    "x86_64-unknown-linux-gnu": ("amd64", "x86_64-linux-gnu", "Advanced Micro Devices X86-64", "ELF64"),
    "aarch64-unknown-linux-gnu": ("arm64", "aarch64-linux-gnu", "AArch64", "ELF64"),
    "armv7-unknown-linux-gnueabihf": ("armhf", "arm-linux-gnueabihf", "ARM", "ELF32"),
    "arm-unknown-linux-gnueabihf": ("armhf", "arm-linux-gnueabihf", "ARM", "ELF32"),
    "arm-unknown-linux-gnueabi": ("armel", "arm-linux-gnueabi", "ARM", "ELF32"),
    "i686-unknown-linux-gnu": ("i386", "i686-linux-gnu", "Intel 80386", "ELF32"),
    "riscv64gc-unknown-linux-gnu": ("riscv64", "riscv64-linux-gnu", "RISC-V", "ELF64"),
    "powerpc64le-unknown-linux-gnu": ("ppc64el", "powerpc64le-linux-gnu", "PowerPC64", "ELF64"),
    "s390x-unknown-linux-gnu": ("s390x", "s390x-linux-gnu", "IBM S/390", "ELF64"),
}

# Shared library -> (Debian package, symbol-version prefix whose newest
# version is the package's minimum). The same answer dpkg-shlibdeps gives
# from the packages' symbols files (checked by tests/e2e/deploy/deb.rs on
# the native build), without needing the target's libraries registered
# with dpkg, so a cross-built binary gets its Depends too.
SONAME_PACKAGES = {
    "libc.so.6": ("libc6", "GLIBC_"),
    "libm.so.6": ("libc6", "GLIBC_"),
    "libpthread.so.0": ("libc6", "GLIBC_"),
    "libdl.so.2": ("libc6", "GLIBC_"),
    "librt.so.1": ("libc6", "GLIBC_"),
    "libutil.so.1": ("libc6", "GLIBC_"),
    "libgcc_s.so.1": ("libgcc-s1", "GCC_"),
}
LOADER = re.compile(r"^ld-linux[-.\w]*\.so\.\d+$|^ld64\.so\.\d+$")


class BuildError(Exception):
    """A problem with the inputs, reported as one line naming the thing."""


def die(msg: str) -> None:
    raise BuildError(msg)


def load_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        die(f"{path}: {e}")
    return {}


def inherited(pkg: dict, workspace: dict, key: str) -> str | None:
    """A [package] value, following `key.workspace = true` to the root."""
    v = pkg.get(key)
    if isinstance(v, dict) and v.get("workspace"):
        v = workspace.get("workspace", {}).get("package", {}).get(key)
    return v


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        die(f"`{name}` not found in PATH (Debian: {TOOL_PACKAGES.get(name, 'binutils')})")
    return path


TOOL_PACKAGES = {"dpkg-deb": "dpkg", "readelf": "binutils", "cargo": "rustup"}


def run(cmd: list[str], **kw) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        die(f"`{' '.join(cmd)}` failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def host_triple() -> str:
    out = run([os.environ.get("RUSTC", "rustc"), "-vV"])
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.split(": ", 1)[1].strip()
    die("`rustc -vV` printed no host triple")
    return ""


def elf_check(binary: Path, triple: str) -> None:
    """The binary is an ELF for the target's machine and class."""
    _, _, machine, klass = TARGETS[triple]
    out = run([tool("readelf"), "-h", str(binary)])
    got = dict(
        (k.strip(), v.strip())
        for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)
    )
    if got.get("Machine") != machine or got.get("Class") != klass:
        die(
            f"{binary} is {got.get('Class')} {got.get('Machine')}, "
            f"not {klass} {machine} for --target {triple}"
        )


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def auto_depends(binary: Path) -> list[str]:
    """`pkg (>= version)` for each shared library the binary needs."""
    readelf = tool("readelf")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run([readelf, "-d", str(binary)]))
    if not needed:
        return []  # static: nothing to depend on
    versions = run([readelf, "-V", "--wide", str(binary)])
    deps: dict[str, str] = {}
    for soname in needed:
        if LOADER.match(soname):
            soname = "libc.so.6"  # the dynamic loader ships in libc6
        if soname not in SONAME_PACKAGES:
            die(
                f"{binary} needs {soname}, which deploy/deb/build.py cannot map to a "
                f"Debian package: add it to SONAME_PACKAGES"
            )
        package, prefix = SONAME_PACKAGES[soname]
        tags = re.findall(re.escape(prefix) + r"([0-9][0-9.]*)", versions)
        newest = max(tags, key=version_key, default=None)
        if newest is not None:
            # GLIBC_2.34 -> 2.34; GCC_4.2.0 -> 4.2 (the symbols files' form).
            newest = ".".join(newest.split(".")[:2])
        old = deps.get(package)
        if old is None or (newest and version_key(newest) > version_key(old or "0")):
            deps[package] = newest or ""
    return [f"{p} (>= {v})" if v else p for p, v in sorted(deps.items())]


def systemd_snippets(units: dict, unit_file: Path) -> dict[str, str]:
    """The `#DEBHELPER#` text of each maintainer script for `systemd-units`."""
    name = units.get("unit-name") or die("systemd-units: no unit-name")
    if units.get("enable", True) or units.get("start", True):
        die(
            "systemd-units: enable and start must be false: the agent must not "
            "start on a box without its config and enrolment"
        )
    if not units.get("restart-after-upgrade", True):
        die(
            "systemd-units: restart-after-upgrade must be true: stopping the agent "
            "for an upgrade and never starting it again would stop its data"
        )
    service = f"{name}.service"
    wanted = re.findall(r"^WantedBy=(.+)$", unit_file.read_text(), re.M)
    links = " ".join(
        f'"$root/etc/systemd/system/{t}.wants/{service}"' for w in wanted for t in w.split()
    )
    live = '[ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]'
    invoke = (
        f"if command -v deb-systemd-invoke >/dev/null 2>&1; then "
        f"deb-systemd-invoke {{verb}} {service} >/dev/null || true; "
        f"else systemctl {{verb}} {service} >/dev/null || true; fi"
    )
    head = "# Generated by deploy/deb/build.py from [package.metadata.deb] systemd-units.\n"
    postinst = (
        head
        + f'if [ "$1" = configure ] && {live}; then\n'
        + "  systemctl --system daemon-reload >/dev/null || true\n"
        + "  # An upgrade restarts an agent that was running; a stopped one stays stopped.\n"
        + '  if [ -n "$2" ]; then\n    '
        + invoke.format(verb="try-restart")
        + "\n  fi\nfi\n"
    )
    # The running agent keeps its old binary through an upgrade until the
    # try-restart above; only a removal stops it.
    prerm = head + f'if [ "$1" = remove ] && {live}; then\n  ' + invoke.format(verb="stop") + "\nfi\n"
    postrm = (
        head
        + f'if {{ [ "$1" = remove ] || [ "$1" = purge ]; }} && {live}; then\n'
        + "  systemctl --system daemon-reload >/dev/null || true\nfi\n"
        + '# Purge forgets an enablement made by hand (systemctl enable).\n'
        + 'root=${DPKG_ROOT:-}\n'
        + f'if [ "$1" = purge ]; then\n  rm -f {links}\nfi\n'
    )
    return {"postinst": postinst, "prerm": prerm, "postrm": postrm}


def copyright_text(package: str, notice: str, license_: str, repository: str | None) -> str:
    lines = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        f"Upstream-Name: {package}",
    ]
    if repository:
        lines.append(f"Source: {repository}")
    lines += ["", "Files: *", f"Copyright: {notice}", f"License: {license_}"]
    if (Path("/usr/share/common-licenses") / license_).exists() or license_ == "Apache-2.0":
        lines.append(f" On Debian systems the full text is in /usr/share/common-licenses/{license_}.")
    return "\n".join(lines) + "\n"


def build_time() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time: the same input gives
    the same changelog, whenever it is built."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    p = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    return int(p.stdout.strip()) if p.returncode == 0 and p.stdout.strip() else int(time.time())


def changelog_gz(name: str, version: str, maintainer: str, when: int) -> bytes:
    """A one-entry Debian changelog, gzipped without a timestamp."""
    date = email.utils.formatdate(when, usegmt=False)
    text = (
        f"{name} ({version}) unstable; urgency=medium\n\n"
        f"  * Built from the Shuzhuan workspace by deploy/deb/build.sh; the\n"
        f"    changes are in the project's history.\n\n"
        f" -- {maintainer}  {date}\n"
    )
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def folded(text: str) -> str:
    """An extended description as control-file continuation lines, wrapped
    at 79 columns."""
    out = []
    for para in text.strip().split("\n\n"):
        if out:
            out.append(" .")
        out += [" " + line for line in textwrap.wrap(" ".join(para.split()), 78)]
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="deploy/deb/build.sh",
        description="Build the shuzhuan-agent .deb with dpkg-deb from agent/Cargo.toml's [package.metadata.deb].",
    )
    p.add_argument("--target", help="Rust target triple (default: the host's); sets Architecture")
    p.add_argument(
        "--binary",
        type=Path,
        help="use this agent binary instead of building `cargo build --release --locked -p shuzhuan-agent`",
    )
    p.add_argument("--out", type=Path, help="output folder (default: <target dir>/debian)")
    p.add_argument(
        "--compress",
        choices=["xz", "gzip", "zstd", "none"],
        default="xz",
        help="dpkg-deb compressor (default xz)",
    )
    p.add_argument("--no-strip", action="store_true", help="keep the binary's symbols and line tables")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    manifest = load_toml(CRATE / "Cargo.toml")
    workspace = load_toml(REPO / "Cargo.toml")
    pkg = manifest.get("package", {})
    deb = pkg.get("metadata", {}).get("deb") or die(f"{CRATE / 'Cargo.toml'}: no [package.metadata.deb]")
    name = deb.get("name", pkg["name"])
    version = inherited(pkg, workspace, "version") or die("no package version")
    if deb.get("revision"):
        version += f"-{deb['revision']}"
    license_ = inherited(pkg, workspace, "license") or die("no package license")
    repository = inherited(pkg, workspace, "repository")

    triple = args.target or host_triple()
    if triple not in TARGETS:
        die(f"--target {triple}: no Debian architecture known for it (known: {', '.join(TARGETS)})")
    arch, gnu, _, _ = TARGETS[triple]
    native = triple == host_triple()

    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target_dir.is_absolute():
        target_dir = REPO / target_dir
    release_dir = target_dir / ("release" if args.target is None else f"{triple}/release")
    if args.binary is None:
        cmd = [tool("cargo"), "build", "--release", "--locked", "-p", pkg["name"]]
        env = dict(os.environ)
        if args.target is not None:
            cmd += ["--target", triple]
            if not native and shutil.which(f"{gnu}-gcc"):
                # The cross C compiler links the binary and builds ring's C.
                up = triple.upper().replace("-", "_")
                env.setdefault(f"CARGO_TARGET_{up}_LINKER", f"{gnu}-gcc")
                env.setdefault(f"CC_{triple.replace('-', '_')}", f"{gnu}-gcc")
        print("build: " + " ".join(cmd), file=sys.stderr)
        if subprocess.run(cmd, cwd=REPO, env=env).returncode != 0:
            die("cargo build failed")

    stage_parent = tempfile.mkdtemp(prefix="shuzhuan-deb-")
    try:
        stage = Path(stage_parent) / "root"
        stage.mkdir(mode=0o755)
        debian = stage / "DEBIAN"
        debian.mkdir(mode=0o755)

        def place(src: Path, dst: str, mode: int) -> Path:
            target = stage / dst
            for parent in reversed(target.relative_to(stage).parents[:-1]):
                (stage / parent).mkdir(mode=0o755, exist_ok=True)
            shutil.copyfile(src, target)
            os.chmod(target, mode)
            return target

        binaries = []
        for asset in deb.get("assets", []):
            if len(asset) != 3:
                die(f"asset {asset}: want [source, destination, mode]")
            src, dst, mode = asset[0], asset[1], int(asset[2], 8)
            if src.startswith("target/release/"):
                exe = src.removeprefix("target/release/")
                path = args.binary if args.binary is not None else release_dir / exe
                if not path.is_file():
                    die(f"binary {path} does not exist (build it, or pass --binary)")
                elf_check(path, triple)
                dest = dst + exe if dst.endswith("/") else dst
                binaries.append(place(path, dest, mode))
                continue
            matches = sorted(glob.glob(str(CRATE / src)))
            if not matches:
                die(f"asset {src} (in {CRATE / 'Cargo.toml'}) matches no file")
            for m in matches:
                m = Path(m)
                if not m.is_file():
                    continue
                dest = dst + m.name if dst.endswith("/") else dst
                place(m, dest, mode)

        strip = None
        if not args.no_strip:
            strip = shutil.which("strip" if native else f"{gnu}-strip")
            if strip is None:
                die(f"`{'strip' if native else gnu + '-strip'}` not found (Debian: binutils-{gnu}); or pass --no-strip")
        for b in binaries:
            if strip:
                run([strip, "--strip-unneeded", "--remove-section=.comment", str(b)])

        depends = []
        for part in (d.strip() for d in deb.get("depends", "$auto").split(",")):
            if part == "$auto":
                for b in binaries:
                    depends += [d for d in auto_depends(b) if d not in depends]
            elif part:
                depends.append(part)

        units = deb.get("systemd-units")
        snippets = {}
        if units:
            unit_dir = CRATE / units.get("unit-scripts", ".")
            unit_file = unit_dir / f"{units['unit-name']}.service"
            if not unit_file.is_file():
                die(f"systemd unit {unit_file} does not exist")
            place(unit_file, f"lib/systemd/system/{unit_file.name}", 0o644)
            snippets = systemd_snippets(units, unit_file)

        scripts_dir = CRATE / deb["maintainer-scripts"] if "maintainer-scripts" in deb else None
        for script in ("preinst", "postinst", "prerm", "postrm"):
            own = scripts_dir / script if scripts_dir else None
            generated = snippets.get(script, "")
            if own is not None and own.is_file():
                body = own.read_text()
                token = re.compile(r"^#DEBHELPER#$", re.M)
                if token.search(body):
                    body = token.sub(lambda _: generated.rstrip("\n"), body)
                elif generated:
                    die(f"{own} has no #DEBHELPER# line for the systemd snippets")
            elif generated:
                body = "#!/bin/sh\nset -e\n" + generated
            else:
                continue
            (debian / script).write_text(body)
            os.chmod(debian / script, 0o755)

        maintainer = deb.get("maintainer") or die("[package.metadata.deb] has no maintainer")
        when = build_time()
        doc = Path(f"usr/share/doc/{name}")
        extra = Path(stage_parent) / "extra"
        extra.mkdir()
        if not (stage / doc / "copyright").exists():
            notice = deb.get("copyright") or f"{time.gmtime(when).tm_year} {maintainer}"
            (extra / "copyright").write_text(copyright_text(name, notice, license_, repository))
            place(extra / "copyright", str(doc / "copyright"), 0o644)
        changelog = doc / ("changelog.Debian.gz" if deb.get("revision") else "changelog.gz")
        if not (stage / changelog).exists():
            (extra / "changelog.gz").write_bytes(changelog_gz(name, version, maintainer, when))
            place(extra / "changelog.gz", str(changelog), 0o644)

        files = sorted(p for p in stage.rglob("*") if p.is_file() and debian not in p.parents)
        conffiles = [f"/{p.relative_to(stage)}" for p in files if p.relative_to(stage).parts[0] == "etc"]
        if conffiles:
            (debian / "conffiles").write_text("\n".join(conffiles) + "\n")
        with open(debian / "md5sums", "w") as out:
            for p in files:
                out.write(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(stage)}\n")
        size_kib = sum((p.stat().st_size + 1023) // 1024 for p in files) + sum(
            1 for p in stage.rglob("*") if p.is_dir() and p != debian
        )

        description = pkg.get("description") or die("no package description")
        control = [
            f"Package: {name}",
            f"Version: {version}",
            f"Architecture: {arch}",
            f"Maintainer: {maintainer}",
            f"Installed-Size: {size_kib}",
        ]
        if depends:
            control.append(f"Depends: {', '.join(depends)}")
        control += [f"Section: {deb.get('section', 'misc')}", f"Priority: {deb.get('priority', 'optional')}"]
        if repository:
            control.append(f"Homepage: {repository}")
        control.append(f"Description: {description}")
        if deb.get("extended-description"):
            control.append(folded(deb["extended-description"]))
        (debian / "control").write_text("\n".join(control) + "\n")

        out_dir = args.out or target_dir / "debian"
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{name}_{version}_{arch}.deb"
        run(
            [
                tool("dpkg-deb"),
                "--root-owner-group",
                f"-Z{args.compress}",
                "--build",
                str(stage),
                str(out),
            ]
        )
        print(out)
        return 0
    finally:
        shutil.rmtree(stage_parent, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BuildError as e:
        print(f"deploy/deb/build.sh: {e}", file=sys.stderr)
        sys.exit(1)
