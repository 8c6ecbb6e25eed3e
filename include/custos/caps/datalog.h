#pragma once
// The Datalog content of one Biscuit block, decoded from its protobuf payload into plain structs:
// facts, rules, checks, scopes and the expression opcodes (a stack program, as on the wire).
// Names and string values stay symbol indices; a SymbolTable resolves them, and PrintBlock renders
// the block in the Biscuit Datalog text syntax (the `code` of the official samples).
//
// DecodeDatalog fails with kTokenInvalid / FormatError kDeserialization on a payload that is not a
// Block or uses an unknown term, operator or scope; it does not evaluate anything. Printing fails
// (kTokenInvalid) on a symbol or public-key index that is out of range, or on an expression that is
// not a well-formed stack program.
//
// Thread-compatible: plain values.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/public_key.h"
#include "custos/core/result.h"

namespace custos::caps {

struct Term {
  enum class Kind : uint8_t {
    kVariable,  // `symbol` is the variable's name index
    kInteger,
    kString,  // `symbol` is the string's index
    kDate,    // `symbol` holds seconds since the Unix epoch
    kBytes,
    kBool,
    kSet,
    kNull,
    kArray,
    kMap,
  };
  Kind kind = Kind::kNull;
  int64_t integer = 0;
  uint64_t symbol = 0;
  bool boolean = false;
  std::vector<uint8_t> bytes;
  std::vector<Term> items;                     // set or array elements
  std::vector<std::pair<Term, Term>> entries;  // map: key (kInteger or kString), value

  // Declared here, defaulted below the class: with libstdc++, clang instantiates the members of
  // std::pair<Term, Term> while Term is still incomplete if they are implicit.
  Term();
  Term(const Term&);
  Term(Term&&) noexcept;
  Term& operator=(const Term&);
  Term& operator=(Term&&) noexcept;
  ~Term();
};
inline Term::Term() = default;
inline Term::Term(const Term&) = default;
inline Term::Term(Term&&) noexcept = default;
inline Term& Term::operator=(const Term&) = default;
inline Term& Term::operator=(Term&&) noexcept = default;
inline Term::~Term() = default;

struct Op;
using Expression = std::vector<Op>;

enum class UnaryOp : uint8_t { kNegate, kParens, kLength, kTypeOf, kFfi };
enum class BinaryOp : uint8_t {
  kLessThan,
  kGreaterThan,
  kLessOrEqual,
  kGreaterOrEqual,
  kEqual,
  kContains,
  kPrefix,
  kSuffix,
  kRegex,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kAnd,
  kOr,
  kIntersection,
  kUnion,
  kBitwiseAnd,
  kBitwiseOr,
  kBitwiseXor,
  kNotEqual,
  kHeterogeneousEqual,
  kHeterogeneousNotEqual,
  kLazyAnd,
  kLazyOr,
  kAll,
  kAny,
  kGet,
  kFfi,
  kTryOr,
};

struct Op {
  enum class Kind : uint8_t { kValue, kUnary, kBinary, kClosure };
  Kind kind = Kind::kValue;
  Term value;
  UnaryOp unary = UnaryOp::kNegate;
  BinaryOp binary = BinaryOp::kLessThan;
  std::optional<uint64_t> ffi_name;  // symbol index, for kFfi
  std::vector<uint32_t> params;      // closure parameters (variable name indices)
  Expression body;                   // closure body
};

struct Predicate {
  uint64_t name = 0;
  std::vector<Term> terms;
};

struct Scope {
  enum class Kind : uint8_t { kAuthority, kPrevious, kPublicKey };
  Kind kind = Kind::kAuthority;
  int64_t public_key = 0;  // index into the block's public key table, for kPublicKey
};

struct Rule {
  Predicate head;
  std::vector<Predicate> body;
  std::vector<Expression> expressions;
  std::vector<Scope> scopes;
};

struct Check {
  enum class Kind : uint8_t { kOne, kAll, kReject };  // check if / check all / reject if
  Kind kind = Kind::kOne;
  std::vector<Rule> queries;  // only the bodies are evaluated; a query has no meaningful head
};

struct DatalogBlock {
  std::vector<Predicate> facts;
  std::vector<Rule> rules;
  std::vector<Check> checks;
  std::vector<Scope> scopes;
};

Result<DatalogBlock> DecodeDatalog(std::span<const uint8_t> payload);

// Resolves symbol indices: 0..kDefaultSymbols-1 are the specification's default symbols, indices
// from kOffset on are the strings added by blocks, in order.
class SymbolTable {
 public:
  static constexpr uint64_t kOffset = 1024;
  static std::span<const std::string_view> DefaultSymbols();

  void Extend(std::span<const std::string> symbols);
  std::optional<std::string_view> Get(uint64_t index) const;

 private:
  std::vector<std::string> symbols_;
};

// Renders `block` as Datalog text: one statement per line, each ending in ";\n", facts then rules
// then checks. `keys` is the public key table `trusting <key>` scopes index into.
Result<std::string> PrintDatalog(const DatalogBlock& block, const SymbolTable& symbols,
                                 std::span<const PublicKey> keys);

// The tables block `index` of a verified token is interpreted with. A first-party block sees the
// default symbols plus every first-party block's symbols up to itself, and the public keys
// first-party blocks declared up to itself; a third-party block (one with an external signature)
// sees only the defaults and its own symbols and public keys, since its signer never saw the token.
// REQUIRES: index < token.blocks().size().
struct BlockTables {
  SymbolTable symbols;
  std::vector<PublicKey> public_keys;
};
BlockTables TablesFor(const Biscuit& token, size_t index);

// Decodes block `index` and prints it with TablesFor(token, index).
// REQUIRES: index < token.blocks().size().
Result<std::string> PrintBlock(const Biscuit& token, size_t index);

}  // namespace custos::caps
