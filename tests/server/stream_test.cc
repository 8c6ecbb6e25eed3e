// Streamed /v1/invoke and /v1/syscall (decision 028): server-sent events in order (decision before
// the effect ends, progress and output while it runs, then the result), the result equal to the
// non-streamed body, a client that goes away losing nothing, secrets redacted across writes, and
// the stream cap and timeout.
//
// The long-running tool waits for a gate file the test creates, so "before the effect ends" is an
// ordering the test controls, not a timing it hopes for.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "custos/audit/verifier.h"
#include "server/server_fixture.h"

namespace custos::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Event {
  std::string name;
  Json data;
};

// The complete events in `text` (after the response head); comments are skipped.
std::vector<Event> ParseEvents(const std::string& text) {
  std::vector<Event> out;
  size_t start = text.find("\r\n\r\n");
  start = start == std::string::npos ? 0 : start + 4;
  while (true) {
    const size_t end = text.find("\n\n", start);
    if (end == std::string::npos)
      break;
    const std::string block = text.substr(start, end - start);
    start = end + 2;
    Event e;
    std::istringstream lines(block);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("event: ", 0) == 0)
        e.name = line.substr(7);
      if (line.rfind("data: ", 0) == 0) {
        Result<Json> j = ParseUntrustedJson(line.substr(6));
        e.data = j.ok() ? *j : Json("unparsable: " + line);
      }
    }
    if (!e.name.empty())
      out.push_back(std::move(e));
  }
  return out;
}

bool HasEvent(const std::string& text, const std::string& name) {
  for (const Event& e : ParseEvents(text)) {
    if (e.name == name)
      return true;
  }
  return false;
}

// Reads into *got until `done(*got)` or the peer closes; bounded (about 20 s at most).
template <class Pred>
bool ReadUntil(RawConnection& c, std::string* got, Pred done) {
  for (int i = 0; i < 200 && !done(*got); ++i) {
    const std::string more = c.ReadSome(100);
    if (more.empty() && c.WaitClosed(0)) {
      *got += c.ReadSome(0);  // what arrived just before the close
      return done(*got);
    }
    *got += more;
  }
  return done(*got);
}

std::string StreamedOutput(const std::vector<Event>& events) {
  std::string text;
  for (const Event& e : events) {
    if (e.name == "output")
      text += e.data.value("text", "");
  }
  return text;
}

// The parts of a result that differ between two runs of the same call.
Json WithoutRunSpecifics(Json j) {
  j.erase("id");
  j.erase("receipt");
  if (j.contains("handle"))
    j["handle"].erase("id");
  return j;
}

constexpr char kSecret[] = "sk-live-0123456789abcdefXYZ";

class StreamTest : public ::testing::Test {
 protected:
  // `limits` with fast progress ticks; tools: "gated" (prints, waits for gate(), prints),
  // "lines" (prints two lines), "leaky" (prints the secret in two writes around the gate).
  void StartWith(server::ServerLimits limits = {}) {
    limits.stream_progress_ms = 20;
    ::setenv(SecretEnvName("API_TOKEN").c_str(), kSecret, 1);
    PolicySpec spec = s_.kernel().Spec();
    spec.secret_names = {"API_TOKEN"};
    spec.secret_destinations = {"127.0.0.1:1"};
    gate_ = s_.kernel().root() / "go";
    const std::string wait = "while [ ! -e " + gate_.string() + " ]; do sleep 0.02; done; ";
    const std::string secret(kSecret);
    spec.extra =
        "[[tools.registry]]\nname = \"gated\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; "
        "echo started; " +
        wait +
        "echo finished\"]\ndescription = \"Waits for the test.\"\n\n"
        "[[tools.registry]]\nname = \"lines\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; "
        "echo one; echo two\"]\ndescription = \"Two lines.\"\n\n"
        "[[tools.registry]]\nname = \"leaky\"\ncommand = [\"/bin/sh\", \"-c\", \"cat >/dev/null; "
        "printf 'key=" +
        secret.substr(0, 12) + "'; " + wait + "printf '" + secret.substr(12) +
        " done\\\\n'\"]\ndescription = \"Prints a secret.\"\n";
    std::string policy = MakePolicy(spec);
    const std::string allow = "allow = [\"echo\", ";
    policy.replace(policy.find(allow), allow.size(),
                   "allow = [\"gated\", \"lines\", \"leaky\", \"echo\", ");
    ASSERT_TRUE(s_.Start(spec, limits, 4, policy));
  }
  void OpenGate() { WriteFileOrDie(gate_, "go"); }

