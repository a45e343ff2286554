#include "models/config.h"

#include <sys/stat.h>

#include <cmath>

#include "checkpoint/files.h"
#include "error.h"

namespace neuroprune {

ConfigReader ConfigReader::from_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(codes::kConfig, path + ": config.json is missing or unreadable");
  return from_string(read_regular_file(path, kMaxConfigBytes, codes::kConfig), path);
}

ConfigReader ConfigReader::from_string(const std::string& text, const std::string& source) {
  nlohmann::json j = parse_json_strict(text.data(), text.data() + text.size(), source, codes::kConfig);
  if (!j.is_object()) fail(codes::kConfig, source + ": not a JSON object");
  return ConfigReader(std::move(j), source);
}

void ConfigReader::invalid(const std::string& field, const std::string& why) const {
  fail(codes::kConfig, source_ + ": field \"" + field + "\" " + why);
}

int64_t ConfigReader::positive_int(const std::string& field, int64_t fallback) const {
  if (!has(field)) return fallback;
  return positive_int(field);
}

int64_t ConfigReader::positive_int(const std::string& field) const {
  if (!has(field)) invalid(field, "is required");
  const auto& v = json_[field];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) invalid(field, "must be a positive integer, got " + v.dump());
  return v.get<int64_t>();
}

double ConfigReader::number(const std::string& field, double fallback) const {
  if (!has(field)) return fallback;
  const auto& v = json_[field];
  if (!v.is_number() || !std::isfinite(v.get<double>())) invalid(field, "must be a finite number, got " + v.dump());
  return v.get<double>();
}

double ConfigReader::positive_number(const std::string& field, double fallback) const {
  const double v = number(field, fallback);
  if (!(v > 0)) invalid(field, "must be positive, got " + json_[field].dump());  // a norm's epsilon <= 0 gives NaN
  return v;
}

bool ConfigReader::boolean(const std::string& field, bool fallback) const {
  if (!has(field)) return fallback;
  const auto& v = json_[field];
  if (!v.is_boolean()) invalid(field, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string ConfigReader::string(const std::string& field, const std::string& fallback) const {
  if (!has(field)) return fallback;
  const auto& v = json_[field];
  if (!v.is_string()) invalid(field, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

}  // namespace neuroprune
