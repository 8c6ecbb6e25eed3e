#include "server/capabilities.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace custos::server {
namespace {

// Plain words a goal uses for each syscall kind.
struct KindWords {
  std::string_view kind;
  std::string_view words;
};

constexpr KindWords kKindWords[] = {
    {"model.call", "model llm ask summarize summarise answer generate write draft translate chat"},
    {"context.read", "context read handle content view"},
    {"tool.describe", "tool describe schema list tools"},
    {"tool.invoke", "tool run invoke execute call command"},
    {"secret.open", "secret token credential password key api"},
    {"network.send", "http https fetch web url download upload send post get api request page"},
    {"file.read", "file read open load inspect source code document directory"},
    {"file.write", "file write save create output report store"},
    {"file.patch", "file patch edit modify change fix update refactor diff"},
    {"memory.alloc", "memory remember store note save allocate"},
    {"memory.read", "memory recall remember read lookup"},
    {"memory.write", "memory update remember write"},
    {"memory.delete", "memory forget delete remove"},
    {"memory.query", "memory search query find recall list"},
    {"memory.batch", "memory batch transaction"},
    {"human.approve", "human approve approval ask confirm review permission"},
    {"agent.spawn", "agent spawn delegate subagent helper parallel"},
    {"agent.send", "agent send message tell notify"},
    {"agent.recv", "agent receive message inbox wait"},
    {"audit.commit", "audit commit checkpoint log"},
    {"assert", "assert check verify condition"},
};

std::set<std::string> Words(std::string_view text) {
  std::set<std::string> out;
  std::string w;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c)) {
      w += static_cast<char>(std::tolower(c));
    } else if (!w.empty()) {
      out.insert(w);
      w.clear();
    }
  }
  if (!w.empty())
    out.insert(w);
  return out;
}

void Score(const std::set<std::string>& goal, std::string_view text, Candidate* c) {
  for (const std::string& w : Words(text)) {
    if (w.size() >= 3 && goal.count(w) > 0) {
      ++c->score;
      c->why += (c->why.empty() ? "" : " ") + w;
    }
  }
}

}  // namespace

std::vector<Candidate> MatchCapabilities(const policy::Policy& policy, const std::string& agent,
                                         const std::string& goal, size_t limit) {
  std::vector<Candidate> out;
  const policy::AgentSpec* spec = policy.FindAgent(agent);
  if (spec == nullptr)
    return out;
  const std::set<std::string> g = Words(goal);
  for (const KindWords& kw : kKindWords) {
    std::optional<SyscallKind> kind = SyscallFromName(kw.kind);
    if (!kind || !spec->syscalls.Contains(*kind))
      continue;
    if (*kind == SyscallKind::kToolInvoke) {
      for (const policy::ToolSpec& t : policy.tools()) {
        policy::Request r;
        r.agent = agent;
        r.kind = SyscallKind::kToolInvoke;
        r.target = t.name;
        if (policy.Decide(r).verdict == Verdict::kDeny)
          continue;  // the policy would refuse it: not a candidate
        Candidate c;
        c.kind = std::string(kw.kind);
        c.target = t.name;
        c.description = t.description;
        Score(g, t.name + " " + t.description, &c);
        if (c.score > 0)
          out.push_back(std::move(c));
      }
      continue;
    }
    Candidate c;
    c.kind = std::string(kw.kind);
    Score(g, kw.words, &c);
    if (c.score > 0)
      out.push_back(std::move(c));
  }
  std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score)
      return a.score > b.score;
    return std::tie(a.kind, a.target) < std::tie(b.kind, b.target);
  });
  if (out.size() > limit)
    out.resize(limit);
  return out;
}

}  // namespace custos::server
