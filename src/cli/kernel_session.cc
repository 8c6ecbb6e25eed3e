#include "cli/kernel_session.h"

#include <cstdlib>

#include "cli/cli.h"
#include "custos/policy/policy.h"

namespace custos::cli {

Result<KernelSession> KernelSession::Open(const std::filesystem::path& data_dir,
                                          const std::string& policy_file,
                                          audit::Durability durability, const Config& config) {
  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const policy::Policy> p,
                          policy::Policy::LoadFile(policy_file));
  kernel::KernelOptions o;
  o.data_dir = data_dir;
  o.policy = std::move(p);
  o.durability = durability;
  o.checkpoint_every_entries = config.checkpoint_every_entries;
  o.checkpoint_every_ms = config.checkpoint_every_ms;
  o.passphrase = PassphraseFromEnv();
  KernelSession s;
  CUSTOS_ASSIGN_OR_RETURN(s.kernel_, kernel::Kernel::Open(std::move(o)));
  return s;
}

Result<KernelSession> KernelSession::OpenScratch(const std::string& policy_file) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "custos-scratch-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Status(Reason::kIoError, "cannot make a scratch directory");
  CUSTOS_ASSIGN_OR_RETURN(std::shared_ptr<const policy::Policy> p,
                          policy::Policy::LoadFile(policy_file));
  kernel::KernelOptions o;
  o.data_dir = tmpl;
  o.policy = std::move(p);
  o.durability = audit::Durability::kNone;
  o.notice = [](const std::string&) {};  // the scratch identity is thrown away
  KernelSession s;
  s.scratch_ = tmpl;
  Result<std::unique_ptr<kernel::Kernel>> k = kernel::Kernel::Open(std::move(o));
  if (!k.ok())
    return k.status();
  s.kernel_ = std::move(k).value();
  return s;
}

KernelSession::~KernelSession() {
  kernel_.reset();
  if (!scratch_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(scratch_, ec);
  }
}

}  // namespace custos::cli
