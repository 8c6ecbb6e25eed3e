#pragma once
// The data directory's optional `config.toml`: settings of the kernel that are not policy.
//
//   [log]
//   durability = "group"   # none | group | fsync
//
// A missing file means defaults. Unknown keys and bad values are errors with file:line:col, like
// policy errors. Command-line flags override the file.
//
// Confined to the CLI's main thread.

#include <filesystem>

#include "custos/audit/log_writer.h"
#include "custos/core/result.h"

namespace custos::cli {

struct Config {
  audit::Durability durability = audit::Durability::kGroup;
};

Result<Config> LoadConfig(const std::filesystem::path& data_dir);

}  // namespace custos::cli
