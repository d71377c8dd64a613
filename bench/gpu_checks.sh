#!/usr/bin/env bash
# Every GPU measurement the issues ask for, in one go (about 8 minutes on one H100):
#   bandsplit:           BSRNN / BSDT training step and RTF vs the per-band-loop forms, at the
#                        bench's 6 x 2 s and at the reference's 32 x 2 s (float32, and bf16 autocast),
#                        and with CUDA graphs (bench/cuda_graph_step.py);
#   aa_distill:          the full-loss epoch (target: <= 5 s), NMR float32 vs float64, inference;
#   sgmse_cfg:           RTF of every sampler / N / guidance on SGMSE+'s NCSN++ (bf16 autocast and
#                        float32) and on SmallUNet, and no host synchronisation inside the samplers;
#   profiles:             where BSRNN's training step spends its time (bench/profile_step.py);
#   the tools on CUDA:    short tools/train_bsdt.py, train_sgmse.py and train_aa.py runs (end to end),
#                        train_bsdt's demo epoch eager vs --cuda-graphs, and the CUDA-only tests
#                        (cuda_tests: run with pytest, so PYTHON must have it).
#
#   bash bench/gpu_checks.sh [OUT_DIR]          # PYTHON defaults to "uv run python"
#   SMOKE=1 DEVICE=cpu bash bench/gpu_checks.sh  # tiny sizes: checks the script itself on a CPU
#   TRAIN_OUT=DIR: where the train_bsdt run writes (default OUT_DIR/train_bsdt)
#   STEPS="aa_speed profile_bsrnn_b32": run only the named steps
#
# Each step has its own time limit and log (OUT_DIR/<step>.log); a failing step does not stop
# the others, and the script's exit status is the number of failed steps.
set -u -o pipefail
OUT=${1:-runs/gpu-checks}
mkdir -p "$OUT"
PY=${PYTHON:-uv run python}
DEV=${DEVICE:-cuda}
export PYTHONUNBUFFERED=1
failed=0

