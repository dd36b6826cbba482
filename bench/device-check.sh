#!/usr/bin/env bash
# The GPU check: everything the lent NVIDIA machine is to measure, in one call of the device tool (under 8 minutes).
# That machine has no Node and reaches no registry, so it runs what bench/pack-for-device.sh packed
# (gpu-carry.tar.xz: Node, the CLI bundled into one file, the webgpu addon, the Vulkan loader):
#   1. nvidia-smi -L, and the adapter Dawn sees (it must be the NVIDIA GPU, not a software one);
#   2. predict fixtures/0..9.png on webgpu;
#   3. bench --sweep on webgpu at B = 1 and B = 64, then the same on webasm (the machine's CPU cores), for the
#      CPU/GPU ratio in the same call;
#   4. the anchor: PyTorch on CUDA, the same CNN and weights, N models in a loop against torch.func.vmap over
#      stack_module_state (bench/torch_anchor.py, with the machine's python3);
#   5. a summary table (bench/device_summary.py).
# Every JSON and log goes to $OUT (the device tool's folder; test-output/device-check here). A failed step is
# logged and the next one runs; the exit status is the number of failed steps (0: all passed). Each step has a
# time limit, and together they stay under 8 minutes.
#
# On the device (see README, "The GPU check"):
#   bash bench/pack-for-device.sh        # here, once: writes the git-ignored gpu-carry.tar.xz
#   device run, carry gpu-carry.tar.xz (and .gl, the Vulkan loader packages, if the machine lacks them):
#   bash bench/device-check.sh
# Anywhere else with an NVIDIA GPU and its Vulkan driver, the same command works from a clone (Node is then not
# needed either). `--local` runs every step here, on SwiftShader's software Vulkan and with small sweeps, so the
# script is known to work before any device time is spent (CI runs it).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=device
[ "${1:-}" = --local ] && mode=local
out=${OUT:-$root/test-output/device-check}
mkdir -p "$out"
: > "$out/check.log"
failed=0
log() { echo "device-check: $*" | tee -a "$out/check.log" >&2; }

# step NAME SECONDS COMMAND...: stdout to $out/NAME.json, stderr to $out/NAME.log
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  if timeout "$limit" "$@" > "$out/$name.json" 2> "$out/$name.log"; then
    log "$name: ok ($((SECONDS - t0)) s)"
  else
    log "$name: FAILED with exit $? after $((SECONDS - t0)) s; the end of $name.log:"
    tail -n 5 "$out/$name.log" | sed 's/^/  /' | tee -a "$out/check.log" >&2
    failed=$((failed + 1))
  fi
}

# --- what runs the CLI ---------------------------------------------------------------------------------------
if [ "$mode" = local ]; then
  # pack exactly what the device gets, and run from the unpacked carry
  bash bench/pack-for-device.sh >> "$out/check.log" 2>&1 || { log "packing failed"; exit 1; }
fi
if [ ! -f gpu-carry.tar.xz ]; then
  log "gpu-carry.tar.xz is missing: run bench/pack-for-device.sh first (and carry it)"
  exit 1
fi
rm -rf gpu-carry && mkdir -p gpu-carry && tar -xJf gpu-carry.tar.xz -C gpu-carry
# here, the unpacked carry (a Node binary among it) goes again at the end
[ "$mode" = local ] && trap 'rm -rf "$root/gpu-carry"' EXIT
export PATH="$root/gpu-carry/bin:$PATH"
export LD_LIBRARY_PATH="$root/gpu-carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cli=(node "$root/gpu-carry/cli/bundle.mjs")

