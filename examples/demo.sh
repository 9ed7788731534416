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
for tenant in default kids; do
  echo "== moderation check --offline examples/recordings --tenant $tenant examples/images/*"
  # Exit 1 (some image not approved) and 3 (some input refused) are the point of the demo.
  "$bin/moderation" check --offline examples/recordings --tenant "$tenant" examples/images/* || true
  echo
done
