#include "custos/caps/builder.h"

#include <sodium.h>

#include <algorithm>
#include <string>
#include <utility>

#include "caps/signature_payload.h"
#include "caps_pb/biscuit.pb.h"
#include "custos/caps/datalog.h"
#include "custos/caps/datalog_parser.h"
#include "custos/crypto/random.h"

namespace custos::caps {
namespace {

std::string AsString(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Re-interns a parsed block into a token's first-party tables: `symbols` and `keys` hold what
// earlier first-party blocks declared; what this block adds goes to its own lists.
class Interner {
 public:
  Interner(const AuthorizerCode& code, std::vector<std::string> token_symbols,
           std::vector<PublicKey> token_keys)
      : code_(code), token_symbols_(std::move(token_symbols)), token_keys_(std::move(token_keys)) {}

  std::vector<std::string> new_symbols;
  std::vector<PublicKey> new_keys;

  Result<uint64_t> Symbol(uint64_t index) {
    if (index < SymbolTable::kOffset) {
      return index;  // a default symbol: the parser and the decoder share that table
    }
    if (index - SymbolTable::kOffset >= code_.symbols.size()) {
      return Status(Reason::kInternal, "parsed symbol index out of range");
    }
    const std::string& s = code_.symbols[index - SymbolTable::kOffset];
    auto it = std::find(token_symbols_.begin(), token_symbols_.end(), s);
    if (it == token_symbols_.end()) {
      token_symbols_.push_back(s);
      new_symbols.push_back(s);
      it = token_symbols_.end() - 1;
    }
    return SymbolTable::kOffset + static_cast<uint64_t>(it - token_symbols_.begin());
  }

  Result<int64_t> Key(int64_t index) {
    if (index < 0 || static_cast<size_t>(index) >= code_.public_keys.size()) {
      return Status(Reason::kInternal, "parsed public key index out of range");
    }
    const PublicKey& key = code_.public_keys[static_cast<size_t>(index)];
    auto it = std::find(token_keys_.begin(), token_keys_.end(), key);
    if (it == token_keys_.end()) {
      token_keys_.push_back(key);
      new_keys.push_back(key);
      it = token_keys_.end() - 1;
    }
    return static_cast<int64_t>(it - token_keys_.begin());
  }

 private:
  const AuthorizerCode& code_;
  std::vector<std::string> token_symbols_;
  std::vector<PublicKey> token_keys_;
};

// Encoders, the inverse of datalog.cc's decoders, remapping indices through the Interner.
Status EncodeTerm(const Term& t, Interner& in, pb::TermV2& out) {
  switch (t.kind) {
    case Term::Kind::kVariable: {
      CUSTOS_ASSIGN_OR_RETURN(uint64_t v, in.Symbol(t.symbol));
      out.set_variable(static_cast<uint32_t>(v));
      break;
    }
    case Term::Kind::kInteger:
      out.set_integer(t.integer);
      break;
    case Term::Kind::kString: {
      CUSTOS_ASSIGN_OR_RETURN(uint64_t v, in.Symbol(t.symbol));
      out.set_string(v);
      break;
    }
    case Term::Kind::kDate:
      out.set_date(t.symbol);
      break;
    case Term::Kind::kBytes:
      out.set_bytes(AsString(t.bytes));
      break;
    case Term::Kind::kBool:
      out.set_bool_(t.boolean);
      break;
    case Term::Kind::kSet: {
      pb::TermSet* set = out.mutable_set();
      for (const Term& item : t.items) {
        CUSTOS_RETURN_IF_ERROR(EncodeTerm(item, in, *set->add_set()));
      }
      break;
    }
    case Term::Kind::kNull:
      out.mutable_null();
      break;
    case Term::Kind::kArray: {
      pb::Array* array = out.mutable_array();
      for (const Term& item : t.items) {
        CUSTOS_RETURN_IF_ERROR(EncodeTerm(item, in, *array->add_array()));
      }
      break;
    }
    case Term::Kind::kMap: {
      pb::Map* map = out.mutable_map();
      for (const auto& [key, value] : t.entries) {
        pb::MapEntry* e = map->add_entries();
        if (key.kind == Term::Kind::kInteger) {
          e->mutable_key()->set_integer(key.integer);
        } else if (key.kind == Term::Kind::kString) {
          CUSTOS_ASSIGN_OR_RETURN(uint64_t v, in.Symbol(key.symbol));
          e->mutable_key()->set_string(v);
        } else {
          return Status(Reason::kInvalidArgument, "map keys are integers or strings");
        }
        CUSTOS_RETURN_IF_ERROR(EncodeTerm(value, in, *e->mutable_value()));
      }
      break;
    }
  }
  return Status::Ok();
}

Status EncodeOps(const Expression& ops, Interner& in,
                 google::protobuf::RepeatedPtrField<pb::Op>& out) {
  for (const Op& op : ops) {
    pb::Op* o = out.Add();
    switch (op.kind) {
      case Op::Kind::kValue:
        CUSTOS_RETURN_IF_ERROR(EncodeTerm(op.value, in, *o->mutable_value()));
        break;
      case Op::Kind::kUnary:
        o->mutable_unary()->set_kind(static_cast<pb::OpUnary::Kind>(op.unary));
        if (op.ffi_name) {
          CUSTOS_ASSIGN_OR_RETURN(uint64_t v, in.Symbol(*op.ffi_name));
          o->mutable_unary()->set_ffiname(v);
        }
        break;
      case Op::Kind::kBinary:
        o->mutable_binary()->set_kind(static_cast<pb::OpBinary::Kind>(op.binary));
        if (op.ffi_name) {
          CUSTOS_ASSIGN_OR_RETURN(uint64_t v, in.Symbol(*op.ffi_name));
          o->mutable_binary()->set_ffiname(v);
        }
        break;
      case Op::Kind::kClosure: {
        pb::OpClosure* c = o->mutable_closure();
        for (uint32_t p : op.params) {
          CUSTOS_ASSIGN_OR_RETURN(uint64_t v, in.Symbol(p));
          c->add_params(static_cast<uint32_t>(v));
        }
        CUSTOS_RETURN_IF_ERROR(EncodeOps(op.body, in, *c->mutable_ops()));
        break;
      }
    }
  }
  return Status::Ok();
}

Status EncodeScopes(const std::vector<Scope>& scopes, Interner& in,
                    google::protobuf::RepeatedPtrField<pb::Scope>& out) {
  for (const Scope& s : scopes) {
    pb::Scope* o = out.Add();
    switch (s.kind) {
      case Scope::Kind::kAuthority:
        o->set_scopetype(pb::Scope::Authority);
        break;
      case Scope::Kind::kPrevious:
        o->set_scopetype(pb::Scope::Previous);
        break;
      case Scope::Kind::kPublicKey: {
        CUSTOS_ASSIGN_OR_RETURN(int64_t k, in.Key(s.public_key));
        o->set_publickey(k);
        break;
      }
    }
  }
  return Status::Ok();
}

Status EncodePredicate(const Predicate& p, Interner& in, pb::PredicateV2& out) {
  CUSTOS_ASSIGN_OR_RETURN(uint64_t name, in.Symbol(p.name));
  out.set_name(name);
  for (const Term& t : p.terms) {
    CUSTOS_RETURN_IF_ERROR(EncodeTerm(t, in, *out.add_terms()));
  }
  return Status::Ok();
}

Status EncodeRule(const Rule& r, Interner& in, pb::RuleV2& out) {
  CUSTOS_RETURN_IF_ERROR(EncodePredicate(r.head, in, *out.mutable_head()));
  for (const Predicate& p : r.body) {
    CUSTOS_RETURN_IF_ERROR(EncodePredicate(p, in, *out.add_body()));
  }
  for (const Expression& e : r.expressions) {
    CUSTOS_RETURN_IF_ERROR(EncodeOps(e, in, *out.add_expressions()->mutable_ops()));
  }
  return EncodeScopes(r.scopes, in, *out.mutable_scope());
}

// Parses `text` and serializes it as a Block payload for a token whose first-party blocks so far
// declared `symbols` and `keys`.
Result<std::string> BuildPayload(std::string_view text, std::vector<std::string> symbols,
                                 std::vector<PublicKey> keys) {
  CUSTOS_ASSIGN_OR_RETURN(AuthorizerCode code, ParseAuthorizerCode(text));
  if (!code.policies.empty()) {
    return Status(Reason::kInvalidArgument, "a token block cannot contain policies");
  }
  Interner in(code, std::move(symbols), std::move(keys));
  pb::Block block;
  block.set_version(kBlockVersion);
  for (const Predicate& f : code.block.facts) {
    CUSTOS_RETURN_IF_ERROR(EncodePredicate(f, in, *block.add_facts_v2()->mutable_predicate()));
  }
  for (const Rule& r : code.block.rules) {
    CUSTOS_RETURN_IF_ERROR(EncodeRule(r, in, *block.add_rules_v2()));
  }
  for (const Check& c : code.block.checks) {
    pb::CheckV2* out = block.add_checks_v2();
    switch (c.kind) {
      case Check::Kind::kOne:
        break;  // One is the default; leaving it absent is what older verifiers expect
      case Check::Kind::kAll:
        out->set_kind(pb::CheckV2::All);
        break;
      case Check::Kind::kReject:
        out->set_kind(pb::CheckV2::Reject);
        break;
    }
    for (const Rule& q : c.queries) {
      CUSTOS_RETURN_IF_ERROR(EncodeRule(q, in, *out->add_queries()));
    }
  }
  CUSTOS_RETURN_IF_ERROR(EncodeScopes(code.block.scopes, in, *block.mutable_scope()));
  for (const std::string& s : in.new_symbols) {
    block.add_symbols(s);
  }
  for (const PublicKey& k : in.new_keys) {
    pb::PublicKey* o = block.add_publickeys();
    o->set_algorithm(static_cast<pb::PublicKey::Algorithm>(k.algorithm()));
    o->set_key(AsString(k.bytes()));
  }
  std::string out;
  if (!block.SerializeToString(&out)) {
    return Status(Reason::kInternal, "cannot serialize the block");
  }
  return out;
}

// Signs `payload` with `signer` into a SignedBlock carrying `next`'s public key.
void SignBlock(const std::string& payload, const SecretKey& signer, const SecretKey& next,
               std::span<const uint8_t> previous_sig, bool authority, pb::SignedBlock& out) {
  const std::vector<uint8_t> sig = signer.Sign(internal::BlockSignaturePayloadV1(
      Bytes(payload), next.public_key(), previous_sig, authority, /*external_signature=*/nullptr));
  out.set_block(payload);
  out.mutable_nextkey()->set_algorithm(pb::PublicKey::Ed25519);
  out.mutable_nextkey()->set_key(AsString(next.public_key().bytes()));
  out.set_signature(AsString(sig));
  out.set_version(internal::kSignatureVersion);
}

Result<std::vector<uint8_t>> Serialize(const pb::Biscuit& token) {
  std::string bytes;
  if (!token.SerializeToString(&bytes)) {
    return Status(Reason::kInternal, "cannot serialize the token");
  }
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

// Verifies `bytes` against `root` and returns the parsed token and its protobuf; fails if sealed.
struct Attenuable {
  Biscuit verified;
  pb::Biscuit proto;
};
Result<Attenuable> VerifyAttenuable(std::span<const uint8_t> bytes, const PublicKey& root) {
  CUSTOS_ASSIGN_OR_RETURN(Biscuit verified, Biscuit::FromBytes(bytes, root));
  if (verified.sealed()) {
    return Status(Reason::kInvalidArgument, "the token is sealed and cannot be extended");
  }
  if (verified.blocks().back().next_key.algorithm() != Algorithm::kEd25519) {
    return Status(Reason::kInvalidArgument, "only Ed25519 proof keys can sign new blocks");
  }
  Attenuable out{.verified = std::move(verified), .proto = {}};
  if (!out.proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status(Reason::kInternal, "a verified token no longer parses");
  }
  return out;
}

}  // namespace

SecretKey SecretKey::Generate() {
  std::array<uint8_t, kSeedBytes> seed{};
  crypto::RandomBytes(seed);
  Result<SecretKey> key = FromSeed(seed);
  sodium_memzero(seed.data(), seed.size());
  CUSTOS_CHECK(key.ok());
  return std::move(key.value());
}

Result<SecretKey> SecretKey::FromSeed(std::span<const uint8_t> seed) {
  if (seed.size() != kSeedBytes) {
    return Status(Reason::kInvalidArgument, "an Ed25519 seed has 32 bytes");
  }
  crypto::EnsureSodium();
  static_assert(kSecretBytes == crypto_sign_SECRETKEYBYTES);
  std::array<uint8_t, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<uint8_t, kSecretBytes> sk{};
  crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
  Result<PublicKey> public_key = PublicKey::FromBytes(Algorithm::kEd25519, pk);
  if (!public_key.ok()) {
    sodium_memzero(sk.data(), sk.size());
    return public_key.status();
  }
  SecretKey key(sk, std::move(public_key.value()));
  sodium_memzero(sk.data(), sk.size());
  return key;
}

SecretKey::SecretKey(SecretKey&& other) noexcept
    : secret_(other.secret_), public_key_(other.public_key_) {
  other.Wipe();
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    secret_ = other.secret_;
    public_key_ = other.public_key_;
    other.Wipe();
  }
  return *this;
}

SecretKey::~SecretKey() { Wipe(); }

void SecretKey::Wipe() { sodium_memzero(secret_.data(), secret_.size()); }

std::vector<uint8_t> SecretKey::Sign(std::span<const uint8_t> message) const {
  std::vector<uint8_t> sig(crypto_sign_BYTES);
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), secret_.data());
  return sig;
}

