#include "custos/kernel/token_authority.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <functional>

#include "custos/caps/datalog_parser.h"
#include "custos/caps/token_text.h"
#include "custos/core/encoding.h"
#include "custos/crypto/key_store.h"
#include "custos/crypto/sha256.h"

namespace custos::kernel {
namespace {

// The authorizer's own code: a token is good for an operation only if its authority block grants
// that operation as a right. Checks in the token narrow further.
constexpr std::string_view kAuthorizerPolicy = "allow if operation($op), right($op);\n";

constexpr std::string_view kTokenRootPurpose = "custos/v1/token-root";

// What a hostile token may cost per authorization (decision 008).
caps::RunLimits KernelRunLimits() {
  caps::RunLimits l;
  l.max_facts = 1000;
  l.max_iterations = 100;
  l.max_time = std::chrono::microseconds(5000);
  return l;
}

// A Datalog string literal: the grant vocabulary only ever quotes names, paths and URLs, but a
// quote or backslash must not end the literal early.
Result<std::string> Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
    } else if (static_cast<unsigned char>(c) < 0x20) {
      return Status(Reason::kInvalidArgument, "a granted name contains a control character");
    }
    out += c;
  }
  return out + "\"";
}

// The caveat facts of block `b`: max_uses(N) and rate(N, WINDOW_MS).
Result<std::optional<store::TokenUseLimits>> CaveatsOf(const caps::DatalogBlock& block,
                                                       const caps::SymbolTable& symbols,
                                                       size_t index) {
  std::optional<store::TokenUseLimits> out;
  for (const caps::Predicate& p : block.facts) {
    std::optional<std::string_view> name = symbols.Get(p.name);
    if (!name || (*name != "max_uses" && *name != "rate")) {
      continue;
    }
    auto positive_int = [&](size_t i) -> std::optional<int64_t> {
      if (i >= p.terms.size() || p.terms[i].kind != caps::Term::Kind::kInteger ||
          p.terms[i].integer <= 0) {
        return std::nullopt;
      }
      return p.terms[i].integer;
    };
    const std::string where = "block " + std::to_string(index) + ": ";
    if (!out) {
      out.emplace();
    }
    if (*name == "max_uses") {
      std::optional<int64_t> n = positive_int(0);
      if (!n || p.terms.size() != 1) {
        return Status(Reason::kTokenInvalid,
                      where + "max_uses takes one positive integer: max_uses(1)");
      }
      // Two caveats in one block: the stricter holds.
      out->max_uses = out->max_uses == 0 ? *n : std::min(out->max_uses, *n);
    } else {
      std::optional<int64_t> n = positive_int(0);
      std::optional<int64_t> w = positive_int(1);
      if (!n || !w || p.terms.size() != 2) {
        return Status(Reason::kTokenInvalid,
                      where + "rate takes two positive integers: rate(COUNT, WINDOW_MS)");
      }
      if (out->rate_count == 0 || *n * out->rate_window_ms < out->rate_count * *w) {
        out->rate_count = *n;
        out->rate_window_ms = *w;
      }
    }
  }
  return out;
}

bool IsExpiryCheck(std::string_view check_text) {
  return check_text.find("time($") != std::string_view::npos;
}

}  // namespace

std::string DatalogDate(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

Result<std::shared_ptr<const VerifiedToken>> VerifyBytes(std::span<const uint8_t> bytes,
                                                         const caps::PublicKey& root) {
  CUSTOS_ASSIGN_OR_RETURN(caps::Biscuit b, caps::Biscuit::FromBytes(bytes, root));
  std::vector<std::string> ids = b.RevocationIds();
  bool wants_args_digest = false;
  for (const caps::Block& block : b.blocks()) {
    for (const std::string& sym : block.symbols) {
      wants_args_digest = wants_args_digest || sym == "args_digest";
    }
  }
  CUSTOS_ASSIGN_OR_RETURN(caps::PreparedToken prepared, caps::PrepareToken(std::move(b)));
  auto v = std::make_shared<VerifiedToken>(
      VerifiedToken{std::move(prepared), std::move(ids), {}, wants_args_digest});
  for (size_t i = 0; i < v->prepared.blocks.size(); ++i) {
    CUSTOS_ASSIGN_OR_RETURN(std::optional<store::TokenUseLimits> limits,
                            CaveatsOf(v->prepared.blocks[i], v->prepared.tables[i].symbols, i));
    if (limits) {
      v->caveats.push_back({i, v->revocation_ids[i], *limits});
    }
  }
  return std::shared_ptr<const VerifiedToken>(std::move(v));
}

}  // namespace

