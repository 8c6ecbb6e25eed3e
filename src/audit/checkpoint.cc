#include "custos/audit/checkpoint.h"

#include <charconv>
#include <string>

#include "custos/core/encoding.h"
#include "custos/core/json.h"
#include "custos/crypto/sha256.h"

namespace custos::audit {
namespace {

constexpr std::string_view kEmDashSpace = "\xE2\x80\x94 ";  // U+2014 then a space

Status Invalid(std::string msg) { return Status(Reason::kInvalidArgument, std::move(msg)); }

bool HasControl(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return true;
    }
  }
  return false;
}

Status CheckLine(std::string_view what, std::string_view line) {
  if (line.empty()) {
    return Invalid(std::string(what) + " is empty");
  }
  if (HasControl(line)) {
    return Invalid(std::string(what) + " contains a control character");
  }
  return Status::Ok();
}

// Unicode White_Space code points above ASCII (signed-note names may contain none of them).
bool IsUnicodeSpace(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// REQUIRES: IsValidUtf8(s).
bool HasUnicodeSpace(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? b : b & (0xFFu >> (len + 1));
    for (size_t k = 1; k < len && i + k < s.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
    }
    if (IsUnicodeSpace(cp)) {
      return true;
    }
    i += len;
  }
  return false;
}

Status CheckKeyName(std::string_view name) {
  if (name.empty()) {
    return Invalid("note key name is empty");
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '+') {
      return Invalid("note key name \"" + std::string(name) +
                     "\" contains a space, control character or '+'");
    }
  }
  if (!IsValidUtf8(name)) {
    return Status(Reason::kInvalidUtf8, "note key name is not UTF-8");
  }
  if (HasUnicodeSpace(name)) {
    return Invalid("note key name contains a Unicode space");
  }
  return Status::Ok();
}

std::array<uint8_t, 4> KeyHash(std::string_view name, const crypto::VerifyingKey& key) {
  crypto::Sha256Hasher h;
  h.Update(name);
  const uint8_t sep[2] = {'\n', kNoteSigTypeEd25519};
  h.Update(std::span<const uint8_t>(sep, 2));
  h.Update(std::span<const uint8_t>(key.bytes()));
  const crypto::Digest d = h.Finish();
  return {d.bytes[0], d.bytes[1], d.bytes[2], d.bytes[3]};
}

std::string Hex4(const std::array<uint8_t, 4>& b) { return HexEncode(b); }

}  // namespace

Result<std::string> CheckpointBody(const Checkpoint& c) {
  CUSTOS_RETURN_IF_ERROR(CheckLine("checkpoint origin", c.origin));
  if (!IsValidUtf8(c.origin)) {
    return Status(Reason::kInvalidUtf8, "checkpoint origin is not UTF-8");
  }
  std::string body = c.origin + "\n" + std::to_string(c.size) + "\n" +
                     Base64Encode(std::span<const uint8_t>(c.root.bytes)) + "\n";
  for (const std::string& e : c.extensions) {
    CUSTOS_RETURN_IF_ERROR(CheckLine("checkpoint extension line", e));
    if (!IsValidUtf8(e)) {
      return Status(Reason::kInvalidUtf8, "extension line is not UTF-8");
    }
    body += e + "\n";
  }
  return body;
}

Result<Checkpoint> ParseCheckpointBody(std::string_view body) {
  if (body.empty() || body.back() != '\n') {
    return Invalid("checkpoint body must end with a newline");
  }
  if (!IsValidUtf8(body)) {
    return Status(Reason::kInvalidUtf8, "checkpoint body is not UTF-8");
  }
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < body.size();) {
    const size_t nl = body.find('\n', pos);
    lines.push_back(body.substr(pos, nl - pos));
    pos = nl + 1;
  }
  if (lines.size() < 3) {
    return Invalid("checkpoint body has " + std::to_string(lines.size()) +
                   " lines; it needs origin, size and root hash");
  }
  Checkpoint c;
  CUSTOS_RETURN_IF_ERROR(CheckLine("checkpoint origin (line 1)", lines[0]));
  c.origin = std::string(lines[0]);
  const std::string_view size = lines[1];
  if (size.empty() || size.size() > 20 || (size.size() > 1 && size[0] == '0') ||
      size.find_first_not_of("0123456789") != std::string_view::npos) {
    return Invalid("checkpoint tree size (line 2) is not a decimal number without leading zeros");
  }
  const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), c.size);
  if (ec != std::errc() || end != size.data() + size.size()) {
    return Invalid("checkpoint tree size (line 2) does not fit 64 bits");
  }
  Result<std::vector<uint8_t>> root = Base64Decode(lines[2]);
  if (!root.ok()) {
    return Invalid("checkpoint root hash (line 3) is not base64");
  }
  if (root->size() != 32) {
    return Invalid("checkpoint root hash (line 3) is " + std::to_string(root->size()) +
                   " bytes, not 32");
  }
  std::copy(root->begin(), root->end(), c.root.bytes.begin());
  for (size_t i = 3; i < lines.size(); ++i) {
    CUSTOS_RETURN_IF_ERROR(
        CheckLine("checkpoint extension line " + std::to_string(i + 1), lines[i]));
    c.extensions.emplace_back(lines[i]);
  }
  return c;
}

