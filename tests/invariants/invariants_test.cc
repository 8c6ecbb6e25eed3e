// The seven invariants of DESIGN.md, each tested through the real kernel (and, for INV-7's store
// failures, through the kernel's own Services and Pipeline over a store that fails on demand).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "custos/crypto/keys.h"
#include "custos/crypto/random.h"
#include "kernel/pipeline.h"
#include "kernel/services.h"
#include "testing/fake_http_server.h"
#include "testing/forwarding_store.h"
#include "testing/kernel_fixture.h"
#include "testing/matchers.h"

namespace custos::kernel {
namespace {

namespace fs = std::filesystem;
using ::custos::testing::CallJson;
using ::custos::testing::CannedResponse;
using ::custos::testing::EchoHandler;
using ::custos::testing::FakeHttpServer;
using ::custos::testing::ForwardingStore;
using ::custos::testing::HttpExchange;
using ::custos::testing::IsAllowed;
using ::custos::testing::IsDenied;
using ::custos::testing::IsOk;
using ::custos::testing::KernelHarness;
using ::custos::testing::LoadPolicyOrDie;
using ::custos::testing::MakePolicy;
using ::custos::testing::OpenAiHandler;
using ::custos::testing::PolicySpec;
using ::custos::testing::ReadFileIfExists;
using ::custos::testing::SecretEnvName;
using ::custos::testing::WriteFileOrDie;

// ---------------------------------------------------------------------------------------------
// INV-1 Complete mediation: a denied call never performs its effect.

class Inv1CompleteMediationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "notes");
    PolicySpec spec = h_.Spec();
    spec.connect = {allowed_.host_port()};
    spec.model_url = model_.url("/v1");
    ASSERT_TRUE(h_.Open(spec));
  }
  FakeHttpServer allowed_{EchoHandler()};
  FakeHttpServer denied_{EchoHandler()};
  FakeHttpServer model_{OpenAiHandler("ok", 1, 1)};
  KernelHarness h_;
};

