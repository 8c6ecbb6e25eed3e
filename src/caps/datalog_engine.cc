#include "custos/caps/datalog_engine.h"

#include <re2/re2.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <set>
#include <utility>

namespace custos::caps {
namespace {

using Clock = std::chrono::steady_clock;

using Value = DatalogValue;

int Compare(const Value& a, const Value& b);

template <typename T>
int Cmp(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

int Compare(const Value& a, const Value& b) {
  if (a.kind != b.kind) {
    return Cmp(a.kind, b.kind);
  }
  switch (a.kind) {
    case Value::Kind::kInteger:
      return Cmp(a.integer, b.integer);
    case Value::Kind::kDate:
      return Cmp(a.date, b.date);
    case Value::Kind::kBool:
      return Cmp(a.boolean, b.boolean);
    case Value::Kind::kString:
    case Value::Kind::kBytes:
      return a.text.compare(b.text) < 0 ? -1 : (a.text == b.text ? 0 : 1);
    case Value::Kind::kNull:
      return 0;
    case Value::Kind::kSet:
    case Value::Kind::kArray:
      for (size_t i = 0; i < a.items.size() && i < b.items.size(); ++i) {
        if (int c = Compare(a.items[i], b.items[i]); c != 0) {
          return c;
        }
      }
      return Cmp(a.items.size(), b.items.size());
    case Value::Kind::kMap:
      for (size_t i = 0; i < a.entries.size() && i < b.entries.size(); ++i) {
        if (int c = Compare(a.entries[i].first, b.entries[i].first); c != 0) {
          return c;
        }
        if (int c = Compare(a.entries[i].second, b.entries[i].second); c != 0) {
          return c;
        }
      }
      return Cmp(a.entries.size(), b.entries.size());
  }
  return 0;
}

// Civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

// A value in Datalog text, as the printer writes terms.
std::string ValueText(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kInteger:
      return std::to_string(v.integer);
    case Value::Kind::kString:
      return "\"" + v.text + "\"";
    case Value::Kind::kDate: {
      int64_t y = 0;
      unsigned m = 0;
      unsigned d = 0;
      const int64_t days = static_cast<int64_t>(v.date / 86400);
      const uint64_t secs = v.date % 86400;
      CivilFromDays(days, &y, &m, &d);
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02u:%02u:%02uZ", static_cast<long long>(y),
                    m, d, static_cast<unsigned>(secs / 3600), static_cast<unsigned>(secs / 60 % 60),
                    static_cast<unsigned>(secs % 60));
      return buf;
    }
    case Value::Kind::kBytes: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out = "hex:";
      for (unsigned char c : v.text) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
      return out;
    }
    case Value::Kind::kBool:
      return v.boolean ? "true" : "false";
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kSet:
    case Value::Kind::kArray: {
      const bool set = v.kind == Value::Kind::kSet;
      if (set && v.items.empty()) {
        return "{,}";
      }
      std::string out = set ? "{" : "[";
      for (size_t i = 0; i < v.items.size(); ++i) {
        out += (i == 0 ? "" : ", ") + ValueText(v.items[i]);
      }
      return out + (set ? "}" : "]");
    }
    case Value::Kind::kMap: {
      std::string out = "{";
      for (size_t i = 0; i < v.entries.size(); ++i) {
        out += (i == 0 ? "" : ", ") + ValueText(v.entries[i].first) + ": " +
               ValueText(v.entries[i].second);
      }
      return out + "}";
    }
  }
  return "";
}

struct ValueLess {
  bool operator()(const Value& a, const Value& b) const { return Compare(a, b) < 0; }
};

void Normalize(Value& v) {
  if (v.kind == Value::Kind::kSet) {
    std::sort(v.items.begin(), v.items.end(), ValueLess());
    v.items.erase(std::unique(v.items.begin(), v.items.end(),
                              [](const Value& a, const Value& b) { return Compare(a, b) == 0; }),
                  v.items.end());
  } else if (v.kind == Value::Kind::kMap) {
    std::stable_sort(v.entries.begin(), v.entries.end(),
                     [](const auto& a, const auto& b) { return Compare(a.first, b.first) < 0; });
    // Later duplicates of a key win, as in a map literal.
    std::vector<std::pair<Value, Value>> out;
    for (auto& e : v.entries) {
      if (!out.empty() && Compare(out.back().first, e.first) == 0) {
        out.back() = std::move(e);
      } else {
        out.push_back(std::move(e));
      }
    }
    v.entries = std::move(out);
  }
}

Value Bool(bool b) {
  Value v;
  v.kind = Value::Kind::kBool;
  v.boolean = b;
  return v;
}

Value Int(int64_t i) {
  Value v;
  v.kind = Value::Kind::kInteger;
  v.integer = i;
  return v;
}

// Origins: blocks by bit (Biscuit::kMaxBlocks == 64) plus the authorizer.
struct Origins {
  uint64_t blocks = 0;
  bool authorizer = false;
  Origins operator|(const Origins& o) const {
    return {blocks | o.blocks, authorizer || o.authorizer};
  }
  bool SubsetOf(const Origins& o) const {
    return (blocks & ~o.blocks) == 0 && (!authorizer || o.authorizer);
  }
  auto operator<=>(const Origins&) const = default;
};
static_assert(Biscuit::kMaxBlocks <= 64);

Origins BlockOrigin(size_t i) { return {uint64_t{1} << i, false}; }
constexpr Origins kAuthorizerOrigin{0, true};

// Variables are numbered per rule (closure parameters included, by name), so bindings are a
// vector indexed by slot.
struct ETerm {
  bool variable = false;
  std::string name;   // variable
  uint32_t slot = 0;  // variable
  Value value;
};

struct EPredicate {
  std::string name;
  std::vector<ETerm> terms;
};

struct EOp {
  Op::Kind kind = Op::Kind::kValue;
  bool variable = false;
  std::string name;   // variable
  uint32_t slot = 0;  // variable
  Value value;
  UnaryOp unary = UnaryOp::kNegate;
  BinaryOp binary = BinaryOp::kLessThan;
  std::string ffi;  // extern function name
  std::vector<std::string> params;
  std::vector<uint32_t> param_slots;
  std::vector<EOp> body;
};
using EExpression = std::vector<EOp>;

struct ERule {
  EPredicate head;
  std::vector<EPredicate> body;
  std::vector<EExpression> expressions;
  Origins trusted;
  Origins origin;    // where derived facts come from
  size_t slots = 0;  // variables, numbered 0..slots-1
};

struct ECheck {
  Check::Kind kind = Check::Kind::kOne;
  std::vector<ERule> queries;
  std::optional<size_t> block_id;
  size_t check_id = 0;
  // Printed only when the check fails.
  const Check* source = nullptr;
  const SymbolTable* symbols = nullptr;
  std::span<const PublicKey> keys;
};

