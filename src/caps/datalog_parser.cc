#include "custos/caps/datalog_parser.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

#include "custos/core/encoding.h"

namespace custos::caps {
namespace {

constexpr size_t kMaxDepth = 64;

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsIdentChar(char c) {
  return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '_' || c == ':';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<AuthorizerCode> Program() {
    for (;;) {
      Skip();
      if (pos_ >= text_.size()) {
        return std::move(code_);
      }
      CUSTOS_RETURN_IF_ERROR(Statement());
      Skip();
      if (!Eat(";")) {
        return Error("expected ';'");
      }
    }
  }

 private:
  Status Error(std::string_view what) const {
    size_t line = 1;
    size_t col = 1;
    for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) {
        ++col;
      }
    }
    return Status(Reason::kInvalidArgument, "parse error at " + std::to_string(line) + ":" +
                                                std::to_string(col) + ": " + std::string(what));
  }

  void Skip() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (text_.substr(pos_, 2) == "//") {
        while (pos_ < text_.size() && text_[pos_] != '\n') {
          ++pos_;
        }
      } else {
        return;
      }
    }
  }

  bool Peek(std::string_view s) {
    Skip();
    return text_.substr(pos_, s.size()) == s;
  }

  bool Eat(std::string_view s) {
    if (!Peek(s)) {
      return false;
    }
    pos_ += s.size();
    return true;
  }

  // A keyword: `s` not followed by an identifier character.
  bool PeekWord(std::string_view s) {
    return Peek(s) && (pos_ + s.size() >= text_.size() || !IsIdentChar(text_[pos_ + s.size()]));
  }
  bool EatWord(std::string_view s) {
    if (!PeekWord(s)) {
      return false;
    }
    pos_ += s.size();
    return true;
  }

  std::string_view Ident() {
    Skip();
    const size_t start = pos_;
    if (pos_ < text_.size() && IsIdentStart(text_[pos_])) {
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) {
        ++pos_;
      }
    }
    return text_.substr(start, pos_ - start);
  }

  uint64_t Intern(std::string_view s) {
    std::span<const std::string_view> defaults = SymbolTable::DefaultSymbols();
    if (auto it = std::find(defaults.begin(), defaults.end(), s); it != defaults.end()) {
      return static_cast<uint64_t>(it - defaults.begin());
    }
    auto it = std::find(code_.symbols.begin(), code_.symbols.end(), s);
    if (it == code_.symbols.end()) {
      code_.symbols.emplace_back(s);
      it = code_.symbols.end() - 1;
    }
    return SymbolTable::kOffset + static_cast<uint64_t>(it - code_.symbols.begin());
  }

  Status Statement() {
    if (EatWord("check")) {
      Check c;
      if (EatWord("if")) {
        c.kind = Check::Kind::kOne;
      } else if (EatWord("all")) {
        c.kind = Check::Kind::kAll;
      } else {
        return Error("expected 'if' or 'all' after 'check'");
      }
      CUSTOS_ASSIGN_OR_RETURN(c.queries, Queries());
      code_.block.checks.push_back(std::move(c));
      return Status::Ok();
    }
    if (EatWord("reject")) {
      if (!EatWord("if")) {
        return Error("expected 'if' after 'reject'");
      }
      Check c;
      c.kind = Check::Kind::kReject;
      CUSTOS_ASSIGN_OR_RETURN(c.queries, Queries());
      code_.block.checks.push_back(std::move(c));
      return Status::Ok();
    }
    if (PeekWord("allow") || PeekWord("deny")) {
      Policy p;
      p.kind = EatWord("allow") ? Policy::Kind::kAllow : Policy::Kind::kDeny;
      if (p.kind == Policy::Kind::kDeny) {
        EatWord("deny");
      }
      if (!EatWord("if")) {
        return Error("expected 'if' after the policy kind");
      }
      CUSTOS_ASSIGN_OR_RETURN(p.queries, Queries());
      code_.policies.push_back(std::move(p));
      return Status::Ok();
    }
    if (EatWord("trusting")) {
      CUSTOS_ASSIGN_OR_RETURN(code_.block.scopes, Scopes());
      return Status::Ok();
    }
    CUSTOS_ASSIGN_OR_RETURN(Predicate head, ParsePredicate());
    if (Eat("<-")) {
      CUSTOS_ASSIGN_OR_RETURN(Rule r, Body());
      r.head = std::move(head);
      code_.block.rules.push_back(std::move(r));
      return Status::Ok();
    }
    for (const Term& t : head.terms) {
      if (t.kind == Term::Kind::kVariable) {
        return Error("a fact cannot contain variables");
      }
    }
    code_.block.facts.push_back(std::move(head));
    return Status::Ok();
  }

  Result<std::vector<Rule>> Queries() {
    std::vector<Rule> out;
    do {
      CUSTOS_ASSIGN_OR_RETURN(Rule r, Body());
      r.head.name = Intern("query");
      out.push_back(std::move(r));
    } while (EatWord("or"));
    return out;
  }

  Result<std::vector<Scope>> Scopes() {
    std::vector<Scope> out;
    do {
      Scope s;
      if (EatWord("authority")) {
        s.kind = Scope::Kind::kAuthority;
      } else if (EatWord("previous")) {
        s.kind = Scope::Kind::kPrevious;
      } else if (PeekWord("ed25519") || PeekWord("secp256r1")) {
        Skip();
        const size_t start = pos_;
        while (pos_ < text_.size() && (IsIdentChar(text_[pos_]) || text_[pos_] == '/')) {
          ++pos_;
        }
        Result<PublicKey> key = PublicKey::FromString(text_.substr(start, pos_ - start));
        if (!key.ok()) {
          pos_ = start;
          return Error("invalid public key");
        }
        s.kind = Scope::Kind::kPublicKey;
        auto it = std::find(code_.public_keys.begin(), code_.public_keys.end(), *key);
        if (it == code_.public_keys.end()) {
          code_.public_keys.push_back(*key);
          it = code_.public_keys.end() - 1;
        }
        s.public_key = it - code_.public_keys.begin();
      } else {
        return Error("expected a scope: authority, previous or a public key");
      }
      out.push_back(s);
    } while (Eat(","));
    return out;
  }

  // True if the input at the cursor starts a predicate (an identifier followed by '(').
  bool AtPredicate() {
    Skip();
    const size_t save = pos_;
    std::string_view id = Ident();
    const bool pred = !id.empty() && Peek("(");  // `null(...)` is a predicate name too
    pos_ = save;
    return pred;
  }

  Result<Rule> Body() {
    Rule r;
    do {
      if (AtPredicate()) {
        CUSTOS_ASSIGN_OR_RETURN(Predicate p, ParsePredicate());
        r.body.push_back(std::move(p));
      } else {
        CUSTOS_ASSIGN_OR_RETURN(Expression e, Expr(0));
        r.expressions.push_back(std::move(e));
      }
    } while (Eat(","));
    if (EatWord("trusting")) {
      CUSTOS_ASSIGN_OR_RETURN(r.scopes, Scopes());
    }
    return r;
  }

  Result<Predicate> ParsePredicate() {
    Predicate p;
    std::string_view name = Ident();
    if (name.empty()) {
      return Error("expected a predicate name");
    }
    p.name = Intern(name);
    if (!Eat("(")) {
      return Error("expected '('");
    }
    if (!Eat(")")) {
      do {
        CUSTOS_ASSIGN_OR_RETURN(Term t, ParseTerm(0));
        p.terms.push_back(std::move(t));
      } while (Eat(","));
      if (!Eat(")")) {
        return Error("expected ')'");
      }
    }
    return p;
  }

  Result<std::string> StringLiteral() {
    if (!Eat("\"")) {
      return Error("expected a string");
    }
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      char c = text_[pos_++];
      if (c == '\\') {
        if (pos_ >= text_.size()) {
          break;
        }
        const char e = text_[pos_++];
        switch (e) {
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'r':
            c = '\r';
            break;
          case '"':
          case '\\':
            c = e;
            break;
          case 'u': {  // \u{1f}: a Unicode scalar value in hex, as the printer writes controls
            CUSTOS_ASSIGN_OR_RETURN(uint32_t cp, UnicodeEscape());
            AppendUtf8(cp, &out);
            continue;
          }
          default:
            --pos_;
            return Error("unknown escape sequence");
        }
      }
      out += c;
    }
    if (pos_ >= text_.size()) {
      return Error("unterminated string");
    }
    ++pos_;
    return out;
  }

  // After `\u`: `{`, 1 to 6 hex digits, `}`; a scalar value (no surrogates, at most 0x10FFFF).
  Result<uint32_t> UnicodeEscape() {
    if (pos_ >= text_.size() || text_[pos_] != '{') {
      return Error("expected { after \\u");
    }
    ++pos_;
    uint32_t cp = 0;
    size_t digits = 0;
    while (pos_ < text_.size() && text_[pos_] != '}') {
      const char h = text_[pos_];
      const int v = HexDigitValue(h);
      if (v < 0 || ++digits > 6) {
        return Error("bad \\u{...} escape");
      }
      cp = cp * 16 + static_cast<uint32_t>(v);
      ++pos_;
    }
    if (pos_ >= text_.size() || digits == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Error("bad \\u{...} escape");
    }
    ++pos_;
    return cp;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Result<uint64_t> Date() {
    // YYYY-MM-DDTHH:MM:SS(.fraction)?(Z|±HH:MM)
    auto num = [&](size_t n, int64_t* out) {
      int64_t v = 0;
      for (size_t i = 0; i < n; ++i) {
        if (pos_ >= text_.size() || !IsDigit(text_[pos_])) {
          return false;
        }
        v = v * 10 + (text_[pos_++] - '0');
      }
      *out = v;
      return true;
    };
    auto lit = [&](char c) {
      if (pos_ < text_.size() && text_[pos_] == c) {
        ++pos_;
        return true;
      }
      return false;
    };
    int64_t y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (!num(4, &y) || !lit('-') || !num(2, &mo) || !lit('-') || !num(2, &d) || !lit('T') ||
        !num(2, &h) || !lit(':') || !num(2, &mi) || !lit(':') || !num(2, &s) || mo < 1 || mo > 12 ||
        d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
      return Error("invalid RFC 3339 date");
    }
    if (lit('.')) {
      while (pos_ < text_.size() && IsDigit(text_[pos_])) {
        ++pos_;
      }
    }
    int64_t offset = 0;
    if (!lit('Z')) {
      const bool plus = lit('+');
      if (!plus && !lit('-')) {
        return Error("date needs a time zone (Z or ±HH:MM)");
      }
      int64_t oh = 0, om = 0;
      if (!num(2, &oh) || !lit(':') || !num(2, &om)) {
        return Error("invalid time zone offset");
      }
      offset = (oh * 3600 + om * 60) * (plus ? 1 : -1);
    }
    const int64_t t =
        DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
        mi * 60 + s - offset;
    if (t < 0) {
      return Error("date before 1970");
    }
    return static_cast<uint64_t>(t);
  }

  Result<Term> ParseTerm(size_t depth) {
    if (depth > kMaxDepth) {
      return Error("nesting too deep");
    }
    Skip();
    Term t;
    if (pos_ >= text_.size()) {
      return Error("expected a term");
    }
    const char c = text_[pos_];
    if (c == '$') {
      ++pos_;
      const size_t start = pos_;
      while (pos_ < text_.size() && IsIdentChar(text_[pos_])) {
        ++pos_;
      }
      if (pos_ == start) {
        return Error("expected a variable name");
      }
      t.kind = Term::Kind::kVariable;
      t.symbol = Intern(text_.substr(start, pos_ - start));
      return t;
    }
    if (c == '"') {
      CUSTOS_ASSIGN_OR_RETURN(std::string s, StringLiteral());
      t.kind = Term::Kind::kString;
      t.symbol = Intern(s);
      return t;
    }
    // A date starts `dddd-dd-ddT`; anything else starting with a digit is an integer.
    if (IsDigit(c) && pos_ + 10 < text_.size() && text_[pos_ + 4] == '-' &&
        text_[pos_ + 7] == '-' && text_[pos_ + 10] == 'T') {
      t.kind = Term::Kind::kDate;
      CUSTOS_ASSIGN_OR_RETURN(t.symbol, Date());
      return t;
    }
    if (IsDigit(c) || (c == '-' && pos_ + 1 < text_.size() && IsDigit(text_[pos_ + 1]))) {
      const size_t start = pos_;
      ++pos_;
      while (pos_ < text_.size() && IsDigit(text_[pos_])) {
        ++pos_;
      }
      const auto [ptr, ec] = std::from_chars(text_.data() + start, text_.data() + pos_, t.integer);
      if (ec != std::errc() || ptr != text_.data() + pos_) {
        pos_ = start;
        return Error("integer out of range");
      }
      t.kind = Term::Kind::kInteger;
      return t;
    }
    if (EatWord("true") || EatWord("false")) {
      t.kind = Term::Kind::kBool;
      t.boolean = text_[pos_ - 1] == 'e' && text_[pos_ - 2] == 'u';
      return t;
    }
    if (EatWord("null")) {
      t.kind = Term::Kind::kNull;
      return t;
    }
    if (Eat("hex:")) {
      const size_t start = pos_;
      while (pos_ < text_.size() && std::isxdigit(static_cast<unsigned char>(text_[pos_]))) {
        ++pos_;
      }
      Result<std::vector<uint8_t>> bytes = HexDecode(text_.substr(start, pos_ - start));
      if (!bytes.ok()) {
        pos_ = start;
        return Error("invalid hex bytes");
      }
      t.kind = Term::Kind::kBytes;
      t.bytes = std::move(*bytes);
      return t;
    }
    if (Eat("[")) {
      t.kind = Term::Kind::kArray;
      if (!Eat("]")) {
        do {
          CUSTOS_ASSIGN_OR_RETURN(Term e, ParseTerm(depth + 1));
          t.items.push_back(std::move(e));
        } while (Eat(","));
        if (!Eat("]")) {
          return Error("expected ']'");
        }
      }
      return t;
    }
    if (Eat("{")) {
      if (Eat(",")) {  // `{,}`: the empty set
        if (!Eat("}")) {
          return Error("expected '}'");
        }
        t.kind = Term::Kind::kSet;
        return t;
      }
      if (Eat("}")) {  // `{}`: the empty map
        t.kind = Term::Kind::kMap;
        return t;
      }
      CUSTOS_ASSIGN_OR_RETURN(Term first, ParseTerm(depth + 1));
      if (Eat(":")) {
        t.kind = Term::Kind::kMap;
        CUSTOS_ASSIGN_OR_RETURN(Term v, ParseTerm(depth + 1));
        t.entries.emplace_back(std::move(first), std::move(v));
        while (Eat(",")) {
          CUSTOS_ASSIGN_OR_RETURN(Term k, ParseTerm(depth + 1));
          if (!Eat(":")) {
            return Error("expected ':' in a map");
          }
          CUSTOS_ASSIGN_OR_RETURN(Term val, ParseTerm(depth + 1));
          t.entries.emplace_back(std::move(k), std::move(val));
        }
        for (const auto& [k, v] : t.entries) {
          if (k.kind != Term::Kind::kInteger && k.kind != Term::Kind::kString) {
            return Error("map keys are integers or strings");
          }
        }
      } else {
        t.kind = Term::Kind::kSet;
        t.items.push_back(std::move(first));
        while (Eat(",")) {
          CUSTOS_ASSIGN_OR_RETURN(Term e, ParseTerm(depth + 1));
          t.items.push_back(std::move(e));
        }
      }
      if (!Eat("}")) {
        return Error("expected '}'");
      }
      return t;
    }
    return Error("expected a term");
  }

  static Op BinaryOpcode(BinaryOp b) {
    Op op;
    op.kind = Op::Kind::kBinary;
    op.binary = b;
    return op;
  }
  static Op UnaryOpcode(UnaryOp u) {
    Op op;
    op.kind = Op::Kind::kUnary;
    op.unary = u;
    return op;
  }
  static Op ClosureOf(Expression body, std::vector<uint32_t> params = {}) {
    Op op;
    op.kind = Op::Kind::kClosure;
    op.body = std::move(body);
    op.params = std::move(params);
    return op;
  }

  // Levels: 0 `||`, 1 `&&`, 2 comparisons, 3 `^`, 4 `|`, 5 `&`, 6 `+ -`, 7 `* /`, 8 unary.
  Result<Expression> Expr(size_t level, size_t depth = 0) {
    if (depth > kMaxDepth) {
      return Error("expression nesting too deep");
    }
    if (level >= 8) {
      return Unary(depth);
    }
    CUSTOS_ASSIGN_OR_RETURN(Expression left, Expr(level + 1, depth + 1));
    for (;;) {
      std::optional<BinaryOp> op = MatchOperator(level);
      if (!op) {
        return left;
      }
      CUSTOS_ASSIGN_OR_RETURN(Expression right, Expr(level + 1, depth + 1));
      if (*op == BinaryOp::kLazyAnd || *op == BinaryOp::kLazyOr) {
        left.push_back(ClosureOf(std::move(right)));
      } else {
        left.insert(left.end(), std::make_move_iterator(right.begin()),
                    std::make_move_iterator(right.end()));
      }
      left.push_back(BinaryOpcode(*op));
      if (level == 2) {
        return left;  // comparisons do not chain
      }
    }
  }

  std::optional<BinaryOp> MatchOperator(size_t level) {
    Skip();
    auto take = [&](std::string_view tok, std::string_view not_followed = {}) {
      if (text_.substr(pos_, tok.size()) != tok) {
        return false;
      }
      if (!not_followed.empty() && pos_ + tok.size() < text_.size() &&
          not_followed.find(text_[pos_ + tok.size()]) != std::string_view::npos) {
        return false;
      }
      pos_ += tok.size();
      return true;
    };
    switch (level) {
      case 0:
        if (take("||"))
          return BinaryOp::kLazyOr;
        break;
      case 1:
        if (take("&&"))
          return BinaryOp::kLazyAnd;
        break;
      case 2:
        if (take("==="))
          return BinaryOp::kEqual;
        if (take("!=="))
          return BinaryOp::kNotEqual;
        if (take("=="))
          return BinaryOp::kHeterogeneousEqual;
        if (take("!="))
          return BinaryOp::kHeterogeneousNotEqual;
        if (take("<="))
          return BinaryOp::kLessOrEqual;
        if (take(">="))
          return BinaryOp::kGreaterOrEqual;
        if (take("<", "-"))
          return BinaryOp::kLessThan;
        if (take(">"))
          return BinaryOp::kGreaterThan;
        break;
      case 3:
        if (take("^"))
          return BinaryOp::kBitwiseXor;
        break;
      case 4:
        if (take("|", "|"))
          return BinaryOp::kBitwiseOr;
        break;
      case 5:
        if (take("&", "&"))
          return BinaryOp::kBitwiseAnd;
        break;
      case 6:
        if (take("+"))
          return BinaryOp::kAdd;
        if (take("-", ">"))
          return BinaryOp::kSub;
        break;
      case 7:
        if (take("*"))
          return BinaryOp::kMul;
        if (take("/", "/"))
          return BinaryOp::kDiv;
        break;
      default:
        break;
    }
    return std::nullopt;
  }

  Result<Expression> Unary(size_t depth) {
    if (depth > kMaxDepth) {
      return Error("expression nesting too deep");
    }
    if (Eat("!")) {
      CUSTOS_ASSIGN_OR_RETURN(Expression e, Unary(depth + 1));
      e.push_back(UnaryOpcode(UnaryOp::kNegate));
      return e;
    }
    CUSTOS_ASSIGN_OR_RETURN(Expression e, Primary(depth));
    while (Eat(".")) {
      std::string_view method = Ident();
      if (!Eat("(")) {
        return Error("expected '(' after a method name");
      }
      if (method.starts_with("extern::") && method.size() > 8) {
        Op call;
        call.ffi_name = Intern(method.substr(8));
        if (Eat(")")) {
          call.kind = Op::Kind::kUnary;
          call.unary = UnaryOp::kFfi;
        } else {
          CUSTOS_ASSIGN_OR_RETURN(Expression arg, Expr(0, depth + 1));
          if (!Eat(")")) {
            return Error("expected ')'");
          }
          e.insert(e.end(), std::make_move_iterator(arg.begin()),
                   std::make_move_iterator(arg.end()));
          call.kind = Op::Kind::kBinary;
          call.binary = BinaryOp::kFfi;
        }
        e.push_back(std::move(call));
        continue;
      }
      if (method == "length" || method == "type") {
        if (!Eat(")")) {
          return Error("expected ')'");
        }
        e.push_back(UnaryOpcode(method == "length" ? UnaryOp::kLength : UnaryOp::kTypeOf));
        continue;
      }
      if (method == "all" || method == "any") {
        Skip();
        if (!Eat("$")) {
          return Error("expected a closure parameter");
        }
        std::string_view param = Ident();
        if (param.empty() || !Eat("->")) {
          return Error("expected '$name ->'");
        }
        const auto index = static_cast<uint32_t>(Intern(param));
        CUSTOS_ASSIGN_OR_RETURN(Expression body, Expr(0, depth + 1));
        if (!Eat(")")) {
          return Error("expected ')'");
        }
        e.push_back(ClosureOf(std::move(body), {index}));
        e.push_back(BinaryOpcode(method == "all" ? BinaryOp::kAll : BinaryOp::kAny));
        continue;
      }
      static constexpr std::pair<std::string_view, BinaryOp> kMethods[] = {
          {"starts_with", BinaryOp::kPrefix},
          {"ends_with", BinaryOp::kSuffix},
          {"matches", BinaryOp::kRegex},
          {"contains", BinaryOp::kContains},
          {"intersection", BinaryOp::kIntersection},
          {"union", BinaryOp::kUnion},
          {"get", BinaryOp::kGet},
          {"try_or", BinaryOp::kTryOr},
      };
      const auto* m = std::find_if(std::begin(kMethods), std::end(kMethods),
                                   [&](const auto& p) { return p.first == method; });
      if (m == std::end(kMethods)) {
        return Error("unknown method '" + std::string(method) + "'");
      }
      CUSTOS_ASSIGN_OR_RETURN(Expression arg, Expr(0, depth + 1));
      if (!Eat(")")) {
        return Error("expected ')'");
      }
      if (m->second == BinaryOp::kTryOr) {
        Expression wrapped;
        wrapped.push_back(ClosureOf(std::move(e)));
        e = std::move(wrapped);
      }
      e.insert(e.end(), std::make_move_iterator(arg.begin()), std::make_move_iterator(arg.end()));
      e.push_back(BinaryOpcode(m->second));
    }
    return e;
  }

  Result<Expression> Primary(size_t depth) {
    if (depth > kMaxDepth) {
      return Error("expression nesting too deep");
    }
    if (Eat("(")) {
      CUSTOS_ASSIGN_OR_RETURN(Expression e, Expr(0, depth + 1));
      if (!Eat(")")) {
        return Error("expected ')'");
      }
      e.push_back(UnaryOpcode(UnaryOp::kParens));
      return e;
    }
    CUSTOS_ASSIGN_OR_RETURN(Term t, ParseTerm(depth));
    Op op;
    op.kind = Op::Kind::kValue;
    op.value = std::move(t);
    Expression e;
    e.push_back(std::move(op));
    return e;
  }

  std::string_view text_;
  size_t pos_ = 0;
  AuthorizerCode code_;
};

}  // namespace

Result<AuthorizerCode> ParseAuthorizerCode(std::string_view text) { return Parser(text).Program(); }

}  // namespace custos::caps
