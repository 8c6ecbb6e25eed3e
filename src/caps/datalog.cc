#include "custos/caps/datalog.h"

#include <ctime>
#include <string_view>

#include "caps_pb/biscuit.pb.h"
#include "custos/caps/biscuit.h"
#include "custos/caps/format_error.h"
#include "custos/core/encoding.h"

namespace custos::caps {
namespace {

constexpr std::string_view kDefaultSymbols[] = {
    "read",  "write",   "resource",  "operation",  "right",    "time",      "role",
    "owner", "tenant",  "namespace", "user",       "team",     "service",   "admin",
    "email", "group",   "member",    "ip_address", "client",   "client_ip", "domain",
    "path",  "version", "cluster",   "node",       "hostname", "nonce",     "query",
};

Status Malformed(std::string_view what) {
  return FormatErrorStatus(FormatError::kDeserialization, what);
}

Result<Term> DecodeTerm(const pb::TermV2& in) {
  Term t;
  switch (in.Content_case()) {
    case pb::TermV2::kVariable:
      t.kind = Term::Kind::kVariable;
      t.symbol = in.variable();
      break;
    case pb::TermV2::kInteger:
      t.kind = Term::Kind::kInteger;
      t.integer = in.integer();
      break;
    case pb::TermV2::kString:
      t.kind = Term::Kind::kString;
      t.symbol = in.string();
      break;
    case pb::TermV2::kDate:
      t.kind = Term::Kind::kDate;
      t.symbol = in.date();
      break;
    case pb::TermV2::kBytes:
      t.kind = Term::Kind::kBytes;
      t.bytes.assign(in.bytes().begin(), in.bytes().end());
      break;
    case pb::TermV2::kBool:
      t.kind = Term::Kind::kBool;
      t.boolean = in.bool_();
      break;
    case pb::TermV2::kSet:
      t.kind = Term::Kind::kSet;
      for (const pb::TermV2& item : in.set().set()) {
        CUSTOS_ASSIGN_OR_RETURN(Term v, DecodeTerm(item));
        t.items.push_back(std::move(v));
      }
      break;
    case pb::TermV2::kNull:
      t.kind = Term::Kind::kNull;
      break;
    case pb::TermV2::kArray:
      t.kind = Term::Kind::kArray;
      for (const pb::TermV2& item : in.array().array()) {
        CUSTOS_ASSIGN_OR_RETURN(Term v, DecodeTerm(item));
        t.items.push_back(std::move(v));
      }
      break;
    case pb::TermV2::kMap:
      t.kind = Term::Kind::kMap;
      for (const pb::MapEntry& e : in.map().entries()) {
        Term key;
        if (e.key().Content_case() == pb::MapKey::kInteger) {
          key.kind = Term::Kind::kInteger;
          key.integer = e.key().integer();
        } else if (e.key().Content_case() == pb::MapKey::kString) {
          key.kind = Term::Kind::kString;
          key.symbol = e.key().string();
        } else {
          return Malformed("map key without content");
        }
        CUSTOS_ASSIGN_OR_RETURN(Term value, DecodeTerm(e.value()));
        t.entries.emplace_back(std::move(key), std::move(value));
      }
      break;
    case pb::TermV2::CONTENT_NOT_SET:
      return Malformed("term without content");
  }
  return t;
}

Result<Expression> DecodeOps(const google::protobuf::RepeatedPtrField<pb::Op>& ops) {
  Expression out;
  for (const pb::Op& in : ops) {
    Op op;
    switch (in.Content_case()) {
      case pb::Op::kValue: {
        op.kind = Op::Kind::kValue;
        CUSTOS_ASSIGN_OR_RETURN(op.value, DecodeTerm(in.value()));
        break;
      }
      case pb::Op::kUnary:
        op.kind = Op::Kind::kUnary;
        op.unary = static_cast<UnaryOp>(in.unary().kind());
        if (in.unary().has_ffiname()) {
          op.ffi_name = in.unary().ffiname();
        }
        break;
      case pb::Op::kBinary:
        op.kind = Op::Kind::kBinary;
        op.binary = static_cast<BinaryOp>(in.binary().kind());
        if (in.binary().has_ffiname()) {
          op.ffi_name = in.binary().ffiname();
        }
        break;
      case pb::Op::kClosure: {
        op.kind = Op::Kind::kClosure;
        op.params.assign(in.closure().params().begin(), in.closure().params().end());
        CUSTOS_ASSIGN_OR_RETURN(op.body, DecodeOps(in.closure().ops()));
        break;
      }
      case pb::Op::CONTENT_NOT_SET:
        return Malformed("operation without content");
    }
    out.push_back(std::move(op));
  }
  return out;
}

Result<std::vector<Scope>> DecodeScopes(const google::protobuf::RepeatedPtrField<pb::Scope>& in) {
  std::vector<Scope> out;
  for (const pb::Scope& s : in) {
    Scope scope;
    if (s.Content_case() == pb::Scope::kScopeType) {
      scope.kind =
          s.scopetype() == pb::Scope::Authority ? Scope::Kind::kAuthority : Scope::Kind::kPrevious;
    } else if (s.Content_case() == pb::Scope::kPublicKey) {
      scope.kind = Scope::Kind::kPublicKey;
      scope.public_key = s.publickey();
    } else {
      return Malformed("scope without content");
    }
    out.push_back(scope);
  }
  return out;
}

Result<Predicate> DecodePredicate(const pb::PredicateV2& in) {
  Predicate p{.name = in.name()};
  for (const pb::TermV2& t : in.terms()) {
    CUSTOS_ASSIGN_OR_RETURN(Term term, DecodeTerm(t));
    p.terms.push_back(std::move(term));
  }
  return p;
}

Result<Rule> DecodeRule(const pb::RuleV2& in) {
  Rule r;
  CUSTOS_ASSIGN_OR_RETURN(r.head, DecodePredicate(in.head()));
  for (const pb::PredicateV2& p : in.body()) {
    CUSTOS_ASSIGN_OR_RETURN(Predicate pred, DecodePredicate(p));
    r.body.push_back(std::move(pred));
  }
  for (const pb::ExpressionV2& e : in.expressions()) {
    CUSTOS_ASSIGN_OR_RETURN(Expression expr, DecodeOps(e.ops()));
    r.expressions.push_back(std::move(expr));
  }
  CUSTOS_ASSIGN_OR_RETURN(r.scopes, DecodeScopes(in.scope()));
  return r;
}

// Printing.

// A string literal the parser reads back as the same bytes: quotes, backslashes, line breaks and
// other control characters except tab are escaped, so a hostile string cannot end its literal early
// and make the printed block say something it does not (`custos token inspect` shows tokens to
// people).
std::string QuoteString(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':  // as the official samples print it (test "hello é\t😁"); harmless in a literal
        out += ch;
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u{";
          if (c >= 0x10)
            out += kHex[c >> 4];
          out += kHex[c & 0xf];
          out += '}';
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

// Names (predicates, variables, extern functions) come from a token's symbol table, which anyone
// who appends a block writes. Only names the parser could have produced are printed.
bool IsPrintableName(std::string_view name) {
  if (name.empty())
    return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == ':';
    if (!ok)
      return false;
  }
  return true;
}

class Printer {
 public:
  Printer(const SymbolTable& symbols, std::span<const PublicKey> keys)
      : symbols_(symbols), keys_(keys) {}

  Result<std::string> Symbol(uint64_t index) const {
    std::optional<std::string_view> s = symbols_.Get(index);
    if (!s) {
      return FormatErrorStatus(FormatError::kDeserialization,
                               "unknown symbol " + std::to_string(index));
    }
    return std::string(*s);
  }

  Result<std::string> Name(uint64_t index) const {
    CUSTOS_ASSIGN_OR_RETURN(std::string name, Symbol(index));
    if (!IsPrintableName(name)) {
      return FormatErrorStatus(FormatError::kDeserialization,
                               "symbol " + std::to_string(index) +
                                   " is used as a name but is not one (letters, digits, _ and :)");
    }
    return name;
  }

  Result<std::string> PrintTerm(const Term& t) const {
    switch (t.kind) {
      case Term::Kind::kVariable: {
        CUSTOS_ASSIGN_OR_RETURN(std::string name, Name(t.symbol));
        return "$" + name;
      }
      case Term::Kind::kInteger:
        return std::to_string(t.integer);
      case Term::Kind::kString: {
        CUSTOS_ASSIGN_OR_RETURN(std::string s, Symbol(t.symbol));
        return QuoteString(s);
      }
      case Term::Kind::kDate: {
        const auto seconds = static_cast<std::time_t>(t.symbol);
        std::tm tm{};
        char buf[32];
        if (gmtime_r(&seconds, &tm) == nullptr ||
            std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
          return FormatErrorStatus(FormatError::kDeserialization, "date out of range");
        }
        return std::string(buf);
      }
      case Term::Kind::kBytes:
        return "hex:" + HexEncode(t.bytes);
      case Term::Kind::kBool:
        return std::string(t.boolean ? "true" : "false");
      case Term::Kind::kNull:
        return std::string("null");
      case Term::Kind::kSet:
        if (t.items.empty()) {
          return std::string("{,}");
        }
        return Join("{", t.items, "}");
      case Term::Kind::kArray:
        return Join("[", t.items, "]");
      case Term::Kind::kMap: {
        std::string out = "{";
        for (size_t i = 0; i < t.entries.size(); ++i) {
          CUSTOS_ASSIGN_OR_RETURN(std::string k, PrintTerm(t.entries[i].first));
          CUSTOS_ASSIGN_OR_RETURN(std::string v, PrintTerm(t.entries[i].second));
          out += (i == 0 ? "" : ", ") + k + ": " + v;
        }
        return out + "}";
      }
    }
    return FormatErrorStatus(FormatError::kDeserialization, "unknown term");
  }

  Result<std::string> Join(std::string_view open, const std::vector<Term>& items,
                           std::string_view close) const {
    std::string out(open);
    for (size_t i = 0; i < items.size(); ++i) {
      CUSTOS_ASSIGN_OR_RETURN(std::string s, PrintTerm(items[i]));
      out += (i == 0 ? "" : ", ") + s;
    }
    return out + std::string(close);
  }

  Result<std::string> PrintPredicate(const Predicate& p) const {
    CUSTOS_ASSIGN_OR_RETURN(std::string name, Name(p.name));
    CUSTOS_ASSIGN_OR_RETURN(std::string terms, Join("(", p.terms, ")"));
    return name + terms;
  }

  Result<std::string> PrintExpression(const Expression& ops) const {
    std::vector<std::string> stack;
    auto pop = [&stack]() -> Result<std::string> {
      if (stack.empty()) {
        return FormatErrorStatus(FormatError::kDeserialization, "expression stack underflow");
      }
      std::string top = std::move(stack.back());
      stack.pop_back();
      return top;
    };
    for (const Op& op : ops) {
      switch (op.kind) {
        case Op::Kind::kValue: {
          CUSTOS_ASSIGN_OR_RETURN(std::string v, PrintTerm(op.value));
          stack.push_back(std::move(v));
          break;
        }
        case Op::Kind::kClosure: {
          CUSTOS_ASSIGN_OR_RETURN(std::string body, PrintExpression(op.body));
          std::string out;
          for (size_t i = 0; i < op.params.size(); ++i) {
            CUSTOS_ASSIGN_OR_RETURN(std::string p, Symbol(op.params[i]));
            out += (i == 0 ? "$" : ", $") + p;
          }
          stack.push_back(op.params.empty() ? body : out + " -> " + body);
          break;
        }
        case Op::Kind::kUnary: {
          CUSTOS_ASSIGN_OR_RETURN(std::string a, pop());
          CUSTOS_ASSIGN_OR_RETURN(std::string s, PrintUnary(op, a));
          stack.push_back(std::move(s));
          break;
        }
        case Op::Kind::kBinary: {
          CUSTOS_ASSIGN_OR_RETURN(std::string b, pop());
          CUSTOS_ASSIGN_OR_RETURN(std::string a, pop());
          CUSTOS_ASSIGN_OR_RETURN(std::string s, PrintBinary(op, a, b));
          stack.push_back(std::move(s));
          break;
        }
      }
    }
    if (stack.size() != 1) {
      return FormatErrorStatus(FormatError::kDeserialization,
                               "expression leaves " + std::to_string(stack.size()) + " values");
    }
    return std::move(stack.back());
  }

  Result<std::string> Ffi(const Op& op) const {
    if (!op.ffi_name) {
      return FormatErrorStatus(FormatError::kDeserialization, "extern call without a name");
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string name, Name(*op.ffi_name));
    return ".extern::" + name;
  }

  Result<std::string> PrintUnary(const Op& op, const std::string& a) const {
    switch (op.unary) {
      case UnaryOp::kNegate:
        return "!" + a;
      case UnaryOp::kParens:
        return "(" + a + ")";
      case UnaryOp::kLength:
        return a + ".length()";
      case UnaryOp::kTypeOf:
        return a + ".type()";
      case UnaryOp::kFfi: {
        CUSTOS_ASSIGN_OR_RETURN(std::string f, Ffi(op));
        return a + f + "()";
      }
    }
    return FormatErrorStatus(FormatError::kDeserialization, "unknown unary operator");
  }

  Result<std::string> PrintBinary(const Op& op, const std::string& a, const std::string& b) const {
    auto infix = [&](std::string_view sym) { return a + " " + std::string(sym) + " " + b; };
    auto method = [&](std::string_view name) {
      return a + "." + std::string(name) + "(" + b + ")";
    };
    switch (op.binary) {
      case BinaryOp::kLessThan:
        return infix("<");
      case BinaryOp::kGreaterThan:
        return infix(">");
      case BinaryOp::kLessOrEqual:
        return infix("<=");
      case BinaryOp::kGreaterOrEqual:
        return infix(">=");
      case BinaryOp::kEqual:
        return infix("===");
      case BinaryOp::kNotEqual:
        return infix("!==");
      case BinaryOp::kHeterogeneousEqual:
        return infix("==");
      case BinaryOp::kHeterogeneousNotEqual:
        return infix("!=");
      case BinaryOp::kContains:
        return method("contains");
      case BinaryOp::kPrefix:
        return method("starts_with");
      case BinaryOp::kSuffix:
        return method("ends_with");
      case BinaryOp::kRegex:
        return method("matches");
      case BinaryOp::kAdd:
        return infix("+");
      case BinaryOp::kSub:
        return infix("-");
      case BinaryOp::kMul:
        return infix("*");
      case BinaryOp::kDiv:
        return infix("/");
      case BinaryOp::kAnd:
      case BinaryOp::kLazyAnd:
        return infix("&&");
      case BinaryOp::kOr:
      case BinaryOp::kLazyOr:
        return infix("||");
      case BinaryOp::kIntersection:
        return method("intersection");
      case BinaryOp::kUnion:
        return method("union");
      case BinaryOp::kBitwiseAnd:
        return infix("&");
      case BinaryOp::kBitwiseOr:
        return infix("|");
      case BinaryOp::kBitwiseXor:
        return infix("^");
      case BinaryOp::kAll:
        return method("all");
      case BinaryOp::kAny:
        return method("any");
      case BinaryOp::kGet:
        return method("get");
      case BinaryOp::kTryOr:
        return method("try_or");
      case BinaryOp::kFfi: {
        CUSTOS_ASSIGN_OR_RETURN(std::string f, Ffi(op));
        return a + f + "(" + b + ")";
      }
    }
    return FormatErrorStatus(FormatError::kDeserialization, "unknown binary operator");
  }

  Result<std::string> PrintScopes(const std::vector<Scope>& scopes) const {
    if (scopes.empty()) {
      return std::string();
    }
    std::string out = " trusting ";
    for (size_t i = 0; i < scopes.size(); ++i) {
      out += i == 0 ? "" : ", ";
      switch (scopes[i].kind) {
        case Scope::Kind::kAuthority:
          out += "authority";
          break;
        case Scope::Kind::kPrevious:
          out += "previous";
          break;
        case Scope::Kind::kPublicKey: {
          const int64_t k = scopes[i].public_key;
          if (k < 0 || static_cast<uint64_t>(k) >= keys_.size()) {
            return FormatErrorStatus(FormatError::kDeserialization,
                                     "unknown public key " + std::to_string(k));
          }
          out += keys_[static_cast<size_t>(k)].ToString();
          break;
        }
      }
    }
    return out;
  }

  // The body of a rule or check query: predicates, then expressions, then scopes.
  Result<std::string> PrintBody(const Rule& r) const {
    std::string out;
    for (const Predicate& p : r.body) {
      CUSTOS_ASSIGN_OR_RETURN(std::string s, PrintPredicate(p));
      out += (out.empty() ? "" : ", ") + s;
    }
    for (const Expression& e : r.expressions) {
      CUSTOS_ASSIGN_OR_RETURN(std::string s, PrintExpression(e));
      out += (out.empty() ? "" : ", ") + s;
    }
    CUSTOS_ASSIGN_OR_RETURN(std::string scopes, PrintScopes(r.scopes));
    return out + scopes;
  }

 private:
  const SymbolTable& symbols_;
  std::span<const PublicKey> keys_;
};

}  // namespace

Result<DatalogBlock> DecodeDatalog(std::span<const uint8_t> payload) {
  pb::Block in;
  if (!in.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Malformed("not a Block protobuf");
  }
  DatalogBlock out;
  for (const pb::FactV2& f : in.facts_v2()) {
    CUSTOS_ASSIGN_OR_RETURN(Predicate p, DecodePredicate(f.predicate()));
    out.facts.push_back(std::move(p));
  }
  for (const pb::RuleV2& r : in.rules_v2()) {
    CUSTOS_ASSIGN_OR_RETURN(Rule rule, DecodeRule(r));
    out.rules.push_back(std::move(rule));
  }
  for (const pb::CheckV2& c : in.checks_v2()) {
    Check check;
    switch (c.kind()) {
      case pb::CheckV2::One:
        check.kind = Check::Kind::kOne;
        break;
      case pb::CheckV2::All:
        check.kind = Check::Kind::kAll;
        break;
      case pb::CheckV2::Reject:
        check.kind = Check::Kind::kReject;
        break;
    }
    for (const pb::RuleV2& q : c.queries()) {
      CUSTOS_ASSIGN_OR_RETURN(Rule rule, DecodeRule(q));
      check.queries.push_back(std::move(rule));
    }
    out.checks.push_back(std::move(check));
  }
  CUSTOS_ASSIGN_OR_RETURN(out.scopes, DecodeScopes(in.scope()));
  return out;
}

std::span<const std::string_view> SymbolTable::DefaultSymbols() { return kDefaultSymbols; }

void SymbolTable::Extend(std::span<const std::string> symbols) {
  symbols_.insert(symbols_.end(), symbols.begin(), symbols.end());
}

std::optional<std::string_view> SymbolTable::Get(uint64_t index) const {
  if (index < std::size(kDefaultSymbols)) {
    return kDefaultSymbols[index];
  }
  if (index >= kOffset && index - kOffset < symbols_.size()) {
    return symbols_[index - kOffset];
  }
  return std::nullopt;
}

Result<std::string> PrintDatalog(const DatalogBlock& block, const SymbolTable& symbols,
                                 std::span<const PublicKey> keys) {
  Printer p(symbols, keys);
  std::string out;
  if (!block.scopes.empty()) {
    CUSTOS_ASSIGN_OR_RETURN(std::string scopes, p.PrintScopes(block.scopes));
    out += scopes.substr(1) + ";\n";  // "trusting ...;"
  }
  for (const Predicate& f : block.facts) {
    CUSTOS_ASSIGN_OR_RETURN(std::string s, p.PrintPredicate(f));
    out += s + ";\n";
  }
  for (const Rule& r : block.rules) {
    CUSTOS_ASSIGN_OR_RETURN(std::string head, p.PrintPredicate(r.head));
    CUSTOS_ASSIGN_OR_RETURN(std::string body, p.PrintBody(r));
    out += head + " <- " + body + ";\n";
  }
  for (const Check& c : block.checks) {
    switch (c.kind) {
      case Check::Kind::kOne:
        out += "check if ";
        break;
      case Check::Kind::kAll:
        out += "check all ";
        break;
      case Check::Kind::kReject:
        out += "reject if ";
        break;
    }
    for (size_t i = 0; i < c.queries.size(); ++i) {
      CUSTOS_ASSIGN_OR_RETURN(std::string body, p.PrintBody(c.queries[i]));
      out += (i == 0 ? "" : " or ") + body;
    }
    out += ";\n";
  }
  return out;
}

BlockTables TablesFor(const Biscuit& token, size_t index) {
  CUSTOS_CHECK(index < token.blocks().size());
  BlockTables tables;
  const Block& target = token.blocks()[index];
  if (target.external_key) {
    tables.symbols.Extend(target.symbols);
    tables.public_keys = target.public_keys;
    return tables;
  }
  for (size_t i = 0; i <= index; ++i) {
    const Block& b = token.blocks()[i];
    if (b.external_key) {
      continue;
    }
    tables.symbols.Extend(b.symbols);
    tables.public_keys.insert(tables.public_keys.end(), b.public_keys.begin(), b.public_keys.end());
  }
  return tables;
}

Result<std::string> PrintBlock(const Biscuit& token, size_t index) {
  const BlockTables tables = TablesFor(token, index);
  CUSTOS_ASSIGN_OR_RETURN(DatalogBlock block, DecodeDatalog(token.blocks()[index].payload));
  return PrintDatalog(block, tables.symbols, tables.public_keys);
}

}  // namespace custos::caps
