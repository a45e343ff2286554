#include "models/device_map.h"

#include <algorithm>
#include <cctype>

#include <dlfcn.h>

#include "error.h"
#include "runtime.h"

namespace neuroprune {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) out.push_back(s.substr(start, i - start)), start = i + 1;
  return out;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

int64_t layer_number(const std::string& s, const std::string& spec) {
  if (!all_digits(s) || s.size() > 9) fail(codes::kArgument, "--device-map \"" + spec + "\": \"" + s + "\" is not a layer number");
  return std::stoll(s);
}

// Every visible CUDA device: what balanced and auto use without a list.
std::vector<at::Device> visible_cuda(const std::string& spec) {
  if (!at::hasCUDA() || at::getNumGPUs() == 0)
    fail(codes::kDevice, "--device-map " + spec + ": no CUDA device is visible; name the devices, e.g. " + spec + ":cpu,cpu");
  std::vector<at::Device> out;
  for (int i = 0; i < static_cast<int>(at::getNumGPUs()); ++i) out.emplace_back(at::kCUDA, static_cast<at::DeviceIndex>(i));
  return out;
}

}  // namespace

int64_t layer_of(const std::string& name) {
  for (const auto& part : split(name, '.'))
    if (all_digits(part)) return std::stoll(part);
  return -1;
}

int64_t free_device_memory(const at::Device& device) {
  if (!device.is_cuda()) return -1;
  // The CUDA runtime through libtorch_cuda's own dependencies (dlsym on its handle searches them): no
  // CUDA headers or link-time dependency, so CPU and CUDA builds compile the same file.
  void* torch_cuda = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD);
  if (!torch_cuda) return -1;
  using GetDevice = int (*)(int*);
  using SetDevice = int (*)(int);
  using MemGetInfo = int (*)(size_t*, size_t*);
  auto get = reinterpret_cast<GetDevice>(dlsym(torch_cuda, "cudaGetDevice"));
  auto set = reinterpret_cast<SetDevice>(dlsym(torch_cuda, "cudaSetDevice"));
  auto info = reinterpret_cast<MemGetInfo>(dlsym(torch_cuda, "cudaMemGetInfo"));
  int64_t out = -1;
  int current = 0;
  if (get && set && info && get(&current) == 0 && set(device.has_index() ? device.index() : 0) == 0) {
    size_t free = 0, total = 0;
    if (info(&free, &total) == 0) out = static_cast<int64_t>(free);
    set(current);
  }
  dlclose(torch_cuda);  // drops the reference RTLD_NOLOAD took
  return out;
}

DevicePlan DevicePlan::parse(const std::string& spec) {
  DevicePlan plan;
  const size_t colon = spec.find(':');
  const std::string head = spec.substr(0, colon);
  if (head == "balanced" || head == "auto") {
    plan.kind = head == "auto" ? Kind::Auto : Kind::Balanced;
    if (colon == std::string::npos) {
      plan.devices = visible_cuda(head);
    } else {
      for (const auto& d : split(spec.substr(colon + 1), ',')) plan.devices.push_back(parse_device(d));
    }
    if (plan.devices.empty()) fail(codes::kArgument, "--device-map \"" + spec + "\" names no device");
    return plan;
  }
  // Explicit: RANGE:DEVICE entries; a device may itself hold a colon (cuda:1).
  plan.kind = Kind::Explicit;
  for (const auto& entry : split(spec, ',')) {
    const size_t c = entry.find(':');
    if (entry.empty() || c == std::string::npos)
      fail(codes::kArgument, "--device-map \"" + spec + "\": \"" + entry + "\" is not FIRST-LAST:DEVICE (or auto, balanced)");
    const std::string range = entry.substr(0, c);
    const size_t dash = range.find('-');
    const int64_t first = layer_number(range.substr(0, dash), spec);
    const int64_t last = dash == std::string::npos ? first : layer_number(range.substr(dash + 1), spec);
    if (last < first) fail(codes::kArgument, "--device-map \"" + spec + "\": range " + range + " runs backwards");
    plan.ranges.push_back({first, last, parse_device(entry.substr(c + 1))});
  }
  return plan;
}

at::Device DevicePlan::first() const {
  if (kind != Kind::Explicit) return devices.front();
  for (const auto& r : ranges)
    if (r.first == 0) return r.device;
  fail(codes::kArgument, "--device-map names no device for layer 0");
}

std::vector<at::Device> DevicePlan::resolve(const std::vector<int64_t>& layer_bytes, int64_t extra_first, int64_t extra_last) const {
  const int64_t L = static_cast<int64_t>(layer_bytes.size());
  std::vector<at::Device> out;
  if (kind == Kind::Explicit) {
    std::vector<int> seen(L, 0);
    out.assign(L, first());
    for (const auto& r : ranges) {
      if (r.last >= L)
        fail(codes::kArgument, "--device-map: layers " + std::to_string(r.first) + "-" + std::to_string(r.last) + " but the model has " +
                                   std::to_string(L) + " (0-" + std::to_string(L - 1) + ")");
      for (int64_t l = r.first; l <= r.last; ++l) {
        if (seen[l]++) fail(codes::kArgument, "--device-map places layer " + std::to_string(l) + " twice");
        out[l] = r.device;
      }
    }
    for (int64_t l = 0; l < L; ++l)
      if (!seen[l]) fail(codes::kArgument, "--device-map does not place layer " + std::to_string(l) + " (the model has " + std::to_string(L) + " layers)");
    return out;
  }
  const int64_t k = static_cast<int64_t>(devices.size());
  std::vector<int64_t> free(k);
  bool known = kind == Kind::Auto;
  for (int64_t i = 0; i < k && known; ++i) known = (free[i] = free_device_memory(devices[i])) >= 0;
  if (!known) {  // balanced, or auto without memory figures: contiguous runs of equal length
    for (int64_t l = 0; l < L; ++l) out.push_back(devices[l * k / L]);
    return out;
  }
  // auto: fill each device in order up to 90% of its free memory (the rest for activations); the last
  // one takes what remains, the head included (a load that does not fit fails there with E_OOM).
  int64_t d = 0, used = extra_first;
  for (int64_t l = 0; l < L; ++l) {
    while (d < k - 1 && used + layer_bytes[l] > free[d] / 10 * 9) ++d, used = 0;
    used += layer_bytes[l];
    out.push_back(devices[d]);
  }
  return out;
}

}  // namespace neuroprune