  // Starts a streamed invoke of `tool` on a new connection.
  RawConnection StreamInvoke(const std::string& tool, const std::string& mode = "raw") {
    RawConnection c = s_.Tcp();
    EXPECT_TRUE(c.Send(RawConnection::Format(
        "POST", "/v1/invoke",
        Json{{"tool", tool}, {"run", "run-1"}, {"response_mode", mode}, {"stream", true}}.dump(),
        s_.Auth("worker"))));
    return c;
  }

  // Log rows of syscall `id` of type `type`.
  int CountRows(const std::string& id, const std::string& type) {
    store::LogQuery q;
    q.limit = 10000;
    Result<std::vector<store::LogRow>> rows = s_.kernel().kernel().store().ReadLog(q);
    int n = 0;
    for (const store::LogRow& r : rows.ok() ? *rows : std::vector<store::LogRow>{}) {
      if (r.canonical.find("\"syscall_id\":\"" + id + "\"") != std::string::npos &&
          r.canonical.find("\"type\":\"" + type + "\"") != std::string::npos) {
        ++n;
      }
    }
    return n;
  }

  ServerHarness s_;
  std::filesystem::path gate_;
};

TEST_F(StreamTest, DecisionArrivesBeforeTheEffectEndsThenProgressOutputAndResult) {
  StartWith();
  RawConnection c = StreamInvoke("gated");
  std::string got;
  ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) { return HasEvent(t, "decision"); }))
      << got;
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(got, HasSubstr("Content-Type: text/event-stream"));
  const std::vector<Event> first = ParseEvents(got);
  ASSERT_EQ(first.front().name, "decision");
  const std::string id = first.front().data["id"];
  EXPECT_EQ(first.front().data["decision"]["verdict"], "allow");
  EXPECT_GT(first.front().data["receipt"]["decision_seq"].get<int64_t>(), 0);
  // The effect is blocked on the gate: the decision is in the log, the outcome is not.
  EXPECT_EQ(CountRows(id, "decision"), 1);
  EXPECT_EQ(CountRows(id, "outcome"), 0);
  // While it waits: progress, and the first line of output.
  ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) {
    return HasEvent(t, "progress") && t.find("started") != std::string::npos;
  })) << got;
  EXPECT_FALSE(HasEvent(got, "result"));
  OpenGate();
  ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) { return HasEvent(t, "result"); }))
      << got;
  EXPECT_TRUE(c.WaitClosed(5000)) << "the stream ends after the result";

  const std::vector<Event> events = ParseEvents(got);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front().name, "decision");
  EXPECT_EQ(events.back().name, "result");
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    EXPECT_THAT(events[i].name, ::testing::AnyOf("progress", "output")) << i;
    if (events[i].name == "progress") {
      EXPECT_EQ(events[i].data["id"], id);
      EXPECT_GE(events[i].data["elapsed_ms"].get<int64_t>(), 0);
    }
  }
  EXPECT_EQ(StreamedOutput(events), "started\nfinished\n");
  const Json& result = events.back().data;
  EXPECT_EQ(result["id"], id);
  EXPECT_EQ(result["decision"]["verdict"], "allow") << result.dump();
  EXPECT_EQ(result["response_mode"], "raw");
  EXPECT_EQ(result["frame"]["text"], "started\nfinished\n");
  EXPECT_GT(result["receipt"]["outcome_seq"].get<int64_t>(), 0);
  EXPECT_EQ(CountRows(id, "outcome"), 1);
}

TEST_F(StreamTest, StreamedResultIsTheNonStreamedBody) {
  StartWith();
  for (const std::string mode : {"summary", "raw", "handle"}) {
    const std::string body =
        Json{{"tool", "lines"}, {"run", "run-1"}, {"response_mode", mode}}.dump();
    const HttpReply plain = s_.Call("worker", "POST", "/v1/invoke", body);
    ASSERT_EQ(plain.status, 200) << plain.body;
    // Asked for by Accept alone.
    RawConnection c = s_.Tcp();
    ASSERT_TRUE(c.Send(RawConnection::Format("POST", "/v1/invoke", body,
                                             s_.Auth("worker") + "Accept: text/event-stream\r\n")));
    std::string got;
    ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) { return HasEvent(t, "result"); }))
        << got;
    const std::vector<Event> events = ParseEvents(got);
    EXPECT_EQ(WithoutRunSpecifics(events.back().data), WithoutRunSpecifics(BodyJson(plain)))
        << mode;
    // Output events only in raw mode: a stream never shows more than the frame would.
    EXPECT_EQ(StreamedOutput(events), mode == "raw" ? "one\ntwo\n" : "") << mode;
  }
  // /v1/syscall streams with Accept too; a deny is a result like any other.
  const std::string call =
      Json{{"run", "run-1"}, {"kind", "tool.invoke"}, {"target", "danger.rm"}}.dump();
  const HttpReply plain = s_.Call("worker", "POST", "/v1/syscall", call);
  RawConnection c = s_.Tcp();
  ASSERT_TRUE(c.Send(RawConnection::Format("POST", "/v1/syscall", call,
                                           s_.Auth("worker") + "Accept: text/event-stream\r\n")));
  std::string got;
  ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) { return HasEvent(t, "result"); }))
      << got;
  const std::vector<Event> events = ParseEvents(got);
  ASSERT_GE(events.size(), 2u) << got;
  EXPECT_EQ(events.front().name, "decision");
  EXPECT_EQ(events.front().data["decision"]["verdict"], "deny");
  EXPECT_EQ(StreamedOutput(events), "");
  EXPECT_EQ(events.back().name, "result");
  EXPECT_EQ(WithoutRunSpecifics(events.back().data), WithoutRunSpecifics(BodyJson(plain)));
  // A bad request is an ordinary error response, not a stream.
  const HttpReply bad =
      s_.Call("worker", "POST", "/v1/invoke", R"({"tool":"lines","run":"run-1","stream":"yes"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(ErrorReason(bad), "schema_violation");
}

