// docs/api/openapi.yaml and the server's route table describe the same API: every registered
// (method, path) is documented and every documented one is registered.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "custos/server/api.h"

namespace custos::server {
namespace {

// (METHOD, path) pairs under `paths:`: a path is a key at indent 2 starting with '/', its methods
// are keys at indent 4. The file is kept in that plain block style on purpose.
std::set<std::pair<std::string, std::string>> DocumentedRoutes(const std::string& file) {
  std::ifstream in(file);
  EXPECT_TRUE(static_cast<bool>(in)) << file;
  std::set<std::pair<std::string, std::string>> out;
  std::string line, path;
  bool in_paths = false;
  while (std::getline(in, line)) {
    if (line == "paths:") {
      in_paths = true;
      continue;
    }
    if (!in_paths)
      continue;
    if (!line.empty() && line[0] != ' ' && line[0] != '#')
      break;  // the next top-level key
    if (line.rfind("  /", 0) == 0 && line.back() == ':') {
      path = line.substr(2, line.size() - 3);
      continue;
    }
    if (line.size() > 5 && line.rfind("    ", 0) == 0 && line[4] != ' ' && line.back() == ':') {
      std::string method = line.substr(4, line.size() - 5);
      static const std::set<std::string> kMethods = {"get", "post", "put", "patch", "delete"};
      if (kMethods.count(method) == 0)
        continue;
      for (char& c : method)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.emplace(method, path);
    }
  }
  return out;
}

TEST(OpenApiTest, EveryRegisteredRouteIsDocumentedAndViceVersa) {
  const char* src = std::getenv("CUSTOS_SOURCE_DIR");
  ASSERT_NE(src, nullptr);
  const auto documented = DocumentedRoutes(std::string(src) + "/docs/api/openapi.yaml");
  std::set<std::pair<std::string, std::string>> registered;
  for (const RouteInfo& r : Routes())
    registered.emplace(std::string(r.method), std::string(r.pattern));
  EXPECT_GE(registered.size(), 10u);
  for (const auto& r : registered)
    EXPECT_TRUE(documented.count(r)) << r.first << " " << r.second << " is not in openapi.yaml";
  for (const auto& d : documented)
    EXPECT_TRUE(registered.count(d)) << d.first << " " << d.second << " is documented only";
}

}  // namespace
}  // namespace custos::server
