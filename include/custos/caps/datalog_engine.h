#pragma once
// The Biscuit Datalog engine and authorizer. Authorize loads a verified token's blocks and the
// authorizer's own code into one world of facts tagged with their origins (the set of blocks, and
// possibly the authorizer, that produced them), runs every rule to a fixpoint (semi-naive
// evaluation: each iteration joins at least one fact the previous one added), then evaluates
// checks and policies, as the specification orders them: authorizer checks,
// authority block checks, policies (first match wins), then the checks of blocks 1..n.
//
// Scopes: a rule, check or policy sees the facts whose origins are all trusted by it. By default a
// block trusts itself, the authority block and the authorizer; `trusting previous` adds every block
// up to itself, `trusting <key>` every third-party block signed by that key. Scopes on a rule
// replace the block's scopes. The authorizer trusts the authority block and itself by default.
//
// Expressions are the stack programs of datalog.h, evaluated per the specification (v3..v6):
// checked integer arithmetic (overflow and division by zero are errors), strings (RE2 regex,
// unanchored), dates, bytes, sets, arrays, maps, null, strict (`===`) and heterogeneous (`==`)
// equality, lazy `&&`/`||`, closures (`all`, `any`), `type()` and `try_or`. Extern (FFI) calls go
// to the functions the authorizer code registers (AuthorizerCode::externs); an unregistered name
// fails with kUnknownFunction. An expression error aborts authorization. Before anything runs,
// every rule, check and policy must bind each variable of its head and expressions in a body
// predicate (kInvalidBlockRule, message "block <b>, rule <r>: <text>", where <r> is the rule's
// index in its block, which is what sample test018 reports; kInvalidRule for the authorizer's
// code), and no closure parameter may shadow a variable in scope (kShadowedVariable).
//
// Run limits bound the work a hostile token can cause: facts in the world, fixpoint iterations and
// wall time (checked inside joins and expression evaluation as well as between iterations); a rule,
// check or policy query has at most 64 body predicates (matching recurses once per predicate).
//
// Thread-compatible: plain values; Authorize keeps no state between calls.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "custos/caps/biscuit.h"
#include "custos/caps/datalog.h"
#include "custos/caps/public_key.h"
#include "custos/core/result.h"

namespace custos::caps {

enum class DatalogError : uint8_t {
  kNone = 0,
  kOverflow = 1,            // integer arithmetic overflowed
  kDivideByZero = 2,        // integer division by zero
  kInvalidType = 3,         // an operator got operands of the wrong type, or a non-boolean result
  kShadowedVariable = 4,    // a closure parameter reuses a bound variable's name
  kUnknownVariable = 5,     // an expression reads a variable the rule body does not bind
  kUnknownFunction = 6,     // an extern (FFI) call
  kInvalidBlockRule = 7,    // a token rule's head or expressions use a variable its body lacks
  kInvalidRule = 8,         // the same, in the authorizer's code
  kTooManyFacts = 9,        // RunLimits::max_facts exceeded
  kTooManyIterations = 10,  // RunLimits::max_iterations exceeded
  kTimeout = 11,            // RunLimits::max_time exceeded
  kMalformed = 12,          // a symbol, public key or expression the tables cannot resolve
  kExternFailed = 13,       // a registered extern function returned an error
};

std::string_view DatalogErrorName(DatalogError e);

struct RunLimits {
  size_t max_facts = 1000;
  size_t max_iterations = 100;
  std::chrono::microseconds max_time{1000};
};

// A ground Datalog value (a term with its symbols resolved), as extern functions see it.
struct DatalogValue {
  enum class Kind : uint8_t { kInteger, kString, kDate, kBytes, kBool, kSet, kNull, kArray, kMap };
  Kind kind = Kind::kNull;
  int64_t integer = 0;
  uint64_t date = 0;  // seconds since the Unix epoch
  bool boolean = false;
  std::string text;                                            // string, or bytes
  std::vector<DatalogValue> items;                             // set (sorted, unique) or array
  std::vector<std::pair<DatalogValue, DatalogValue>> entries;  // map, sorted by key

