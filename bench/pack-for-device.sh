#!/usr/bin/env bash
# Packs what the lent GPU machine needs to run the CLI (it has no Node and reaches no registry) into one
# git-ignored archive, gpu-carry.tar.xz (~30 MB), for the device tool's `carry`: this machine's node binary, the CLI
# bundled into one ES module by esbuild (tsx's dependency; no TypeScript at run time), the `webgpu` package's
# linux-x64 Dawn addon, and the Vulkan loader. bench/device-check.sh unpacks it on the device and runs the GPU check
# from it (into gpu-carry/, so that the bundle finds fixtures/ as the package does).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/pkg/cli" "$work/pkg/bin" "$work/pkg/lib" "$work/pkg/node_modules"
printf "import { main } from '%s/src/cli/main.ts';\nprocess.exitCode = await main(process.argv);\n" "$PWD" > "$work/entry.ts"
# Ink imports react-devtools-core only for its dev mode; a stub keeps it out of the bundle
echo 'export default { initialize() {}, connectToDevTools() {} };' > "$work/devtools-stub.mjs"
# --keep-names: Device checks GPU.js's kernel class names
node_modules/.bin/esbuild "$work/entry.ts" --bundle --keep-names --platform=node --format=esm --target=node20 \
  --tsconfig=tsconfig.json --external:webgpu --external:gl --alias:react-devtools-core="$work/devtools-stub.mjs" \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
  --outfile="$work/pkg/cli/bundle.mjs" --log-level=error
cp "$(command -v node)" "$work/pkg/bin/"
cp -r node_modules/webgpu "$work/pkg/node_modules/"
find "$work/pkg/node_modules/webgpu/dist" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
cp -L "$(ldconfig -p | awk '/libvulkan.so.1 .*x86-64/ {print $NF; exit}')" "$work/pkg/lib/"
tar -C "$work/pkg" -cf - . | xz -T0 -6 > gpu-carry.tar.xz
echo "gpu-carry.tar.xz: $(du -h gpu-carry.tar.xz | cut -f1) (git-ignored, so the device tool may carry it)"
