#!/usr/bin/env bash
# The checks of the imagined step that need a CUDA GPU, in one run: the test suite's CUDA-only tests, the
# no-host-synchronisation check (benchmarks/check_no_sync.py), then imagined steps/s of a trained model at
# batch 4,096, 65,536, 262,144 and 1,048,576, in fp32 and under bf16 autocast, eagerly and through
# torch.compile, beside the real vector env, recorded as the imagined_throughput_cuda block of
# benchmarks/RESULTS.md (and of the README where it quotes it).
#
#   bash benchmarks/gpu_checks.sh MODEL OUT
#
# MODEL: a trained checkpoint, e.g. the one that the CPU record times, which
#   python benchmarks/fast_decoder.py train --decoder mixture-narrow-scorer8 --steps 6000 \
#       --sample-states 4000 --name mixture-narrow-scorer8-6000 --out runs/fast
# writes (runs/fast/mixture-narrow-scorer8-6000/checkpoint.pt, about 4 minutes on 2 cores). OUT: a folder for
# the logs (gpu.txt, tests.log, no_sync.log, throughput.log) and a copy of the RESULTS.md the run wrote; take
# its block into a checkout with
#   python benchmarks/recording.py --take OUT/RESULTS.md imagined_throughput_cuda
#
# A Python there without gridmarl's own dependencies (torch, numpy, matplotlib and tqdm assumed) gets them
# from wheels in .whl, fetched beforehand where pip reaches its index:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl \
#       gymnasium==1.4.0 pettingzoo==1.27.0 farama-notifications==0.0.6
# A copy of the checkout names its commit in GRIDMARL_CODE_VERSION (the record says so, and what git reads
# in the copy, if anything: a copied tree may carry an older commit's git state).
# A check that fails does not stop the ones after it (a GPU is lent for minutes); the script then exits 1
# and names the checks that failed.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bash benchmarks/gpu_checks.sh MODEL OUT}
out=${2:?usage: bash benchmarks/gpu_checks.sh MODEL OUT}
[[ -f "$model" ]] || { echo "MODEL must be a checkpoint file, got '$model' (no such file)" >&2; exit 2; }
mkdir -p "$out"
py=${PYTHON:-python3}
if ! "$py" -c "import gymnasium, pettingzoo" 2>/dev/null; then
    compgen -G ".whl/*.whl" >/dev/null || { echo "gymnasium/pettingzoo missing and no wheels in .whl" >&2; exit 2; }
    "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gridmarl-site .whl/*.whl
    export PYTHONPATH=/tmp/gridmarl-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv 2>&1 | tee "$out/gpu.txt" || true
failed=()
"$py" -m pytest -q -p no:cacheprovider tests/test_fast_decoder.py tests/test_sampling.py -k gpu 2>&1 | tee "$out/tests.log" \
    || failed+=("the CUDA tests ($out/tests.log)")
"$py" benchmarks/check_no_sync.py 2>&1 | tee "$out/no_sync.log" || failed+=("check_no_sync.py ($out/no_sync.log)")
"$py" benchmarks/imagined_throughput.py --model "$model" --device cuda --batches 4096 65536 262144 1048576 \
    --amp both --compile --no-planners --record 2>&1 | tee "$out/throughput.log" \
    || failed+=("imagined_throughput.py ($out/throughput.log)")
cp benchmarks/RESULTS.md "$out/RESULTS.md"
if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