TEST_F(Inv1CompleteMediationTest, DeniedFileWriteLeavesNoFile) {
  const fs::path target = h_.ws() / "not-writable.txt";
  EXPECT_THAT(h_.Worker("file.write", target.string(), {{"content", "x"}}),
              IsDenied(Reason::kPathNotAllowed, "policy"));
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(Inv1CompleteMediationTest, DeniedNetworkSendNeverReachesTheServer) {
  EXPECT_THAT(
      h_.Worker("network.send", denied_.url("/collect"), {{"method", "POST"}, {"body", "x"}}),
      IsDenied(Reason::kHostNotAllowed, "policy"));
  EXPECT_EQ(denied_.request_count(), 0u);
}

TEST_F(Inv1CompleteMediationTest, DeniedToolNeverRuns) {
  // Prove the marker works, then refuse it three ways.
  ASSERT_THAT(h_.Exec("worker", "tool.invoke", "marker"), IsAllowed());
  ASSERT_TRUE(fs::exists(h_.root() / "tool-ran"));
  fs::remove(h_.root() / "tool-ran");
  EXPECT_THAT(h_.Exec("reader", "tool.invoke", "marker"),
              IsDenied(Reason::kCapabilityMissing, "capability"));
  PolicySpec budgetless = h_.Spec();
  budgetless.worker_budget = "tool_calls = 0";
  budgetless.connect = {allowed_.host_port()};
  ASSERT_THAT(h_.kernel().ReloadPolicy(LoadPolicyOrDie(MakePolicy(budgetless))), IsOk());
  EXPECT_THAT(h_.Exec("worker", "tool.invoke", "marker", Json::object(), {}, "run-2"),
              IsDenied(Reason::kBudgetExhausted, "budget"));
  EXPECT_FALSE(fs::exists(h_.root() / "tool-ran"));
}

TEST_F(Inv1CompleteMediationTest, DeniedModelCallNeverReachesTheEndpoint) {
  EXPECT_THAT(h_.Worker("model.call", "gpt-5", {{"prompt", "x"}}),
              IsDenied(Reason::kModelNotAllowed, "policy"));
  EXPECT_EQ(model_.request_count(), 0u);
}

TEST_F(Inv1CompleteMediationTest, DeniedMemoryAndMailboxCallsChangeNothing) {
  ASSERT_THAT(h_.Worker("memory.alloc", "note", {{"id", "n"}, {"value", 1}}), IsAllowed());
  EXPECT_THAT(h_.Exec("reader", "memory.write", "n", {{"value", 2}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_EQ(h_.Worker("memory.read", "n").frame["value"], 1);
  EXPECT_THAT(h_.Exec("reader", "agent.send", "worker", {{"message", "x"}}),
              IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_THAT(h_.Worker("agent.recv", ""), IsDenied(Reason::kMailboxEmpty, "effect"));
}

// ---------------------------------------------------------------------------------------------
// INV-2 Authority: unknown agents and missing capabilities never reach a handler.

class Inv2AuthorityTest : public Inv1CompleteMediationTest {};

TEST_F(Inv2AuthorityTest, UnknownAgentReachesNoHandler) {
  const fs::path target = h_.out() / "by-mallory.txt";
  for (const Json& j : {CallJson("mallory", "file.write", target.string(), {{"content", "x"}}),
                        CallJson("mallory", "network.send", allowed_.url("/x")),
                        CallJson("mallory", "tool.invoke", "marker"),
                        CallJson("mallory", "model.call", "test-model", {{"prompt", "x"}}),
                        CallJson("mallory", "agent.spawn", "helper",
                                 {{"syscalls", Json::array({"file.write"})}})}) {
    SyscallResult r = h_.Exec(j);
    EXPECT_THAT(r, IsDenied(Reason::kUnknownAgent, "capability"));
    EXPECT_EQ(r.receipt.outcome_seq, 0);
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(h_.root() / "tool-ran"));
  EXPECT_EQ(allowed_.request_count(), 0u);
  EXPECT_EQ(model_.request_count(), 0u);
  // The spawn did not happen: helper is still the policy template, and mallory still unknown.
  EXPECT_THAT(h_.Exec("mallory", "memory.read", "x"),
              IsDenied(Reason::kUnknownAgent, "capability"));
}

TEST_F(Inv2AuthorityTest, MissingCapabilityReachesNoHandler) {
  const fs::path target = h_.out() / "by-reader.txt";
  for (const Json& j : {CallJson("reader", "file.write", target.string(), {{"content", "x"}}),
                        CallJson("reader", "network.send", allowed_.url("/x")),
                        CallJson("reader", "tool.invoke", "marker"),
                        CallJson("reader", "model.call", "test-model", {{"prompt", "x"}})}) {
    SyscallResult r = h_.Exec(j);
    EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
    EXPECT_EQ(r.receipt.outcome_seq, 0);
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(h_.root() / "tool-ran"));
  EXPECT_EQ(allowed_.request_count(), 0u);
  EXPECT_EQ(model_.request_count(), 0u);
}

TEST_F(Inv2AuthorityTest, SpawnedChildHoldsOnlyWhatItWasGranted) {
  ASSERT_THAT(h_.Worker("agent.spawn", "helper", {{"syscalls", Json::array({"memory.read"})}}),
              IsAllowed());
  SyscallResult r = h_.Exec("helper", "tool.invoke", "marker");
  EXPECT_THAT(r, IsDenied(Reason::kCapabilityMissing, "capability"));
  EXPECT_FALSE(fs::exists(h_.root() / "tool-ran"));
}

TEST_F(Inv2AuthorityTest, HandlesAreBoundToTheirOwnerAndRun) {
  SyscallResult notes = h_.Worker("file.read", (h_.ws() / "notes.md").string());
  ASSERT_THAT(notes, IsAllowed());
  const fs::path target = h_.out() / "copy.md";
  EXPECT_THAT(h_.Exec("helper", "file.write", target.string(), Json::object(), {notes.handle->id}),
              IsDenied(Reason::kForeignHandle, "inputs"));
  EXPECT_THAT(
      h_.Exec("worker", "file.write", target.string(), Json::object(), {notes.handle->id}, "run-2"),
      IsDenied(Reason::kForeignHandle, "inputs"));
  EXPECT_FALSE(fs::exists(target));
}

// ---------------------------------------------------------------------------------------------
// INV-3 Budget: never exceeded under concurrency.

TEST(Inv3BudgetTest, ConcurrentModelCallsNeverExceedTheTokenBudget) {
  constexpr int kThreads = 64;
  constexpr int64_t kLimitOut = 100, kMaxTokens = 8, kReportedOut = 5, kReportedIn = 3;
  FakeHttpServer model(OpenAiHandler("ok", kReportedIn, kReportedOut));
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = model.url("/v1");
  spec.worker_budget = "model_tokens_out = " + std::to_string(kLimitOut);
  ASSERT_TRUE(h.Open(spec));

  std::mutex mu;
  std::vector<SyscallResult> results;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      SyscallResult r =
          h.Worker("model.call", "test-model", {{"prompt", "hi"}, {"max_tokens", kMaxTokens}});
      std::lock_guard<std::mutex> lock(mu);
      results.push_back(std::move(r));
    });
  }
  for (std::thread& th : threads)
    th.join();

  int64_t settled_out = 0;
  int allowed = 0;
  for (const SyscallResult& r : results) {
    if (r.decision.allowed()) {
      ++allowed;
      settled_out += r.usage[budget::Resource::kModelTokensOut];
      EXPECT_EQ(r.usage[budget::Resource::kModelTokensOut], kReportedOut);
    } else {
      EXPECT_THAT(r, IsDenied(Reason::kBudgetExhausted, "budget"));
    }
  }
  EXPECT_LE(settled_out, kLimitOut);
  // Refused only once reservations (at most kMaxTokens each) were near the limit.
  EXPECT_GE(allowed, static_cast<int>(kLimitOut / kMaxTokens));
  EXPECT_EQ(static_cast<size_t>(allowed), model.request_count());
  // Nothing is left reserved: used + reserved == what the results say was settled.
  const int64_t remaining = h.Remaining("model_tokens_out");
  EXPECT_GE(remaining, 0);
  EXPECT_EQ(remaining, kLimitOut - settled_out);
}

TEST(Inv3BudgetTest, ConcurrentToolInvocationsNeverExceedTheToolCallLimit) {
  constexpr int kThreads = 64;
  constexpr int kLimit = 10;
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.worker_budget = "tool_calls = " + std::to_string(kLimit);
  ASSERT_TRUE(h.Open(spec));
  std::atomic<int> allowed{0}, exhausted{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SyscallResult r = h.Worker("tool.invoke", "echo", {{"arguments", {{"t", t}}}});
      if (r.decision.allowed()) {
        allowed.fetch_add(1);
      } else if (r.decision.reason == Reason::kBudgetExhausted && r.decision.stage == "budget") {
        exhausted.fetch_add(1);
      } else {
        other.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads)
    th.join();
  EXPECT_EQ(allowed.load(), kLimit);
  EXPECT_EQ(exhausted.load(), kThreads - kLimit);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(h.Remaining("tool_calls"), 0);
}

// ---------------------------------------------------------------------------------------------
// INV-4 Write-ahead record.

TEST(Inv4WriteAheadRecordTest, DecisionEntryIsDurableBeforeTheEffectStarts) {
  KernelHarness h;
  const fs::path db = h.root() / "data" / "custos.db";
  std::atomic<int> seen_decision{-1};
  FakeHttpServer probe([&](const HttpExchange&) {
    // Read the log from a second connection while the effect is in flight.
    Result<std::unique_ptr<store::Store>> st = store::OpenSqliteStore(db);
    int found = 0;
    if (st.ok()) {
      store::LogQuery q;
      q.limit = 100000;
      Result<std::vector<store::LogRow>> rows = (*st)->ReadLog(q);
      if (rows.ok()) {
        for (const store::LogRow& row : *rows) {
          Result<audit::LogEntry> e = audit::DecodeEntry(row);
          if (e.ok() && e->syscall_id == "inv4-probe" && e->type == "decision" &&
              e->verdict == "allow") {
            ++found;
          }
          if (e.ok() && e->syscall_id == "inv4-probe" && e->type == "outcome")
            found = -100;
        }
      }
    }
    seen_decision.store(found);
    CannedResponse r;
    r.body = "probed";
    return r;
  });
  PolicySpec spec = h.Spec();
  spec.connect = {probe.host_port()};
  ASSERT_TRUE(h.Open(spec));
  Json j = CallJson("worker", "network.send", probe.url("/probe"));
  j["id"] = "inv4-probe";
  SyscallResult r = h.Exec(j);
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(seen_decision.load(), 1)
      << "the allow decision was not in the store when the effect ran";
}

TEST(Inv4WriteAheadRecordTest, EveryAllowedEffectHasADecisionThenAnOutcomePointingAtIt) {
  FakeHttpServer server(EchoHandler());
  KernelHarness h;
  WriteFileOrDie(h.ws() / "notes.md", "notes");
  PolicySpec spec = h.Spec();
  spec.connect = {server.host_port()};
  ASSERT_TRUE(h.Open(spec));
  std::vector<SyscallResult> results = {
      h.Worker("file.read", (h.ws() / "notes.md").string()),
      h.Worker("file.write", (h.out() / "a.txt").string(), {{"content", "a"}}),
      h.Worker("network.send", server.url("/x")),
      h.Worker("tool.invoke", "echo"),
      h.Worker("memory.alloc", "note", {{"value", 1}}),
      h.Worker("agent.send", "reader", {{"message", "m"}}),
      h.Worker("tool.invoke", "fail"),  // allowed, then the effect fails: still an outcome
  };
  for (const SyscallResult& r : results) {
    std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
    ASSERT_EQ(entries.size(), 2u) << r.ToJson().dump();
    EXPECT_EQ(entries[0].type, "decision");
    EXPECT_EQ(entries[0].verdict, "allow");
    EXPECT_EQ(entries[0].seq, r.receipt.decision_seq);
    EXPECT_EQ(entries[1].type, "outcome");
    EXPECT_EQ(entries[1].decision_seq, entries[0].seq);
    EXPECT_EQ(entries[1].seq, r.receipt.outcome_seq);
    EXPECT_LT(entries[0].seq, entries[1].seq);
    EXPECT_FALSE(entries[0].req_hash.empty());
  }
}

TEST(Inv4WriteAheadRecordTest, RefusalsAreRecordedWithoutAnOutcome) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  std::vector<SyscallResult> results = {
      h.Worker("file.write", (h.ws() / "a.txt").string(), {{"content", "a"}}),
      h.Exec("reader", "tool.invoke", "echo"),
      h.Exec("mallory", "audit.commit", ""),
      h.kernel().ExecuteJson("{not json"),
  };
  for (const SyscallResult& r : results) {
    ASSERT_EQ(r.decision.verdict, Verdict::kDeny);
    std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
    ASSERT_EQ(entries.size(), 1u) << r.ToJson().dump();
    EXPECT_EQ(entries[0].type, "decision");
    EXPECT_EQ(entries[0].verdict, "deny");
    EXPECT_EQ(entries[0].reason, ReasonName(r.decision.reason));
    EXPECT_EQ(r.receipt.outcome_seq, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// INV-5 Labels only rise.

class Inv5LabelsOnlyRiseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(h_.ws() / "notes.md", "private notes");
    PolicySpec spec = h_.Spec();
    spec.connect = {web_.host_port()};
    spec.model_url = model_.url("/v1");
    ASSERT_TRUE(h_.Open(spec));
    page_ = h_.Worker("network.send", web_.url("/page"));
    notes_ = h_.Worker("file.read", (h_.ws() / "notes.md").string());
    ASSERT_THAT(page_, IsAllowed());
    ASSERT_THAT(notes_, IsAllowed());
    join_ = page_.handle->labels.Join(notes_.handle->labels);
  }
  FakeHttpServer web_{EchoHandler()};
  FakeHttpServer model_{OpenAiHandler("derived", 2, 2)};
  KernelHarness h_;
  SyscallResult page_, notes_;
  labels::LabelSet join_;
};

TEST_F(Inv5LabelsOnlyRiseTest, EveryDerivedValueCarriesTheJoinOfItsInputs) {
  const std::vector<std::string> inputs = {page_.handle->id, notes_.handle->id};
  for (const SyscallResult& r :
       {h_.Worker("model.call", "test-model", {{"prompt", "x"}}, inputs),
        h_.Worker("tool.invoke", "echo", Json::object(), inputs),
        h_.Worker("tool.response", "search", {{"content", "x"}}, inputs)}) {
    ASSERT_THAT(r, IsAllowed());
    ASSERT_TRUE(r.handle.has_value());
    EXPECT_TRUE(r.handle->labels.Reaches(join_))
        << r.handle->labels.ToString() << " does not reach " << join_.ToString();
  }
}

TEST_F(Inv5LabelsOnlyRiseTest, MessagesAndMemoryKeepTheirLabels) {
  ASSERT_THAT(h_.Worker("agent.send", "reader", Json::object(), {notes_.handle->id}), IsAllowed());
  SyscallResult got = h_.Exec("reader", "agent.recv", "");
  ASSERT_THAT(got, IsAllowed());
  EXPECT_TRUE(got.handle->labels.Reaches(notes_.handle->labels));

  Json alloc =
      CallJson("worker", "memory.alloc", "note", {{"id", "m"}, {"value", "v"}}, {page_.handle->id});
  ASSERT_THAT(h_.Exec(alloc), IsAllowed());
  Json wash = CallJson("worker", "memory.write", "m", {{"value", "clean"}});
  wash["labels"] = {"trusted", "public"};
  ASSERT_THAT(h_.Exec(wash), IsAllowed());
  SyscallResult m = h_.Worker("memory.read", "m");
  EXPECT_TRUE(m.handle->labels.Reaches(page_.handle->labels)) << m.handle->labels.ToString();
}

TEST_F(Inv5LabelsOnlyRiseTest, DeclaredLabelsCannotLowerAnInput) {
  Json j = CallJson("worker", "tool.invoke", "echo", Json::object(), {page_.handle->id});
  j["labels"] = {"trusted", "public"};
  SyscallResult r = h_.Exec(j);
  ASSERT_THAT(r, IsAllowed());
  EXPECT_TRUE(r.handle->labels.Reaches(page_.handle->labels));
}

TEST_F(Inv5LabelsOnlyRiseTest, OnlyARecordedApprovalLowersALabel) {
  std::thread answer([&] {
    const std::string id = h_.WaitForPendingApproval();
    ASSERT_FALSE(id.empty());
    ASSERT_THAT(h_.kernel().AnswerApproval(id, true, "carol", "reviewed"), IsOk());
  });
  SyscallResult r = h_.Exec(CallJson(
      "worker", "human.approve", "",
      {{"question", "share?"}, {"declassify", Json::array({"public"})}}, {notes_.handle->id}));
  answer.join();
  ASSERT_THAT(r, IsAllowed());
  EXPECT_EQ(r.handle->labels.confidentiality(), labels::Confidentiality::kPublic);
  std::vector<audit::LogEntry> entries = h_.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].blob, r.handle->id);
  EXPECT_THAT(entries[1].labels, ::testing::Contains("public"));
  Result<store::Approval> a =
      h_.kernel().store().GetApproval(r.frame["approval_id"].get<std::string>());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->state, "approved");
  EXPECT_EQ(a->answered_by, "carol");
}

