#include "checkpoint/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>

#include "error.h"

namespace neuroprune {
namespace {

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) return "";
  return buf;
}

std::string parent(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

std::string base(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::vector<std::string> model_roots(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::vector<std::string> roots;
  if (const std::string r = real_path(d); !r.empty()) roots.push_back(r);
  const std::string snapshots = parent(d), repo = parent(snapshots);
  if (base(snapshots) == "snapshots" && base(repo).rfind("models--", 0) == 0)
    if (const std::string r = real_path(repo); !r.empty()) roots.push_back(r);
  return roots;
}

size_t check_model_file(const std::string& path, const std::vector<std::string>& roots, const char* code) {
  const std::string resolved = real_path(path);
  if (resolved.empty()) fail(code, path + ": cannot resolve (" + std::strerror(errno) + ")");
  bool inside = false;
  for (const auto& root : roots) inside = inside || resolved.rfind(root == "/" ? root : root + "/", 0) == 0;
  if (!inside) fail(code, path + ": resolves to " + resolved + ", outside the model folder");
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) fail(code, path + ": not a regular file");
  return static_cast<size_t>(st.st_size);
}

std::string read_regular_file(const std::string& path, size_t max_bytes, const char* code) {
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting; fstat then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(code, path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(code, path + ": not a regular file");
  }
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    ::close(fd);
    fail(code, path + ": " + std::to_string(st.st_size) + " bytes, more than the " + std::to_string(max_bytes) + " allowed");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(done);
  return text;
}

nlohmann::json parse_json_strict(const char* begin, const char* end, const std::string& source, const char* code, int max_depth) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;  // one set per open object
  auto check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > max_depth) fail(code, source + ": JSON nested more than " + std::to_string(max_depth) + " deep");
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end: keys.pop_back(); break;
      case json::parse_event_t::key: {
        const std::string key = parsed.get<std::string>();
        if (!keys.back().insert(key).second) fail(code, source + ": key \"" + key + "\" appears twice in one object");
        break;
      }
      default: break;
    }
    return true;
  };
  try {
    return json::parse(begin, end, check);
  } catch (const json::exception& e) {
    fail(code, source + ": not JSON (" + e.what() + ")");
  }
}

}  // namespace neuroprune
