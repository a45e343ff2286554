// safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then the raw little-endian tensor bytes. Files are memory-mapped; tensors are copied once, straight
// into the device and dtype the caller asks for.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace neuroprune {

struct TensorEntry {
  std::string name;
  std::string dtype;  // as written: F32, F16, BF16, I64, ...
  std::vector<int64_t> shape;
  size_t begin = 0;   // byte offsets into the data section
  size_t end = 0;
};

// One memory-mapped .safetensors file, validated on open.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;

  // A copy of the tensor on `device` in `dtype` (nullopt keeps the stored dtype).
  at::Tensor load(const std::string& name, const at::Device& device,
                  std::optional<at::ScalarType> dtype = std::nullopt) const;

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  size_t data_start_ = 0;
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// The weights of one checkpoint folder: model.safetensors, or the shards that
// model.safetensors.index.json names.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);
  const std::string& dir() const { return dir_; }
  bool sharded() const { return files_.size() > 1 || indexed_; }
  bool has(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> names() const;
  const TensorEntry& entry(const std::string& name) const;
  // Where a tensor lives, for messages.
  const std::string& file_of(const std::string& name) const;
  at::Tensor load(const std::string& name, const at::Device& device, std::optional<at::ScalarType> dtype) const;

 private:
  std::string dir_;
  bool indexed_ = false;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

// Maps between safetensors dtype names and ATen scalar types.
at::ScalarType scalar_type_from_safetensors(const std::string& dtype, const std::string& context);
std::string safetensors_dtype_name(at::ScalarType type);

// Writes tensors to `path` atomically: a temporary file in the same folder, then rename.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace neuroprune
