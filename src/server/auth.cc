#include "custos/server/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <functional>
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

// Reads a key file of "FIELD1 FIELD2" lines: a missing file is no keys; a file with any of
// `forbidden_mode` bits is refused (kKeyError, `mode_error`); `take` returns false for a malformed
// line, which fails the whole file at file:line.
Status ForEachKeyLine(const std::filesystem::path& file, mode_t forbidden_mode,
                      const std::string& mode_error,
                      const std::function<bool(const std::string&, const std::string&)>& take) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    return Status::Ok();
  if ((st.st_mode & forbidden_mode) != 0)
    return Status(Reason::kKeyError, mode_error, file.string());
  std::ifstream in(file);
  if (!in)
    return Status(Reason::kIoError, "cannot read the key file", file.string());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty())
      continue;
    std::istringstream ls(line);
    std::string first, second;
    ls >> first >> second;
    if (!take(first, second))
      return Status(Reason::kKeyError, "malformed key line",
                    file.string() + ":" + std::to_string(n));
  }
  return Status::Ok();
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

Result<std::string> AddAgentKey(const std::filesystem::path& data_dir, const std::string& agent,
                                const std::string& public_key_hex) {
  if (!IsAgentName(agent)) {
    return Status(Reason::kInvalidArgument, "an agent name is 1-128 characters of [A-Za-z0-9_.-]",
                  "agent");
  }
  Result<std::vector<uint8_t>> raw = HexDecode(public_key_hex);
  if (!raw.ok() || raw->size() != 32) {
    return Status(Reason::kInvalidArgument, "an Ed25519 public key is 64 hex characters (32 bytes)",
                  "public_key");
  }
  Result<crypto::VerifyingKey> vk = crypto::VerifyingKey::FromBytes(*raw);
  if (!vk.ok()) {
    return Status(Reason::kInvalidArgument,
                  "not a valid Ed25519 public key: " + std::string(vk.status().message()),
                  "public_key");
  }
  const std::string line =
      agent + " " + HexEncode(*raw) + " " + std::to_string(SystemClock().NowMillis()) + "\n";
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  const std::filesystem::path file = data_dir / kAgentKeyFileName;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return Status(Reason::kIoError, "cannot open the agent key file", file.string());
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok)
    return Status(Reason::kIoError, "cannot write the agent key file", file.string());
  return vk->id().hex;
}

std::string CanonicalRequest(std::string_view method, std::string_view target,
                             std::string_view agent, std::string_view timestamp,
                             std::string_view nonce, std::string_view body) {
  std::string out;
  out.reserve(18 + method.size() + target.size() + agent.size() + timestamp.size() + nonce.size() +
              70);
  out.append("custos-request-v1\n");
  for (std::string_view part : {method, target, agent, timestamp, nonce}) {
    out.append(part);
    out.push_back('\n');
  }
  out.append(crypto::Sha256(body).Hex());
  return out;
}

Status ReplayCache::Admit(const std::string& agent, const std::string& nonce, int64_t timestamp_s,
                          int64_t now_s) {
  std::lock_guard<std::mutex> l(mu_);
  // Forget nonces whose timestamps can no longer pass the skew check.
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_s) {
    auto it = seen_.find(by_expiry_.begin()->second);
    if (it != seen_.end() && it->second == by_expiry_.begin()->first)
      seen_.erase(it);
    by_expiry_.erase(by_expiry_.begin());
  }
  std::string key = agent + "\n" + nonce;
  if (seen_.count(key) > 0) {
    return Status(Reason::kNonceReplayed,
                  "this nonce was already used by '" + agent + "' within the last " +
                      std::to_string(2 * kSignatureSkewSeconds) + " s",
                  "/headers/custos-nonce");
  }
  if (seen_.size() >= max_) {
    return Status(Reason::kUnavailable, "too many signed requests in the replay window (" +
                                            std::to_string(max_) + "); retry shortly");
  }
  const int64_t expiry = timestamp_s + kSignatureSkewSeconds;
  seen_.emplace(key, expiry);
  by_expiry_.emplace(expiry, std::move(key));
  return Status::Ok();
}

size_t ReplayCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return seen_.size();
}