Result<NoteVerifier> MakeNoteVerifier(std::string_view name, const crypto::VerifyingKey& key) {
  CUSTOS_RETURN_IF_ERROR(CheckKeyName(name));
  return NoteVerifier{std::string(name), KeyHash(name, key), key};
}

std::string VerifierKeyString(const NoteVerifier& v) {
  std::vector<uint8_t> typed = {kNoteSigTypeEd25519};
  typed.insert(typed.end(), v.key.bytes().begin(), v.key.bytes().end());
  return v.name + "+" + Hex4(v.key_hash) + "+" + Base64Encode(typed);
}

Result<NoteVerifier> ParseVerifierKeyString(std::string_view vkey) {
  const size_t p1 = vkey.find('+');
  const size_t p2 = p1 == std::string_view::npos ? p1 : vkey.find('+', p1 + 1);
  if (p2 == std::string_view::npos) {  // the base64 key after p2 may itself contain '+'
    return Invalid("verifier key is not <name>+<hash>+<key>");
  }
  const std::string_view name = vkey.substr(0, p1);
  CUSTOS_RETURN_IF_ERROR(CheckKeyName(name));
  Result<std::vector<uint8_t>> hash = HexDecode(vkey.substr(p1 + 1, p2 - p1 - 1));
  if (!hash.ok() || hash->size() != 4) {
    return Invalid("verifier key hash is not 8 hex digits");
  }
  Result<std::vector<uint8_t>> typed = Base64Decode(vkey.substr(p2 + 1));
  if (!typed.ok()) {
    return Invalid("verifier key is not base64");
  }
  if (typed->size() != 33 || (*typed)[0] != kNoteSigTypeEd25519) {
    return Status(Reason::kKeyError, "verifier key is not an Ed25519 (type 0x01) key");
  }
  CUSTOS_ASSIGN_OR_RETURN(crypto::VerifyingKey key,
                          crypto::VerifyingKey::FromBytes(std::span(*typed).subspan(1)));
  CUSTOS_ASSIGN_OR_RETURN(NoteVerifier v, MakeNoteVerifier(name, key));
  if (!std::equal(v.key_hash.begin(), v.key_hash.end(), hash->begin())) {
    return Status(Reason::kKeyError, "verifier key hash does not match its name and key");
  }
  return v;
}

Result<SignedNote> ParseSignedNote(std::string_view note) {
  if (note.size() > kMaxNoteBytes) {
    return Invalid("note is " + std::to_string(note.size()) + " bytes, over the " +
                   std::to_string(kMaxNoteBytes) + " byte cap");
  }
  if (!IsValidUtf8(note)) {
    return Status(Reason::kInvalidUtf8, "note is not UTF-8");
  }
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return Invalid("note has no blank line before its signatures (truncated?)");
  }
  SignedNote out;
  out.text = std::string(note.substr(0, split + 1));
  for (char c : out.text) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n') {
      return Invalid("note text contains a control character");
    }
  }
  std::string_view sigs = note.substr(split + 2);
  if (sigs.empty()) {
    return Invalid("note has no signature lines (truncated?)");
  }
  if (sigs.back() != '\n') {
    return Invalid("note's last signature line is not terminated (truncated?)");
  }
  size_t line_no = 0;
  while (!sigs.empty()) {
    ++line_no;
    const size_t nl = sigs.find('\n');
    const std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    const std::string where = "signature line " + std::to_string(line_no);
    if (out.signatures.size() == kMaxNoteSignatures) {
      return Invalid("note has more than " + std::to_string(kMaxNoteSignatures) + " signatures");
    }
    if (line.substr(0, kEmDashSpace.size()) != kEmDashSpace) {
      return Invalid(where + " does not start with an em dash and a space");
    }
    const std::string_view rest = line.substr(kEmDashSpace.size());
    const size_t sp = rest.find(' ');
    if (sp == std::string_view::npos || rest.find(' ', sp + 1) != std::string_view::npos) {
      return Invalid(where + " is not \"— <name> <base64>\"");
    }
    NoteSignature s;
    s.name = std::string(rest.substr(0, sp));
    Status name_ok = CheckKeyName(s.name);
    if (!name_ok.ok()) {
      return Status(name_ok.reason(), where + ": " + std::string(name_ok.message()));
    }
    Result<std::vector<uint8_t>> raw = Base64Decode(rest.substr(sp + 1));
    if (!raw.ok()) {
      return Invalid(where + ": signature is not base64");
    }
    if (raw->size() < 5) {
      return Invalid(where + ": signature is shorter than a key hash");
    }
    std::copy(raw->begin(), raw->begin() + 4, s.key_hash.begin());
    s.signature.assign(raw->begin() + 4, raw->end());
    out.signatures.push_back(std::move(s));
  }
  return out;
}

