// Models larger than one device (--device-map): which device holds each layer's weights, as
// accelerate's device_map does. The embeddings sit on the first layer's device, the final norm and
// head on the last's; activations move at block boundaries (CausalLM::forward, the IG paths).
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace neuroprune {

// A map as the user writes it, before the layer count is known:
//   "balanced" / "balanced:DEV,DEV,..."  contiguous runs of (nearly) equal length over the devices
//   "auto" / "auto:DEV,DEV,..."          filled in order by each device's free memory (CUDA); an equal
//                                        split where that is unknown (CPU)
//   "0-5:cuda:0,6-11:cuda:1"             an explicit device per range of layers ("7:cpu" for one layer)
// Without a list, balanced and auto use every visible CUDA device.
struct DevicePlan {
  enum class Kind { Balanced, Auto, Explicit };
  Kind kind = Kind::Balanced;
  std::vector<at::Device> devices;  // Balanced, Auto
  struct Range {
    int64_t first, last;  // inclusive
    at::Device device;
  };
  std::vector<Range> ranges;  // Explicit

  // E_ARG for a malformed spec, E_DEVICE (naming it) for a device that is not there.
  static DevicePlan parse(const std::string& spec);
  // The device of layer 0 (embeddings and inputs go there).
  at::Device first() const;
  // One device per layer. layer_bytes: each layer's weights; extra_first: what else sits on the first
  // device (embeddings), counted by auto; extra_last (final norm, head) goes to the last device
  // whatever its size. E_ARG when explicit ranges do not cover every layer exactly once.
  std::vector<at::Device> resolve(const std::vector<int64_t>& layer_bytes, int64_t extra_first, int64_t extra_last) const;
};

// The layer a parameter belongs to: the first all-digit component of its name ("model.layers.3.mlp"
// -> 3), or -1 for embeddings, final norm and head.
int64_t layer_of(const std::string& name);

// Free bytes on a CUDA device, or -1 where this build cannot tell (CPU builds, CPU devices).
int64_t free_device_memory(const at::Device& device);

}  // namespace neuroprune