struct Fact {
  Origins origin;
  std::vector<Value> terms;
};
struct FactLess {
  bool operator()(const Fact& a, const Fact& b) const {
    if (a.origin != b.origin) {
      return a.origin < b.origin;
    }
    return std::lexicographical_compare(a.terms.begin(), a.terms.end(), b.terms.begin(),
                                        b.terms.end(), ValueLess());
  }
};

using Bindings = std::vector<std::optional<Value>>;

class Engine {
 public:
  Engine(const RunLimits& limits, const std::map<std::string, ExternFunction, std::less<>>& externs)
      : limits_(limits), externs_(externs), deadline_(Clock::now() + limits.max_time) {}

  DatalogError last_error() const { return last_; }

  Status Fail(DatalogError e, std::string_view detail) {
    last_ = e;
    std::string message(DatalogErrorName(e));
    message += ": ";
    message += detail;
    return Status(Reason::kTokenInvalid, std::move(message));
  }

  Status CheckTime() {
    if ((++ticks_ & 63) == 0 && Clock::now() > deadline_) {
      return Fail(DatalogError::kTimeout, "authorization exceeded its time limit");
    }
    return Status::Ok();
  }

  Status AddFact(const std::string& name, Fact f, bool* added) {
    Relation& rel = world_[name];
    auto [it, inserted] = rel.index.insert(f);
    (void)it;
    if (inserted) {
      rel.facts.push_back(std::move(f));
      ++fact_count_;
      if (fact_count_ > limits_.max_facts) {
        return Fail(DatalogError::kTooManyFacts, "the world exceeded its fact limit");
      }
    }
    if (added != nullptr) {
      *added = *added || inserted;
    }
    return Status::Ok();
  }

  bool Known(const std::string& name, const Fact& f) const {
    auto it = world_.find(name);
    return it != world_.end() && it->second.index.contains(f);
  }

  // Calls `emit(bindings, origins)` for every assignment satisfying the body and expressions.
  // Body predicate `delta` (if any) only matches the facts the previous iteration added; the others
  // match every fact known when the iteration started (semi-naive evaluation).
  template <typename Emit>
  Status Match(const ERule& rule, size_t index, Bindings& b, Origins acc, Emit& emit,
               std::optional<size_t> delta = std::nullopt) {
    CUSTOS_RETURN_IF_ERROR(CheckTime());
    if (stop_) {
      return Status::Ok();
    }
    if (index == rule.body.size()) {
      for (const EExpression& e : rule.expressions) {
        CUSTOS_ASSIGN_OR_RETURN(Value v, Eval(e, b));
        if (v.kind != Value::Kind::kBool) {
          return Fail(DatalogError::kInvalidType, "an expression did not evaluate to a boolean");
        }
        if (!v.boolean) {
          return Status::Ok();
        }
      }
      return emit(b, acc);
    }
    const EPredicate& p = rule.body[index];
    auto it = world_.find(p.name);
    if (it == world_.end()) {
      return Status::Ok();
    }
    const Relation& rel = it->second;
    const size_t begin = delta == index ? rel.delta_begin : 0;
    const size_t end = delta ? rel.delta_end : rel.facts.size();
    std::vector<uint32_t> bound;
    bound.reserve(p.terms.size());
    for (size_t fi = begin; fi < end; ++fi) {
      const Fact& f = rel.facts[fi];
      if (f.terms.size() != p.terms.size() || !f.origin.SubsetOf(rule.trusted)) {
        continue;
      }
      bound.clear();
      bool ok = true;
      for (size_t i = 0; i < p.terms.size() && ok; ++i) {
        const ETerm& t = p.terms[i];
        if (!t.variable) {
          ok = Compare(t.value, f.terms[i]) == 0;
        } else if (b[t.slot]) {
          ok = Compare(*b[t.slot], f.terms[i]) == 0;
        } else {
          b[t.slot] = f.terms[i];
          bound.push_back(t.slot);
        }
      }
      Status s = ok ? Match(rule, index + 1, b, acc | f.origin, emit, delta) : Status::Ok();
      for (uint32_t slot : bound) {
        b[slot].reset();
      }
      CUSTOS_RETURN_IF_ERROR(s);
    }
    return Status::Ok();
  }

  Status RunRules(const std::vector<const ERule*>& rules) {
    for (auto& [name, rel] : world_) {
      rel.delta_begin = 0;
      rel.delta_end = rel.facts.size();
    }
    for (size_t iteration = 0;; ++iteration) {
      if (iteration >= limits_.max_iterations) {
        return Fail(DatalogError::kTooManyIterations, "the rules did not reach a fixpoint in time");
      }
      std::map<std::string, std::set<Fact, FactLess>> produced;
      size_t produced_count = 0;
      for (const ERule* rp : rules) {
        const ERule& r = *rp;
        auto emit = [&](const Bindings& b, Origins acc) -> Status {
          Fact f{acc | r.origin, {}};
          for (const ETerm& t : r.head.terms) {
            f.terms.push_back(t.variable ? *b[t.slot] : t.value);
          }
          if (Known(r.head.name, f) || !produced[r.head.name].insert(std::move(f)).second) {
            return Status::Ok();
          }
          if (fact_count_ + ++produced_count > limits_.max_facts) {
            return Fail(DatalogError::kTooManyFacts, "the world exceeded its fact limit");
          }
          return Status::Ok();
        };
        Bindings b(r.slots);
        if (r.body.empty()) {
          if (iteration == 0) {
            CUSTOS_RETURN_IF_ERROR(Match(r, 0, b, Origins{}, emit));
          }
          continue;
        }
        for (size_t d = 0; d < r.body.size(); ++d) {
          CUSTOS_RETURN_IF_ERROR(Match(r, 0, b, Origins{}, emit, d));
        }
      }
      for (auto& [name, rel] : world_) {
        rel.delta_begin = rel.delta_end;
      }
      for (auto& [name, facts] : produced) {
        for (const Fact& f : facts) {
          CUSTOS_RETURN_IF_ERROR(AddFact(name, f, nullptr));
        }
      }
      for (auto& [name, rel] : world_) {
        rel.delta_end = rel.facts.size();
      }
      if (produced_count == 0) {
        return Status::Ok();
      }
    }
  }

  // True if the query has at least one match (kAll: at least one, and every body match satisfies
  // the expressions).
  Result<bool> Query(const ERule& q, bool all) {
    bool found = false;
    Bindings b(q.slots);
    if (!all) {
      auto emit = [&](const Bindings&, Origins) -> Status {
        found = true;
        stop_ = true;
        return Status::Ok();
      };
      Status s = Match(q, 0, b, Origins{}, emit);
      stop_ = false;
      CUSTOS_RETURN_IF_ERROR(s);
      return found;
    }
    bool failed = false;
    ERule body_only = q;
    body_only.expressions.clear();
    auto emit = [&](const Bindings& bound, Origins) -> Status {
      found = true;
      Bindings copy = bound;
      for (const EExpression& e : q.expressions) {
        CUSTOS_ASSIGN_OR_RETURN(Value v, Eval(e, copy));
        if (v.kind != Value::Kind::kBool) {
          return Fail(DatalogError::kInvalidType, "an expression did not evaluate to a boolean");
        }
        if (!v.boolean) {
          failed = true;
          stop_ = true;
          break;
        }
      }
      return Status::Ok();
    };
    Status s = Match(body_only, 0, b, Origins{}, emit);
    stop_ = false;
    CUSTOS_RETURN_IF_ERROR(s);
    return found && !failed;
  }

