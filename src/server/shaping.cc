#include "server/shaping.h"

#include <algorithm>
#include <set>

namespace custos::server {

Result<std::string> ParseResponseMode(const Json& body) {
  auto it = body.find("response_mode");
  if (it == body.end())
    return std::string("summary");
  if (!it->is_string())
    return Status(Reason::kSchemaViolation, "response_mode must be a string", "/response_mode");
  const std::string m = it->get<std::string>();
  if (m != "summary" && m != "table" && m != "handle" && m != "raw") {
    return Status(Reason::kInvalidArgument, "response_mode is summary | table | handle | raw",
                  "/response_mode");
  }
  return m;
}

namespace {

Json Summary(const Json& frame) {
  Json out = Json::object();
  for (const char* k : {"size", "tool", "exit_code", "binary"}) {
    if (frame.contains(k))
      out[k] = frame[k];
  }
  if (frame.contains("text") && frame["text"].is_string()) {
    std::string t = frame["text"].get<std::string>();
    if (t.size() > kSummaryBytes) {
      t.resize(kSummaryBytes);
      while (!t.empty() && !IsValidUtf8(t))  // do not split a UTF-8 sequence
        t.pop_back();
      out["truncated"] = true;
    } else if (frame.value("truncated", false)) {
      out["truncated"] = true;
    }
    out["summary"] = t;
  }
  return out;
}

}  // namespace

Json ShapeFrame(const Json& frame, const std::string& mode) {
  if (mode == "raw" || !frame.is_object())
    return frame;
  if (mode == "handle")
    return Json::object({{"size", frame.value("size", 0)}});
  if (mode == "table" && frame.contains("text") && frame["text"].is_string() &&
      !frame.value("truncated", false)) {
    Result<Json> parsed = ParseUntrustedJson(frame["text"].get<std::string>());
    if (parsed.ok() && parsed->is_array() &&
        std::all_of(parsed->begin(), parsed->end(), [](const Json& r) { return r.is_object(); })) {
      std::set<std::string> cols;
      for (const Json& r : *parsed) {
        for (auto it = r.begin(); it != r.end() && cols.size() < kTableColumns; ++it)
          cols.insert(it.key());
      }
      Json rows = Json::array();
      for (size_t i = 0; i < parsed->size() && i < kTableRows; ++i) {
        Json row = Json::array();
        for (const std::string& c : cols)
          row.push_back((*parsed)[i].contains(c) ? (*parsed)[i][c] : Json());
        rows.push_back(std::move(row));
      }
      return Json{{"columns", Json(std::vector<std::string>(cols.begin(), cols.end()))},
                  {"rows", rows},
                  {"total_rows", parsed->size()},
                  {"size", frame.value("size", 0)}};
    }
    Json s = Summary(frame);
    s["table_unavailable"] = "the output is not a complete JSON array of objects";
    return s;
  }
  return Summary(frame);
}

Result<ExpandQuery> ParseExpandQuery(const Json& body) {
  ExpandQuery q;
  auto int_field = [&](const char* k, int64_t min, int64_t max, int64_t* out) -> Status {
    auto it = body.find(k);
    if (it == body.end())
      return Status::Ok();
    if (!it->is_number_integer() || it->get<int64_t>() < min || it->get<int64_t>() > max) {
      return Status(Reason::kSchemaViolation,
                    std::string(k) + " must be an integer in [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]",
                    "/" + std::string(k));
    }
    *out = it->get<int64_t>();
    return Status::Ok();
  };
  CUSTOS_RETURN_IF_ERROR(int_field("offset", 0, INT32_MAX, &q.offset));
  CUSTOS_RETURN_IF_ERROR(int_field("limit", 1, kMaxExpandRows, &q.limit));
  if (auto it = body.find("fields"); it != body.end()) {
    if (!it->is_array())
      return Status(Reason::kSchemaViolation, "fields must be an array of strings", "/fields");
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) {
        return Status(Reason::kSchemaViolation, "fields must be an array of strings",
                      "/fields/" + std::to_string(i));
      }
      q.fields.push_back((*it)[i].get<std::string>());
    }
  }
  if (auto it = body.find("filter"); it != body.end()) {
    if (!it->is_object()) {
      return Status(Reason::kSchemaViolation, "filter must be an object of field: value",
                    "/filter");
    }
    q.filter = *it;
  }
  return q;
}

Json ExpandRows(const std::string& text, const ExpandQuery& q) {
  Result<Json> parsed = ParseUntrustedJson(text);
  if (!parsed.ok() || !parsed->is_array())
    return Json();
  Json rows = Json::array();
  int64_t matched = 0;
  for (const Json& r : *parsed) {
    bool keep = true;
    for (auto f = q.filter.begin(); f != q.filter.end() && keep; ++f)
      keep = r.is_object() && r.contains(f.key()) && r[f.key()] == f.value();
    if (!keep)
      continue;
    ++matched;
    if (matched <= q.offset || static_cast<int64_t>(rows.size()) >= q.limit)
      continue;
    if (q.fields.empty() || !r.is_object()) {
      rows.push_back(r);
    } else {
      Json p = Json::object();
      for (const std::string& f : q.fields) {
        if (r.contains(f))
          p[f] = r[f];
      }
      rows.push_back(std::move(p));
    }
  }
  return Json{{"rows", rows}, {"matched", matched}, {"offset", q.offset}, {"limit", q.limit}};
}

}  // namespace custos::server
