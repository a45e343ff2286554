#include "runtime.h"

#include <c10/util/Exception.h>

#include <torch/version.h>

#include <dlfcn.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <new>

namespace neuroprune {

at::Device parse_device(const std::string& name) {
  at::Device device(at::kCPU);
  try {
    device = at::Device(name);
  } catch (const c10::Error&) {
    fail(codes::kDevice, "unknown device \"" + name + "\" (use cpu, cuda or cuda:N)");
  }
  if (device.is_cuda()) {
    if (!at::hasCUDA()) fail(codes::kDevice, "device \"" + name + "\": CUDA is not available (this LibTorch has no CUDA or no GPU is visible)");
    const int n = static_cast<int>(at::getNumGPUs());
    if (device.has_index() && device.index() >= n)
      fail(codes::kDevice, "device \"" + name + "\": only " + std::to_string(n) + " CUDA device(s) visible");
  } else if (!device.is_cpu()) {
    fail(codes::kDevice, "device \"" + name + "\" is not supported (use cpu, cuda or cuda:N)");
  }
  return device;
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return at::kHalf;
  fail(codes::kArgument, "unknown dtype \"" + name + "\" (use float32, bfloat16 or float16)");
}

void check_device_dtype(const at::Device& device, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR < 2
  if (device.is_cpu() && dtype == at::kHalf)
    fail(codes::kArgument, "float16 on cpu needs LibTorch 2 (this is " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                               std::to_string(TORCH_VERSION_MINOR) + "): use bfloat16 or float32, or a cuda device");
#endif
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: return c10::toString(type);
  }
}

void release_free_host_memory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

LibTorchInfo libtorch_info() {
  LibTorchInfo info;
  info.version = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH);
#ifdef NEUROPRUNE_TORCH_CUDA
  info.cuda_build = true;
  info.cuda_version = NEUROPRUNE_TORCH_CUDA;
#endif
  info.cuda_available = at::hasCUDA();
  // at::globalContext lives in libtorch_cpu: where the loader found it is the LibTorch in use.
  Dl_info where{};
  if (dladdr(reinterpret_cast<void*>(&at::globalContext), &where) && where.dli_fname) {
    const std::string file = where.dli_fname;
    info.library_dir = file.substr(0, file.find_last_of('/'));
  }
#ifdef NEUROPRUNE_TORCH_LIBDIR
  info.built_library_dir = NEUROPRUNE_TORCH_LIBDIR;
#endif
  info.cxx_standard = __cplusplus;
  return info;
}

Error translate_exception(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err;
  } catch (const c10::Error& err) {
    const std::string msg = err.what_without_backtrace();
    if (msg.find("out of memory") != std::string::npos || msg.find("Out of memory") != std::string::npos ||
        msg.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos)
      return Error(codes::kOutOfMemory, "out of memory: " + msg);
    return Error(codes::kTorch, msg);
  } catch (const std::bad_alloc&) {
    return Error(codes::kOutOfMemory, "out of host memory");
  } catch (const std::exception& err) {
    return Error(codes::kTorch, err.what());
  } catch (...) {
    return Error(codes::kTorch, "unknown native error");
  }
}

}  // namespace neuroprune
