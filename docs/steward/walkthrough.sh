#!/usr/bin/env bash
# The steward walkthrough (docs/steward.md), run as written from the repository root.
# SYNTHGATE defaults to the installed `synthgate`; set SYNTHGATE="python -m synthgate.flows.cli" for a checkout.
set -u
SG=${SYNTHGATE:-synthgate}
run() { echo "\$ synthgate $*"; $SG "$@" 2>&1 | grep -v "INFO\|ephemeral docs site"; echo "(exit ${PIPESTATUS[0]})"; echo; }
rm -rf out/steward
python docs/steward/make_table.py out/steward/cases.duckdb 20000
echo
run contract infer --db out/steward/cases.duckdb --table cases -o out/steward/cases.draft.yaml
grep -v '^#' out/steward/cases.draft.yaml | sed -n '/^columns:/,/^privacy:/p' | grep -E '^  [a-z_]+:|kind:|derived|from:|as:|description' | head -40
grep -A4 '^privacy:' out/steward/cases.draft.yaml
echo
run contract check out/steward/cases.draft.yaml --db out/steward/cases.duckdb
run contract check docs/steward/cases.contract.yaml --db out/steward/cases.duckdb
run run --config docs/steward/run.yaml --quiet
run budget show --table cases --out out/steward
