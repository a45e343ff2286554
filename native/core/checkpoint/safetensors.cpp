#include "checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "checkpoint/files.h"
#include "error.h"

namespace neuroprune {
namespace {

using json = nlohmann::json;

const std::map<std::string, at::ScalarType>& dtype_table() {
  static const std::map<std::string, at::ScalarType> table = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool},
  };
  return table;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

at::ScalarType scalar_type_from_safetensors(const std::string& dtype, const std::string& context) {
  auto it = dtype_table().find(dtype);
  if (it == dtype_table().end()) fail(codes::kDtype, context + ": unknown dtype \"" + dtype + "\"");
  return it->second;
}

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const auto& [name, t] : dtype_table())
    if (t == type) return name;
  fail(codes::kDtype, std::string("cannot write dtype ") + c10::toString(type) + " to safetensors");
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: a FIFO opens at once (and fstat refuses it) instead of waiting for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(codes::kCheckpoint, path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(codes::kCheckpoint, path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail(codes::kCheckpoint, path + ": file is " + std::to_string(size_) + " bytes, shorter than the 8-byte header length");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) fail(codes::kCheckpoint, path + ": mmap failed (" + std::strerror(errno) + ")");
  map_ = static_cast<const uint8_t*>(m);

  try {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | map_[i];  // little endian
    if (header_len > size_ - 8)
      fail(codes::kCheckpoint, path + ": header length " + std::to_string(header_len) + " runs beyond the file (" +
                                   std::to_string(size_) + " bytes)");
    data_start_ = 8 + header_len;
    const size_t data_size = size_ - data_start_;

    // The spec: the header starts with '{' and may be padded at the end with spaces, nothing else.
    const char* h = reinterpret_cast<const char*>(map_ + 8);
    size_t json_end = header_len;
    while (json_end > 0 && (h[json_end - 1] == ' ' || h[json_end - 1] == '\n' || h[json_end - 1] == '\r' || h[json_end - 1] == '\t')) {
      if (h[json_end - 1] != ' ') fail(codes::kCheckpoint, path + ": header padding must be spaces");
      --json_end;
    }
    if (header_len == 0 || h[0] != '{') fail(codes::kCheckpoint, path + ": header does not start with '{'");
    json header = parse_json_strict(h, h + json_end, path + " (header)", codes::kCheckpoint, 8);
    if (!header.is_object()) fail(codes::kCheckpoint, path + ": header is not a JSON object");

    for (auto& [name, value] : header.items()) {
      if (name == "__metadata__") {
        if (value.is_object())
          for (auto& [k, v] : value.items())
            if (v.is_string()) metadata_[k] = v.get<std::string>();
        continue;
      }
      const std::string where = path + ": tensor \"" + name + "\"";
      if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets") ||
          !value["dtype"].is_string() || !value["shape"].is_array() || !value["data_offsets"].is_array() ||
          value["data_offsets"].size() != 2)
        fail(codes::kCheckpoint, where + ": entry needs dtype, shape and data_offsets [begin, end]");
      TensorEntry e;
      e.name = name;
      e.dtype = value["dtype"].get<std::string>();
      const at::ScalarType type = scalar_type_from_safetensors(e.dtype, where);
      int64_t numel = 1;
      for (auto& d : value["shape"]) {
        if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(INT64_MAX))
          fail(codes::kCheckpoint, where + ": shape has a non-integer, negative or huge dimension");
        e.shape.push_back(d.get<int64_t>());
        if (__builtin_mul_overflow(numel, e.shape.back(), &numel))
          fail(codes::kCheckpoint, where + ": shape " + shape_str(e.shape) + "... has more elements than fit in 64 bits");
      }
      for (auto& o : value["data_offsets"])
        if (!o.is_number_unsigned()) fail(codes::kCheckpoint, where + ": data_offsets must be non-negative integers");
      e.begin = value["data_offsets"][0].get<size_t>();
      e.end = value["data_offsets"][1].get<size_t>();
      if (e.begin > e.end || e.end > data_size)
        fail(codes::kCheckpoint, where + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                     "] out of range (data section is " + std::to_string(data_size) + " bytes)");
      size_t expected = 0;
      if (__builtin_mul_overflow(static_cast<size_t>(numel), c10::elementSize(type), &expected) || e.end - e.begin != expected)
        fail(codes::kCheckpoint, where + ": holds " + std::to_string(e.end - e.begin) + " bytes but " + e.dtype +
                                     shape_str(e.shape) + " needs " + std::to_string(expected));
      entries_.emplace(name, std::move(e));
    }

    std::vector<const TensorEntry*> by_offset;
    for (auto& [_, e] : entries_) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i)
      if (by_offset[i]->begin < by_offset[i - 1]->end)
        fail(codes::kCheckpoint, path + ": tensors \"" + by_offset[i - 1]->name + "\" and \"" + by_offset[i]->name +
                                     "\" overlap in the data section");
    // The spec: the tensors tile the data section exactly, from byte 0 to its end, with no gap and no
    // bytes after (a header length off by one would otherwise shift every weight silently).
    size_t at = 0;
    for (const TensorEntry* e : by_offset) {
      if (e->begin != at)
        fail(codes::kCheckpoint, path + ": tensor \"" + e->name + "\" starts at byte " + std::to_string(e->begin) + " of the data section, expected " +
                                     std::to_string(at) + " (tensors must be contiguous from 0)");
      at = e->end;
    }
    if (at != data_size)
      fail(codes::kCheckpoint, path + ": " + std::to_string(data_size - at) + " bytes after the last tensor (the data section is " +
                                   std::to_string(data_size) + " bytes; is the header length right?)");
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(codes::kMissingTensor, path_ + ": no tensor \"" + name + "\"");
  return it->second;
}

