// libFuzzer target over what a stranger's model folder feeds the core: config.json (the JSON reader,
// the rope and attention-window readers of both schemas) and safetensors files (header, offsets,
// every tensor loaded). The first byte picks the reader. A neuroprune::Error is the expected way to
// refuse an input; any other exception escaping is an untyped error and aborts, as a crash does.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "checkpoint/safetensors.h"
#include "error.h"
#include "models/config.h"
#include "models/rope_config.h"

using neuroprune::Error;

namespace {

void fuzz_config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto config = neuroprune::ConfigReader::from_string(text, "fuzz/config.json");
  neuroprune::read_rope(config);
  neuroprune::read_rope(config, {10000.0, 0.25, {"rotary_emb_base", "rope_theta"}, {"rotary_pct", "partial_rotary_factor"}});
  for (const char* type : {"llama", "mistral", "qwen2"}) {
    try {
      const int64_t layers = config.positive_int("num_hidden_layers", 4);
      if (layers <= 4096) neuroprune::read_attention_windows(config, type, layers);
    } catch (const Error&) {
    }
  }
}

void fuzz_safetensors(const uint8_t* data, size_t size) {
  char path[] = "/tmp/neuroprune-fuzz-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return;
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += size_t(n);
  }
  close(fd);
  try {
    neuroprune::SafetensorsFile file(path);
    for (const auto& [name, entry] : file.entries()) {
      if (entry.end - entry.begin > (64u << 20)) continue;  // the reader checked it fits the file; keep runs fast
      file.load(name, at::kCPU, std::nullopt);
    }
  } catch (...) {
    unlink(path);
    throw;
  }
  unlink(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] % 2 == 0) fuzz_config(data + 1, size - 1);
    else fuzz_safetensors(data + 1, size - 1);
  } catch (const Error&) {
    // refused with a code: what we want
  } catch (const std::exception& e) {
    std::fprintf(stderr, "untyped error escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
