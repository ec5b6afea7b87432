#!/usr/bin/env bash
# Create the peer environment for the Scaper side of benchmarks/mixing.py and benchmarks/augment.py,
# and for tests/test_scaper.py (Scaper renders our JAMS, we import its JAMS; .ci/run runs this).
#
#   bash benchmarks/peers/setup_scaper.sh [VENV_DIR]
#
# VENV_DIR defaults to $STEMFORGE_PEERS_DIR/scaper-venv, i.e. /tmp/stemforge-peers/scaper-venv.
# Scaper 1.6.5 fails on NumPy >= 2 (np.Inf), so it lives in its OWN venv with numpy<2 and is
# never installed into stemforge's environment; the benchmarks call it through
# `<venv>/bin/python benchmarks/peers/scaper_run.py --json ...` and read timings back as JSON.
# System packages Scaper needs: `sox` (pysox), `rubberband` (pyrubberband, Scaper's default
# pitch/time mode) and libsox headers (Scaper depends on soxbindings, built from source on
# Python 3.11): on Debian `apt-get install sox rubberband-cli libsox-dev`. Idempotent.
set -euo pipefail

VENV="${1:-${STEMFORGE_PEERS_DIR:-/tmp/stemforge-peers}/scaper-venv}"
PY="${PYTHON:-python3}"

for tool in sox rubberband; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup_scaper.sh: '$tool' not found on PATH; install it (Debian: apt-get install sox rubberband-cli)" >&2
    exit 2
  fi
done
if [ ! -f /usr/include/sox.h ] && [ ! -f /usr/local/include/sox.h ]; then
  echo "setup_scaper.sh: sox.h not found; soxbindings (a Scaper dependency) builds against it: apt-get install libsox-dev" >&2
  exit 2
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import scaper, sys; sys.exit(scaper.__version__ != '1.6.5')" 2>/dev/null; then
  echo "scaper 1.6.5 already installed in $VENV"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "scaper==1.6.5" "numpy<2" "scipy<1.14" soundfile
"$VENV/bin/python" - <<'PY'
import numpy, scaper, sox
print(f"scaper {scaper.__version__}, numpy {numpy.__version__}, pysox ok")
PY
echo "peer venv ready: $VENV"
