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
# Every decision goes to an audit log; the demo keeps its own (build/ is not committed). Every
# `review` decision becomes an item on a review desk (one SQLite file), with a copy of its image.
mkdir -p build
audit=build/demo-audit.jsonl
desk=build/demo-desk.db
rm -rf "$audit" "$audit".* "$desk" "$desk"-* build/demo-images   # a fresh log and desk each run
export MODERATION_REVIEW="sqlite:///$desk" MODERATION_REVIEW_IMAGES=build/demo-images
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
echo
# Which judge model? `moderation eval` runs the pipeline over labelled images once per model and
# puts precision, recall, cost and latency side by side (docs/eval.md). The recordings hold one
# answer per image, so offline the two models differ only in what their tokens would cost.
echo "== moderation eval --labels examples/labels.csv --images examples/images --offline examples/recordings --model … --model …"
"$bin/moderation" eval --labels examples/labels.csv --images examples/images \
  --offline examples/recordings --policies policies \
  --model us.anthropic.claude-haiku-4-5-20251001-v1:0 --model us.amazon.nova-lite-v1:0
echo
# The human review desk: the two `review` decisions above are items. A scripted reviewer decides
# them through the library's API, as a person does on the review page; each verdict is appended
# to the same audit log, in the same hash chain as the decisions.
echo "== examples/scripted_reviewer.py   (a reviewer works the desk $desk)"
worked=$("$bin/python" examples/scripted_reviewer.py "$MODERATION_REVIEW" "$audit")
echo "$worked"
reviewed=$(tail -n 1 <<<"$worked")
last=${reviewed##* }
echo
echo "== moderation review appeal ${last:0:12}… --reason … --by user-7   (the uploader appeals: back to the top of the desk)"
"$bin/moderation" review appeal "$last" --reason "it is a peck on the cheek from my grandmother" \
  --by user-7 --audit "$audit"
echo
echo "== moderation audit verify $audit   (the verdicts and the appeal are in the chain)"
"$bin/moderation" audit verify "$audit"
echo
echo "== moderation audit show ${last:0:12} $audit   (a reviewed decision, its verdict, the appeal, the final outcome)"
"$bin/moderation" audit show "$last" "$audit"
echo
# The appeal waits for a person: a reviewer for the demo, and the command that serves the page.
reviewers=build/demo-reviewers.yaml
rm -f "$reviewers"
token=$("$bin/moderation" review reviewer add you --tenants '*' --role senior --reviewers "$reviewers")
echo "== the review page on the demo's desk: run this, open http://127.0.0.1:8080 and log in with $token"
echo "MODERATION_REVIEW=$MODERATION_REVIEW MODERATION_AUDIT=$audit MODERATION_REVIEW_IMAGES=$MODERATION_REVIEW_IMAGES \\"
echo "  $bin/moderation review serve --reviewers $reviewers --policies policies"
echo
# Learning from the verdicts: review -> stats -> tune -> shadow -> replay (docs/tuning.md). A day of
# the forum's traffic, generated with a known truth, goes into the same log and desk with blind QA
# samples on, and a reviewer who knows the truth works the forum's queue (examples/backlog.py).
learn=build/demo-learn-policies
rm -rf "$learn"
cp -r policies "$learn"
printf '\n# Blind QA: a fifth of automatic approvals and rejections also go to a person.\nreview: {qa_sample: {approved: 0.2, rejected: 0.2}}\n' \
  >>"$learn/tenants/forum.yaml"
echo "== examples/backlog.py $learn   (a day of forum traffic with QA sampling; a reviewer works the desk)"
"$bin/python" examples/backlog.py "$learn" "$MODERATION_REVIEW" "$audit"
echo
echo "== moderation review stats $audit --tenant forum   (what the verdicts say of the automation)"
"$bin/moderation" review stats "$audit" --tenant forum
echo
# Thresholds that keep both error rates under 5% with 90% confidence and send the fewest images to
# people; a category with too few labels is left as it is, with what it would take. The proposal is
# written as a candidate; the live policy is never edited.
tuned="$learn/tenants/forum-tuned.yaml"
echo "== moderation tune forum $audit --policies $learn --max-false-approve 0.05 --max-false-reject 0.05 --confidence 0.9 --write $tuned"
"$bin/moderation" tune forum "$audit" --policies "$learn" --max-false-approve 0.05 \
  --max-false-reject 0.05 --confidence 0.9 --write "$tuned"
echo
# The candidate runs as a shadow of the live policy on the next day's traffic: every decision
# records what it would have done; replay --shadow compares the two.
printf 'shadow: [forum-tuned]\n' >>"$learn/tenants/forum.yaml"
echo "== examples/backlog.py $learn … 2   (the next day, with forum-tuned as a shadow)"
"$bin/python" examples/backlog.py "$learn" "$MODERATION_REVIEW" "$audit" 2
echo
echo "== moderation replay $audit --shadow --tenant forum   (live against the shadow, on the next day)"
"$bin/moderation" replay "$audit" --shadow --tenant forum --keep 5
