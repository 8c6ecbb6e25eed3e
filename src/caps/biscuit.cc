#include "custos/caps/biscuit.h"

#include <set>
#include <string_view>
#include <utility>

#include "caps/signature_payload.h"
#include "caps_pb/biscuit.pb.h"
#include "custos/core/encoding.h"

namespace custos::caps {
namespace {

// Caps on what one block may declare; far above anything a real token carries, low enough that
// a hostile token cannot make the verifier allocate without bound.
constexpr int kMaxSymbolsPerBlock = 1024;
constexpr int kMaxPublicKeysPerBlock = 64;

// Reports a failure both ways: as the returned Status and, if the caller asked, as *out.
// Construction resets *out to kNone, so success leaves it kNone.
class Failure {
 public:
  explicit Failure(FormatError* out) : out_(out) {
    if (out_ != nullptr) {
      *out_ = FormatError::kNone;
    }
  }
  Status Set(FormatError e, std::string_view detail, std::string at) {
    if (out_ != nullptr) {
      *out_ = e;
    }
    return FormatErrorStatus(e, detail, std::move(at));
  }

 private:
  FormatError* out_;
};

std::string BlockAt(size_t index) {
  return index == 0 ? "/authority" : "/blocks/" + std::to_string(index - 1);
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Result<PublicKey> KeyFromProto(const pb::PublicKey& key) {
  if (!pb::PublicKey_Algorithm_IsValid(key.algorithm())) {
    return FormatErrorStatus(FormatError::kInvalidKey, "unknown key algorithm");
  }
  return PublicKey::FromBytes(static_cast<Algorithm>(key.algorithm()), Bytes(key.key()));
}

}  // namespace

Result<Biscuit> Biscuit::FromBytes(std::span<const uint8_t> bytes, const PublicKey& root,
                                   FormatError* error) {
  return FromBytes(
      bytes, [&root](std::optional<uint32_t>) -> std::optional<PublicKey> { return root; }, error);
}

Result<Biscuit> Biscuit::FromBytes(std::span<const uint8_t> bytes, const RootKeyResolver& root,
                                   FormatError* error) {
  Failure fail(error);
  if (bytes.size() > kMaxTokenBytes) {
    return fail.Set(FormatError::kPayloadTooLarge,
                    "token has " + std::to_string(bytes.size()) + " bytes, cap " +
                        std::to_string(kMaxTokenBytes),
                    "");
  }
  pb::Biscuit token;
  if (!token.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return fail.Set(FormatError::kDeserialization, "not a Biscuit protobuf", "");
  }
  if (static_cast<size_t>(token.blocks_size()) + 1 > kMaxBlocks) {
    return fail.Set(FormatError::kPayloadTooLarge,
                    "token has more than " + std::to_string(kMaxBlocks) + " blocks", "/blocks");
  }

  Biscuit out;
  if (token.has_rootkeyid()) {
    out.root_key_id_ = token.rootkeyid();
  }
  std::optional<PublicKey> root_key = root(out.root_key_id_);
  if (!root_key) {
    return fail.Set(FormatError::kUnknownRootKey, "no root key for this token", "/rootKeyId");
  }

  // Signatures first, on the raw payloads: nothing inside a block is decoded before its
  // signature chain verifies.
  const int count = token.blocks_size() + 1;
  PublicKey current = *root_key;
  std::span<const uint8_t> previous_sig;
  for (int i = 0; i < count; ++i) {
    const pb::SignedBlock& signed_block = i == 0 ? token.authority() : token.blocks(i - 1);
    const std::string at = BlockAt(static_cast<size_t>(i));
    Result<PublicKey> next = KeyFromProto(signed_block.nextkey());
    if (!next.ok()) {
      return fail.Set(FormatError::kInvalidKey, next.status().message(), at + "/nextKey");
    }
    Block block{
        .payload = std::vector<uint8_t>(signed_block.block().begin(), signed_block.block().end()),
        .next_key = *std::move(next),
        .signature =
            std::vector<uint8_t>(signed_block.signature().begin(), signed_block.signature().end()),
        .signature_version = signed_block.has_version() ? signed_block.version() : 0};
    if (block.signature_version > 1) {
      return fail.Set(FormatError::kUnsupportedVersion,
                      "signature version " + std::to_string(block.signature_version),
                      at + "/version");
    }
    if (signed_block.has_externalsignature()) {
      if (i == 0) {
        return fail.Set(FormatError::kExternalSignatureOnAuthority,
                        "the authority block cannot carry an external signature",
                        at + "/externalSignature");
      }
      if (block.signature_version == 0) {
        // Version-0 external signatures do not cover the previous signature, so a third-party
        // block could be replayed onto another token; upstream dropped them.
        return fail.Set(FormatError::kUnsupportedVersion,
                        "third-party blocks need signature version 1", at + "/version");
      }
      Result<PublicKey> external = KeyFromProto(signed_block.externalsignature().publickey());
      if (!external.ok()) {
        return fail.Set(FormatError::kInvalidKey, external.status().message(),
                        at + "/externalSignature/publicKey");
      }
      block.external_key = *std::move(external);
      const std::string& sig = signed_block.externalsignature().signature();
      block.external_signature.assign(sig.begin(), sig.end());
    }

    const FormatError sig_error = current.Verify(
        internal::BlockSignaturePayload(block, previous_sig, i == 0), block.signature);
    if (sig_error != FormatError::kNone) {
      return fail.Set(sig_error, "block signature", at + "/signature");
    }
    if (block.external_key) {
      const FormatError ext_error = block.external_key->Verify(
          internal::ExternalSignaturePayload(block, previous_sig), block.external_signature);
      if (ext_error != FormatError::kNone) {
        return fail.Set(ext_error, "external signature", at + "/externalSignature");
      }
    }
    current = block.next_key;
    out.blocks_.push_back(std::move(block));
    previous_sig = out.blocks_.back().signature;
  }

  const Block& last = out.blocks_.back();
  const pb::Proof& proof = token.proof();
  if (proof.has_finalsignature()) {
    const FormatError seal_error =
        last.next_key.Verify(internal::SealPayload(last), Bytes(proof.finalsignature()));
    if (seal_error != FormatError::kNone) {
      return fail.Set(seal_error, "sealing signature", "/proof/finalSignature");
    }
    out.sealed_ = true;
  } else if (proof.has_nextsecret()) {
    if (!SecretMatchesPublicKey(Bytes(proof.nextsecret()), last.next_key)) {
      return fail.Set(FormatError::kInvalidSignature,
                      "the proof's secret key does not match the last block's next key",
                      "/proof/nextSecret");
    }
  } else {
    return fail.Set(FormatError::kDeserialization, "empty proof", "/proof");
  }

  // Now decode each block's Datalog header.
  std::set<std::string, std::less<>> first_party_symbols;
  for (size_t i = 0; i < out.blocks_.size(); ++i) {
    Block& block = out.blocks_[i];
    const std::string at = BlockAt(i) + "/block";
    pb::Block decoded;
    if (!decoded.ParseFromArray(block.payload.data(), static_cast<int>(block.payload.size()))) {
      return fail.Set(FormatError::kDeserialization, "not a Block protobuf", at);
    }
    block.version = decoded.has_version() ? decoded.version() : 0;
    if (block.version < kMinBlockVersion || block.version > kMaxBlockVersion) {
      return fail.Set(FormatError::kUnsupportedVersion,
                      "block version " + std::to_string(block.version) + " outside [" +
                          std::to_string(kMinBlockVersion) + ", " +
                          std::to_string(kMaxBlockVersion) + "]",
                      at + "/version");
    }
    if (decoded.symbols_size() > kMaxSymbolsPerBlock ||
        decoded.publickeys_size() > kMaxPublicKeysPerBlock) {
      return fail.Set(FormatError::kPayloadTooLarge, "too many symbols or public keys", at);
    }
    block.symbols.assign(decoded.symbols().begin(), decoded.symbols().end());
    // Third-party blocks start from the default table (their signer never saw the token), so
    // only first-party blocks extend the shared table and must not redeclare a symbol.
    if (!block.external_key) {
      for (const std::string& s : block.symbols) {
        if (!first_party_symbols.insert(s).second) {
          return fail.Set(FormatError::kSymbolTableOverlap, "symbol declared twice",
                          at + "/symbols");
        }
      }
    }
    for (int k = 0; k < decoded.publickeys_size(); ++k) {
      Result<PublicKey> key = KeyFromProto(decoded.publickeys(k));
      if (!key.ok()) {
        return fail.Set(FormatError::kInvalidKey, key.status().message(),
                        at + "/publicKeys/" + std::to_string(k));
      }
      block.public_keys.push_back(*std::move(key));
    }
    if (decoded.has_context()) {
      block.context = decoded.context();
    }
  }
  return out;
}

std::vector<std::string> Biscuit::RevocationIds() const {
  std::vector<std::string> ids;
  ids.reserve(blocks_.size());
  for (const Block& b : blocks_) {
    ids.push_back(HexEncode(b.signature));
  }
  return ids;
}

}  // namespace custos::caps
