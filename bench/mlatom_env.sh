#!/usr/bin/env bash
# Create bench/.mlatom-venv: MLatom 3.25.5 beside levelup, for side-by-side benchmarks only.
# MLatom is never a levelup dependency. Recipe from ../shared/reference/anchor.md: a plain
# `pip install mlatom` with torch 2.13 backtracks to an old MLatom that cannot train, so pin
# torchani/numpy and install mlatom itself without its dependencies.
# Usage: bash bench/mlatom_env.sh   (idempotent; about 1-5 minutes, ~1.7 GB)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.mlatom-venv"
python="${PYTHON:-python3.11}"
if [ -x "$venv/bin/python" ] && MLATOM_NO_VERSION_CHECK=1 "$venv/bin/python" -c "import mlatom, torchani" 2>/dev/null; then
    echo "MLatom environment ready: $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet torch==2.13.0 2>&1 | grep -v "is ignored" || true
# MLatom's own runtime dependencies (it is installed with --no-deps), numpy<2 in the same call
"$venv/bin/pip" install --quiet torchani==2.2.4 'numpy<2' 'setuptools<81' pyscf matplotlib tqdm scipy \
    joblib psutil fortranformat 'geometric<1.1.1' rmsd statsmodels pyh5md 2>&1 | grep -v "is ignored" || true
"$venv/bin/pip" install --quiet --no-deps mlatom==3.25.5 2>&1 | grep -v "is ignored" || true
MLATOM_NO_VERSION_CHECK=1 "$venv/bin/python" -c "import mlatom, torchani, torch; print('MLatom ready', torch.__version__, torchani.__version__)"
