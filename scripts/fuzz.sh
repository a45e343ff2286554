#!/usr/bin/env bash
# npm run fuzz [-- SECONDS]: fuzzes for SECONDS each (default 60)
#   1. the libFuzzer target fuzz/checkpoint_fuzzer.cpp (config.json and safetensors readers, built with
#      clang's -fsanitize=fuzzer,address against the same LibTorch as the main build), seeded with
#      fuzz/regressions.jsonl; a new crash is written to fuzz/artifacts/ (add it to regressions.jsonl);
#   2. the property tests of test/fuzz.test.ts (fast-check over the TypeScript entry points) for as long.
# Exit 77: the fuzzer could not be built here (no clang with libFuzzer, and no apt-get as root).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[neuroprune fuzz] $*" >&2; }
seconds=${1:-60}
out=build-fuzz
mkdir -p "$out" fuzz/artifacts

have_libfuzzer() { echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long){return 0;}' |
  clang++ -x c++ -fsanitize=fuzzer - -o "$out/probe" >/dev/null 2>&1; }
if ! command -v clang++ >/dev/null || ! have_libfuzzer; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing clang and its libFuzzer runtime (clang, libclang-rt-14-dev) with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
  fi
  have_libfuzzer || { say "skipped: no clang with libFuzzer (Debian: clang libclang-rt-14-dev)"; exit 77; }
fi
[ -f build/torch-dir.txt ] || { say "build the addon first (npm run setup)"; exit 1; }
export Torch_DIR=$(cat build/torch-dir.txt)
unset LIBTORCH
flags() { node scripts/torch-flags.js "$1" | xargs -n1 2>/dev/null || true; }
includes=$(flags include | sed 's/^/-isystem /')
defines=$(flags defines | sed 's/^/-D/')
libdirs=$(flags libdirs | sed 's/^/-L/')
sources="fuzz/checkpoint_fuzzer.cpp native/core/checkpoint/files.cpp native/core/checkpoint/safetensors.cpp native/core/models/config.cpp native/core/models/rope_config.cpp"
if [ ! -x "$out/checkpoint_fuzzer" ] || [ -n "$(find $sources native/core -newer "$out/checkpoint_fuzzer" -name '*.[ch]*' 2>/dev/null | head -n 1)" ]; then
  say "building $out/checkpoint_fuzzer (clang, libFuzzer + AddressSanitizer)"
  # shellcheck disable=SC2086
  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address -Inative/core $includes $defines $sources -o "$out/checkpoint_fuzzer" \
    $libdirs $(flags libs) $(flags ldflags) 2>"$out/build.log" || { tail -n 30 "$out/build.log" >&2; say "FAILED to build the fuzzer"; exit 1; }
fi

# Seeds: every input that once failed, plus one valid config and one valid checkpoint.
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
node -e '
  const fs = require("fs"), path = require("path"), dir = process.argv[1];
  fs.readFileSync("fuzz/regressions.jsonl", "utf8").trim().split("\n").forEach((line, i) => {
    const r = JSON.parse(line);
    if (r.kind !== "config" && r.kind !== "safetensors") return;  // API inputs are replayed by test/fuzz.test.ts
    fs.writeFileSync(path.join(dir, `regression-${i}`), Buffer.concat([Buffer.from([r.kind === "config" ? 0 : 1]), Buffer.from(r.base64, "base64")]));
  });
  const header = Buffer.from(JSON.stringify({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }));
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(path.join(dir, "valid-safetensors"), Buffer.concat([Buffer.from([1]), len, header, Buffer.alloc(8)]));
  fs.writeFileSync(path.join(dir, "valid-config"), Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify({ model_type: "llama", num_hidden_layers: 4,
    rope_parameters: { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
    layer_types: ["full_attention", "sliding_attention", "full_attention", "sliding_attention"], sliding_window: 4 }))]));
' "$corpus"

say "libFuzzer: ${seconds} s (3 GB memory limit, 10 s per input)"
status=0
"$out/checkpoint_fuzzer" -max_total_time="$seconds" -rss_limit_mb=3072 -timeout=10 -max_len=400000 \
  -artifact_prefix=fuzz/artifacts/ -print_final_stats=1 "$corpus" 2>"$out/fuzz.log" || status=$?
grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|untyped" "$out/fuzz.log" >&2 || true
if [ "$status" -ne 0 ]; then
  tail -n 40 "$out/fuzz.log" >&2
  say "FAILED: libFuzzer found a crash, hang, leak of memory past 3 GB or untyped error; the input is in fuzz/artifacts/"
  exit 1
fi
say "libFuzzer: no crash, hang or untyped error"

if [ "${NEUROPRUNE_FUZZ_NATIVE_ONLY:-0}" != 1 ]; then
  say "property tests (fast-check): ${seconds} s"
  NEUROPRUNE_FUZZ_SECONDS=$seconds npx --no-install ava test/fuzz.test.ts ${AVA_ARGS:-}
fi
