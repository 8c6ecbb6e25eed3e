#pragma once
// Mounts the MCP gateway's Streamable HTTP front (mcp::HttpFront) on custosd's transport
// (server::Server) — the glue lives here because server and mcp are sibling modules that may not
// include each other (decision 023). Used by `custos mcp serve` and by custosd's /mcp.
//
// Thread-safe: the mount's handler runs on the server's workers.

#include <string>
#include <vector>

#include "custos/mcp/http_front.h"
#include "custos/server/server.h"

namespace custos::cli {

// REQUIRES: `front` outlives the server, and front->Shutdown() runs before the server is
// destroyed (it releases the streams, which hold the connections).
// One mount per path the front serves (the endpoint, and the OAuth metadata when configured).
std::vector<server::Mount> McpMounts(mcp::HttpFront* front);

}  // namespace custos::cli
