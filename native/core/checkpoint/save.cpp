#include "checkpoint/save.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "error.h"

namespace neuroprune {

void save_weights(const CausalLM& model, const std::string& dir) {
  const auto& shards = model.source_shards();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards.empty()) {
    write_safetensors(dir + "/model.safetensors", model.weights().named(), metadata);
    return;
  }
  std::map<std::string, std::vector<std::pair<std::string, at::Tensor>>> files;
  int64_t total = 0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (const auto& [name, t] : model.weights().named()) {
    const std::string& file = shards.at(name);
    files[file].emplace_back(name, t);
    weight_map[name] = file;
    total += t.numel() * t.element_size();
  }
  for (const auto& [file, tensors] : files) write_safetensors(dir + "/" + file, tensors, metadata);
  const std::string index = dir + "/model.safetensors.index.json";
  const std::string tmp = index + ".tmp";
  {
    std::ofstream out(tmp);
    out << nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) << "\n";
    if (!out) fail(codes::kIo, index + ": write failed");
  }
  if (std::rename(tmp.c_str(), index.c_str()) != 0) fail(codes::kIo, index + ": rename failed");
}

std::string weights_digest(const CausalLM& model) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto& [name, t] : model.weights().named()) {
    at::Tensor c = t.to(at::kCPU).contiguous();
    mix(name.data(), name.size());
    const std::string meta = c10::toString(c.scalar_type()) + std::string(c.sizes().size(), '#');
    mix(meta.data(), meta.size());
    for (auto d : c.sizes()) mix(&d, sizeof d);
    mix(c.data_ptr(), c.numel() * c.element_size());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace neuroprune
