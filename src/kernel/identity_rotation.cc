#include "custos/kernel/identity_rotation.h"

#include <algorithm>
#include <system_error>

#include "custos/audit/checkpoint.h"
#include "custos/audit/key_rotation.h"
#include "custos/audit/log_writer.h"
#include "custos/crypto/key_store.h"
#include "custos/store/store.h"

namespace custos::kernel {
namespace {

namespace fs = std::filesystem;

Result<std::unique_ptr<store::Store>> OpenLog(const fs::path& data_dir) {
  const fs::path db = data_dir / "custos.db";
  if (!fs::exists(db)) {
    return Status(Reason::kNotFound, "no flight log at " + db.string() + " to rotate");
  }
  return store::OpenSqliteStore(db);
}

// Step 3: keep the old identity under keys/, then put the new one in place.
Status Install(const fs::path& data_dir, const crypto::SigningKey& old_key,
               const std::optional<std::string>& passphrase) {
  const fs::path dir = data_dir / kRetiredKeysDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Status(Reason::kIoError, "cannot create " + dir.string() + ": " + ec.message());
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  CUSTOS_RETURN_IF_ERROR(
      crypto::KeyStore::Save(old_key, dir / (old_key.id().hex + ".key"), passphrase));
  fs::rename(data_dir / kNextIdentityFile, data_dir / kIdentityFile, ec);
  if (ec) {
    return Status(Reason::kIoError, "cannot install the new identity: " + ec.message());
  }
  return Status::Ok();
}

}  // namespace

Result<bool> FinishInterruptedRotation(const fs::path& data_dir,
                                       const std::optional<std::string>& passphrase) {
  const fs::path next_path = data_dir / kNextIdentityFile;
  if (!fs::exists(next_path)) {
    return false;
  }
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey next, crypto::KeyStore::Load(next_path, passphrase));
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey current,
                          crypto::KeyStore::Load(data_dir / kIdentityFile, passphrase));
  bool logged = false;
  if (fs::exists(data_dir / "custos.db")) {
    CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenLog(data_dir));
    CUSTOS_ASSIGN_OR_RETURN(audit::KeyChain chain, audit::ReadKeyChain(*st));
    logged = !chain.rotations().empty() &&
             chain.rotations().back().new_key == next.verifying_key().bytes() &&
             chain.rotations().back().old_key == current.verifying_key().bytes();
  }
  if (!logged) {
    // Crashed before the statement was committed: the rotation did not happen.
    std::error_code ec;
    fs::remove(next_path, ec);
    if (ec) {
      return Status(Reason::kIoError, "cannot remove " + next_path.string() + ": " + ec.message());
    }
    return false;
  }
  CUSTOS_RETURN_IF_ERROR(Install(data_dir, current, passphrase));
  return true;
}

Result<IdentityRotation> RotateIdentity(const fs::path& data_dir, const RotateOptions& options) {
  const Clock* clock = options.clock != nullptr ? options.clock : &SystemClock();
  CUSTOS_RETURN_IF_ERROR(FinishInterruptedRotation(data_dir, options.passphrase).status());
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey old_key,
                          crypto::KeyStore::Load(data_dir / kIdentityFile, options.passphrase));
  CUSTOS_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, OpenLog(data_dir));
  CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey new_key, crypto::SigningKey::Generate());
  // 1. The new key is on disk before the log names it, so a logged rotation can be finished.
  CUSTOS_RETURN_IF_ERROR(
      crypto::KeyStore::Save(new_key, data_dir / kNextIdentityFile, options.passphrase));
  // 2. The statement, between a checkpoint by each key.
  IdentityRotation out;
  {
    audit::CheckpointOptions cp;
    cp.key = &old_key;
    cp.every_entries = 0;
    cp.every_ms = 0;
    Result<std::unique_ptr<audit::LogWriter>> writer =
        audit::LogWriter::Open(st.get(), audit::Durability::kFsync, clock, std::move(cp));
    Result<audit::KeyRotation> r =
        writer.ok() ? (*writer)->Rotate(&new_key) : Result<audit::KeyRotation>(writer.status());
    if (!r.ok()) {
      // The statement may or may not be durable: the log decides (install the new key if it names
      // it, else drop it), as after a crash.
      if (writer.ok()) {
        writer->reset();
      }
      FinishInterruptedRotation(data_dir, options.passphrase).IgnoreError();
      return r.status();
    }
    out.seq = r->seq;
    out.tree_size = r->tree_size;
  }
  out.old_key_id = old_key.id().hex;
  out.new_key_id = new_key.id().hex;
  CUSTOS_ASSIGN_OR_RETURN(
      audit::NoteVerifier v,
      audit::MakeNoteVerifier(audit::KeyName(new_key.verifying_key()), new_key.verifying_key()));
  out.verifier_key = audit::VerifierKeyString(v);
  if (options.stop_before_install_for_test) {
    return out;
  }
  // 3. Keep the old key, install the new one.
  CUSTOS_RETURN_IF_ERROR(Install(data_dir, old_key, options.passphrase));
  return out;
}

Result<std::vector<crypto::SigningKey>> LoadRetiredKeys(
    const fs::path& data_dir, const std::optional<std::string>& passphrase) {
  std::vector<crypto::SigningKey> keys;
  const fs::path dir = data_dir / kRetiredKeysDir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return keys;
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".key") {
      files.push_back(e.path());
    }
  }
  if (ec) {
    return Status(Reason::kIoError, "cannot list " + dir.string() + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    CUSTOS_ASSIGN_OR_RETURN(crypto::SigningKey k, crypto::KeyStore::Load(f, passphrase));
    keys.push_back(std::move(k));
  }
  return keys;
}

}  // namespace custos::kernel
