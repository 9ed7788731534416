#!/usr/bin/env bash
# `make demo`: the main job, offline. Validates the shipped policies, then shows what each tenant's
# policy does with recorded Rekognition responses.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin

echo "== moderation policy validate policies"
"$bin/moderation" policy validate policies
echo
echo "== moderation policy try examples/detections/*.json   (triage of recorded DetectModerationLabels responses)"
"$bin/moderation" policy try --policies policies examples/detections/*.json
echo
# Every decision goes to an audit log; the demo keeps its own (build/ is not committed).
mkdir -p build
audit=build/demo-audit.jsonl
: > "$audit"
for tenant in default kids; do
  echo "== moderation check --offline examples/recordings --tenant $tenant --audit $audit examples/images/*"
  # Exit 1 (some image not approved) and 3 (some input refused) are the point of the demo.
  "$bin/moderation" check --offline examples/recordings --tenant "$tenant" --audit "$audit" \
    examples/images/* || true
  echo
done
echo "== $(wc -l < "$audit") decisions are in the audit log $audit (one JSON line each)"
