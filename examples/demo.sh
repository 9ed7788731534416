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
rm -f "$audit" "$audit".*   # a fresh log each run (with its lock file and any rotated files)
for tenant in default kids; do
  echo "== moderation check --offline examples/recordings --tenant $tenant --audit $audit examples/images/*"
  # Exit 1 (some image not approved) and 3 (some input refused) are the point of the demo.
  "$bin/moderation" check --offline examples/recordings --tenant "$tenant" --audit "$audit" \
    examples/images/* || true
  echo
done
# A backlog run stopped half-way continues where it stopped: with --audit naming the log, inputs
# already decided under the tenant's current policy are skipped (the three non-images are tried
# again: an error is not a decision).
echo "== moderation check --offline examples/recordings --tenant kids --audit $audit examples/images/   (again: resumes)"
"$bin/moderation" check --offline examples/recordings --tenant kids --audit "$audit" \
  examples/images/ || true
echo
echo "== moderation audit verify $audit   (each record is hash-chained to the one before it)"
"$bin/moderation" audit verify "$audit"
echo
echo "== moderation audit stats $audit"
"$bin/moderation" audit stats "$audit"
echo
# Before a policy change ships: what would it have done to the decisions already made? The
# proposal is examples/policy-change/kids.yaml (three thresholds changed, marked CHANGED).
changed=build/demo-policies
rm -rf "$changed"
cp -r policies "$changed"
cp examples/policy-change/kids.yaml "$changed/tenants/kids.yaml"
echo "== moderation replay $audit --policies $changed   (policies/ with the proposed kids.yaml)"
"$bin/moderation" replay "$audit" --policies "$changed"