  Result<Value> Eval(const EExpression& ops, Bindings& b);

  void Dump(std::vector<WorldFact>& out) const {
    for (const auto& [name, rel] : world_) {
      for (const Fact& f : rel.index) {
        WorldFact w;
        for (size_t i = 0; i < 64; ++i) {
          if ((f.origin.blocks >> i) & 1) {
            w.blocks.push_back(i);
          }
        }
        w.authorizer = f.origin.authorizer;
        w.text = name + "(";
        for (size_t i = 0; i < f.terms.size(); ++i) {
          w.text += (i == 0 ? "" : ", ") + ValueText(f.terms[i]);
        }
        w.text += ")";
        out.push_back(std::move(w));
      }
    }
  }

 private:
  struct Item {
    Value value;
    const EOp* closure = nullptr;
  };
  Result<Value> Unary(UnaryOp op, Value v);
  Result<Value> Binary(BinaryOp op, Value l, Value r);
  Result<Value> Closure(const EOp& c, Bindings& b, const Value* arg);

  Result<Value> Extern(const std::string& name, const Value& left, const Value* right);

  RunLimits limits_;
  const std::map<std::string, ExternFunction, std::less<>>& externs_;
  DatalogError last_ = DatalogError::kNone;
  bool stop_ = false;
  Clock::time_point deadline_;
  uint64_t ticks_ = 0;
  size_t fact_count_ = 0;
  struct Relation {
    std::set<Fact, FactLess> index;  // deduplication
    std::vector<Fact> facts;         // insertion order: each iteration's additions are contiguous
    size_t delta_begin = 0;          // [delta_begin, delta_end): added by the last iteration
    size_t delta_end = 0;
  };
  std::map<std::string, Relation> world_;
};

Result<Value> Engine::Closure(const EOp& c, Bindings& b, const Value* arg) {
  if (c.param_slots.size() != (arg == nullptr ? 0u : 1u)) {
    return Fail(DatalogError::kInvalidType, "closure has the wrong number of parameters");
  }
  if (arg == nullptr) {
    return Eval(c.body, b);
  }
  const uint32_t slot = c.param_slots[0];
  if (b[slot]) {
    return Fail(DatalogError::kShadowedVariable, "closure parameter $" + c.params[0]);
  }
  b[slot] = *arg;
  Result<Value> r = Eval(c.body, b);
  b[slot].reset();
  return r;
}

Result<Value> Engine::Eval(const EExpression& ops, Bindings& b) {
  std::vector<Item> stack;
  auto pop = [&](Item* out) -> Status {
    if (stack.empty()) {
      return Fail(DatalogError::kMalformed, "expression stack underflow");
    }
    *out = std::move(stack.back());
    stack.pop_back();
    return Status::Ok();
  };
  for (const EOp& op : ops) {
    CUSTOS_RETURN_IF_ERROR(CheckTime());
    switch (op.kind) {
      case Op::Kind::kValue:
        if (op.variable) {
          if (!b[op.slot]) {
            return Fail(DatalogError::kUnknownVariable, "$" + op.name);
          }
          stack.push_back({*b[op.slot], nullptr});
        } else {
          stack.push_back({op.value, nullptr});
        }
        break;
      case Op::Kind::kClosure:
        stack.push_back({Value{}, &op});
        break;
      case Op::Kind::kUnary: {
        Item v;
        CUSTOS_RETURN_IF_ERROR(pop(&v));
        if (v.closure != nullptr) {
          return Fail(DatalogError::kInvalidType, "closure used as a value");
        }
        Value out;
        if (op.unary == UnaryOp::kFfi) {
          CUSTOS_ASSIGN_OR_RETURN(out, Extern(op.ffi, v.value, nullptr));
        } else {
          CUSTOS_ASSIGN_OR_RETURN(out, Unary(op.unary, std::move(v.value)));
        }
        stack.push_back({std::move(out), nullptr});
        break;
      }
      case Op::Kind::kBinary: {
        Item r;
        Item l;
        CUSTOS_RETURN_IF_ERROR(pop(&r));
        CUSTOS_RETURN_IF_ERROR(pop(&l));
        Value out;
        switch (op.binary) {
          case BinaryOp::kLazyAnd:
          case BinaryOp::kLazyOr: {
            if (l.closure != nullptr || l.value.kind != Value::Kind::kBool ||
                r.closure == nullptr) {
              return Fail(DatalogError::kInvalidType, "lazy boolean operator on non-booleans");
            }
            const bool is_and = op.binary == BinaryOp::kLazyAnd;
            if (l.value.boolean != is_and) {
              out = Bool(l.value.boolean);
              break;
            }
            CUSTOS_ASSIGN_OR_RETURN(out, Closure(*r.closure, b, nullptr));
            if (out.kind != Value::Kind::kBool) {
              return Fail(DatalogError::kInvalidType, "lazy boolean operator on non-booleans");
            }
            break;
          }
          case BinaryOp::kAll:
          case BinaryOp::kAny: {
            if (l.closure != nullptr || r.closure == nullptr) {
              return Fail(DatalogError::kInvalidType, "all/any needs a collection and a closure");
            }
            std::vector<Value> elements;
            if (l.value.kind == Value::Kind::kSet || l.value.kind == Value::Kind::kArray) {
              elements = l.value.items;
            } else if (l.value.kind == Value::Kind::kMap) {
              for (const auto& [k, v] : l.value.entries) {
                Value pair;
                pair.kind = Value::Kind::kArray;
                pair.items = {k, v};
                elements.push_back(std::move(pair));
              }
            } else {
              return Fail(DatalogError::kInvalidType, "all/any on a non-collection");
            }
            const bool want = op.binary == BinaryOp::kAny;
            out = Bool(!want);
            for (const Value& e : elements) {
              CUSTOS_ASSIGN_OR_RETURN(Value res, Closure(*r.closure, b, &e));
              if (res.kind != Value::Kind::kBool) {
                return Fail(DatalogError::kInvalidType, "all/any closure returned a non-boolean");
              }
              if (res.boolean == want) {
                out = Bool(want);
                break;
              }
            }
            break;
          }
          case BinaryOp::kTryOr: {
            if (r.closure != nullptr) {
              return Fail(DatalogError::kInvalidType, "try_or default is a closure");
            }
            if (l.closure == nullptr) {
              out = std::move(l.value);
              break;
            }
            Result<Value> tried = Closure(*l.closure, b, nullptr);
            if (tried.ok()) {
              out = std::move(*tried);
            } else if (last_ == DatalogError::kTimeout || last_ == DatalogError::kMalformed) {
              return tried.status();  // limits and malformed programs are not caught
            } else {
              last_ = DatalogError::kNone;
              out = std::move(r.value);
            }
            break;
          }
          default:
            if (l.closure != nullptr || r.closure != nullptr) {
              return Fail(DatalogError::kInvalidType, "closure used as a value");
            }
            if (op.binary == BinaryOp::kFfi) {
              CUSTOS_ASSIGN_OR_RETURN(out, Extern(op.ffi, l.value, &r.value));
            } else {
              CUSTOS_ASSIGN_OR_RETURN(out,
                                      Binary(op.binary, std::move(l.value), std::move(r.value)));
            }
        }
        stack.push_back({std::move(out), nullptr});
        break;
      }
    }
  }
  if (stack.size() != 1 || stack.back().closure != nullptr) {
    return Fail(DatalogError::kMalformed, "expression does not reduce to one value");
  }
  return std::move(stack.back().value);
}