Result<Authenticator> Authenticator::Load(const std::filesystem::path& data_dir,
                                          const ServerConfig& config) {
  Authenticator a;
  a.peers_ = config.peers;
  a.admins_ = config.admins;
  CUSTOS_RETURN_IF_ERROR(a.LoadAgentKeys(data_dir / kAgentKeyFileName));
  const std::filesystem::path file = data_dir / kApiKeyFileName;
  CUSTOS_RETURN_IF_ERROR(
      ForEachKeyLine(file, 077, "the API key file is readable by group/others (chmod 600)",
                     [&](const std::string& hash, const std::string& agent) {
                       if (hash.size() != 64 || !HexDecode(hash).ok() || !IsAgentName(agent))
                         return false;
                       a.keys_[hash] = agent;
                       return true;
                     }));
  return a;
}

Status Authenticator::LoadAgentKeys(const std::filesystem::path& file) {
  return ForEachKeyLine(
      file, 022,
      "the agent key file is writable by group/others (chmod 600): anyone could register a key",
      [&](const std::string& agent, const std::string& hex) {
        Result<std::vector<uint8_t>> raw = HexDecode(hex);
        Result<crypto::VerifyingKey> vk =
            raw.ok() && raw->size() == 32
                ? crypto::VerifyingKey::FromBytes(*raw)
                : Result<crypto::VerifyingKey>(Status(Reason::kKeyError, ""));
        if (!IsAgentName(agent) || !vk.ok())
          return false;
        agent_keys_.emplace(agent, *vk);
        return true;
      });
}

Result<Identity> Authenticator::FromSignature(const SignedHeaders& h, std::string_view method,
                                              std::string_view target, std::string_view body,
                                              int64_t now_s) const {
  for (const auto& [value, name] :
       {std::pair{&h.agent, "custos-agent"}, std::pair{&h.timestamp, "custos-timestamp"},
        std::pair{&h.nonce, "custos-nonce"}, std::pair{&h.signature, "custos-signature"}}) {
    if (value->empty()) {
      return Status(
          Reason::kSignatureInvalid,
          std::string("a signed request needs all four Custos-* headers; ") + name + " is missing",
          std::string("/headers/") + name);
    }
  }
  if (!IsAgentName(h.agent))
    return Status(Reason::kSignatureInvalid, "not an agent name", "/headers/custos-agent");
  if (h.nonce.size() < 16 || h.nonce.size() > 128 ||
      h.nonce.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
          std::string::npos) {
    return Status(Reason::kSignatureInvalid, "a nonce is 16-128 characters of [A-Za-z0-9_-]",
                  "/headers/custos-nonce");
  }
  if (h.timestamp.empty() || h.timestamp.size() > 12 ||
      h.timestamp.find_first_not_of("0123456789") != std::string::npos) {
    return Status(Reason::kSignatureInvalid, "the timestamp is decimal unix seconds",
                  "/headers/custos-timestamp");
  }
  const int64_t ts = std::stoll(h.timestamp);
  Result<std::vector<uint8_t>> sig_bytes = HexDecode(h.signature);
  if (!sig_bytes.ok() || sig_bytes->size() != 64) {
    return Status(Reason::kSignatureInvalid, "the signature is 128 hex characters (64 bytes)",
                  "/headers/custos-signature");
  }
  auto [first, last] = agent_keys_.equal_range(h.agent);
  if (first == last) {
    return Status(
        Reason::kUnknownAgentKey,
        "no public key is registered for '" + h.agent + "' (custos agentkey add AGENT PUBKEY)",
        "/headers/custos-agent");
  }
  if (ts < now_s - kSignatureSkewSeconds || ts > now_s + kSignatureSkewSeconds) {
    return Status(Reason::kSignatureStale,
                  "the timestamp is " + std::to_string(ts - now_s) +
                      " s from the server's clock (allowed: ±" +
                      std::to_string(kSignatureSkewSeconds) + " s)",
                  "/headers/custos-timestamp");
  }
  crypto::Signature sig;
  std::copy(sig_bytes->begin(), sig_bytes->end(), sig.bytes.begin());
  const std::string canonical =
      CanonicalRequest(method, target, h.agent, h.timestamp, h.nonce, body);
  const std::span<const uint8_t> msg(reinterpret_cast<const uint8_t*>(canonical.data()),
                                     canonical.size());
  for (auto it = first; it != last; ++it) {
    if (it->second.Verify(crypto::SignContext::kSignedRequest, msg, sig).ok())
      return Make(admins_, h.agent, "signed request key " + it->second.id().hex);
  }
  return Status(Reason::kSignatureInvalid,
                "the signature does not verify under any key registered for '" + h.agent + "'",
                "/headers/custos-signature");
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
