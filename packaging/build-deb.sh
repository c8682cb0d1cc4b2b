#!/usr/bin/env bash
# Build the Debian package of s3dsi: DIST/s3dsi_VERSION-1_ARCH.deb (DIST: first argument, default dist/).
#
# Layout: /opt/s3dsi/lib holds s3dsi and its Python dependencies, installed with pip for the system
# python3 (so the package only depends on python3 and adduser); /opt/s3dsi/bin/s3dsi is the launcher,
# linked from /usr/bin/s3dsi; the unit goes to /lib/systemd/system; the example configuration goes to
# /etc/gridftp.d and /etc/globus as conffiles (an edited file is never overwritten on upgrade).
# The dependencies come from PyPI, or from pip's cache and configured indexes when offline
# (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX are honoured). Compiled dependencies (argon2-cffi,
# crc32c, uvloop) tie the package to the architecture and to the python3 minor version it was built with.
#
# Environment: PYTHON (default /usr/bin/python3), S3DSI_EXTRAS (default "metrics"; "metrics,demo" adds
# moto for `s3dsi serve --demo`), DEB_REVISION (default 1), SOURCE_DATE_EPOCH (reproducible mtimes).
set -euo pipefail
umask 022

here="$(cd "$(dirname "$0")" && pwd)"
src="$(dirname "$here")"
dist="$(mkdir -p "${1:-$src/dist}" && cd "${1:-$src/dist}" && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
EXTRAS="${S3DSI_EXTRAS:-metrics}"
REVISION="${DEB_REVISION:-1}"

command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is required (apt install dpkg-dev)" >&2; exit 1; }
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
    || { echo "build-deb.sh: $PYTHON must be Python 3.11 or newer" >&2; exit 1; }
"$PYTHON" -m pip --version >/dev/null 2>&1 || "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
    || { echo "build-deb.sh: $PYTHON needs pip or venv (apt install python3-pip or python3-venv)" >&2; exit 1; }

version="$("$PYTHON" - "$src/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["project"]["version"])
PY
)"
pyminor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
pynext="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')"
arch="$(dpkg --print-architecture)"
python_path="$(command -v "$PYTHON")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
prefix="$root/opt/s3dsi"

echo "== s3dsi $version for python $pyminor ($arch)"
# The dependencies (and the extras' ones) as pyproject.toml lists them, one requirement per line.
"$PYTHON" - "$src/pyproject.toml" "$EXTRAS" > "$work/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
wanted = [e for e in sys.argv[2].split(",") if e]
print("\n".join(project["dependencies"] + [r for e in wanted for r in project["optional-dependencies"][e]]))
PY
# pip installs into a plain directory (--target), which needs no virtual environment; without a pip for
# $PYTHON (Debian: python3-pip), a throwaway venv provides one.
pip=("$PYTHON" -m pip)
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m venv "$work/build-env"
    pip=("$work/build-env/bin/python" -m pip)
fi
"${pip[@]}" install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
    --only-binary=:all: --target "$prefix/lib" -r "$work/requirements.txt"
rm -rf "$prefix/lib/bin"  # console scripts pointing at the build environment
# s3dsi itself is pure Python: copied as it is (no wheel build needed), then byte-compiled.
cp -r "$src/src/s3dsi" "$prefix/lib/s3dsi"
find "$prefix/lib/s3dsi" -name '__pycache__' -prune -exec rm -rf {} +
"$PYTHON" -m compileall -q "$prefix/lib/s3dsi"

install -d "$prefix/bin" "$root/usr/bin"
cat > "$prefix/bin/s3dsi" <<LAUNCHER
#!$python_path -I
# s3dsi launcher: the s3dsi installed in ../lib, run by the system Python in isolated mode.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "lib"))
from s3dsi.cli.main import main

sys.exit(main())
LAUNCHER
chmod 0755 "$prefix/bin/s3dsi"
ln -s /opt/s3dsi/bin/s3dsi "$root/usr/bin/s3dsi"

install -D -m 0644 "$src/etc/gridftp.d/gridftp-s3" "$root/etc/gridftp.d/gridftp-s3"
install -D -m 0644 "$src/etc/globus-gridftp-server-s3.conf" "$root/etc/globus/globus-gridftp-server-s3.conf"
install -D -m 0644 "$here/logrotate" "$root/etc/logrotate.d/s3dsi"
install -d -m 0755 "$root/etc/s3dsi"
sed 's#^ExecStart=.*#ExecStart=/opt/s3dsi/bin/s3dsi serve#' "$src/systemd/s3dsi.service" \
    | install -D -m 0644 /dev/stdin "$root/lib/systemd/system/s3dsi.service"
doc="$root/usr/share/doc/s3dsi"
install -D -m 0644 "$here/debian/copyright" "$doc/copyright"
install -m 0644 "$src/README.md" "$doc/README.md"
install -m 0644 "$src/docs/admin.md" "$doc/admin.md"

install -d "$root/DEBIAN"
install -m 0644 "$here/debian/conffiles" "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version-$REVISION/" -e "s/@ARCH@/$arch/" -e "s/@PYMINOR@/$pyminor/" \
    -e "s/@PYNEXT@/$pynext/" -e "s/@SIZE@/$installed_size/" "$here/debian/control.in" > "$root/DEBIAN/control"

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi
deb="$dist/s3dsi_${version}-${REVISION}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip -z3 --build "$root" "$deb" >/dev/null
echo "$deb"