Result<Value> Engine::Extern(const std::string& name, const Value& left, const Value* right) {
  auto it = externs_.find(name);
  if (it == externs_.end()) {
    return Fail(DatalogError::kUnknownFunction, "extern::" + name + " is not registered");
  }
  Result<Value> out = it->second(left, right);
  if (!out.ok()) {
    return Fail(DatalogError::kExternFailed,
                "extern::" + name + ": " + std::string(out.status().message()));
  }
  Normalize(*out);
  return std::move(*out);
}

Result<Value> Engine::Unary(UnaryOp op, Value v) {
  switch (op) {
    case UnaryOp::kNegate:
      if (v.kind != Value::Kind::kBool) {
        return Fail(DatalogError::kInvalidType, "! on a non-boolean");
      }
      return Bool(!v.boolean);
    case UnaryOp::kParens:
      return v;
    case UnaryOp::kLength:
      switch (v.kind) {
        case Value::Kind::kString:
        case Value::Kind::kBytes:
          return Int(static_cast<int64_t>(v.text.size()));
        case Value::Kind::kSet:
        case Value::Kind::kArray:
          return Int(static_cast<int64_t>(v.items.size()));
        case Value::Kind::kMap:
          return Int(static_cast<int64_t>(v.entries.size()));
        default:
          return Fail(DatalogError::kInvalidType, "length() of a scalar");
      }
    case UnaryOp::kTypeOf: {
      static constexpr std::string_view kNames[] = {"integer", "string", "date",  "bytes", "bool",
                                                    "set",     "null",   "array", "map"};
      Value out;
      out.kind = Value::Kind::kString;
      out.text = kNames[static_cast<size_t>(v.kind)];
      return out;
    }
    case UnaryOp::kFfi:
      break;  // handled by Eval
  }
  return Fail(DatalogError::kMalformed, "unknown unary operator");
}

Result<Value> Engine::Binary(BinaryOp op, Value l, Value r) {
  using K = Value::Kind;
  const bool same = l.kind == r.kind;
  switch (op) {
    case BinaryOp::kLessThan:
    case BinaryOp::kGreaterThan:
    case BinaryOp::kLessOrEqual:
    case BinaryOp::kGreaterOrEqual: {
      if (!same || (l.kind != K::kInteger && l.kind != K::kDate)) {
        break;
      }
      const int c = Compare(l, r);
      switch (op) {
        case BinaryOp::kLessThan:
          return Bool(c < 0);
        case BinaryOp::kGreaterThan:
          return Bool(c > 0);
        case BinaryOp::kLessOrEqual:
          return Bool(c <= 0);
        default:
          return Bool(c >= 0);
      }
    }
    case BinaryOp::kEqual:
    case BinaryOp::kNotEqual:
      if (!same) {
        break;
      }
      return Bool((Compare(l, r) == 0) == (op == BinaryOp::kEqual));
    case BinaryOp::kHeterogeneousEqual:
      return Bool(Compare(l, r) == 0);
    case BinaryOp::kHeterogeneousNotEqual:
      return Bool(Compare(l, r) != 0);
    case BinaryOp::kContains:
      if (l.kind == K::kString && r.kind == K::kString) {
        return Bool(l.text.find(r.text) != std::string::npos);
      }
      if (l.kind == K::kSet && r.kind == K::kSet) {
        return Bool(std::includes(l.items.begin(), l.items.end(), r.items.begin(), r.items.end(),
                                  ValueLess()));
      }
      if (l.kind == K::kSet || l.kind == K::kArray) {
        return Bool(std::any_of(l.items.begin(), l.items.end(),
                                [&](const Value& e) { return Compare(e, r) == 0; }));
      }
      if (l.kind == K::kMap) {
        return Bool(std::any_of(l.entries.begin(), l.entries.end(),
                                [&](const auto& e) { return Compare(e.first, r) == 0; }));
      }
      break;
    case BinaryOp::kPrefix:
    case BinaryOp::kSuffix: {
      const bool prefix = op == BinaryOp::kPrefix;
      if (l.kind == K::kString && r.kind == K::kString) {
        return Bool(prefix ? std::string_view(l.text).starts_with(r.text)
                           : std::string_view(l.text).ends_with(r.text));
      }
      if (l.kind == K::kArray && r.kind == K::kArray) {
        if (r.items.size() > l.items.size()) {
          return Bool(false);
        }
        const size_t off = prefix ? 0 : l.items.size() - r.items.size();
        for (size_t i = 0; i < r.items.size(); ++i) {
          if (Compare(l.items[off + i], r.items[i]) != 0) {
            return Bool(false);
          }
        }
        return Bool(true);
      }
      break;
    }
    case BinaryOp::kRegex: {
      if (l.kind != K::kString || r.kind != K::kString) {
        break;
      }
      RE2::Options options;
      options.set_log_errors(false);
      options.set_max_mem(1 << 20);
      RE2 re(r.text, options);
      if (!re.ok()) {
        return Fail(DatalogError::kInvalidType, "invalid regular expression");
      }
      return Bool(RE2::PartialMatch(l.text, re));
    }
    case BinaryOp::kAdd:
    case BinaryOp::kSub:
    case BinaryOp::kMul:
    case BinaryOp::kDiv: {
      if (op == BinaryOp::kAdd && l.kind == K::kString && r.kind == K::kString) {
        l.text += r.text;
        return l;
      }
      if (l.kind != K::kInteger || r.kind != K::kInteger) {
        break;
      }
      int64_t out = 0;
      bool overflow = false;
      if (op == BinaryOp::kAdd) {
        overflow = __builtin_add_overflow(l.integer, r.integer, &out);
      } else if (op == BinaryOp::kSub) {
        overflow = __builtin_sub_overflow(l.integer, r.integer, &out);
      } else if (op == BinaryOp::kMul) {
        overflow = __builtin_mul_overflow(l.integer, r.integer, &out);
      } else {
        if (r.integer == 0) {
          return Fail(DatalogError::kDivideByZero, "integer division by zero");
        }
        overflow = l.integer == INT64_MIN && r.integer == -1;
        out = overflow ? 0 : l.integer / r.integer;
      }
      if (overflow) {
        return Fail(DatalogError::kOverflow, "integer overflow");
      }
      return Int(out);
    }
    case BinaryOp::kAnd:
    case BinaryOp::kOr:
      if (l.kind != K::kBool || r.kind != K::kBool) {
        break;
      }
      return Bool(op == BinaryOp::kAnd ? (l.boolean && r.boolean) : (l.boolean || r.boolean));
    case BinaryOp::kIntersection:
    case BinaryOp::kUnion: {
      if (l.kind != K::kSet || r.kind != K::kSet) {
        break;
      }
      Value out;
      out.kind = K::kSet;
      if (op == BinaryOp::kIntersection) {
        std::set_intersection(l.items.begin(), l.items.end(), r.items.begin(), r.items.end(),
                              std::back_inserter(out.items), ValueLess());
      } else {
        std::set_union(l.items.begin(), l.items.end(), r.items.begin(), r.items.end(),
                       std::back_inserter(out.items), ValueLess());
      }
      return out;
    }
    case BinaryOp::kBitwiseAnd:
    case BinaryOp::kBitwiseOr:
    case BinaryOp::kBitwiseXor:
      if (l.kind != K::kInteger || r.kind != K::kInteger) {
        break;
      }
      return Int(op == BinaryOp::kBitwiseAnd  ? (l.integer & r.integer)
                 : op == BinaryOp::kBitwiseOr ? (l.integer | r.integer)
                                              : (l.integer ^ r.integer));
    case BinaryOp::kGet:
      if (l.kind == K::kArray && r.kind == K::kInteger) {
        if (r.integer < 0 || static_cast<uint64_t>(r.integer) >= l.items.size()) {
          return Value{};
        }
        return l.items[static_cast<size_t>(r.integer)];
      }
      if (l.kind == K::kMap && (r.kind == K::kInteger || r.kind == K::kString)) {
        for (auto& [k, v] : l.entries) {
          if (Compare(k, r) == 0) {
            return v;
          }
        }
        return Value{};
      }
      break;
    case BinaryOp::kFfi:
    case BinaryOp::kLazyAnd:
    case BinaryOp::kLazyOr:
    case BinaryOp::kAll:
    case BinaryOp::kAny:
    case BinaryOp::kTryOr:
      break;  // handled by Eval
  }
  return Fail(DatalogError::kInvalidType, "operator applied to operands of the wrong type");
}