// ---------------------------------------------------------------------------------------------
// INV-6 Secrets stay sealed (the full leak matrix is tests/canary/canary_test.cc).

TEST(Inv6SecretsStaySealedTest, SecretBytesInEgressAreBlockedBeforeTheWire) {
  FakeHttpServer server(EchoHandler());
  const std::string secret = "inv6-" + crypto::RandomId("s");
  ::setenv(SecretEnvName("inv6_key").c_str(), secret.c_str(), 1);
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.connect = {server.host_port()};
  spec.secret_names = {"inv6_key"};
  spec.secret_destinations = {server.host_port()};
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r =
      h.Worker("network.send", server.url("/x"), {{"method", "POST"}, {"body", secret}});
  EXPECT_THAT(r, IsDenied(Reason::kSecretInEgress, "labels"));
  EXPECT_EQ(server.request_count(), 0u);
  EXPECT_EQ(r.ToJson().dump().find(secret), std::string::npos);
  for (const store::LogRow& row : h.Rows()) {
    EXPECT_EQ(row.canonical.find(secret), std::string::npos) << row.canonical;
  }
  ::unsetenv(SecretEnvName("inv6_key").c_str());
}

// ---------------------------------------------------------------------------------------------
// INV-7 Fail closed.

// Forwards to a real store (owned); fails the calls it is told to.
class FlakyStore final : public ForwardingStore {
 public:
  explicit FlakyStore(std::unique_ptr<store::Store> inner)
      : ForwardingStore(inner.get()), owned_(std::move(inner)) {}

