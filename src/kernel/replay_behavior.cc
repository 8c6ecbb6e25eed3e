#include "custos/kernel/replay_behavior.h"

#include <fstream>
#include <sstream>

#include "custos/core/json.h"
#include "custos/core/syscall_kind.h"

namespace custos::kernel {
namespace {

Status Bad(const std::string& message, const std::string& at) {
  return Status(Reason::kInvalidArgument, message, at);
}

Result<BehaviorRule> ParseRule(const Json& r, size_t i) {
  const std::string at = "/results/" + std::to_string(i);
  if (!r.is_object())
    return Bad("a behavior rule is an object", at);
  BehaviorRule rule;
  rule.index = i;
  for (auto it = r.begin(); it != r.end(); ++it) {
    const std::string& k = it.key();
    if (k != "match" && k != "labels" && k != "content" && k != "usage" && k != "fail") {
      return Bad("unknown key '" + k.substr(0, 64) + "'", at + "/" + JsonPointerToken(k));
    }
  }
  auto m = r.find("match");
  if (m == r.end() || !m->is_object() || m->empty())
    return Bad("a rule needs a non-empty 'match' object", at + "/match");
  for (auto it = m->begin(); it != m->end(); ++it) {
    const std::string& k = it.key();
    const std::string kat = at + "/match/" + JsonPointerToken(k);
    if (k == "seq") {
      if (!it->is_number_integer() || it->get<int64_t>() <= 0)
        return Bad("seq is a positive integer", kat);
      rule.seq = it->get<int64_t>();
      continue;
    }
    if (!it->is_string())
      return Bad("match values other than seq are strings", kat);
    const std::string v = it->get<std::string>();
    if (k == "syscall") {
      if (!SyscallFromName(v))
        return Bad("unknown syscall '" + v.substr(0, 64) + "'", kat);
      rule.syscall = v;
    } else if (k == "agent") {
      rule.agent = v;
    } else if (k == "run") {
      rule.run = v;
    } else if (k == "target") {
      Result<Glob> g = Glob::Compile(v);
      if (!g.ok())
        return Bad(std::string(g.status().message()), kat);
      rule.target = std::move(g).value();
    } else {
      return Bad("unknown match key '" + k.substr(0, 64) + "' (seq, syscall, agent, run, target)",
                 kat);
    }
  }
  bool replaces = false;
  if (auto l = r.find("labels"); l != r.end()) {
    Result<labels::LabelSet> ls = labels::LabelSet::FromJson(*l);
    if (!ls.ok())
      return Bad(std::string(ls.status().message()), at + "/labels");
    rule.labels = std::move(ls).value();
    replaces = true;
  }
  if (auto c = r.find("content"); c != r.end()) {
    if (!c->is_string())
      return Bad("content is a string", at + "/content");
    rule.content = c->get<std::string>();
    replaces = true;
  }
  if (auto u = r.find("usage"); u != r.end()) {
    if (!u->is_object())
      return Bad("usage is an object of budget amounts", at + "/usage");
    budget::Amounts a;
    for (auto it = u->begin(); it != u->end(); ++it) {
      int found = -1;
      for (int k = 0; k < budget::kResourceCount; ++k) {
        if (budget::ResourceName(static_cast<budget::Resource>(k)) == it.key())
          found = k;
      }
      const std::string uat = at + "/usage/" + JsonPointerToken(it.key());
      if (found < 0)
        return Bad("unknown budget resource '" + it.key().substr(0, 64) + "'", uat);
      if (!it->is_number_integer() || it->get<int64_t>() < 0)
        return Bad("budget amounts are non-negative integers", uat);
      a.v[found] = it->get<int64_t>();
    }
    rule.usage = a;
    replaces = true;
  }
  if (auto f = r.find("fail"); f != r.end()) {
    std::optional<Reason> reason =
        f->is_string() ? ReasonFromName(f->get<std::string>()) : std::nullopt;
    if (!reason || *reason == Reason::kOk)
      return Bad("fail is a reason name other than ok (custos reasons)", at + "/fail");
    rule.fail = *reason;
    replaces = true;
  }
  if (!replaces)
    return Bad("a rule replaces something: labels, content, usage or fail", at);
  return rule;
}

}  // namespace

Result<Behavior> Behavior::Parse(std::string_view json_text) {
  CUSTOS_ASSIGN_OR_RETURN(Json j, ParseUntrustedJson(json_text));
  if (!j.is_object())
    return Bad("a behavior file is an object {\"results\": [...]}", "");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "results")
      return Bad("unknown key '" + it.key().substr(0, 64) + "'", "/" + JsonPointerToken(it.key()));
  }
  auto results = j.find("results");
  if (results == j.end() || !results->is_array())
    return Bad("a behavior file needs a 'results' array", "/results");
  Behavior b;
  for (size_t i = 0; i < results->size(); ++i) {
    CUSTOS_ASSIGN_OR_RETURN(BehaviorRule rule, ParseRule((*results)[i], i));
    b.rules_.push_back(std::move(rule));
  }
  return b;
}

Result<Behavior> Behavior::LoadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status(Reason::kNotFound, "cannot read behavior file", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  Result<Behavior> b = Parse(ss.str());
  if (!b.ok())
    return b.status().WithAtPrefix(path.string() + ":");
  return b;
}

const BehaviorRule* Behavior::Match(int64_t seq, std::string_view syscall, std::string_view agent,
                                    std::string_view run, std::string_view target) const {
  for (const BehaviorRule& r : rules_) {
    if (r.seq && *r.seq != seq)
      continue;
    if (!r.syscall.empty() && r.syscall != syscall)
      continue;
    if (!r.agent.empty() && r.agent != agent)
      continue;
    if (!r.run.empty() && r.run != run)
      continue;
    if (r.target && !r.target->Matches(target))
      continue;
    return &r;
  }
  return nullptr;
}

}  // namespace custos::kernel