at::Tensor SafetensorsFile::load(const std::string& name, const at::Device& device,
                                 std::optional<at::ScalarType> dtype) const {
  const TensorEntry& e = entry(name);
  const at::ScalarType stored = scalar_type_from_safetensors(e.dtype, path_ + ": tensor \"" + name + "\"");
  const at::ScalarType target = dtype.value_or(stored);
  const uint8_t* ptr = map_ + data_start_ + e.begin;
  at::Tensor view;
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(stored) == 0) {
    view = at::from_blob(const_cast<uint8_t*>(ptr), e.shape, at::TensorOptions().dtype(stored));
  } else {  // misaligned data: one aligned host copy first
    view = at::empty(e.shape, at::TensorOptions().dtype(stored));
    std::memcpy(view.data_ptr(), ptr, e.end - e.begin);
  }
  // copy=true: the result owns its memory and never aliases the mapping.
  return view.to(device, target, /*non_blocking=*/false, /*copy=*/true);
}

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  const std::vector<std::string> roots = model_roots(dir);
  struct stat st {};
  if (::stat(index_path.c_str(), &st) == 0) {
    indexed_ = true;
    check_model_file(index_path, roots, codes::kCheckpoint);
    const std::string text = read_regular_file(index_path, 64 << 20, codes::kCheckpoint);
    json index = parse_json_strict(text.data(), text.data() + text.size(), index_path, codes::kCheckpoint);
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      fail(codes::kCheckpoint, index_path + ": no \"weight_map\" object");
    std::map<std::string, const SafetensorsFile*> by_file;
    for (auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) fail(codes::kCheckpoint, index_path + ": weight_map[\"" + name + "\"] is not a file name");
      const std::string shard = file.get<std::string>();
      if (shard.find('/') != std::string::npos)
        fail(codes::kCheckpoint, index_path + ": shard name \"" + shard + "\" must be a file in the same folder");
      if (!by_file.count(shard)) {
        check_model_file(dir + "/" + shard, roots, codes::kCheckpoint);
        files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + shard));
        by_file[shard] = files_.back().get();
      }
      if (!by_file[shard]->has(name))
        fail(codes::kMissingTensor, dir + "/" + shard + ": no tensor \"" + name + "\" (the index says it is there)");
      where_[name] = by_file[shard];
    }
  } else if (::stat(single_path.c_str(), &st) == 0) {
    check_model_file(single_path, roots, codes::kCheckpoint);
    files_.push_back(std::make_unique<SafetensorsFile>(single_path));
    for (auto& [name, _] : files_.back()->entries()) where_[name] = files_.back().get();
  } else {
    fail(codes::kCheckpoint, dir + ": no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are read)");
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (auto& [name, _] : where_) out.push_back(name);
  return out;
}

const TensorEntry& Checkpoint::entry(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(codes::kMissingTensor, dir_ + ": no tensor \"" + name + "\"");
  return it->second->entry(name);
}

const std::string& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? dir_ : it->second->path();
}

at::Tensor Checkpoint::load(const std::string& name, const at::Device& device, std::optional<at::ScalarType> dtype) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(codes::kMissingTensor, dir_ + ": no tensor \"" + name + "\"");
  return it->second->load(name, device, dtype);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> host;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor h = t.detach().to(at::kCPU).contiguous();
    const size_t bytes = h.numel() * h.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(h.scalar_type())},
                    {"shape", h.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    host.push_back(h);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned

  std::random_device rd;
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  auto io_fail = [&](const std::string& what) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail(codes::kIo, path + ": " + what + " (" + reason + ")");
  };
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(codes::kIo, path + ": cannot create temporary file (" + std::strerror(errno) + ")");
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>((static_cast<uint64_t>(text.size()) >> (8 * i)) & 0xff);
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (size_t i = 0; ok && i < host.size(); ++i) {
    const size_t bytes = host[i].numel() * host[i].element_size();
    ok = bytes == 0 || std::fwrite(host[i].data_ptr(), 1, bytes, f) == bytes;
  }
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) io_fail("write failed");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) io_fail("rename failed");
}

}  // namespace neuroprune
