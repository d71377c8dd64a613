#!/usr/bin/env bash
# Per-package CI jobs: each library package installed alone into a fresh virtual environment
# (the package, its workspace dependencies given as folders, and its `test` extra; nothing
# else from the workspace), then that package's own tests. Third-party versions are held to
# the workspace lock with a constraints file, so these jobs test what CI's `uv sync` tests.
#
# The oldest-torch leg installs every library package on the oldest torch they declare
# (`torch>=2.4`: 2.3 lacks torch.nn.functional.rms_norm) with numpy < 2 and runs all their
# tests. PyPI's wheels are used; they run on the CPU.
#
# Usage: .ci/package_jobs.sh [PACKAGE ...]   (default: every package, then the oldest-torch leg;
#        `oldest-torch` names that leg alone). Exits non-zero when any job fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OLDEST_TORCH="2.4.1"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/se-ci-packages.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# workspace dependencies of each package (folders under packages/)
declare -A DEPS=(
  [diffattn]=""
  [se_data]=""
  [se_metrics]="se_data"
  [bandsplit]="diffattn se_data"
  [sgmse_cfg]="se_data"
  [aa_distill]=""
)
ORDER=(diffattn se_data se_metrics bandsplit sgmse_cfg aa_distill)

uv export --frozen --all-packages --group dev --no-emit-workspace --no-hashes \
  --format requirements-txt -q -o "$WORK/constraints.txt"
# the per-package venvs must not see the workspace's pytest settings' import paths either:
# pytest runs from the repository root (for the root conftest's fixtures) on installed code

job() {  # job NAME VENV PYTEST_TARGETS...
  local name=$1 venv=$2; shift 2
  echo "::: $name: pytest $*"
  local t0=$SECONDS
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"; then
    echo "::: $name: passed in $((SECONDS - t0)) s"
  else
    echo "::: $name: FAILED"; return 1
  fi
}

package_job() {
  local pkg=$1 venv="$WORK/venv-$1"
  uv venv -q -p 3.11 "$venv"
  local args=("$ROOT/packages/$pkg[test]")
  for d in ${DEPS[$pkg]}; do args+=("$ROOT/packages/$d"); done
  VIRTUAL_ENV=$venv uv pip install -q -c "$WORK/constraints.txt" "${args[@]}"
  # the package alone: a module of another workspace package must not be importable
  for other in "${ORDER[@]}"; do
    case " $pkg ${DEPS[$pkg]} " in *" $other "*) continue ;; esac
    if "$venv/bin/python" -c "import $other" 2>/dev/null; then
      echo "::: $pkg: $other is importable in its venv"; return 1
    fi
  done
  job "$pkg (alone)" "$venv" "packages/$pkg/tests"
}

oldest_torch_job() {
  local venv="$WORK/venv-oldest-torch" args=()
  uv venv -q -p 3.11 "$venv"
  for p in "${ORDER[@]}"; do args+=("$ROOT/packages/$p[test]"); done
  VIRTUAL_ENV=$venv uv pip install -q "torch==$OLDEST_TORCH" "numpy<2" "${args[@]}"
  "$venv/bin/python" -c "import torch, numpy; print('::: oldest torch leg: torch', torch.__version__, 'numpy', numpy.__version__)"
  job "oldest torch ($OLDEST_TORCH)" "$venv" packages
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ORDER[@]}" oldest-torch)
failed=()
for t in "${targets[@]}"; do
  if [ "$t" = oldest-torch ]; then
    oldest_torch_job || failed+=("$t")
  elif [ -n "${DEPS[$t]+x}" ]; then
    package_job "$t" || failed+=("$t")
  else
    echo "unknown package: $t (one of: ${ORDER[*]} oldest-torch)"; exit 2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "::: package jobs failed: ${failed[*]}"; exit 1
fi
echo "::: every package job passed"
