#!/usr/bin/env bash
# The researcher's first real run, timed stage by stage: a fresh clone of this repository,
# its install (not timed), then `dvc exp run` on a local copy of RAVDESS, each output line
# stamped with the seconds since the run began.
#
#   bash benchmarks/real_run.sh /tmp/clone /path/to/ravdess fold1.log
#   bash benchmarks/real_run.sh /tmp/clone6 /path/to/ravdess six.log -S 'split.folds=[1,2,3,4,5,6]'
#   python benchmarks/stage_times.py fold1.log        # seconds per stage group
set -uo pipefail
clone="$1"; data="$2"; log="$(realpath "$3")"; shift 3
git clone -q "$(dirname "$0")/.." "$clone" && cd "$clone" || exit 1
python3 -m venv .venv && . .venv/bin/activate && pip install -q -e ".[whisper]" > /dev/null 2>&1
echo "install done $(date +%s)" > "$log"
start=$(date +%s)
dvc exp run -S data.source=local -S "data.local_path=$data" "$@" 2>&1 |
    while IFS= read -r line; do printf '%s %s\n' "$(( $(date +%s) - start ))" "$line"; done >> "$log"
echo "rc=${PIPESTATUS[0]} total=$(( $(date +%s) - start ))s" >> "$log"