TEST_F(StreamTest, ClientThatGoesAwayMidStreamLosesNothing) {
  StartWith();
  std::string id;
  {
    RawConnection c = StreamInvoke("gated");
    std::string got;
    ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) { return HasEvent(t, "decision"); }));
    id = ParseEvents(got).front().data["id"];
    c.Close();
  }
  OpenGate();
  for (int i = 0; i < 500 && CountRows(id, "outcome") == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(CountRows(id, "outcome"), 1) << "the outcome is recorded without a reader";
  const audit::VerifyReport v = audit::VerifyStore(s_.kernel().kernel().store());
  EXPECT_TRUE(v.status.ok()) << v.status;
  // The budget settled: one tool call used, nothing left reserved.
  bool found = false;
  for (const auto& [key, st] : s_.kernel().kernel().BudgetAccounts()) {
    if (key.agent != "worker")
      continue;
    found = true;
    EXPECT_EQ(st.used[budget::Resource::kToolCalls], 1);
    EXPECT_EQ(st.reserved[budget::Resource::kToolCalls], 0);
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(s_.Call("", "GET", "/healthz").status, 200);
}

TEST_F(StreamTest, SecretSplitAcrossWritesIsRedactedAndNeverStreamedInPart) {
  StartWith();
  const std::string secret(kSecret);
  RawConnection c = StreamInvoke("leaky");
  std::string got;
  // The first half has been written by the tool (the byte count says so) ...
  ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) {
    for (const Event& e : ParseEvents(t)) {
      if (e.name == "progress" && e.data.value("output_bytes", 0) > 0)
        return true;
    }
    return false;
  })) << got;
  // ... but none of it was streamed: it could be the start of a secret.
  EXPECT_THAT(got, Not(HasSubstr(secret.substr(0, 8))));
  OpenGate();
  ASSERT_TRUE(ReadUntil(c, &got, [](const std::string& t) { return HasEvent(t, "result"); }))
      << got;
  const std::vector<Event> events = ParseEvents(got);
  EXPECT_EQ(StreamedOutput(events), "key=[redacted:API_TOKEN] done\n");
  EXPECT_EQ(events.back().data["frame"]["text"], "key=[redacted:API_TOKEN] done\n");
  for (const std::string& part : {secret.substr(0, 12), secret.substr(12)})
    EXPECT_THAT(got, Not(HasSubstr(part)));
}

TEST_F(StreamTest, StreamsBeyondTheCapAre503AndATimedOutStreamEndsWithAnError) {
  server::ServerLimits limits;
  limits.max_streams = 1;
  limits.stream_timeout_ms = 300;
  StartWith(limits);
  RawConnection first = StreamInvoke("gated");
  std::string got;
  ASSERT_TRUE(ReadUntil(first, &got, [](const std::string& t) { return HasEvent(t, "decision"); }));
  const std::string id = ParseEvents(got).front().data["id"];
  RawConnection second = StreamInvoke("lines");
  const HttpReply busy = second.Read();
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(ErrorReason(busy), "unavailable");
  // The first stream outlives its timeout: an error event, then the end of the response.
  ASSERT_TRUE(ReadUntil(first, &got, [](const std::string& t) { return HasEvent(t, "error"); }))
      << got;
  const std::vector<Event> events = ParseEvents(got);
  EXPECT_EQ(events.back().name, "error");
  EXPECT_EQ(events.back().data["error"]["reason"], "request_timeout");
  EXPECT_THAT(events.back().data["error"]["message"].get<std::string>(), HasSubstr(id));
  EXPECT_TRUE(first.WaitClosed(5000));
  // The call itself goes on and is recorded.
  OpenGate();
  for (int i = 0; i < 500 && CountRows(id, "outcome") == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(CountRows(id, "outcome"), 1);
}

}  // namespace
}  // namespace custos::testing
