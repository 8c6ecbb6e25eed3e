#include <charconv>
#include <string_view>

#include "kernel/replay_entry_internal.h"

namespace custos::kernel::internal {
namespace {

class Reader {
 public:
  explicit Reader(std::string_view t) : t_(t) {}

  bool Eat(char c) {
    if (p_ < t_.size() && t_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool AtEnd() const { return p_ == t_.size(); }

  // A string in canonical form: raw bytes >= 0x20 except '"' and '\', escapes \" \\ \/ \b \f \n
  // \r \t and \u00XX.
  bool String(std::string* out) {
    if (!Eat('"'))
      return false;
    out->clear();
    size_t run = p_;
    while (p_ < t_.size()) {
      const char c = t_[p_];
      if (c == '"') {
        out->append(t_.data() + run, p_ - run);
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20)
        return false;
      if (c != '\\') {
        ++p_;
        continue;
      }
      out->append(t_.data() + run, p_ - run);
      if (p_ + 1 >= t_.size())
        return false;
      const char e = t_[p_ + 1];
      p_ += 2;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          if (p_ + 4 > t_.size() || t_[p_] != '0' || t_[p_ + 1] != '0')
            return false;
          unsigned v = 0;
          auto r = std::from_chars(t_.data() + p_ + 2, t_.data() + p_ + 4, v, 16);
          if (r.ec != std::errc() || r.ptr != t_.data() + p_ + 4 || v >= 0x80)
            return false;
          out->push_back(static_cast<char>(v));
          p_ += 4;
          break;
        }
        default:
          return false;
      }
      run = p_;
    }
    return false;
  }

  bool Int(int64_t* out) {
    auto r = std::from_chars(t_.data() + p_, t_.data() + t_.size(), *out);
    if (r.ec != std::errc())
      return false;
    p_ = static_cast<size_t>(r.ptr - t_.data());
    return true;
  }

  // An object or array value: "{}" / "[]" fast, anything else parsed by nlohmann over its extent.
  bool Structured(char open, Json* out) {
    const char close = open == '{' ? '}' : ']';
    if (p_ + 1 < t_.size() && t_[p_] == open && t_[p_ + 1] == close) {
      *out = open == '{' ? Json::object() : Json::array();
      p_ += 2;
      return true;
    }
    if (p_ >= t_.size() || t_[p_] != open)
      return false;
    const size_t start = p_;
    int depth = 0;
    bool in_string = false;
    for (; p_ < t_.size(); ++p_) {
      const char c = t_[p_];
      if (in_string) {
        if (c == '\\')
          ++p_;
        else if (c == '"')
          in_string = false;
        continue;
      }
      if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) {
          ++p_;
          Json j = Json::parse(t_.substr(start, p_ - start), nullptr, /*allow_exceptions=*/false);
          if (j.is_discarded())
            return false;
          *out = std::move(j);
          return true;
        }
      }
    }
    return false;
  }

 private:
  std::string_view t_;
  size_t p_ = 0;
};

}  // namespace

bool ReadEntryFast(const store::LogRow& row, audit::LogEntry* e) {
  // The canonical key order (docs/spec/flight-log.md §1).
  static constexpr std::string_view kKeys[] = {
      "agent",       "blob",      "decision_seq", "explanation", "extra",      "labels",
      "policy_hash", "prev_hash", "reason",       "req_hash",    "res_hash",   "rule",
      "run",         "seq",       "stage",        "syscall",     "syscall_id", "target",
      "time_ms",     "type",      "usage",        "v",           "verdict",
  };
  Reader r(row.canonical);
  if (!r.Eat('{'))
    return false;
  std::string key, scratch;
  int64_t version = 0;
  Json labels;
  for (size_t i = 0; i < std::size(kKeys); ++i) {
    if (i > 0 && !r.Eat(','))
      return false;
    if (!r.String(&key) || key != kKeys[i] || !r.Eat(':'))
      return false;
    bool ok = true;
    switch (i) {
      case 0:
        ok = r.String(&e->agent);
        break;
      case 1:
        ok = r.String(&e->blob);
        break;
      case 2:
        ok = r.Int(&e->decision_seq);
        break;
      case 3:
        ok = r.String(&e->explanation);
        break;
      case 4:
        ok = r.Structured('{', &e->extra);
        break;
      case 5:
        ok = r.Structured('[', &labels);
        break;
      case 6:
        ok = r.String(&e->policy_hash);
        break;
      case 7:
        ok = r.String(&e->prev_hash);
        break;
      case 8:
        ok = r.String(&e->reason);
        break;
      case 9:
        ok = r.String(&e->req_hash);
        break;
      case 10:
        ok = r.String(&e->res_hash);
        break;
      case 11:
        ok = r.String(&e->rule);
        break;
      case 12:
        ok = r.String(&e->run);
        break;
      case 13:
        ok = r.Int(&e->seq);
        break;
      case 14:
        ok = r.String(&e->stage);
        break;
      case 15:
        ok = r.String(&e->syscall);
        break;
      case 16:
        ok = r.String(&e->syscall_id);
        break;
      case 17:
        ok = r.String(&e->target);
        break;
      case 18:
        ok = r.Int(&e->time_ms);
        break;
      case 19:
        ok = r.String(&e->type);
        break;
      case 20:
        ok = r.Structured('{', &e->usage);
        break;
      case 21:
        ok = r.Int(&version);
        break;
      case 22:
        ok = r.String(&e->verdict);
        break;
    }
    if (!ok)
      return false;
  }
  if (!r.Eat('}') || !r.AtEnd() || version != audit::kLogEntryVersion || e->seq != row.seq)
    return false;
  e->labels.clear();
  for (const Json& l : labels) {
    if (!l.is_string())
      return false;
    e->labels.push_back(l.get<std::string>());
  }
  return true;
}

}  // namespace custos::kernel::internal