// Resolves a block's symbol-indexed structures into engine form.
class Resolver {
 public:
  Resolver(Engine& engine, const SymbolTable& symbols, std::span<const PublicKey> keys)
      : engine_(engine), symbols_(symbols), keys_(keys) {}

  Result<std::string> Symbol(uint64_t index) {
    std::optional<std::string_view> s = symbols_.Get(index);
    if (!s) {
      return engine_.Fail(DatalogError::kMalformed,
                          "symbol index " + std::to_string(index) + " is out of range");
    }
    return std::string(*s);
  }

  Result<PublicKey> Key(int64_t index) {
    if (index < 0 || static_cast<uint64_t>(index) >= keys_.size()) {
      return engine_.Fail(DatalogError::kMalformed,
                          "public key index " + std::to_string(index) + " is out of range");
    }
    return keys_[static_cast<size_t>(index)];
  }

  Result<Value> Ground(const Term& t) {
    Value v;
    switch (t.kind) {
      case Term::Kind::kVariable:
        return engine_.Fail(DatalogError::kMalformed, "variable inside a collection");
      case Term::Kind::kInteger:
        return Int(t.integer);
      case Term::Kind::kString: {
        v.kind = Value::Kind::kString;
        CUSTOS_ASSIGN_OR_RETURN(v.text, Symbol(t.symbol));
        return v;
      }
      case Term::Kind::kDate:
        v.kind = Value::Kind::kDate;
        v.date = t.symbol;
        return v;
      case Term::Kind::kBytes:
        v.kind = Value::Kind::kBytes;
        v.text.assign(t.bytes.begin(), t.bytes.end());
        return v;
      case Term::Kind::kBool:
        return Bool(t.boolean);
      case Term::Kind::kNull:
        return v;
      case Term::Kind::kSet:
      case Term::Kind::kArray:
        v.kind = t.kind == Term::Kind::kSet ? Value::Kind::kSet : Value::Kind::kArray;
        for (const Term& i : t.items) {
          CUSTOS_ASSIGN_OR_RETURN(Value e, Ground(i));
          v.items.push_back(std::move(e));
        }
        Normalize(v);
        return v;
      case Term::Kind::kMap:
        v.kind = Value::Kind::kMap;
        for (const auto& [k, val] : t.entries) {
          CUSTOS_ASSIGN_OR_RETURN(Value ek, Ground(k));
          CUSTOS_ASSIGN_OR_RETURN(Value ev, Ground(val));
          v.entries.emplace_back(std::move(ek), std::move(ev));
        }
        Normalize(v);
        return v;
    }
    return v;
  }

  // Starts numbering a new rule's variables; SlotCount() is how many it used.
  void BeginRule() { slots_.clear(); }
  size_t SlotCount() const { return slots_.size(); }

  uint32_t Slot(const std::string& name) {
    return slots_.emplace(name, static_cast<uint32_t>(slots_.size())).first->second;
  }

  Result<ETerm> Resolve(const Term& t) {
    ETerm out;
    if (t.kind == Term::Kind::kVariable) {
      out.variable = true;
      CUSTOS_ASSIGN_OR_RETURN(out.name, Symbol(t.symbol));
      out.slot = Slot(out.name);
      return out;
    }
    CUSTOS_ASSIGN_OR_RETURN(out.value, Ground(t));
    return out;
  }

  Result<EPredicate> Resolve(const Predicate& p) {
    EPredicate out;
    CUSTOS_ASSIGN_OR_RETURN(out.name, Symbol(p.name));
    for (const Term& t : p.terms) {
      CUSTOS_ASSIGN_OR_RETURN(ETerm e, Resolve(t));
      out.terms.push_back(std::move(e));
    }
    return out;
  }

  Result<EExpression> Resolve(const Expression& ops) {
    EExpression out;
    for (const Op& op : ops) {
      EOp e;
      e.kind = op.kind;
      e.unary = op.unary;
      e.binary = op.binary;
      if (op.ffi_name) {
        CUSTOS_ASSIGN_OR_RETURN(e.ffi, Symbol(*op.ffi_name));
      }
      if (op.kind == Op::Kind::kValue) {
        CUSTOS_ASSIGN_OR_RETURN(ETerm t, Resolve(op.value));
        e.variable = t.variable;
        e.slot = t.slot;
        e.name = std::move(t.name);
        e.value = std::move(t.value);
      } else if (op.kind == Op::Kind::kClosure) {
        for (uint32_t p : op.params) {
          CUSTOS_ASSIGN_OR_RETURN(std::string name, Symbol(p));
          e.param_slots.push_back(Slot(name));
          e.params.push_back(std::move(name));
        }
        CUSTOS_ASSIGN_OR_RETURN(e.body, Resolve(op.body));
      }
      out.push_back(std::move(e));
    }
    return out;
  }

