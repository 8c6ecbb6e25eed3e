// custos init / custos keygen / custos identity rotate.

#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/cli.h"
#include "custos/crypto/key_store.h"
#include "custos/kernel/identity_rotation.h"

namespace custos::cli {
namespace {

// Reads a passphrase from the terminal without echo; nullopt if stdin is not a terminal.
std::optional<std::string> PromptPassphrase(const char* prompt) {
  if (!::isatty(STDIN_FILENO))
    return std::nullopt;
  std::fprintf(stderr, "%s", prompt);
  termios old{};
  ::tcgetattr(STDIN_FILENO, &old);
  termios quiet = old;
  quiet.c_lflag &= ~ECHO;
  ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::string line;
  std::getline(std::cin, line);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
  std::fprintf(stderr, "\n");
  return line;
}

Status MakePrivateDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return Status(Reason::kIoError, "cannot create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) {
    return Status(Reason::kIoError, "cannot make " + dir.string() + " 0700");
  }
  return Status::Ok();
}

}  // namespace

void RegisterInit(CLI::App& app, GlobalOptions& g, int* exit_code) {
  auto* init = app.add_subcommand("init", "Create the data directory (0700) and an identity key");
  auto* init_plain =
      init->add_flag("--no-passphrase")
          ->description("Store the identity unencrypted (else $CUSTOS_PASSPHRASE or a prompt)");
  init->callback([&g, exit_code, init_plain] {
    const std::filesystem::path dir = ResolveDataDir(g);
    if (Status s = MakePrivateDir(dir); !s.ok()) {
      *exit_code = Fail(s);
      return;
    }
    const std::filesystem::path key = dir / "identity.key";
    if (std::filesystem::exists(key)) {
      std::printf("data directory %s already has an identity\n", dir.c_str());
      *exit_code = 0;
      return;
    }
    std::optional<std::string> pass;
    if (!*init_plain) {
      pass = PassphraseFromEnv();
      if (!pass)
        pass = PromptPassphrase("passphrase for the new identity: ");
      if (!pass || pass->empty()) {
        *exit_code = Fail(Status(Reason::kKeyError,
                                 "no passphrase (set CUSTOS_PASSPHRASE, use a terminal, or pass "
                                 "--no-passphrase to store the key unencrypted)"));
        return;
      }
    }
    Result<crypto::SigningKey> k = crypto::SigningKey::Generate();
    if (!k.ok()) {
      *exit_code = Fail(k.status());
      return;
    }
    if (Status s = crypto::KeyStore::Save(*k, key, pass); !s.ok()) {
      *exit_code = Fail(s);
      return;
    }
    std::printf("initialised %s\nidentity %s (%s)\n", dir.c_str(), k->id().hex.c_str(),
                pass ? "encrypted with Argon2id + XChaCha20-Poly1305" : "UNENCRYPTED, as asked");
    *exit_code = 0;
  });

  auto* identity = app.add_subcommand("identity", "Manage the kernel identity key");
  identity->require_subcommand(1);
  auto* rotate = identity->add_subcommand(
      "rotate",
      "Replace the identity with a new key: the flight log records a rotation statement signed by "
      "both keys; the old key is kept (encrypted) in DATA_DIR/keys/ for older payloads. Run it "
      "while no kernel uses the data directory");
  rotate->callback([&g, exit_code] {
    kernel::RotateOptions opts;
    opts.passphrase = PassphraseFromEnv();
    Result<kernel::IdentityRotation> r = kernel::RotateIdentity(ResolveDataDir(g), opts);
    if (!r.ok()) {
      *exit_code = Fail(r.status());
      return;
    }
    std::printf(
        "rotated identity custos/%s -> custos/%s at log entry %lld (after %llu entries)\n"
        "old key kept in %s\n"
        "verifier key of the new identity (add it to your --trusted-keys file):\n%s\n",
        r->old_key_id.c_str(), r->new_key_id.c_str(), static_cast<long long>(r->seq),
        static_cast<unsigned long long>(r->tree_size),
        (ResolveDataDir(g) / kernel::kRetiredKeysDir / (r->old_key_id + ".key")).c_str(),
        r->verifier_key.c_str());
    *exit_code = 0;
  });

  auto* keygen = app.add_subcommand("keygen", "Make a new Ed25519 identity key file");
  static std::string out;
  keygen->add_option("--out", out, "Key file to write (default: DATA_DIR/identity.key)");
  auto* plain = keygen->add_flag("--no-passphrase")->description("Write the key unencrypted");
  auto* force = keygen->add_flag("--force")->description("Overwrite an existing key file");
  keygen->callback([&g, exit_code, plain, force] {
    std::filesystem::path path =
        out.empty() ? ResolveDataDir(g) / "identity.key" : std::filesystem::path(out);
    if (std::filesystem::exists(path) && !*force) {
      *exit_code = Fail(Status(Reason::kAlreadyExists, path.string() + " exists (use --force)"));
      return;
    }
    if (path.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
    }
    std::optional<std::string> pass;
    if (!*plain) {
      pass = PassphraseFromEnv();
      if (!pass)
        pass = PromptPassphrase("passphrase: ");
      if (!pass || pass->empty()) {
        *exit_code = Fail(Status(Reason::kKeyError,
                                 "no passphrase (set CUSTOS_PASSPHRASE, use a terminal, or pass "
                                 "--no-passphrase)"));
        return;
      }
    }
    Result<crypto::SigningKey> k = crypto::SigningKey::Generate();
    if (!k.ok()) {
      *exit_code = Fail(k.status());
      return;
    }
    if (Status s = crypto::KeyStore::Save(*k, path, pass); !s.ok()) {
      *exit_code = Fail(s);
      return;
    }
    std::printf("%s\nkey id %s, %s\n", path.c_str(), k->id().hex.c_str(),
                pass ? "encrypted" : "unencrypted");
    *exit_code = 0;
  });
}

}  // namespace custos::cli