caps::SecretKey DeriveTokenRoot(const crypto::SigningKey& identity) {
  std::optional<caps::SecretKey> root;
  const Status st = crypto::KeyStore::LendDerivedSeed(
      identity, kTokenRootPurpose, [&](std::span<const uint8_t> seed) -> Status {
        CUSTOS_ASSIGN_OR_RETURN(caps::SecretKey k, caps::SecretKey::FromSeed(seed));
        root.emplace(std::move(k));
        return Status::Ok();
      });
  CUSTOS_CHECK(st.ok() && root.has_value());  // a 32-byte seed always makes a key
  return std::move(*root);
}

Result<caps::PublicKey> TokenRootOf(const std::filesystem::path& data_dir,
                                    const std::optional<std::string>& passphrase) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey identity,
                          crypto::KeyStore::Load(data_dir / "identity.key", passphrase));
  caps::PublicKey root = DeriveTokenRoot(identity).public_key();
  return root;
}

bool IsRevocationId(std::string_view t) {
  if (t.size() < 16 || t.size() > 160 || t.size() % 2 != 0) {
    return false;
  }
  return std::all_of(t.begin(), t.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<std::shared_ptr<const VerifiedToken>> VerifyToken(std::string_view token,
                                                         const caps::PublicKey& root) {
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, caps::DecodeToken(token));
  return VerifyBytes(bytes, root);
}

// --- TokenCache ----------------------------------------------------------------------------

size_t TokenCache::KeyHash::operator()(const std::array<uint8_t, 32>& k) const {
  size_t h = 0;
  std::memcpy(&h, k.data(), sizeof h);  // already uniformly distributed (SHA-256)
  return h;
}

TokenCache::TokenCache(size_t capacity) : per_shard_(std::max<size_t>(1, capacity / kShards)) {}

std::shared_ptr<const VerifiedToken> TokenCache::Find(const std::array<uint8_t, 32>& key) {
  Shard& s = shards_[key[31] % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.index.find(key);
  if (it == s.index.end()) {
    return nullptr;
  }
  s.lru.splice(s.lru.begin(), s.lru, it->second);
  return it->second->second;
}

void TokenCache::Insert(const std::array<uint8_t, 32>& key,
                        std::shared_ptr<const VerifiedToken> value) {
  Shard& s = shards_[key[31] % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  if (auto it = s.index.find(key); it != s.index.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);
    return;
  }
  s.lru.emplace_front(key, std::move(value));
  s.index.emplace(key, s.lru.begin());
  while (s.lru.size() > per_shard_) {
    s.index.erase(s.lru.back().first);
    s.lru.pop_back();
  }
}

size_t TokenCache::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.lru.size();
  }
  return n;
}

// --- TokenAuthority ------------------------------------------------------------------------

TokenAuthority::TokenAuthority(caps::SecretKey root, size_t cache_entries)
    : root_(std::move(root)), cache_(cache_entries) {}

Result<std::string> TokenAuthority::GrantDatalog(std::string_view agent, std::string_view run,
                                                 const std::vector<std::string>& syscalls,
                                                 const GrantOptions& o, int64_t now_ms) {
  if (o.ttl_ms < 0 || o.max_uses < 0 || o.rate_count < 0 || o.rate_window_ms < 0 ||
      (o.rate_count > 0) != (o.rate_window_ms > 0)) {
    return Status(Reason::kInvalidArgument,
                  "ttl_ms, max_uses and the rate are non-negative; a rate needs both a count and a "
                  "window");
  }
  std::string d;
  for (const std::string& k : syscalls) {
    CUSTOS_ASSIGN_OR_RETURN(std::string q, Quote(k));
    d += "right(" + q + ");\n";
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string who, Quote(agent));
  d += "check if principal(" + who + ");\n";
  if (!run.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(std::string r, Quote(run));
    d += "check if run(" + r + ");\n";
  }
  if (o.ttl_ms > 0) {
    d += "check if time($time), $time <= " + DatalogDate(now_ms + o.ttl_ms) + ";\n";
  }
  if (!o.resource_prefixes.empty()) {
    d += "check if ";
    for (size_t i = 0; i < o.resource_prefixes.size(); ++i) {
      CUSTOS_ASSIGN_OR_RETURN(std::string p, Quote(o.resource_prefixes[i]));
      d += (i == 0 ? "" : " or ") + std::string("resource($r), $r.starts_with(") + p + ")";
    }
    d += ";\n";
  }
  if (o.max_uses > 0) {
    d += "max_uses(" + std::to_string(o.max_uses) + ");\n";
  }
  if (o.rate_count > 0) {
    d += "rate(" + std::to_string(o.rate_count) + ", " + std::to_string(o.rate_window_ms) + ");\n";
  }
  return d;
}