step() {  # step NAME LIMIT_S ARGS...
    local name=$1 limit=$2
    shift 2
    if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi
    echo "=== $name ($(date +%T), limit ${limit} s): $*"
    local t0=$SECONDS
    timeout "$limit" $PY "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: rc $rc in $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

if [ "${SMOKE:-0}" = 1 ]; then
    BS_A=(--quick --models bsrnn,bsdt --num-channel 16 --num-layer 1 --rtf-seconds 1 --no-memory)
    BS_B=(--quick --models bsrnn --num-channel 16 --num-layer 1 --batch 2 --rtf-seconds 1 --no-memory)
    BS_STEPS=(--quick --models bsrnn,bsdt --num-channel 16 --num-layer 1 --rtf-seconds 1 --no-memory)
    BS_AMP=(--quick --models bsrnn --num-channel 16 --num-layer 1 --rtf-seconds 1 --no-memory)
    CG=(--num-channel 16 --num-layer 1 --batch 2 --repeats 2)
    TG=(--epochs 1 --steps-per-epoch 4 --batch-size 2 --valid-pesq-files 0 --no-test)
    AA=(--quick --batch 4 --measure-tones 2 --epoch-tones 8 --no-inference)
    SG_AMP=(--backbone ncsnpp:storm_6m --samplers pc sb_ode --N 2 --seconds 1)
    SG_F32=(--backbone ncsnpp:storm_6m --samplers pc --N 2 --seconds 1 --no-two-forwards)
    SG_SMALL=(--backbone smallunet --samplers pc --N 2 --seconds 1 --no-two-forwards)
    TR=(--epochs 1 --steps-per-epoch 2 --valid-pesq-files 1 --test-files 2 --batch-size 2)
    TS=(--epochs 1 --steps-per-epoch 2 --test-files 1 --test-N 2 --frames 32 --unet-channels 4,8 --valid-batches 1)
    TA=(--num-tones 4 --batch-size 2 --valid-notes 2 --valid-levels-db -6 --channels 2 1 --dilations1 1 2 4
        --dilations2 1 2 --no-progress --epochs 1)
    SG_SYNC=(--backbone smallunet --samplers pc sb_ode --N 2 --seconds 1 --no-two-forwards)
    PR_B32=(--batch 2 --num-layer 1 --rows 5 --inference-seconds 2)
    PR_B6=(--batch 1 --num-layer 1 --rows 5 --inference-seconds 2)
else
    BS_A=()
    BS_B=(--batch 32 --models bsrnn,bsdt,bsdt-v1 --no-memory --repeats 5)
    BS_STEPS=(--models bsrnn,bsdt,bsdt-v1 --no-memory --warmup 3 --repeats 10)
    BS_AMP=(--models bsrnn --no-memory --warmup 3 --repeats 10)
    CG=()
    TG=(--epochs 1 --steps-per-epoch 150 --valid-pesq-files 0 --no-test)
    AA=()
    SG_AMP=(--backbone ncsnpp --samplers pc ode sb_ode --N 5 10 30)
    SG_F32=(--backbone ncsnpp --samplers pc sb_ode --N 30)
    SG_SMALL=(--backbone smallunet --samplers pc sb_ode --N 5 30)
    TR=(--epochs 2 --steps-per-epoch 40 --test-files 16)
    TS=(--epochs 2 --steps-per-epoch 40 --test-files 4)
    TA=(--teacher ../shared/data/nam/core_wavenet_standard.nam --epochs 2 --num-tones 400 --no-progress)
    SG_SYNC=(--backbone ncsnpp --samplers pc ode sb_ode --N 5 --no-two-forwards)
    PR_B32=(--batch 32 --inference-seconds 60)
    PR_B6=(--batch 6 --inference-seconds 10)
fi
[ "$DEV" = cuda ] && which nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

step bandsplit_b6 150 bench/bandsplit_speed.py --device "$DEV" "${BS_A[@]}"
step bandsplit_b32 100 bench/bandsplit_speed.py --device "$DEV" "${BS_B[@]}"
step bandsplit_b32_amp 100 bench/bandsplit_speed.py --device "$DEV" --amp "${BS_B[@]}"
step bandsplit_b6_steps 120 bench/bandsplit_speed.py --device "$DEV" "${BS_STEPS[@]}"
step bsrnn_b6_amp 90 bench/bandsplit_speed.py --device "$DEV" --amp "${BS_AMP[@]}"
step cuda_graphs_b6 120 bench/cuda_graph_step.py --device "$DEV" "${CG[@]}"
step cuda_graphs_b6_amp 120 bench/cuda_graph_step.py --device "$DEV" --amp "${CG[@]}"
# the main job's epoch time, eager vs --cuda-graphs (the log's "(N s)"), and the CUDA-only tests
step train_bsdt_eager 120 tools/train_bsdt.py --device "$DEV" --out "${TRAIN_OUT:-$OUT/train_bsdt}-eager" "${TG[@]}"
step train_bsdt_graphs 120 tools/train_bsdt.py --device "$DEV" --cuda-graphs --out "${TRAIN_OUT:-$OUT/train_bsdt}-graphs" "${TG[@]}"
step cuda_tests 180 -m pytest -q -p no:cacheprovider packages/bandsplit/tests/test_bandsplit_cuda_graphs.py tests/test_tools_train_bsdt.py -k cuda_graphs
step aa_speed 120 bench/aa_speed.py --device "$DEV" "${AA[@]}"
step sampler_ncsnpp_bf16 150 bench/sampler_speed.py --device "$DEV" --amp --check-sync "${SG_AMP[@]}"
step sampler_ncsnpp_fp32 60 bench/sampler_speed.py --device "$DEV" "${SG_F32[@]}"
step sampler_smallunet 45 bench/sampler_speed.py --device "$DEV" "${SG_SMALL[@]}"
step sampler_sync 60 bench/sampler_speed.py --device "$DEV" --check-sync "${SG_SYNC[@]}"
step sampler_sync_bf16 60 bench/sampler_speed.py --device "$DEV" --check-sync --amp "${SG_SYNC[@]}"
step profile_bsrnn_b32 90 bench/profile_step.py --device "$DEV" "${PR_B32[@]}"
step profile_bsrnn_b6 90 bench/profile_step.py --device "$DEV" "${PR_B6[@]}"
step profile_bsrnn_b32_amp 90 bench/profile_step.py --device "$DEV" --amp --no-extras "${PR_B32[@]}"
step profile_bsdt_b6 90 bench/profile_step.py --device "$DEV" --model bsdt --num-heads 4 "${PR_B6[@]}"
step train_bsdt 120 tools/train_bsdt.py --device "$DEV" --out "${TRAIN_OUT:-$OUT/train_bsdt}" "${TR[@]}"
step train_sgmse 120 tools/train_sgmse.py --device "$DEV" --out "${TRAIN_OUT:-$OUT/train_bsdt}-sgmse" "${TS[@]}"
step train_aa 120 tools/train_aa.py --device "$DEV" --out "${TRAIN_OUT:-$OUT/train_bsdt}-aa" "${TA[@]}"
echo "=== failed steps: $failed"
exit "$failed"