if [ "$mode" = device ]; then
  # the loader packages the device tool's README says to carry, when they came along
  if compgen -G ".gl/*.deb" > /dev/null; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  # the driver's own manifests (its folder is mounted at /usr/local/nvidia)
  [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  sweep=1,2,4,8,16,32,64; gpu_sweep64=$sweep
  gpu_b1=(--iters 100 --warmup 10); gpu_b64=(--iters 20 --warmup 3)
  cpu_b1=(--iters 20 --warmup 3); cpu_b64=(--iters 3 --warmup 1); cpu_sweep64=1,2,4,8,16
  torch_b1=(--iters 100 --warmup 10); torch_b64=(--iters 20 --warmup 3)
  log "nvidia-smi -L: $(nvidia-smi -L 2>&1 | tr '\n' ' ')"
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1
else
  if [ -z "${VK_ICD_FILENAMES:-}" ]; then
    VK_ICD_FILENAMES="$(dpkg -L chromium-common 2>/dev/null | grep 'vk_swiftshader_icd\.json$' | head -n 1)"
    export VK_ICD_FILENAMES
  fi
  [ -n "$VK_ICD_FILENAMES" ] || { log "--local needs SwiftShader's Vulkan driver: apt-get install chromium-common libvulkan1"; exit 1; }
  sweep=1,2; gpu_sweep64=1 # SwiftShader takes seconds a call at B = 64
  gpu_b1=(--iters 3 --warmup 1); gpu_b64=(--iters 1 --warmup 0)
  cpu_b1=(--iters 3 --warmup 1); cpu_b64=(--iters 1 --warmup 0); cpu_sweep64=1,2
  torch_b1=(--iters 3 --warmup 1); torch_b64=(--iters 1 --warmup 0)
fi
log "mode $mode, out $out, node $(node --version)"

# --- 1, 2: the adapter, and predictions on it -----------------------------------------------------------------
step predict-webgpu 60 "${cli[@]}" predict fixtures/0.png fixtures/1.png fixtures/2.png fixtures/3.png fixtures/4.png \
  fixtures/5.png fixtures/6.png fixtures/7.png fixtures/8.png fixtures/9.png --backend webgpu --json
adapter=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['adapter'])" "$out/predict-webgpu.json" 2>/dev/null)
log "adapter Dawn sees: ${adapter:-none}"
if [ "$mode" = device ] && ! grep -qi nvidia <<< "$adapter"; then
  log "the webgpu adapter is not the NVIDIA GPU"
  failed=$((failed + 1))
fi
python3 - "$out/predict-webgpu.json" >> "$out/check.log" 2>&1 <<'EOF' || { log "predict-webgpu: a fixture was misclassified"; failed=$((failed + 1)); }
import json, sys
doc = json.load(open(sys.argv[1]))
wrong = [i['path'] for i in doc['images'] if not i['path'].endswith(f"{i['ensemble']['prediction']}.png")]
print('predict-webgpu: fixtures misclassified:', wrong or 'none')
sys.exit(1 if wrong else 0)
EOF

# --- 3: both paths on the GPU and on the CPU --------------------------------------------------------------------
step bench-webgpu-b1 100 "${cli[@]}" bench --backend webgpu --sweep "$sweep" --batch-size 1 "${gpu_b1[@]}" --json --no-ui
step bench-webgpu-b64 80 "${cli[@]}" bench --backend webgpu --sweep "$gpu_sweep64" --batch-size 64 "${gpu_b64[@]}" --json --no-ui
step bench-webasm-b1 60 "${cli[@]}" bench --backend webasm --sweep "$sweep" --batch-size 1 "${cpu_b1[@]}" --json --no-ui
step bench-webasm-b64 60 "${cli[@]}" bench --backend webasm --sweep "$cpu_sweep64" --batch-size 64 "${cpu_b64[@]}" --json --no-ui

# --- 4: the PyTorch anchor ------------------------------------------------------------------------------------
if python3 -c 'import torch' 2> /dev/null; then
  step torch-b1 60 python3 bench/torch_anchor.py --sweep "$sweep" --batch-size 1 "${torch_b1[@]}"
  step torch-b64 50 python3 bench/torch_anchor.py --sweep "$gpu_sweep64" --batch-size 64 "${torch_b64[@]}"
elif [ "$mode" = local ]; then
  # no PyTorch here: check what the anchor would feed it (weights, image) against the engine instead
  log "torch: not installed here; checking the anchor's inputs with numpy instead"
  if python3 -c 'import numpy' 2> /dev/null; then
    step torch-inputs 60 python3 bench/torch_anchor.py --check-inputs --expect "$out/predict-webgpu.json"
  else
    log "torch-inputs: skipped: this python3 has no numpy either"
  fi
else
  log "torch: python3 has no torch module"
  failed=$((failed + 1))
fi

# --- 5: the table ---------------------------------------------------------------------------------------------
python3 bench/device_summary.py "$out" > "$out/summary.md" 2>> "$out/check.log" || { log "summary failed"; failed=$((failed + 1)); }
cat "$out/summary.md" >&2
log "$failed step(s) failed"
exit "$failed"