 private:
  Engine& engine_;
  const SymbolTable& symbols_;
  std::span<const PublicKey> keys_;
  std::map<std::string, uint32_t> slots_;
};

void CollectVariables(const EExpression& ops, std::set<std::string>& params,
                      std::set<std::string>& used) {
  for (const EOp& op : ops) {
    if (op.kind == Op::Kind::kValue && op.variable && !params.contains(op.name)) {
      used.insert(op.name);
    } else if (op.kind == Op::Kind::kClosure) {
      std::set<std::string> inner = params;
      inner.insert(op.params.begin(), op.params.end());
      CollectVariables(op.body, inner, used);
    }
  }
}

// The first closure parameter that reuses a name already in scope (a body variable or an
// enclosing closure's parameter), if any: the specification rejects these before evaluation.
std::optional<std::string> ShadowedParameter(const EExpression& ops,
                                             const std::set<std::string>& scope) {
  for (const EOp& op : ops) {
    if (op.kind != Op::Kind::kClosure) {
      continue;
    }
    std::set<std::string> inner = scope;
    for (const std::string& p : op.params) {
      if (!inner.insert(p).second) {
        return p;
      }
    }
    if (auto shadowed = ShadowedParameter(op.body, inner)) {
      return shadowed;
    }
  }
  return std::nullopt;
}

std::set<std::string> BodyVariables(const ERule& r) {
  std::set<std::string> bound;
  for (const EPredicate& p : r.body) {
    for (const ETerm& t : p.terms) {
      if (t.variable) {
        bound.insert(t.name);
      }
    }
  }
  return bound;
}

// Every variable of the head and expressions must be bound by a body predicate.
bool VariablesBound(const ERule& r, bool check_head) {
  const std::set<std::string> bound = BodyVariables(r);
  std::set<std::string> used;
  if (check_head) {
    for (const ETerm& t : r.head.terms) {
      if (t.variable) {
        used.insert(t.name);
      }
    }
  }
  std::set<std::string> params;
  for (const EExpression& e : r.expressions) {
    CollectVariables(e, params, used);
  }
  return std::includes(bound.begin(), bound.end(), used.begin(), used.end());
}

// Which blocks and whether the authorizer a rule trusts (see the header).
class Trust {
 public:
  // external_keys[i]: the key that signed block i if it is a third-party block.
  explicit Trust(std::span<const std::optional<PublicKey>> external_keys)
      : external_keys_(external_keys) {}

  Result<Origins> For(const std::vector<Scope>& scopes, const std::optional<size_t>& current,
                      Resolver& keys) {
    Origins o = kAuthorizerOrigin;
    if (current) {
      o = o | BlockOrigin(*current);
    }
    for (const Scope& s : scopes) {
      switch (s.kind) {
        case Scope::Kind::kAuthority:
          o = o | BlockOrigin(0);
          break;
        case Scope::Kind::kPrevious:
          if (current) {
            o.blocks |= (*current >= 63 ? ~uint64_t{0} : ((uint64_t{1} << (*current + 1)) - 1));
          }
          break;
        case Scope::Kind::kPublicKey: {
          CUSTOS_ASSIGN_OR_RETURN(PublicKey key, keys.Key(s.public_key));
          for (size_t i = 0; i < external_keys_.size(); ++i) {
            if (external_keys_[i] == key) {
              o = o | BlockOrigin(i);
            }
          }
          break;
        }
      }
    }
    return o;
  }

  // A rule's trusted origins: its own scopes, or else its block's defaults.
  Result<Origins> ForRule(const std::vector<Scope>& rule_scopes, const Origins& block_default,
                          const std::optional<size_t>& current, Resolver& keys) {
    if (rule_scopes.empty()) {
      Origins o = block_default | kAuthorizerOrigin;
      return current ? o | BlockOrigin(*current) : o;
    }
    return For(rule_scopes, current, keys);
  }

 private:
  std::span<const std::optional<PublicKey>> external_keys_;
};

Result<std::string> CheckText(const Check& c, const SymbolTable& symbols,
                              std::span<const PublicKey> keys) {
  DatalogBlock one;
  one.checks.push_back(c);
  CUSTOS_ASSIGN_OR_RETURN(std::string text, PrintDatalog(one, symbols, keys));
  return text.substr(0, text.size() - 2);  // drop ";\n"
}

Result<std::string> RuleText(const Rule& r, const SymbolTable& symbols,
                             std::span<const PublicKey> keys) {
  DatalogBlock one;
  one.rules.push_back(r);
  CUSTOS_ASSIGN_OR_RETURN(std::string text, PrintDatalog(one, symbols, keys));
  return text.substr(0, text.size() - 2);
}

// Matching recurses once per body predicate; real rules have a handful, and the cap keeps a hostile
// rule from exhausting the stack.
constexpr size_t kMaxBodyPredicates = 64;

// One block's (or the authorizer's) contribution to the world.
struct Source {
  std::optional<size_t> block_id;  // nullopt: the authorizer
  const DatalogBlock* block;
  const SymbolTable* symbols;
  std::span<const PublicKey> keys;
};

// Engine::Fail prefixes the error's name; a stored failure message already carries it.
std::string StripErrorName(std::string_view message, DatalogError e) {
  const std::string prefix = std::string(DatalogErrorName(e)) + ": ";
  if (message.substr(0, prefix.size()) == prefix) {
    message.remove_prefix(prefix.size());
  }
  return std::string(message);
}

// What one source (a block or the authorizer) contributes, resolved for the engine.
struct Compiled {
  std::vector<std::pair<std::string, Fact>> facts;
  std::vector<ERule> rules;
  std::vector<ECheck> checks;
  std::vector<std::pair<Policy::Kind, std::vector<ERule>>> policies;
};

