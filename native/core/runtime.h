// Devices, dtypes and the translation of LibTorch failures into coded errors.
#pragma once
#include <ATen/ATen.h>

#include <exception>
#include <string>

#include "error.h"

namespace neuroprune {

// "cpu", "cuda", "cuda:1". E_DEVICE when the device is not there.
at::Device parse_device(const std::string& name);
// "float32"/"fp32", "bfloat16"/"bf16", "float16"/"fp16"/"half".
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(at::ScalarType type);
// E_ARG for pairs this LibTorch cannot compute in (float16 matmuls on CPU need LibTorch 2).
void check_device_dtype(const at::Device& device, at::ScalarType dtype);

// The LibTorch this process runs on: the version its headers had, whether it was built with CUDA
// (and which), whether a GPU is usable now, and the folder of the libtorch_cpu actually loaded.
struct LibTorchInfo {
  std::string version;
  bool cuda_build = false;
  std::string cuda_version;  // empty for a CPU build
  bool cuda_available = false;
  std::string library_dir;        // loaded now
  std::string built_library_dir;  // the build linked against (the same folder unless a loader path overrode it)
  long cxx_standard = 0;
};
LibTorchInfo libtorch_info();

// Hands freed host memory back to the system (glibc keeps it in its arenas otherwise): called after
// each attribution, completed or aborted, so that RSS returns to where it was.
void release_free_host_memory();

// Runs `fn`, turning c10::Error (out of memory included) and std::bad_alloc into neuroprune::Error.
template <typename Fn>
auto with_torch_errors(Fn&& fn) -> decltype(fn());
Error translate_exception(std::exception_ptr e);

template <typename Fn>
auto with_torch_errors(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (...) {
    throw translate_exception(std::current_exception());
  }
}

}  // namespace neuroprune
