// libFuzzer target: the Biscuit token parser and the Datalog block decoder, the code that reads
// bytes an agent hands the kernel. A holder can append a block signed by its own ephemeral key, so
// block payloads reach DecodeDatalog with a valid signature: both paths are attacker-facing.
//
// The first input byte picks the path (even: whole token, odd: one block payload); the rest is the
// input. Any token that parses is printed and authorized under tight run limits, so the engine is
// exercised on whatever the fuzzer manages to build.

#include <cstddef>
#include <cstdint>
#include <span>

#include "custos/caps/biscuit.h"
#include "custos/caps/datalog.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"
#include "custos/caps/public_key.h"

namespace {

using namespace custos::caps;

// The official samples' root key, so the sample corpus verifies and mutations start from tokens
// whose signatures are valid.
const PublicKey& SampleRoot() {
  static const PublicKey key =
      PublicKey::FromString(
          "ed25519/1055c750b1a1505937af1537c626ba3263995c33a64758aaafb1275b0312e284")
          .value();
  return key;
}

const AuthorizerCode& Authorizer() {
  static const AuthorizerCode code =
      ParseAuthorizerCode(
          "resource(\"file1\"); operation(\"read\"); time(2020-12-21T09:23:12Z);\n"
          "allow if true;")
          .value();
  return code;
}

void FuzzToken(std::span<const uint8_t> bytes) {
  auto token = Biscuit::FromBytes(bytes, SampleRoot());
  if (!token.ok())
    return;
  for (size_t i = 0; i < token->blocks().size(); ++i)
    (void)PrintBlock(*token, i);
  (void)token->RevocationIds();
  RunLimits limits;
  limits.max_facts = 200;
  limits.max_iterations = 20;
  limits.max_time = std::chrono::microseconds(20000);
  (void)Authorize(&*token, Authorizer(), limits);
}

void FuzzBlock(std::span<const uint8_t> bytes) {
  auto block = DecodeDatalog(bytes);
  if (!block.ok())
    return;
  SymbolTable symbols;
  (void)PrintDatalog(*block, symbols, {});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  const std::span<const uint8_t> rest(data + 1, size - 1);
  if ((data[0] & 1) == 0) {
    FuzzToken(rest);
  } else {
    FuzzBlock(rest);
  }
  return 0;
}