  std::atomic<bool> fail_append{false};
  std::atomic<bool> fail_heap{false};
  std::atomic<bool> fail_put_handle{false};

  using store::Store::AppendLog;
  Status AppendLog(const std::vector<store::LogRow>& rows,
                   const std::vector<store::MerkleNode>& nodes, store::Sync sync) override {
    if (fail_append.load())
      return Status(Reason::kStoreError, "injected append failure");
    return ForwardingStore::AppendLog(rows, nodes, sync);
  }
  Status PutHandle(const store::HandleRecord& h, store::Sync sync) override {
    if (fail_put_handle.load())
      return Status(Reason::kStoreError, "injected handle failure");
    return ForwardingStore::PutHandle(h, sync);
  }
  Result<store::HeapObject> HeapGet(const std::string& run, const std::string& id) override {
    if (fail_heap.load())
      return Status(Reason::kStoreError, "injected heap failure");
    return ForwardingStore::HeapGet(run, id);
  }
  Result<std::vector<store::HeapObject>> HeapApply(const std::string& run,
                                                   const std::vector<store::HeapOp>& ops,
                                                   int64_t now_ms) override {
    if (fail_heap.load())
      return Status(Reason::kStoreError, "injected heap failure");
    return ForwardingStore::HeapApply(run, ops, now_ms);
  }

