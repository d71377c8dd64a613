#!/usr/bin/env bash
# CI job: every shipped study (studies/*.toml) run with --quick (demo corpus, 1 seed, at most 10
# training steps, 8 test files, tiny models) into a temporary folder, then checked: --check
# verifies that each number of table.csv equals the mean of its runs' own evaluator summaries.
# The demo corpus is built once and shared by all studies. Prints each study's wall time; exits
# non-zero when a study fails or a check finds a mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d "${TMPDIR:-/tmp}/se-ci-studies.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
status=0
for study in studies/*.toml; do
  name=$(basename "$study" .toml)
  start=$(date +%s)
  if uv run tools/run_study.py "$study" --quick --no-progress --demo-dir "$WORK/demo-corpus" \
       --out "$WORK/$name" --check > "$WORK/$name.log" 2>&1; then
    echo "study $name: ok ($(( $(date +%s) - start )) s)"
  else
    echo "study $name: FAILED ($(( $(date +%s) - start )) s); its output:"
    cat "$WORK/$name.log"
    status=1
  fi
done
exit $status