// Resolves `src` into `out` (appending). `policies` is the authorizer's, or null for a block.
Status CompileSource(Engine& engine, const Source& src, Trust& trust,
                     const std::vector<Policy>* policies, Compiled& dst) {
  Resolver res(engine, *src.symbols, src.keys);
  const Origins origin = src.block_id ? BlockOrigin(*src.block_id) : kAuthorizerOrigin;
  Origins block_default = BlockOrigin(0) | kAuthorizerOrigin;
  if (!src.block->scopes.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(block_default, trust.For(src.block->scopes, src.block_id, res));
  }
  for (const Predicate& p : src.block->facts) {
    CUSTOS_ASSIGN_OR_RETURN(EPredicate f, res.Resolve(p));
    Fact fact{origin, {}};
    for (ETerm& t : f.terms) {
      if (t.variable) {
        return engine.Fail(DatalogError::kMalformed, "a fact contains a variable");
      }
      fact.terms.push_back(std::move(t.value));
    }
    dst.facts.emplace_back(std::move(f.name), std::move(fact));
  }
  // `where` names the statement in errors: "rule <i>", "check <i>" or "policy <i>".
  auto resolve_rule = [&](const Rule& r, bool check_head,
                          const std::string& where) -> Result<ERule> {
    if (r.body.size() > kMaxBodyPredicates) {
      return engine.Fail(
          DatalogError::kMalformed,
          where + " has more than " + std::to_string(kMaxBodyPredicates) + " predicates");
    }
    ERule out;
    res.BeginRule();
    CUSTOS_ASSIGN_OR_RETURN(out.head, res.Resolve(r.head));
    for (const Predicate& p : r.body) {
      CUSTOS_ASSIGN_OR_RETURN(EPredicate e, res.Resolve(p));
      out.body.push_back(std::move(e));
    }
    for (const Expression& x : r.expressions) {
      CUSTOS_ASSIGN_OR_RETURN(EExpression e, res.Resolve(x));
      out.expressions.push_back(std::move(e));
    }
    out.slots = res.SlotCount();
    CUSTOS_ASSIGN_OR_RETURN(out.trusted, trust.ForRule(r.scopes, block_default, src.block_id, res));
    out.origin = origin;
    if (!VariablesBound(out, check_head)) {
      CUSTOS_ASSIGN_OR_RETURN(std::string text, RuleText(r, *src.symbols, src.keys));
      if (src.block_id) {
        return engine.Fail(DatalogError::kInvalidBlockRule,
                           "block " + std::to_string(*src.block_id) + ", " + where + ": " + text);
      }
      return engine.Fail(DatalogError::kInvalidRule, where + ": " + text);
    }
    const std::set<std::string> bound = BodyVariables(out);
    for (const EExpression& e : out.expressions) {
      if (std::optional<std::string> p = ShadowedParameter(e, bound)) {
        return engine.Fail(DatalogError::kShadowedVariable,
                           "closure parameter $" + *p + " in " + where + " shadows a variable");
      }
    }
    return out;
  };
  for (size_t ri = 0; ri < src.block->rules.size(); ++ri) {
    CUSTOS_ASSIGN_OR_RETURN(ERule e,
                            resolve_rule(src.block->rules[ri], true, "rule " + std::to_string(ri)));
    dst.rules.push_back(std::move(e));
  }
  for (size_t ci = 0; ci < src.block->checks.size(); ++ci) {
    const Check& c = src.block->checks[ci];
    ECheck e;
    e.kind = c.kind;
    e.block_id = src.block_id;
    e.check_id = ci;
    e.source = &c;
    e.symbols = src.symbols;
    e.keys = src.keys;
    for (const Rule& q : c.queries) {
      CUSTOS_ASSIGN_OR_RETURN(ERule eq, resolve_rule(q, false, "check " + std::to_string(ci)));
      e.queries.push_back(std::move(eq));
    }
    dst.checks.push_back(std::move(e));
  }
  if (policies != nullptr) {
    for (size_t pi = 0; pi < policies->size(); ++pi) {
      const Policy& p = (*policies)[pi];
      std::vector<ERule> queries;
      for (const Rule& q : p.queries) {
        CUSTOS_ASSIGN_OR_RETURN(ERule eq, resolve_rule(q, false, "policy " + std::to_string(pi)));
        queries.push_back(std::move(eq));
      }
      dst.policies.emplace_back(p.kind, std::move(queries));
    }
  }
  return Status::Ok();
}

}  // namespace

namespace internal {

// A token's blocks resolved once (PrepareToken) for every later authorization. Owns copies of the
// blocks and tables its checks point into, so it is self-contained and immutable.
struct CompiledToken {
  std::vector<DatalogBlock> blocks;
  std::vector<BlockTables> tables;
  std::vector<std::optional<PublicKey>> external_keys;
  Compiled compiled;
  Status error = Status::Ok();  // a block that cannot be resolved: reported by Authorize
  DatalogError error_kind = DatalogError::kNone;
};

}  // namespace internal

namespace {

std::shared_ptr<const internal::CompiledToken> CompileToken(
    std::vector<DatalogBlock> blocks, std::vector<BlockTables> tables,
    std::vector<std::optional<PublicKey>> external_keys) {
  auto c = std::make_shared<internal::CompiledToken>();
  c->blocks = std::move(blocks);
  c->tables = std::move(tables);
  c->external_keys = std::move(external_keys);
  static const std::map<std::string, ExternFunction, std::less<>> kNoExterns;
  Engine engine(RunLimits{}, kNoExterns);
  Trust trust(c->external_keys);
  for (size_t i = 0; i < c->blocks.size(); ++i) {
    const Source src{i, &c->blocks[i], &c->tables[i].symbols, c->tables[i].public_keys};
    Status st = CompileSource(engine, src, trust, nullptr, c->compiled);
    if (!st.ok()) {
      c->error = std::move(st);
      c->error_kind = engine.last_error();
      c->compiled = Compiled{};
      break;
    }
  }
  return c;
}

Result<Authorization> Run(Engine& engine, const internal::CompiledToken& token,
                          const AuthorizerCode& code, std::vector<WorldFact>* world) {
  if (!token.error.ok()) {
    return engine.Fail(token.error_kind, StripErrorName(token.error.message(), token.error_kind));
  }
  for (const auto& [name, fact] : token.compiled.facts) {
    CUSTOS_RETURN_IF_ERROR(engine.AddFact(name, fact, nullptr));
  }
  SymbolTable authorizer_symbols;
  authorizer_symbols.Extend(code.symbols);
  Trust trust(token.external_keys);
  Compiled authorizer;
  CUSTOS_RETURN_IF_ERROR(CompileSource(
      engine, Source{std::nullopt, &code.block, &authorizer_symbols, code.public_keys}, trust,
      &code.policies, authorizer));
  for (auto& [name, fact] : authorizer.facts) {
    CUSTOS_RETURN_IF_ERROR(engine.AddFact(name, std::move(fact), nullptr));
  }
  std::vector<const ERule*> rules;
  rules.reserve(token.compiled.rules.size() + authorizer.rules.size());
  for (const ERule& r : token.compiled.rules) {
    rules.push_back(&r);
  }
  for (const ERule& r : authorizer.rules) {
    rules.push_back(&r);
  }
  const std::vector<ECheck>& authorizer_checks = authorizer.checks;
  const std::vector<ECheck>& block_checks = token.compiled.checks;  // authority first
  const auto& policies = authorizer.policies;
  CUSTOS_RETURN_IF_ERROR(engine.RunRules(rules));
  if (world != nullptr) {
    engine.Dump(*world);
  }

  Authorization out;
  auto run_check = [&](const ECheck& c) -> Status {
    bool any = false;
    for (const ERule& q : c.queries) {
      CUSTOS_ASSIGN_OR_RETURN(bool m, engine.Query(q, c.kind == Check::Kind::kAll));
      if (m) {
        any = true;
        break;
      }
    }
    const bool passed = c.kind == Check::Kind::kReject ? !any : any;
    if (!passed) {
      CUSTOS_ASSIGN_OR_RETURN(std::string text, CheckText(*c.source, *c.symbols, c.keys));
      out.failed_checks.push_back({c.block_id, c.check_id, std::move(text)});
    }
    return Status::Ok();
  };
  for (const ECheck& c : authorizer_checks) {
    CUSTOS_RETURN_IF_ERROR(run_check(c));
  }
  size_t next = 0;
  for (; next < block_checks.size() && block_checks[next].block_id == 0; ++next) {
    CUSTOS_RETURN_IF_ERROR(run_check(block_checks[next]));
  }
  bool matched = false;
  for (size_t pi = 0; pi < policies.size() && !matched; ++pi) {
    for (const ERule& q : policies[pi].second) {
      CUSTOS_ASSIGN_OR_RETURN(bool m, engine.Query(q, false));
      if (m) {
        matched = true;
        out.policy = pi;
        out.outcome = policies[pi].first == Policy::Kind::kAllow ? Authorization::Outcome::kAllow
                                                                 : Authorization::Outcome::kDeny;
        break;
      }
    }
  }
  for (; next < block_checks.size(); ++next) {
    CUSTOS_RETURN_IF_ERROR(run_check(block_checks[next]));
  }
  return out;
}

}  // namespace

