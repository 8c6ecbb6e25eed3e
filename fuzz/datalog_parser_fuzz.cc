// libFuzzer target: the Datalog text parser (what `custos token attenuate` and authorizer policies
// are written in) and the engine under run limits. Anything that parses is printed, and the printed
// text must parse again: the printer and the parser agree on one language. Parsed code is then run
// as an authorizer with tight limits, so rules that would run forever or explode in facts must end
// in a limit error, never a hang.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "custos/caps/datalog.h"
#include "custos/caps/datalog_engine.h"
#include "custos/caps/datalog_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::caps;
  if (size > 16 * 1024)
    return 0;  // the kernel caps Datalog text well below this
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto code = ParseAuthorizerCode(text);
  if (!code.ok())
    return 0;

  SymbolTable symbols;
  symbols.Extend(code->symbols);
  auto printed = PrintDatalog(code->block, symbols, code->public_keys);
  if (printed.ok()) {
    auto again = ParseAuthorizerCode(*printed);
    if (!again.ok()) {
      std::fprintf(stderr, "printed Datalog does not parse: %s\n---\n%s\n",
                   std::string(again.status().message()).c_str(), printed->c_str());
      std::abort();
    }
  }

  RunLimits limits;
  limits.max_facts = 200;
  limits.max_iterations = 20;
  limits.max_time = std::chrono::microseconds(20000);
  (void)Authorize(nullptr, *code, limits);
  return 0;
}
