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
