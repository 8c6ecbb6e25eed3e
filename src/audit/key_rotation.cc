#include "custos/audit/key_rotation.h"

#include <cstring>
#include <span>

#include "custos/audit/stored_tree.h"
#include "custos/core/encoding.h"
#include "custos/core/json.h"

namespace custos::audit {
namespace {

constexpr const char* kStatementKeys[] = {"new_key", "new_key_id", "old_key",  "old_key_id",
                                          "origin",  "root",       "tree_size"};
constexpr const char* kSignatureKeys[] = {"new_signature", "old_signature"};

Status Invalid(int64_t seq, const std::string& what) {
  return Status(Reason::kRotationInvalid,
                "key rotation statement at seq " + std::to_string(seq) + ": " + what);
}

std::string KeyIdOf(const std::array<uint8_t, 32>& pk) {
  Result<crypto::VerifyingKey> k = crypto::VerifyingKey::FromBytes(pk);
  return k.ok() ? k->id().hex : std::string();
}

Json Statement(const KeyRotation& r) {
  return Json{{"origin", r.origin},
              {"tree_size", r.tree_size},
              {"root", r.root.Hex()},
              {"old_key", HexEncode(r.old_key)},
              {"old_key_id", KeyIdOf(r.old_key)},
              {"new_key", HexEncode(r.new_key)},
              {"new_key_id", KeyIdOf(r.new_key)}};
}

// Fixed-size lowercase hex into `out`; false if `text` is not exactly that.
template <size_t N>
bool FromHex(const Json& j, std::array<uint8_t, N>* out) {
  if (!j.is_string()) {
    return false;
  }
  const std::string& s = j.get_ref<const std::string&>();
  if (s.size() != 2 * N) {
    return false;
  }
  for (char c : s) {
    if (HexDigitValue(c) < 0 || (c >= 'A' && c <= 'F')) {
      return false;
    }
  }
  Result<std::vector<uint8_t>> b = HexDecode(s);
  if (!b.ok() || b->size() != N) {
    return false;
  }
  std::memcpy(out->data(), b->data(), N);
  return true;
}

Status VerifyWith(int64_t seq, const std::array<uint8_t, 32>& pk, const std::string& message,
                  const crypto::Signature& sig, const char* which) {
  Result<crypto::VerifyingKey> k = crypto::VerifyingKey::FromBytes(pk);
  if (!k.ok()) {
    return Invalid(seq, std::string("the ") + which + " key is not a valid Ed25519 public key");
  }
  const Status s =
      k->Verify(crypto::SignContext::kKeyRotation,
                std::span(reinterpret_cast<const uint8_t*>(message.data()), message.size()), sig);
  if (!s.ok()) {
    return Invalid(seq, std::string("the signature by the ") + which + " key " + KeyName(*k) +
                            " does not verify");
  }
  return Status::Ok();
}

}  // namespace

std::string KeyName(const crypto::VerifyingKey& key) { return "custos/" + key.id().hex; }

Result<std::string> RotationMessage(const KeyRotation& r) { return CanonicalJson(Statement(r)); }

Result<KeyRotation> SignRotation(std::string origin, uint64_t tree_size, const MerkleHash& root,
                                 const crypto::SigningKey& old_key,
                                 const crypto::SigningKey& new_key) {
  if (old_key.verifying_key().bytes() == new_key.verifying_key().bytes()) {
    return Status(Reason::kInvalidArgument, "a key rotation needs a new key");
  }
  KeyRotation r;
  r.origin = std::move(origin);
  r.tree_size = tree_size;
  r.root = root;
  r.old_key = old_key.verifying_key().bytes();
  r.new_key = new_key.verifying_key().bytes();
  CUSTOS_ASSIGN_OR_RETURN(std::string msg, RotationMessage(r));
  const std::span<const uint8_t> m(reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  CUSTOS_ASSIGN_OR_RETURN(r.old_signature, old_key.Sign(crypto::SignContext::kKeyRotation, m));
  CUSTOS_ASSIGN_OR_RETURN(r.new_signature, new_key.Sign(crypto::SignContext::kKeyRotation, m));
  return r;
}

LogEntry RotationEntry(const KeyRotation& r) {
  LogEntry e;
  e.type = "event";
  e.syscall = kRotationEvent;
  e.stage = "identity";
  e.extra = Statement(r);
  e.extra["old_signature"] = HexEncode(r.old_signature.bytes);
  e.extra["new_signature"] = HexEncode(r.new_signature.bytes);
  return e;
}

bool IsRotationEntry(const LogEntry& e) { return e.type == "event" && e.syscall == kRotationEvent; }

Result<KeyRotation> OpenRotation(const LogEntry& e) {
  const int64_t seq = e.seq;
  if (!IsRotationEntry(e)) {
    return Invalid(seq, "not an identity.rotate event");
  }
  const Json& x = e.extra;
  if (!x.is_object() || x.size() != std::size(kStatementKeys) + std::size(kSignatureKeys)) {
    return Invalid(seq,
                   "extra must hold exactly origin, tree_size, root, old_key, old_key_id, "
                   "new_key, new_key_id, old_signature and new_signature");
  }
  for (const char* k : kStatementKeys) {
    if (!x.contains(k)) {
      return Invalid(seq, std::string("missing ") + k);
    }
  }
  for (const char* k : kSignatureKeys) {
    if (!x.contains(k)) {
      return Invalid(seq, std::string("missing ") + k + " (a rotation is signed by both keys)");
    }
  }
  KeyRotation r;
  r.seq = seq;
  if (!x["origin"].is_string() || x["origin"].get_ref<const std::string&>().empty()) {
    return Invalid(seq, "origin is not a non-empty string");
  }
  r.origin = x["origin"].get<std::string>();
  if (!x["tree_size"].is_number_unsigned()) {
    return Invalid(seq, "tree_size is not a non-negative integer");
  }
  r.tree_size = x["tree_size"].get<uint64_t>();
  if (!FromHex(x["root"], &r.root.bytes)) {
    return Invalid(seq, "root is not 64 lowercase hex digits");
  }
  if (!FromHex(x["old_key"], &r.old_key) || !FromHex(x["new_key"], &r.new_key)) {
    return Invalid(seq, "old_key and new_key must be 64 lowercase hex digits");
  }
  if (!FromHex(x["old_signature"], &r.old_signature.bytes) ||
      !FromHex(x["new_signature"], &r.new_signature.bytes)) {
    return Invalid(seq, "old_signature and new_signature must be 128 lowercase hex digits");
  }
  if (r.old_key == r.new_key) {
    return Invalid(seq, "old_key and new_key are the same key");
  }
  if (x["old_key_id"] != Json(KeyIdOf(r.old_key)) || x["new_key_id"] != Json(KeyIdOf(r.new_key))) {
    return Invalid(seq, "old_key_id / new_key_id are not the ids of old_key / new_key");
  }
  CUSTOS_ASSIGN_OR_RETURN(std::string msg, RotationMessage(r));
  CUSTOS_RETURN_IF_ERROR(VerifyWith(seq, r.old_key, msg, r.old_signature, "old"));
  CUSTOS_RETURN_IF_ERROR(VerifyWith(seq, r.new_key, msg, r.new_signature, "new"));
  return r;
}

Status KeyChain::Add(KeyRotation r) {
  if (!rotations_.empty() && r.seq <= rotations_.back().seq) {
    return Invalid(r.seq, "statements out of order");
  }
  const std::optional<crypto::VerifyingKey> current =
      KeyAt(r.seq > 0 ? static_cast<uint64_t>(r.seq) : 0);
  if (current && current->bytes() != r.old_key) {
    return Invalid(r.seq, "its old key custos/" + KeyIdOf(r.old_key) +
                              " is not the log's current key " + KeyName(*current));
  }
  rotations_.push_back(std::move(r));
  return Status::Ok();
}

std::optional<crypto::VerifyingKey> KeyChain::KeyAt(uint64_t size) const {
  for (auto it = rotations_.rbegin(); it != rotations_.rend(); ++it) {
    if (static_cast<uint64_t>(it->seq) <= size) {
      return crypto::VerifyingKey::FromBytes(it->new_key).value();
    }
  }
  if (!rotations_.empty()) {
    return crypto::VerifyingKey::FromBytes(rotations_.front().old_key).value();
  }
  return first_;
}

std::vector<crypto::VerifyingKey> KeyChain::Keys() const {
  std::vector<crypto::VerifyingKey> out;
  if (!rotations_.empty()) {
    out.push_back(crypto::VerifyingKey::FromBytes(rotations_.front().old_key).value());
  } else if (first_) {
    out.push_back(*first_);
  }
  for (const KeyRotation& r : rotations_) {
    out.push_back(crypto::VerifyingKey::FromBytes(r.new_key).value());
  }
  return out;
}

Result<KeyChain> ReadKeyChain(store::Store& st) {
  KeyChain chain;
  CUSTOS_ASSIGN_OR_RETURN(StoreNodeSource tree, OpenStoredTree(&st));
  store::LogQuery q;
  q.limit = 4096;
  while (true) {
    CUSTOS_ASSIGN_OR_RETURN(std::vector<store::LogRow> rows, st.ReadLog(q));
    for (const store::LogRow& row : rows) {
      if (row.canonical.find("\"syscall\":\"identity.rotate\"") == std::string::npos) {
        continue;
      }
      CUSTOS_ASSIGN_OR_RETURN(LogEntry e, DecodeEntry(row));
      if (!IsRotationEntry(e)) {
        continue;
      }
      CUSTOS_ASSIGN_OR_RETURN(KeyRotation r, OpenRotation(e));
      CUSTOS_ASSIGN_OR_RETURN(MerkleHash root, RootAt(tree, r.tree_size));
      if (r.tree_size != static_cast<uint64_t>(r.seq - 1) || root != r.root) {
        return Invalid(r.seq, "it does not name the tree of the entries before it");
      }
      CUSTOS_RETURN_IF_ERROR(chain.Add(std::move(r)));
    }
    if (rows.size() < static_cast<size_t>(q.limit)) {
      break;
    }
    q.from_seq = rows.back().seq + 1;
  }
  return chain;
}

Status CheckCheckpointSigner(std::string_view note, uint64_t size,
                             const crypto::VerifyingKey& current,
                             const std::vector<NoteVerifier>& trusted) {
  CUSTOS_ASSIGN_OR_RETURN(NoteVerifier v, MakeNoteVerifier(KeyName(current), current));
  if (!trusted.empty()) {
    bool pinned = false;
    for (const NoteVerifier& t : trusted) {
      pinned = pinned || (t.name == v.name && t.key.bytes() == current.bytes());
    }
    if (!pinned) {
      return Status(Reason::kKeyError, "the key current at tree size " + std::to_string(size) +
                                           ", " + v.name + ", is not a trusted key");
    }
  }
  Result<OpenedCheckpoint> o = OpenCheckpoint(note, std::span(&v, 1));
  if (!o.ok()) {
    if (o.status().reason() == Reason::kKeyError) {
      return Status(Reason::kCheckpointWrongSigner,
                    "the checkpoint of size " + std::to_string(size) +
                        " is not signed by the key current at that size, " + v.name);
    }
    return o.status();
  }
  return Status::Ok();
}

}  // namespace custos::audit
