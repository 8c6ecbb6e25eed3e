#include "custos/server/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <sstream>

#include "custos/core/clock.h"
#include "custos/core/encoding.h"
#include "custos/crypto/random.h"
#include "custos/crypto/sha256.h"

namespace custos::server {
namespace {

constexpr std::string_view kKeyPrefix = "ck_";

bool IsAgentName(const std::string& s) {
  if (s.empty() || s.size() > 128)
    return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok)
      return false;
  }
  return true;
}

Identity Make(const std::set<std::string>& admins, std::string agent, std::string via) {
  Identity id;
  id.admin = admins.count(agent) > 0;
  id.agent = std::move(agent);
  id.via = std::move(via);
  return id;
}

}  // namespace

Result<std::string> AddApiKey(const std::filesystem::path& data_dir, const std::string& agent) {
  if (!IsAgentName(agent)) {
    return Status(Reason::kInvalidArgument, "an agent name is 1-128 characters of [A-Za-z0-9_.-]",
                  "agent");
  }
  std::array<uint8_t, 32> raw{};
  crypto::RandomBytes(raw);
  const std::string key = std::string(kKeyPrefix) + Base32Encode(raw);
  const std::string line = crypto::Sha256(key).Hex() + " " + agent + " " +
                           std::to_string(SystemClock().NowMillis()) + "\n";
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  const std::filesystem::path file = data_dir / kApiKeyFileName;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status(Reason::kIoError, "cannot open the API key file", file.string());
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok)
    return Status(Reason::kIoError, "cannot write the API key file", file.string());
  return key;
}

Result<Authenticator> Authenticator::Load(const std::filesystem::path& data_dir,
                                          const ServerConfig& config) {
  Authenticator a;
  a.peers_ = config.peers;
  a.admins_ = config.admins;
  const std::filesystem::path file = data_dir / kApiKeyFileName;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    return a;  // no keys: only mapped socket peers can call
  if ((st.st_mode & 077) != 0) {
    return Status(Reason::kKeyError, "the API key file is readable by group/others (chmod 600)",
                  file.string());
  }
  std::ifstream in(file);
  if (!in)
    return Status(Reason::kIoError, "cannot read the API key file", file.string());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty())
      continue;
    std::istringstream ls(line);
    std::string hash, agent;
    ls >> hash >> agent;
    if (hash.size() != 64 || !HexDecode(hash).ok() || !IsAgentName(agent)) {
      return Status(Reason::kKeyError, "malformed API key line",
                    file.string() + ":" + std::to_string(n));
    }
    a.keys_[hash] = agent;
  }
  return a;
}

Result<Identity> Authenticator::FromPeer(const PeerCred& peer) const {
  auto it = peers_.find(peer.uid);
  if (it == peers_.end()) {
    return Status(Reason::kUnauthenticated,
                  "socket peer uid " + std::to_string(peer.uid) +
                      " is not mapped to an agent ([server.peers] in config.toml)");
  }
  return Make(admins_, it->second,
              "peer uid=" + std::to_string(peer.uid) + " pid=" + std::to_string(peer.pid));
}

Result<Identity> Authenticator::FromAuthorization(std::string_view authorization) const {
  if (authorization.empty())
    return Status(Reason::kUnauthenticated, "no credentials: send Authorization: Bearer <key>");
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer)
    return Status(Reason::kUnauthenticated, "the Authorization scheme must be Bearer");
  const std::string_view key = authorization.substr(kBearer.size());
  // The lookup is by hash: timing reveals at most how a hash compares, not the stored key.
  const std::string hash = crypto::Sha256(key).Hex();
  auto it = keys_.find(hash);
  if (it == keys_.end())
    return Status(Reason::kUnauthenticated, "unknown API key");
  return Make(admins_, it->second, "api key " + hash.substr(0, 8));
}

}  // namespace custos::server
