// Flight-log benchmarks: append throughput per durability mode and appender count, and chain
// verification speed. Items/s is entries/s. Stores live in a fresh temporary directory per run.
//
//   ./audit_bench --benchmark_filter=LogAppend
//   ./audit_bench --benchmark_filter=Verify

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "custos/audit/checkpoint.h"
#include "custos/audit/log_entry.h"
#include "custos/audit/log_writer.h"
#include "custos/audit/stored_tree.h"
#include "custos/audit/verifier.h"
#include "custos/crypto/keys.h"
#include "custos/store/store.h"

namespace custos::audit {
namespace {

// A representative decision entry (~700 bytes canonical).
LogEntry SampleEntry(int thread) {
  LogEntry e;
  e.type = "decision";
  e.agent = "agent-" + std::to_string(thread);
  e.run = "run-0001";
  e.syscall_id = "req-000000000001";
  e.syscall = "file.read";
  e.target = "/work/project/src/module/file_name_that_is_somewhat_long.cc";
  e.verdict = "allow";
  e.stage = "policy";
  e.rule = "read-project-sources";
  e.reason = "ok";
  e.explanation = "rule read-project-sources allows file.read on /work/project/**";
  e.labels = {"trusted", "private", "source:workspace"};
  e.req_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  e.policy_hash = "5d41402abc4b2a76b9719d911017c592a3f0c1b2e5d6f7a8091a2b3c4d5e6f70";
  e.usage = {{"tool_calls", 1}, {"wall_ms", 3}};
  return e;
}

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "custos-bench-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct AppendFixture {
  ScratchDir dir;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<LogWriter> writer;
};

// Shared by the threads of one benchmark run; built and torn down by thread 0 (Google Benchmark
// starts and ends the timed loop of all threads together).
std::unique_ptr<AppendFixture> g_append;

// The key automatic checkpoints are signed with (issue 4's target: a checkpoint every 1,000).
const crypto::SigningKey& BenchKey() {
  static const crypto::SigningKey key = crypto::SigningKey::Generate().value();
  return key;
}

void RunAppend(benchmark::State& state, Durability durability, bool checkpoints = false) {
  if (state.thread_index() == 0) {
    g_append = std::make_unique<AppendFixture>();
    auto s = store::OpenSqliteStore(g_append->dir.path() / "bench.db");
    if (!s.ok()) {
      state.SkipWithError(s.status().ToString().c_str());
      return;
    }
    g_append->store = std::move(s).value();
    CheckpointOptions cp;
    if (checkpoints) {
      cp.key = &BenchKey();
      cp.origin = "custos/bench";
      cp.every_entries = 1000;
      cp.every_ms = 1000;
    }
    auto w = LogWriter::Open(g_append->store.get(), durability, &SystemClock(), std::move(cp));
    if (!w.ok()) {
      state.SkipWithError(w.status().ToString().c_str());
      return;
    }
    g_append->writer = std::move(w).value();
  }
  const LogEntry entry = SampleEntry(state.thread_index());
  for (auto _ : state) {
    auto a = g_append->writer->Append(entry);
    if (!a.ok()) {
      state.SkipWithError(a.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(a->seq);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    // Count the drain in kNone: the entries must reach the store, not just the queue.
    if (durability == Durability::kNone) {
      g_append->writer->Flush().IgnoreError();
    }
    g_append.reset();
  }
}

void BM_LogAppend_None(benchmark::State& state) { RunAppend(state, Durability::kNone); }
void BM_LogAppend_Group(benchmark::State& state) { RunAppend(state, Durability::kGroup); }
void BM_LogAppend_Fsync(benchmark::State& state) { RunAppend(state, Durability::kFsync); }

// Every append mode stores the Merkle nodes; this one also signs a checkpoint every 1,000 entries.
void BM_LogAppend_GroupCheckpointed(benchmark::State& state) {
  RunAppend(state, Durability::kGroup, /*checkpoints=*/true);
}

BENCHMARK(BM_LogAppend_None)->Threads(1)->Threads(8)->Threads(64)->UseRealTime();
BENCHMARK(BM_LogAppend_GroupCheckpointed)->Threads(8)->Threads(64)->UseRealTime();
BENCHMARK(BM_LogAppend_Group)->Threads(1)->Threads(8)->Threads(64)->UseRealTime();
BENCHMARK(BM_LogAppend_Fsync)->Threads(1)->Threads(8)->UseRealTime()->MinTime(1.0);

// The caller-side cost of an append: canonical encoding of one entry.
void BM_EncodeCanonical(benchmark::State& state) {
  LogEntry e = SampleEntry(0);
  e.seq = 123456;
  e.prev_hash = kGenesisHash;
  for (auto _ : state) {
    auto c = EncodeCanonical(e);
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeCanonical);

// The writer thread's share: SQLite inserts of pre-built rows, 1000 per transaction, kNone.
void BM_StoreAppendLog_None_Batch1000(benchmark::State& state) {
  ScratchDir dir;
  auto s = store::OpenSqliteStore(dir.path() / "store.db");
  LogEntry e = SampleEntry(0);
  e.prev_hash = kGenesisHash;
  const std::string canonical = *EncodeCanonical(e);
  std::vector<store::LogRow> batch(1000, ToRow(e, canonical));
  for (auto& r : batch) {
    r.hash = std::string(64, 'a');
  }
  int64_t seq = 0;
  for (auto _ : state) {
    for (auto& r : batch) {
      r.seq = ++seq;
    }
    Status st = (*s)->AppendLog(batch, store::Sync::kNone);
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(seq);
}
BENCHMARK(BM_StoreAppendLog_None_Batch1000);

// Builds a verified chain of `n` rows in memory, as the writer would.
std::vector<store::LogRow> BuildChain(int64_t n) {
  std::vector<store::LogRow> rows;
  rows.reserve(static_cast<size_t>(n));
  std::string prev = kGenesisHash;
  for (int64_t seq = 1; seq <= n; ++seq) {
    LogEntry e = SampleEntry(static_cast<int>(seq % 16));
    e.seq = seq;
    e.prev_hash = prev;
    e.time_ms = 1'700'000'000'000 + seq;
    std::string canonical = *EncodeCanonical(e);
    e.hash = ChainHash(prev, canonical);
    prev = e.hash;
    rows.push_back(ToRow(e, std::move(canonical)));
  }
  return rows;
}

// Verification from memory: the chain check alone (scan + SHA-256 + compare) per entry.
void BM_Verify_ChainVerifierPerEntry(benchmark::State& state) {
  static const std::vector<store::LogRow> rows = BuildChain(100'000);
  for (auto _ : state) {
    ChainVerifier v;
    for (const store::LogRow& r : rows) {
      v.Add(r);
    }
    VerifyReport report = v.Finish();
    if (!report.status.ok()) {
      state.SkipWithError(report.status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(rows.size()));
}
BENCHMARK(BM_Verify_ChainVerifierPerEntry)->Unit(benchmark::kMillisecond)->UseRealTime();

// End to end from SQLite: paging through ReadLog plus the chain check, on 1M entries.
void BM_Verify_1MEntries(benchmark::State& state) {
  constexpr int64_t kEntries = 1'000'000;
  static ScratchDir dir;
  static std::unique_ptr<store::Store> store = [] {
    auto s = store::OpenSqliteStore(dir.path() / "verify.db");
    std::vector<store::LogRow> rows = BuildChain(kEntries);
    constexpr size_t kBatch = 10'000;
    for (size_t i = 0; i < rows.size(); i += kBatch) {
      std::vector<store::LogRow> batch(rows.begin() + i,
                                       rows.begin() + std::min(rows.size(), i + kBatch));
      (*s)->AppendLog(batch, store::Sync::kNone).IgnoreError();
    }
    (*s)->SyncLog().IgnoreError();
    return std::move(s).value();
  }();
  for (auto _ : state) {
    VerifyReport r = VerifyStore(*store);
    if (!r.status.ok() || r.entries != kEntries) {
      state.SkipWithError(r.status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK(BM_Verify_1MEntries)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

constexpr int64_t kFullEntries = 1'000'000;

// A 1M-entry store as the writer leaves it: rows, every Merkle node, a checkpoint every 1,000.
store::Store& FullStore() {
  static ScratchDir dir;
  static std::unique_ptr<store::Store> store = [] {
    auto s = store::OpenSqliteStore(dir.path() / "verify-full.db");
    std::vector<store::LogRow> rows = BuildChain(kFullEntries);
    CompactRange range;
    std::vector<MerkleNodeRef> refs;
    constexpr size_t kBatch = 1000;
    for (size_t i = 0; i < rows.size(); i += kBatch) {
      std::vector<store::LogRow> batch(rows.begin() + i,
                                       rows.begin() + std::min(rows.size(), i + kBatch));
      refs.clear();
      for (const store::LogRow& r : batch) {
        range.Append(MerkleLeafHash(r.canonical), &refs);
      }
      (*s)->AppendLog(batch, ToStoreNodes(refs), store::Sync::kNone).IgnoreError();
      Checkpoint c{"custos/bench", range.size(), range.Root(), {}};
      (*s)->PutCheckpoint(static_cast<int64_t>(c.size),
                          SignCheckpoint(c, c.origin, BenchKey()).value(), 0)
          .IgnoreError();
    }
    (*s)->SyncLog().IgnoreError();
    return std::move(s).value();
  }();
  return *store;
}

// `custos audit verify` on 1M entries: chain, every stored Merkle node recomputed and compared,
// and the 1,000 stored checkpoints' roots and signatures.
void BM_VerifyFull_1MEntries(benchmark::State& state) {
  constexpr int64_t kEntries = kFullEntries;
  store::Store* store = &FullStore();
  VerifyOptions opts;
  opts.merkle = true;
  opts.trusted = {MakeNoteVerifier("custos/bench", BenchKey().verifying_key()).value()};
  for (auto _ : state) {
    VerifyReport r = VerifyStore(*store, opts);
    if (!r.status.ok() || r.entries != kEntries || r.checkpoints != 1000) {
      state.SkipWithError(r.status.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kEntries);
}
BENCHMARK(BM_VerifyFull_1MEntries)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

// `custos audit prove`: an inclusion proof from the stored nodes (O(log n) nodes, one query).
void BM_StoredInclusionProof_1M(benchmark::State& state) {
  const StoreNodeSource src(&FullStore(), kFullEntries);
  uint64_t index = 12345;
  for (auto _ : state) {
    index = (index * 2654435761u + 1) % kFullEntries;
    auto proof = StoredInclusionProof(src, index, kFullEntries);
    if (!proof.ok()) {
      state.SkipWithError(proof.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(proof->data());
  }
}
BENCHMARK(BM_StoredInclusionProof_1M)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace custos::audit

BENCHMARK_MAIN();
