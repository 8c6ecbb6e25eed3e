#pragma once
// What the gateway pins and inspects about a downstream tool.
//
// DescriptorHash() is the SHA-256 (hex) of the tool's security-relevant descriptor: name, title,
// description, inputSchema, outputSchema and annotations, serialised with sorted keys, so a server
// that changes any of them after approval (a "rug pull") changes the hash; reordering keys or
// adding unrelated fields (icons, _meta) does not.
//
// FindInjectionMarker() looks for the phrases tool-poisoning attacks use to steer a model
// ("ignore previous instructions", "<IMPORTANT>", "do not tell the user", "~/.ssh", ...), case
// insensitively, anywhere in `text`. It is a heuristic: a hit labels the text poisoned-suspect; no
// hit proves nothing (the text is still untrusted).
//
// IsClassified() is true when the tool says what it does (an MCP annotations object with at least
// one of readOnlyHint, destructiveHint, idempotentHint, openWorldHint) or the gateway config lists
// it under read_only or consequential. Unclassified tools fail closed.
//
// Thread-safe: pure functions.

#include <optional>
#include <string>
#include <string_view>

#include "custos/core/json.h"
#include "custos/mcp/config.h"

namespace custos::mcp {

std::string DescriptorHash(const Json& tool);
std::optional<std::string> FindInjectionMarker(std::string_view text);
bool IsClassified(const Json& tool, const ServerConfig& server);

}  // namespace custos::mcp
