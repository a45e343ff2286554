// Reads a Hugging Face config.json with HF's field names; wrong types are E_CONFIG naming the field.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace neuroprune {

class ConfigReader {
 public:
  ConfigReader(nlohmann::json json, std::string source) : json_(std::move(json)), source_(std::move(source)) {}
  static constexpr size_t kMaxConfigBytes = 16 << 20;  // real configs are a few KB
  // A regular file of at most kMaxConfigBytes, JSON at most 64 deep, no duplicate keys; else E_CONFIG.
  static ConfigReader from_file(const std::string& path);
  static ConfigReader from_string(const std::string& text, const std::string& source);

  bool has(const std::string& field) const { return json_.contains(field) && !json_[field].is_null(); }
  int64_t positive_int(const std::string& field, int64_t fallback) const;
  int64_t positive_int(const std::string& field) const;  // required
  double number(const std::string& field, double fallback) const;  // finite
  double positive_number(const std::string& field, double fallback) const;  // finite and > 0 (epsilons)
  bool boolean(const std::string& field, bool fallback) const;
  std::string string(const std::string& field, const std::string& fallback) const;
  [[noreturn]] void invalid(const std::string& field, const std::string& why) const;

  const nlohmann::json& json() const { return json_; }
  const std::string& source() const { return source_; }

 private:
  nlohmann::json json_;
  std::string source_;
};

}  // namespace neuroprune