Result<std::string> SignNoteLine(std::string_view text, std::string_view name,
                                 const crypto::SigningKey& key) {
  CUSTOS_ASSIGN_OR_RETURN(NoteVerifier v, MakeNoteVerifier(name, key.verifying_key()));
  if (text.find("\n\n") != std::string_view::npos || !IsValidUtf8(text)) {
    return Invalid("note text must be UTF-8 without blank lines");
  }
  CUSTOS_ASSIGN_OR_RETURN(crypto::Signature sig,
                          key.Sign(crypto::SignContext::kCheckpointNote, AsBytes(text)));
  std::vector<uint8_t> raw(v.key_hash.begin(), v.key_hash.end());
  raw.insert(raw.end(), sig.bytes.begin(), sig.bytes.end());
  return std::string(kEmDashSpace) + v.name + " " + Base64Encode(raw) + "\n";
}

Result<std::string> SignCheckpoint(const Checkpoint& c, std::string_view name,
                                   const crypto::SigningKey& key) {
  CUSTOS_ASSIGN_OR_RETURN(std::string body, CheckpointBody(c));
  CUSTOS_ASSIGN_OR_RETURN(std::string line, SignNoteLine(body, name, key));
  return body + "\n" + line;
}

Result<std::string> CosignNote(std::string_view note, std::string_view name,
                               const crypto::SigningKey& key) {
  CUSTOS_ASSIGN_OR_RETURN(SignedNote parsed, ParseSignedNote(note));
  CUSTOS_ASSIGN_OR_RETURN(std::string line, SignNoteLine(parsed.text, name, key));
  return std::string(note) + line;
}

Result<OpenedCheckpoint> OpenCheckpoint(std::string_view note, std::span<const NoteVerifier> known,
                                        std::span<const std::string> required) {
  CUSTOS_ASSIGN_OR_RETURN(SignedNote parsed, ParseSignedNote(note));
  OpenedCheckpoint out;
  for (const NoteSignature& s : parsed.signatures) {
    const NoteVerifier* v = nullptr;
    for (const NoteVerifier& k : known) {
      if (k.name == s.name && k.key_hash == s.key_hash) {
        v = &k;
        break;
      }
    }
    if (v == nullptr) {
      out.unknown.push_back(s.name);
      continue;
    }
    if (s.signature.size() != 64) {
      return Status(Reason::kTokenInvalid, "signature by " + s.name + " is " +
                                               std::to_string(s.signature.size()) +
                                               " bytes, not an Ed25519 signature");
    }
    crypto::Signature sig;
    std::copy(s.signature.begin(), s.signature.end(), sig.bytes.begin());
    Status ok = v->key.Verify(crypto::SignContext::kCheckpointNote, AsBytes(parsed.text), sig);
    if (!ok.ok()) {
      return Status(Reason::kTokenInvalid,
                    "signature by " + s.name + " (key hash " + Hex4(s.key_hash) +
                        ") does not verify: the checkpoint was changed or forged");
    }
    if (std::find(out.verified_by.begin(), out.verified_by.end(), s.name) ==
        out.verified_by.end()) {
      out.verified_by.push_back(s.name);
    }
  }
  if (out.verified_by.empty()) {
    return Status(Reason::kKeyError, "checkpoint is signed by no trusted key (" +
                                         std::to_string(parsed.signatures.size()) +
                                         " signature(s) by unknown keys)");
  }
  for (const std::string& r : required) {
    if (std::find(out.verified_by.begin(), out.verified_by.end(), r) == out.verified_by.end()) {
      return Status(Reason::kKeyError, "checkpoint lacks a signature by required key " + r);
    }
  }
  CUSTOS_ASSIGN_OR_RETURN(out.checkpoint, ParseCheckpointBody(parsed.text));
  return out;
}

}  // namespace custos::audit
