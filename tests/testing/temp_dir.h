#pragma once
// A temporary directory removed at the end of the test.

#include <cstdlib>
#include <filesystem>
#include <string>

namespace custos::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "custos-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    path_ = p ? std::filesystem::path(p) : std::filesystem::path();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace custos::testing