std::string_view DatalogErrorName(DatalogError e) {
  switch (e) {
    case DatalogError::kNone:
      return "none";
    case DatalogError::kOverflow:
      return "overflow";
    case DatalogError::kDivideByZero:
      return "divide_by_zero";
    case DatalogError::kInvalidType:
      return "invalid_type";
    case DatalogError::kShadowedVariable:
      return "shadowed_variable";
    case DatalogError::kUnknownVariable:
      return "unknown_variable";
    case DatalogError::kUnknownFunction:
      return "unknown_function";
    case DatalogError::kInvalidBlockRule:
      return "invalid_block_rule";
    case DatalogError::kInvalidRule:
      return "invalid_rule";
    case DatalogError::kTooManyFacts:
      return "too_many_facts";
    case DatalogError::kTooManyIterations:
      return "too_many_iterations";
    case DatalogError::kTimeout:
      return "timeout";
    case DatalogError::kMalformed:
      return "malformed";
    case DatalogError::kExternFailed:
      return "extern_failed";
  }
  return "unknown";
}

Status AddAuthorizerFact(AuthorizerCode& code, std::string_view name,
                         std::initializer_list<DatalogValue> terms) {
  auto intern = [&](std::string_view text) -> uint64_t {
    auto it = std::find(code.symbols.begin(), code.symbols.end(), text);
    if (it == code.symbols.end()) {
      code.symbols.emplace_back(text);
      it = code.symbols.end() - 1;
    }
    return SymbolTable::kOffset + static_cast<uint64_t>(it - code.symbols.begin());
  };
  Predicate p;
  p.terms.reserve(terms.size());
  for (const DatalogValue& v : terms) {
    Term t;
    switch (v.kind) {
      case DatalogValue::Kind::kInteger:
        t.kind = Term::Kind::kInteger;
        t.integer = v.integer;
        break;
      case DatalogValue::Kind::kString:
        t.kind = Term::Kind::kString;
        t.symbol = intern(v.text);
        break;
      case DatalogValue::Kind::kDate:
        t.kind = Term::Kind::kDate;
        t.symbol = v.date;
        break;
      case DatalogValue::Kind::kBool:
        t.kind = Term::Kind::kBool;
        t.boolean = v.boolean;
        break;
      case DatalogValue::Kind::kNull:
        t.kind = Term::Kind::kNull;
        break;
      default:
        return Status(Reason::kInvalidArgument,
                      "an ambient fact holds only integers, strings, dates, booleans or null");
    }
    p.terms.push_back(std::move(t));
  }
  p.name = intern(name);
  code.block.facts.push_back(std::move(p));
  return Status::Ok();
}

DatalogValue StringValue(std::string_view s) {
  DatalogValue v;
  v.kind = DatalogValue::Kind::kString;
  v.text = std::string(s);
  return v;
}

DatalogValue IntegerValue(int64_t i) {
  DatalogValue v;
  v.kind = DatalogValue::Kind::kInteger;
  v.integer = i;
  return v;
}

DatalogValue DateValue(uint64_t seconds_since_epoch) {
  DatalogValue v;
  v.kind = DatalogValue::Kind::kDate;
  v.date = seconds_since_epoch;
  return v;
}

Result<Authorization> Authorize(const Biscuit* token, const AuthorizerCode& code,
                                const RunLimits& limits, DatalogError* error,
                                std::vector<WorldFact>* world) {
  Engine engine(limits, code.externs);
  Result<Authorization> r = [&]() -> Result<Authorization> {
    std::vector<DatalogBlock> blocks;
    std::vector<BlockTables> tables;
    std::vector<std::optional<PublicKey>> external_keys;
    if (token != nullptr) {
      for (size_t i = 0; i < token->blocks().size(); ++i) {
        Result<DatalogBlock> b = DecodeDatalog(token->blocks()[i].payload);
        if (!b.ok()) {
          return engine.Fail(DatalogError::kMalformed, b.status().message());
        }
        blocks.push_back(std::move(*b));
        tables.push_back(TablesFor(*token, i));
        external_keys.push_back(token->blocks()[i].external_key);
      }
    }
    const std::shared_ptr<const internal::CompiledToken> compiled =
        CompileToken(std::move(blocks), std::move(tables), std::move(external_keys));
    return Run(engine, *compiled, code, world);
  }();
  if (error != nullptr) {
    *error = r.ok() ? DatalogError::kNone : engine.last_error();
  }
  return r;
}

}  // namespace custos::caps

namespace custos::caps {

Result<PreparedToken> PrepareToken(Biscuit token) {
  PreparedToken out{std::move(token), {}, {}, nullptr};
  std::vector<std::optional<PublicKey>> external_keys;
  for (size_t i = 0; i < out.token.blocks().size(); ++i) {
    Result<DatalogBlock> b = DecodeDatalog(out.token.blocks()[i].payload);
    if (!b.ok()) {
      return Status(Reason::kTokenInvalid, std::string(DatalogErrorName(DatalogError::kMalformed)) +
                                               ": " + std::string(b.status().message()));
    }
    out.blocks.push_back(std::move(*b));
    out.tables.push_back(TablesFor(out.token, i));
    external_keys.push_back(out.token.blocks()[i].external_key);
  }
  out.compiled = CompileToken(out.blocks, out.tables, std::move(external_keys));
  return out;
}

Result<Authorization> Authorize(const PreparedToken& token, const AuthorizerCode& code,
                                const RunLimits& limits, DatalogError* error) {
  Engine engine(limits, code.externs);
  Result<Authorization> r = Run(engine, *token.compiled, code, nullptr);
  if (error != nullptr) {
    *error = r.ok() ? DatalogError::kNone : engine.last_error();
  }
  return r;
}

}  // namespace custos::caps
