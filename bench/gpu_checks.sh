#!/usr/bin/env bash
# Every GPU measurement the issues ask for, in parts ordered by priority (GPU time is scarce: run
# the first part alone first; each part fits one call of under 8 minutes on one H100 / H200):
#
#   speed    (first)  diffusion sampling: PC N=30 on SGMSE+'s NCSN++ in bf16, eager vs the backbone
#                     compiled (CUDA graph per padded length), with the output difference and no host
#                     synchronisation (--check-sync); a folder of 1-4 s files one at a time vs batched by
#                     padded length (RTF, files/s); the training step at the published BSRNN size
#                     (N=64, L=5, 6 x 2 s): per-band loop vs vectorised, bf16, CUDA graphs, and every
#                     option's validation PESQ after the same short demo run (bench/train_options.py);
#                     BSDT's eager step against BSRNN's; a --gan step against a plain one; the
#                     anti-aliasing full-loss epoch and student inference against NAM's module, in
#                     float32 and with a bf16 student forward, and bf16's per-band NMR-S after a
#                     fixed short fine-tuning run against float32's (0.1 dB allowance)
#   studies           the GPU subset of the BSDT ablation at research sizes, 3 seeds
#                     (bench/bsdt_ablation_gpu.toml through tools/run_study.py)
#   aa                the anti-aliasing distillation's Experiment A on a real .nam teacher (train_aa +
#                     analyze_aa per-band pass / fail)
#   earlier           the measurements of earlier rounds (bandsplit speed and memory at 6 / 32 x 2 s,
#                     CUDA graphs, sampler rows of every sampler / N, profiles, the tools end to end
#                     on CUDA and the CUDA-only tests)
#
#   bash bench/gpu_checks.sh [--part speed|studies|aa|earlier|all] [OUT_DIR]   # default: --part speed
#   SMOKE=1 DEVICE=cpu bash bench/gpu_checks.sh --part all  # tiny sizes: checks the script itself on a CPU
#   PYTHON defaults to "uv run python"; TRAIN_OUT=DIR: where the tool runs write (default OUT_DIR/train_bsdt)
#   STEPS="aa_speed profile_bsrnn_b32": run only the named steps (of the chosen part)
#
# Each step has its own time limit and log (OUT_DIR/<step>.log); a failing step does not stop
# the others, and the script's exit status is the number of failed steps.
set -u -o pipefail
PART=speed
if [ "${1:-}" = --part ]; then PART=${2:?--part needs a name}; shift 2; fi
case "$PART" in speed|studies|aa|earlier|all) ;; *) echo "unknown --part $PART (speed, studies, aa, earlier, all)"; exit 2;; esac
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
    SP_SAMPLER=(--backbone smallunet --samplers pc --N 2 --seconds 1 --compile-seconds 1.5 --no-two-forwards)
    SP_STEP=(--quick --models bsrnn,bsdt --num-channel 16 --num-layer 1 --rtf-seconds 1 --no-memory)
    SP_OPTIONS=(--steps 4 --num-channel 16 --num-layer 1 --valid-pesq-files 2)
    SP_GAN=(--steps 2 --warmup 1)
    SP_BATCH=(--files 4 --batch-size 2 --rounds 1 --models bsrnn,sgmse --backbone ncsnpp:storm_6m --amp --N 1)
    SP_AA=(--quick --batch 4 --measure-tones 2 --epoch-tones 8 --quality-steps 1 --quality-batch 2 --quality-tones 2)
    LIM_AA=900  # a float64 standard-WaveNet teacher and analysis on a (possibly busy) 2-core CPU
    ST_STUDY=(--quick)
    AA_EXP=(--teacher ../shared/data/nam/core_wavenet_standard.nam --f0-sampling linear_hz --f0-range-hz 27.5 18000
            --lowpass-hz 18000 22000 --num-tones 4 --batch-size 4 --epochs 1 --valid-notes 1 --valid-levels-db -18
            --no-progress)
    AA_AN=(--teacher ../shared/data/nam/core_wavenet_standard.nam --f-range 27.5 18000 --num-tones 4 --no-plots
           --no-progress)
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
    SP_SAMPLER=(--backbone ncsnpp --samplers pc --N 30 --seconds 4 --compile-seconds 2.5 6 --no-two-forwards)
    SP_STEP=(--models bsrnn,bsdt --no-memory --warmup 3 --repeats 10 --rtf-seconds 10)
    SP_OPTIONS=(--steps 300 --valid-pesq-files 16)
    SP_GAN=(--steps 8 --warmup 2)
    SP_BATCH=(--files 32 --batch-size 8 --N 30 --rounds 1 --backbone ncsnpp --amp)
    SP_AA=(--quality-steps 40 --quality-batch 40 --quality-tones 50)
    LIM_AA=150
    ST_STUDY=(--seeds 3)
    AA_EXP=(--teacher ../shared/data/nam/core_wavenet_standard.nam --f0-sampling linear_hz --f0-range-hz 27.5 18000
            --lowpass-hz 18000 22000 --no-progress)
    AA_AN=(--teacher ../shared/data/nam/core_wavenet_standard.nam --f-range 27.5 18000 --num-tones 50 --no-progress)