 private:
  std::unique_ptr<store::Store> owned_;
};

// The kernel's Services and Pipeline over a FlakyStore (Kernel::Open always opens SQLite).
class Inv7FailClosedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<store::Store>> inner = store::OpenSqliteStore(h_.root() / "flaky.db");
    ASSERT_TRUE(inner.ok()) << inner.status().ToString();
    auto flaky = std::make_unique<FlakyStore>(std::move(inner).value());
    store_ = flaky.get();
    Result<crypto::SigningKey> key = crypto::SigningKey::Generate();
    ASSERT_TRUE(key.ok());
    KernelOptions o;
    o.data_dir = h_.root() / "data";
    o.policy = LoadPolicyOrDie(MakePolicy(h_.Spec()));
    o.clock = &SystemClock();
    o.notice = [](const std::string&) {};
    services_ = std::make_unique<Services>(std::move(o), std::move(flaky),
                                           std::make_unique<crypto::SigningKey>(std::move(*key)));
    ASSERT_THAT(services_->Start(), IsOk());
  }

  // Runs `j` with a token the services' root minted for its agent (every right; the policy
  // still decides).
  SyscallResult Run(const Json& j) {
    Result<Syscall> call = ParseSyscall(j);
    EXPECT_TRUE(call.ok()) << call.status().ToString();
    std::vector<std::string> all;
    for (SyscallKind k : AllSyscalls())
      all.emplace_back(SyscallName(k));
    Result<std::string> datalog =
        TokenAuthority::GrantDatalog(call->agent, call->run, all, {}, SystemClock().NowMillis());
    EXPECT_TRUE(datalog.ok());
    Result<std::string> token = services_->tokens().Mint(*datalog);
    EXPECT_TRUE(token.ok()) << token.status().ToString();
    call->token = *token;
    return pipeline_.Execute(*call, *services_);
  }

  std::vector<audit::LogEntry> EntriesFor(const std::string& id) {
    std::vector<audit::LogEntry> out;
    EXPECT_TRUE(services_->log().Flush().ok());
    store::LogQuery q;
    q.limit = 100000;
    Result<std::vector<store::LogRow>> rows = services_->store().ReadLog(q);
    EXPECT_TRUE(rows.ok());
    if (!rows.ok())
      return out;
    for (const store::LogRow& row : *rows) {
      Result<audit::LogEntry> e = audit::DecodeEntry(row);
      if (e.ok() && e->syscall_id == id)
        out.push_back(*e);
    }
    return out;
  }

  KernelHarness h_;  // only for its directories and policy
  FlakyStore* store_ = nullptr;
  std::unique_ptr<Services> services_;
  Pipeline pipeline_;
};

