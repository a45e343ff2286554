// Errors that cross into JavaScript: a stable code and a message naming what is wrong.
#pragma once
#include <stdexcept>
#include <string>

namespace neuroprune {

// Stable codes. JS sees them as `error.code`; never rename one.
namespace codes {
inline constexpr const char* kCheckpoint = "E_CHECKPOINT";      // unreadable or corrupt safetensors
inline constexpr const char* kDtype = "E_DTYPE";                // unknown or unsupported dtype
inline constexpr const char* kMissingTensor = "E_MISSING_TENSOR";  // config needs a tensor the checkpoint lacks
inline constexpr const char* kShape = "E_SHAPE";                // tensor shape does not match the config
inline constexpr const char* kConfig = "E_CONFIG";              // config.json missing, invalid or unknown model_type
inline constexpr const char* kArgument = "E_ARG";               // bad argument from the caller
inline constexpr const char* kRange = "E_RANGE";                // index out of range (token id, neuron, layer)
inline constexpr const char* kDevice = "E_DEVICE";              // device not available
inline constexpr const char* kOutOfMemory = "E_OOM";            // allocation failed on host or device
inline constexpr const char* kIo = "E_IO";                      // file system error while writing
inline constexpr const char* kTorch = "E_TORCH";                // any other LibTorch failure
inline constexpr const char* kAborted = "E_ABORTED";            // cancelled by the caller
inline constexpr const char* kBudget = "E_BUDGET";              // memory budget too small for the work
inline constexpr const char* kSite = "E_SITE";                  // a site (or graph) the model lacks
}  // namespace codes

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

[[noreturn]] inline void fail(const char* code, const std::string& message) { throw Error(code, message); }

}  // namespace neuroprune
