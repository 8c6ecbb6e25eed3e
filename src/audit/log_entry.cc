#include "custos/audit/log_entry.h"

#include <algorithm>
#include <string>
#include <utility>

#include "audit/entry_scan_internal.h"
#include "custos/crypto/sha256.h"

namespace custos::audit {
namespace {

using internal::kHashHexLen;

// Every field DecodeEntry accepts, in canonical order; nothing else may appear.
constexpr std::string_view kFieldNames[] = {
    "agent",  "blob",     "decision_seq", "explanation", "extra",   "labels",
    "policy_hash", "prev_hash", "reason", "req_hash", "res_hash", "rule",
    "run",    "seq",      "stage",        "syscall",     "syscall_id", "target",
    "time_ms", "type",    "usage",        "v",           "verdict",
};

Status Corrupt(int64_t seq, const std::string& what) {
  return Status(Reason::kLogCorrupt, "log entry " + std::to_string(seq) + ": " + what);
}

Result<std::string> GetString(const Json& j, const char* key, int64_t seq) {
  const Json& v = j.at(key);
  if (!v.is_string()) {
    return Corrupt(seq, std::string("field ") + key + " is not a string");
  }
  return v.get<std::string>();
}

Result<int64_t> GetInt(const Json& j, const char* key, int64_t seq) {
  const Json& v = j.at(key);
  if (!v.is_number_integer()) {
    return Corrupt(seq, std::string("field ") + key + " is not an integer");
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return Corrupt(seq, std::string("field ") + key + " is out of range");
  }
  return v.get<int64_t>();
}

}  // namespace

Result<std::string> EncodeCanonical(const LogEntry& e) {
  if (!internal::IsHashHex(e.prev_hash)) {
    return Status(Reason::kInvalidArgument, "log entry prev_hash must be 64 lowercase hex digits");
  }
  if (!e.usage.is_object() || !e.extra.is_object()) {
    return Status(Reason::kInvalidArgument, "log entry usage and extra must be JSON objects");
  }
  Json labels = Json::array();
  for (const std::string& l : e.labels) {
    labels.push_back(l);
  }
  Json j = {
      {"v", kLogEntryVersion},
      {"seq", e.seq},
      {"prev_hash", e.prev_hash},
      {"time_ms", e.time_ms},
      {"type", e.type},
      {"agent", e.agent},
      {"run", e.run},
      {"syscall_id", e.syscall_id},
      {"syscall", e.syscall},
      {"target", e.target},
      {"verdict", e.verdict},
      {"stage", e.stage},
      {"rule", e.rule},
      {"reason", e.reason},
      {"explanation", e.explanation},
      {"labels", std::move(labels)},
      {"req_hash", e.req_hash},
      {"res_hash", e.res_hash},
      {"blob", e.blob},
      {"decision_seq", e.decision_seq},
      {"policy_hash", e.policy_hash},
      {"usage", e.usage},
      {"extra", e.extra},
  };
  return CanonicalJson(j);
}

std::string ChainHash(std::string_view prev_hash_hex, std::string_view canonical) {
  if (!internal::IsHashHex(prev_hash_hex)) {
    return std::string();  // never equal to a real hash: verification fails closed
  }
  uint8_t prev[32];
  internal::DecodeHashHex(prev_hash_hex, prev);
  // One hasher per thread; Finish() re-initialises it.
  thread_local crypto::Sha256Hasher hasher;
  hasher.Update(std::span<const uint8_t>(prev, sizeof prev));
  hasher.Update(canonical);
  crypto::Digest d = hasher.Finish();
  std::string out(kHashHexLen, '\0');
  internal::EncodeHashHex(d.bytes.data(), out.data());
  return out;
}

Result<LogEntry> DecodeEntry(const store::LogRow& row) {
  JsonLimits limits;
  limits.max_bytes = std::max<size_t>(limits.max_bytes, row.canonical.size());
  Result<Json> parsed = ParseUntrustedJson(row.canonical, limits);
  if (!parsed.ok()) {
    return Corrupt(row.seq, "not valid JSON (" + std::string(parsed.status().message()) + ")");
  }
  const Json& j = *parsed;
  if (!j.is_object()) {
    return Corrupt(row.seq, "not a JSON object");
  }
  for (std::string_view name : kFieldNames) {
    if (!j.contains(name)) {
      return Corrupt(row.seq, "missing field " + std::string(name));
    }
  }
  if (j.size() != std::size(kFieldNames)) {
    for (const auto& [key, value] : j.items()) {
      if (std::find(std::begin(kFieldNames), std::end(kFieldNames), key) ==
          std::end(kFieldNames)) {
        return Corrupt(row.seq, "unknown field " + key.substr(0, 64));
      }
    }
  }
  LogEntry e;
  CUSTOS_ASSIGN_OR_RETURN(int64_t v, GetInt(j, "v", row.seq));
  if (v != kLogEntryVersion) {
    return Corrupt(row.seq, "unsupported entry version " + std::to_string(v));
  }
  CUSTOS_ASSIGN_OR_RETURN(e.seq, GetInt(j, "seq", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.prev_hash, GetString(j, "prev_hash", row.seq));
  if (!internal::IsHashHex(e.prev_hash)) {
    return Corrupt(row.seq, "prev_hash is not 64 lowercase hex digits");
  }
  CUSTOS_ASSIGN_OR_RETURN(e.time_ms, GetInt(j, "time_ms", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.type, GetString(j, "type", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.agent, GetString(j, "agent", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.run, GetString(j, "run", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.syscall_id, GetString(j, "syscall_id", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.syscall, GetString(j, "syscall", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.target, GetString(j, "target", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.verdict, GetString(j, "verdict", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.stage, GetString(j, "stage", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.rule, GetString(j, "rule", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.reason, GetString(j, "reason", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.explanation, GetString(j, "explanation", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.req_hash, GetString(j, "req_hash", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.res_hash, GetString(j, "res_hash", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.blob, GetString(j, "blob", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.decision_seq, GetInt(j, "decision_seq", row.seq));
  CUSTOS_ASSIGN_OR_RETURN(e.policy_hash, GetString(j, "policy_hash", row.seq));
  const Json& labels = j.at("labels");
  if (!labels.is_array()) {
    return Corrupt(row.seq, "field labels is not an array");
  }
  for (const Json& l : labels) {
    if (!l.is_string()) {
      return Corrupt(row.seq, "field labels holds a non-string");
    }
    e.labels.push_back(l.get<std::string>());
  }
  e.usage = j.at("usage");
  e.extra = j.at("extra");
  if (!e.usage.is_object() || !e.extra.is_object()) {
    return Corrupt(row.seq, "fields usage and extra must be objects");
  }
  // The bytes must be exactly the canonical encoding: anything else could hash differently from
  // what a re-encoding verifier computes.
  Result<std::string> again = CanonicalJson(j);
  if (!again.ok() || *again != row.canonical) {
    return Corrupt(row.seq, "not in canonical form");
  }
  if (row.seq != e.seq || row.time_ms != e.time_ms || row.agent != e.agent ||
      row.run != e.run || row.type != e.type || row.verdict != e.verdict ||
      row.reason != e.reason) {
    return Corrupt(row.seq, "the row's index columns disagree with the entry");
  }
  e.hash = row.hash;
  return e;
}

store::LogRow ToRow(const LogEntry& e, std::string canonical) {
  store::LogRow r;
  r.seq = e.seq;
  r.hash = e.hash;
  r.canonical = std::move(canonical);
  r.time_ms = e.time_ms;
  r.agent = e.agent;
  r.run = e.run;
  r.type = e.type;
  r.verdict = e.verdict;
  r.reason = e.reason;
  r.payload = e.payload;
  return r;
}

std::string ToJsonLine(const store::LogRow& row) {
  Result<internal::EntryLayout> l = internal::ScanEntry(row.canonical, internal::ScanMode::kCanonical);
  if (!l.ok()) {
    // Export what is there: a line without "hash" fails verification, so corruption is never
    // hidden by the export.
    return row.canonical;
  }
  std::string out;
  out.reserve(row.canonical.size() + row.hash.size() + 10);
  out.append(row.canonical, 0, l->extra_end);
  out.append(",\"hash\":");
  AppendCanonicalString(row.hash, &out);
  out.append(row.canonical, l->extra_end, std::string::npos);
  return out;
}

}  // namespace custos::audit
