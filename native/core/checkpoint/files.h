// The files of a model folder, read as if a stranger wrote them: regular files only (a FIFO or a
// device would hang or never end), inside the model folder once symlinks are resolved (or inside its
// HF cache repository, whose snapshots link into blobs/), bounded in size, and JSON parsed with a
// depth limit and without duplicate keys.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace neuroprune {

// The folders a model's files may resolve into: the folder itself and, for an HF cache snapshot
// (.../models--ORG--NAME/snapshots/REV), that models--ORG--NAME folder.
std::vector<std::string> model_roots(const std::string& dir);

// `path` resolved through symlinks lies inside one of `roots` and is a regular file: its size.
// Otherwise `code` naming the file.
size_t check_model_file(const std::string& path, const std::vector<std::string>& roots, const char* code);

// The whole of a regular file of at most `max_bytes` (a FIFO or a device is refused before opening).
std::string read_regular_file(const std::string& path, size_t max_bytes, const char* code);

// JSON nested at most `max_depth` deep with no key twice in one object; `code` naming `source` else.
nlohmann::json parse_json_strict(const char* begin, const char* end, const std::string& source, const char* code,
                                 int max_depth = 64);

}  // namespace neuroprune