Result<std::vector<uint8_t>> Mint(const SecretKey& root, std::string_view authority_datalog,
                                  std::optional<uint32_t> root_key_id) {
  CUSTOS_ASSIGN_OR_RETURN(std::string payload, BuildPayload(authority_datalog, {}, {}));
  const SecretKey next = SecretKey::Generate();
  pb::Biscuit token;
  if (root_key_id) {
    token.set_rootkeyid(*root_key_id);
  }
  SignBlock(payload, root, next, {}, /*authority=*/true, *token.mutable_authority());
  token.mutable_proof()->set_nextsecret(AsString(next.seed()));
  Result<std::vector<uint8_t>> out = Serialize(token);
  // The protobuf holds a copy of the secret; wipe it before the message is freed.
  sodium_memzero(token.mutable_proof()->mutable_nextsecret()->data(), SecretKey::kSeedBytes);
  return out;
}

namespace {

// Appends the block to `in` (a token verified one way or another) and serializes it.
Result<std::vector<uint8_t>> AppendBlock(Attenuable& in, std::string_view block_datalog) {
  std::string* secret_bytes = in.proto.mutable_proof()->mutable_nextsecret();
  Result<SecretKey> signer = SecretKey::FromSeed(Bytes(*secret_bytes));
  sodium_memzero(secret_bytes->data(), secret_bytes->size());
  CUSTOS_RETURN_IF_ERROR(signer);
  if (!(signer->public_key() == in.verified.blocks().back().next_key)) {
    return Status(Reason::kInvalidArgument, "the token's proof does not match its last block");
  }

  // The first-party tables the new block is interpreted with (datalog.h, TablesFor).
  std::vector<std::string> symbols;
  std::vector<PublicKey> keys;
  for (const Block& b : in.verified.blocks()) {
    if (!b.external_key) {
      symbols.insert(symbols.end(), b.symbols.begin(), b.symbols.end());
      keys.insert(keys.end(), b.public_keys.begin(), b.public_keys.end());
    }
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string payload,
                          BuildPayload(block_datalog, std::move(symbols), std::move(keys)));
  const SecretKey next = SecretKey::Generate();
  SignBlock(payload, *signer, next, in.verified.blocks().back().signature, /*authority=*/false,
            *in.proto.add_blocks());
  in.proto.mutable_proof()->set_nextsecret(AsString(next.seed()));
  Result<std::vector<uint8_t>> out = Serialize(in.proto);
  sodium_memzero(in.proto.mutable_proof()->mutable_nextsecret()->data(), SecretKey::kSeedBytes);
  return out;
}

}  // namespace