Result<std::string> TokenAuthority::Mint(std::string_view datalog) const {
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, caps::Mint(root_, datalog));
  return caps::EncodeToken(bytes);
}

Result<std::string> TokenAuthority::Attenuate(std::string_view token,
                                              std::string_view datalog) const {
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, caps::DecodeToken(token));
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> out,
                          caps::Attenuate(bytes, root_.public_key(), datalog));
  return caps::EncodeToken(out);
}

Result<std::string> TokenAuthority::Attenuate(std::string_view token, const VerifiedToken& verified,
                                              std::string_view datalog) const {
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, caps::DecodeToken(token));
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> out,
                          caps::AttenuateVerified(bytes, verified.prepared.token, datalog));
  return caps::EncodeToken(out);
}

Result<std::shared_ptr<const VerifiedToken>> TokenAuthority::Verify(std::string_view token,
                                                                    bool* hit) {
  if (hit != nullptr) {
    *hit = false;
  }
  CUSTOS_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, caps::DecodeToken(token));
  thread_local crypto::Sha256Hasher h;
  h.Update(root_.public_key().bytes());
  h.Update(bytes);
  const crypto::Digest key = h.Finish();
  if (std::shared_ptr<const VerifiedToken> v = cache_.Find(key.bytes)) {
    if (hit != nullptr) {
      *hit = true;
    }
    return v;
  }
  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const VerifiedToken> v,
                          VerifyBytes(bytes, root_.public_key()));
  cache_.Insert(key.bytes, v);
  return v;
}

Status TokenAuthority::Authorize(const VerifiedToken& token, const TokenRequest& r) const {
  return AuthorizeToken(token, r);
}

Status AuthorizeToken(const VerifiedToken& token, const TokenRequest& r) {
  static const caps::AuthorizerCode kPolicy = caps::ParseAuthorizerCode(kAuthorizerPolicy).value();
  caps::AuthorizerCode code = kPolicy;
  using caps::StringValue;
  CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(code, "operation", {StringValue(r.operation)}));
  if (!r.resource.empty()) {
    CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(code, "resource", {StringValue(r.resource)}));
  }
  CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(code, "agent", {StringValue(r.agent)}));
  CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(code, "principal", {StringValue(r.principal)}));
  CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(code, "run", {StringValue(r.run)}));
  CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(
      code, "time",
      {caps::DateValue(static_cast<uint64_t>(std::max<int64_t>(0, r.now_ms)) / 1000)}));
  for (const std::string& l : r.labels) {
    CUSTOS_RETURN_IF_ERROR(caps::AddAuthorizerFact(code, "label", {StringValue(l)}));
  }
  if (!r.args_digest.empty()) {
    CUSTOS_RETURN_IF_ERROR(
        caps::AddAuthorizerFact(code, "args_digest", {StringValue(r.args_digest)}));
  }
  CUSTOS_ASSIGN_OR_RETURN(caps::Authorization a,
                          caps::Authorize(token.prepared, code, KernelRunLimits()));
  if (!a.failed_checks.empty()) {
    const caps::FailedCheck& f = a.failed_checks.front();
    const std::string where = f.block_id ? "block " + std::to_string(*f.block_id) : "authorizer";
    const std::string text = where + ", check " + std::to_string(f.check_id) + ": " + f.rule;
    if (IsExpiryCheck(f.rule)) {
      return Status(Reason::kTokenExpired, "the token expired (" + text + ")");
    }
    return Status(Reason::kTokenCheckFailed, "token check failed: " + text);
  }
  if (!a.authorized()) {
    return Status(Reason::kCapabilityMissing,
                  "the token grants no right for " + std::string(r.operation) +
                      " (its authority block has no right(\"" + std::string(r.operation) + "\"))");
  }
  return Status::Ok();
}

}  // namespace custos::kernel
