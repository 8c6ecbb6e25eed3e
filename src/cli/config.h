#pragma once
// The data directory's optional `config.toml`: settings of the kernel that are not policy.
//
//   [log]
//   durability = "group"              # none | group | fsync
//   checkpoint_every_entries = 1000   # sign a checkpoint every N entries (0: never by count)
//   checkpoint_every_ms = 1000        # ... or T ms after the first uncovered entry (0: never)
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
  int64_t checkpoint_every_entries = 1000;
  int64_t checkpoint_every_ms = 1000;
};

Result<Config> LoadConfig(const std::filesystem::path& data_dir);

}  // namespace custos::cli