fi
[ "$DEV" = cuda ] && which nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }

if part speed; then
    # diffusion sampling: eager vs compiled (a CUDA graph per padded length), bf16, and host syncs
    step speed_sampler_compile 240 bench/sampler_speed.py --device "$DEV" --amp --compile "${SP_SAMPLER[@]}"
    step speed_sampler_sync 60 bench/sampler_speed.py --device "$DEV" --amp --check-sync "${SG_SYNC[@]}"
    # a folder's files bucketed by padded length: SGMSE+'s full-size NCSN++, PC N=30, bf16, RTF one at a
    # time vs batched (the goal: RTF <= 0.05), beside the bandsplit models' batched inference
    step speed_batched 240 bench/batched_inference.py --device "$DEV" "${SP_BATCH[@]}"
    # the training step at the published BSRNN size: loop vs vectorised in float32 and bf16, CUDA graphs,
    # BSDT's eager step against BSRNN's (same table), then every option's quality after a short run
    step speed_step_fp32 100 bench/bandsplit_speed.py --device "$DEV" "${SP_STEP[@]}"
    step speed_step_bf16 100 bench/bandsplit_speed.py --device "$DEV" --amp "${SP_STEP[@]}"
    step speed_step_graphs 100 bench/cuda_graph_step.py --device "$DEV" --amp "${CG[@]}"
    step speed_options_quality 200 bench/train_options.py --device "$DEV" "${SP_OPTIONS[@]}"
    step speed_gan 60 bench/gan_step.py "${SP_GAN[@]}"
    # float32 and bf16 rows side by side, then the bf16 quality check (40 steps x 40 tones, twice)
    step speed_aa "$LIM_AA" bench/aa_speed.py --device "$DEV" "${SP_AA[@]}"
fi
if part studies; then
    step studies_bsdt_ablation_gpu 480 tools/run_study.py bench/bsdt_ablation_gpu.toml --device "$DEV" \
        --out "${TRAIN_OUT:-$OUT/train_bsdt}-study" --no-progress "${ST_STUDY[@]}"
fi
if part aa; then
    step aa_experiment_a 360 tools/train_aa.py --device "$DEV" --out "${TRAIN_OUT:-$OUT/train_bsdt}-aa-expA" "${AA_EXP[@]}"
    step aa_experiment_a_analysis 120 tools/analyze_aa.py --device "$DEV" \
        --student "${TRAIN_OUT:-$OUT/train_bsdt}-aa-expA/student.nam" --out "$OUT/aa-expA-analysis" "${AA_AN[@]}"
fi
part earlier || { echo "=== failed steps: $failed"; exit "$failed"; }

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