  // Out of the class for the reason given at caps::Term (clang + libstdc++, recursive pair).
  DatalogValue();
  DatalogValue(const DatalogValue&);
  DatalogValue(DatalogValue&&) noexcept;
  DatalogValue& operator=(const DatalogValue&);
  DatalogValue& operator=(DatalogValue&&) noexcept;
  ~DatalogValue();
};
inline DatalogValue::DatalogValue() = default;
inline DatalogValue::DatalogValue(const DatalogValue&) = default;
inline DatalogValue::DatalogValue(DatalogValue&&) noexcept = default;
inline DatalogValue& DatalogValue::operator=(const DatalogValue&) = default;
inline DatalogValue& DatalogValue::operator=(DatalogValue&&) noexcept = default;
inline DatalogValue::~DatalogValue() = default;

// An extern function: `left.extern::name()` calls it with right == nullptr,
// `left.extern::name(right)` with the argument.
using ExternFunction =
    std::function<Result<DatalogValue>(const DatalogValue& left, const DatalogValue* right)>;

struct Policy {
  enum class Kind : uint8_t { kAllow, kDeny };
  Kind kind = Kind::kAllow;
  std::vector<Rule> queries;  // only the bodies are evaluated; a query has no meaningful head
};

// The authorizer's own Datalog: facts, rules, checks and scopes in `block`, plus policies. Symbol
// indices resolve against the default symbols and `symbols` (from SymbolTable::kOffset); `trusting
// <key>` indices against `public_keys`. ParseAuthorizerCode (datalog_parser.h) produces it.
struct AuthorizerCode {
  DatalogBlock block;
  std::vector<Policy> policies;
  std::vector<std::string> symbols;
  std::vector<PublicKey> public_keys;
  std::map<std::string, ExternFunction, std::less<>> externs;
};

struct FailedCheck {
  std::optional<size_t> block_id;  // nullopt: an authorizer check
  size_t check_id = 0;
  std::string rule;  // the check in Datalog text, e.g. `check if resource($0)`
  bool operator==(const FailedCheck&) const = default;
};

struct Authorization {
  enum class Outcome : uint8_t { kAllow, kDeny, kNoMatchingPolicy };
  Outcome outcome = Outcome::kNoMatchingPolicy;
  size_t policy = 0;  // index of the matching policy (kAllow / kDeny)
  std::vector<FailedCheck> failed_checks;
  // True only when an allow policy matched and every check passed.
  bool authorized() const { return outcome == Outcome::kAllow && failed_checks.empty(); }
};

// One fact of the world after the fixpoint, for inspection and conformance tests.
struct WorldFact {
  std::vector<size_t> blocks;  // origin blocks, ascending
  bool authorizer = false;     // the authorizer is part of the origin
  std::string text;            // e.g. `right("file1", "read")`
};

// Appends the ground fact `name(terms...)` to the authorizer's facts, interning its strings in
// code.symbols: how an authorizer adds the ambient facts of a request (operation, resource, time,
// ...) without parsing text. Terms may be integers, strings, dates, booleans or null;
// kInvalidArgument for any other kind (nothing is appended then).
Status AddAuthorizerFact(AuthorizerCode& code, std::string_view name,
                         std::initializer_list<DatalogValue> terms);

// Shorthands for building ground values.
DatalogValue StringValue(std::string_view s);
DatalogValue IntegerValue(int64_t i);
DatalogValue DateValue(uint64_t seconds_since_epoch);

// Runs `code` against `token` (nullptr: the authorizer's code alone). A failed check or a deny is
// an Authorization, not an error; errors are execution failures (expression errors, invalid rules,
// limits, unresolvable symbols): Reason::kTokenInvalid, the message starting with the
// DatalogErrorName, and `*error` (if given) set to the kind. If `world` is given, it receives every
// fact after the fixpoint (sorted by name, then origin, then value).
Result<Authorization> Authorize(const Biscuit* token, const AuthorizerCode& code,
                                const RunLimits& limits = {}, DatalogError* error = nullptr,
                                std::vector<WorldFact>* world = nullptr);

namespace internal {
struct CompiledToken;  // the blocks resolved for the engine (datalog_engine.cc)
}  // namespace internal

// A verified token with every block's Datalog decoded, its symbol tables built and its facts,
// rules and checks resolved for the engine once, so a token seen again (the kernel's verification
// cache) is authorized without decoding or resolving anything.
// Thread-compatible: immutable after PrepareToken; copies share the compiled form.
struct PreparedToken {
  Biscuit token;
  std::vector<DatalogBlock> blocks;  // blocks[i] decodes token.blocks()[i]
  std::vector<BlockTables> tables;   // TablesFor(token, i)
  std::shared_ptr<const internal::CompiledToken> compiled;
};

// Decodes and resolves every block of a verified token. kTokenInvalid (message starting
// "malformed") if a payload does not decode; Biscuit::FromBytes has already decoded each once, so
// this does not fail for a token it accepted. A block that cannot be resolved (an unbound
// variable, a bad symbol index) is not an error here: Authorize reports it, as for a Biscuit.
Result<PreparedToken> PrepareToken(Biscuit token);

// Authorize (above) over a prepared token: the same result for the same token and code.
Result<Authorization> Authorize(const PreparedToken& token, const AuthorizerCode& code,
                                const RunLimits& limits = {}, DatalogError* error = nullptr);

}  // namespace custos::caps