TEST_F(Inv7FailClosedStoreTest, StoreFailureInsideAnEffectEndsInARecordedDeny) {
  store_->fail_heap = true;
  SyscallResult r = Run(CallJson("worker", "memory.alloc", "note", {{"value", 1}}));
  EXPECT_THAT(r, IsDenied(Reason::kStoreError, "effect"));
  std::vector<audit::LogEntry> entries = EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].type, "outcome");
  EXPECT_EQ(entries[1].verdict, "deny");
  EXPECT_EQ(entries[1].reason, "store_error");
}

TEST_F(Inv7FailClosedStoreTest, FailureToMintTheOutputHandleIsADeny) {
  WriteFileOrDie(h_.ws() / "notes.md", "notes");
  store_->fail_put_handle = true;
  SyscallResult r = Run(CallJson("worker", "file.read", (h_.ws() / "notes.md").string()));
  EXPECT_THAT(r, IsDenied(Reason::kStoreError, "effect"));
  EXPECT_FALSE(r.handle.has_value());
  EXPECT_TRUE(r.frame.is_null());
  ASSERT_EQ(EntriesFor(r.id).size(), 2u);
}

TEST_F(Inv7FailClosedStoreTest, UnrecordableDecisionNeverReachesTheEffect) {
  store_->fail_append = true;
  const fs::path target = h_.out() / "unlogged.txt";
  SyscallResult r = Run(CallJson("worker", "file.write", target.string(), {{"content", "x"}}));
  EXPECT_EQ(r.decision.verdict, Verdict::kDeny);
  EXPECT_EQ(r.decision.stage, "record");
  EXPECT_EQ(r.decision.reason, Reason::kStoreError);
  EXPECT_FALSE(fs::exists(target));
  // The writer now refuses everything: still no effect.
  store_->fail_append = false;
  SyscallResult next = Run(CallJson("worker", "file.write", target.string(), {{"content", "x"}}));
  EXPECT_EQ(next.decision.verdict, Verdict::kDeny);
  EXPECT_EQ(next.decision.stage, "record");
  EXPECT_FALSE(fs::exists(target));
}