Result<std::vector<uint8_t>> Attenuate(std::span<const uint8_t> token, const PublicKey& root,
                                       std::string_view block_datalog) {
  CUSTOS_ASSIGN_OR_RETURN(Attenuable in, VerifyAttenuable(token, root));
  return AppendBlock(in, block_datalog);
}

Result<std::vector<uint8_t>> AttenuateVerified(std::span<const uint8_t> token,
                                               const Biscuit& verified,
                                               std::string_view block_datalog) {
  if (verified.sealed()) {
    return Status(Reason::kInvalidArgument, "the token is sealed and cannot be extended");
  }
  if (verified.blocks().back().next_key.algorithm() != Algorithm::kEd25519) {
    return Status(Reason::kInvalidArgument, "only Ed25519 proof keys can sign new blocks");
  }
  if (token.size() > Biscuit::kMaxTokenBytes) {
    return Status(Reason::kPayloadTooLarge, "token exceeds the size cap");
  }
  Attenuable in{.verified = verified, .proto = {}};
  if (!in.proto.ParseFromArray(token.data(), static_cast<int>(token.size())) ||
      static_cast<size_t>(in.proto.blocks_size()) + 1 != verified.blocks().size() ||
      !in.proto.has_proof() || !in.proto.proof().has_nextsecret()) {
    return Status(Reason::kInvalidArgument, "the token is not the one that was verified");
  }
  return AppendBlock(in, block_datalog);
}

Result<std::vector<uint8_t>> Seal(std::span<const uint8_t> token, const PublicKey& root) {
  CUSTOS_ASSIGN_OR_RETURN(Attenuable in, VerifyAttenuable(token, root));
  std::string* secret_bytes = in.proto.mutable_proof()->mutable_nextsecret();
  Result<SecretKey> signer = SecretKey::FromSeed(Bytes(*secret_bytes));
  sodium_memzero(secret_bytes->data(), secret_bytes->size());
  CUSTOS_RETURN_IF_ERROR(signer);
  const std::vector<uint8_t> sig = signer->Sign(internal::SealPayload(in.verified.blocks().back()));
  in.proto.mutable_proof()->set_finalsignature(AsString(sig));
  return Serialize(in.proto);
}

}  // namespace custos::caps