TEST(Inv7FailClosedTest, UnknownKindIsDeniedAndRecorded) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  SyscallResult r =
      h.kernel().ExecuteJson(R"({"agent":"worker","run":"r","kind":"file.delete","target":"/"})");
  EXPECT_THAT(r, IsDenied(Reason::kUnknownSyscall, "schema"));
  std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].verdict, "deny");
  EXPECT_EQ(entries[0].syscall, "file.delete");
}

TEST(Inv7FailClosedTest, UnknownFieldAndUnknownToolAreDeniedAndRecorded) {
  KernelHarness h;
  ASSERT_TRUE(h.Open(h.Spec()));
  SyscallResult field = h.kernel().ExecuteJson(
      R"({"agent":"worker","run":"r","kind":"audit.commit","override":"allow"})");
  EXPECT_THAT(field, IsDenied(Reason::kUnknownField, "schema"));
  EXPECT_EQ(h.EntriesFor(field.id).size(), 1u);
  SyscallResult tool = h.Worker("tool.invoke", "never.heard.of");
  EXPECT_THAT(tool, IsDenied(Reason::kToolNotAllowed, "policy"));
  EXPECT_EQ(h.EntriesFor(tool.id).size(), 1u);
}

TEST(Inv7FailClosedTest, HandlerErrorsEndInARecordedDeny) {
  FakeHttpServer broken([](const HttpExchange&) {
    CannedResponse r;
    r.body = R"({"choices":"nope","usage":[1,2]})";
    return r;
  });
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.model_url = broken.url("/v1");
  ASSERT_TRUE(h.Open(spec));
  for (const SyscallResult& r :
       {h.Worker("model.call", "test-model", {{"prompt", "x"}}), h.Worker("tool.invoke", "fail")}) {
    EXPECT_THAT(r, IsDenied(Reason::kEffectFailed, "effect"));
    std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[1].verdict, "deny");
    EXPECT_EQ(entries[1].reason, "effect_failed");
  }
}

TEST(Inv7FailClosedTest, ApprovalTimeoutIsARecordedDeny) {
  KernelHarness h;
  PolicySpec spec = h.Spec();
  spec.approval_timeout_ms = 100;
  ASSERT_TRUE(h.Open(spec));
  SyscallResult r = h.Worker("human.approve", "", {{"question", "?"}});
  EXPECT_THAT(r, IsDenied(Reason::kApprovalTimeout, "effect"));
  std::vector<audit::LogEntry> entries = h.EntriesFor(r.id);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].reason, "approval_timeout");
}

}  // namespace
}  // namespace custos::kernel
