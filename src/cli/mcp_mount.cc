#include "cli/mcp_mount.h"

#include <memory>
#include <utility>

namespace custos::cli {
namespace {

server::HttpResponse ToResponse(mcp::HttpAnswer a) {
  server::HttpResponse r;
  r.status = a.status;
  r.content_type = std::move(a.content_type);
  r.body = std::move(a.body);
  r.headers = std::move(a.headers);
  r.route = "/mcp";
  return r;
}

class Exchange final : public mcp::HttpExchange {
 public:
  explicit Exchange(std::shared_ptr<server::MountStream> s) : s_(std::move(s)) {}
  void Respond(mcp::HttpAnswer a) override { s_->Respond(ToResponse(std::move(a))); }
  void Begin(mcp::HttpAnswer head) override { s_->Begin(ToResponse(std::move(head))); }
  void Write(std::string chunk) override { s_->Write(std::move(chunk)); }
  void End() override { s_->End(); }
  bool closed() const override { return s_->closed(); }
  void OnClose(std::function<void()> fn) override { s_->OnClose(std::move(fn)); }

 private:
  std::shared_ptr<server::MountStream> s_;
};

}  // namespace

std::vector<server::Mount> McpMounts(mcp::HttpFront* front) {
  std::vector<server::Mount> out;
  for (const std::string& path : front->paths()) {
    server::Mount m;
    m.path = path;
    m.self_authenticated = front->paths().size() > 1;  // [http.auth]: the front checks tokens
    m.handler = [front](server::MountRequest req, std::shared_ptr<server::MountStream> stream) {
      mcp::HttpRequest r;
      r.method = std::move(req.method);
      r.target = std::move(req.target);
      r.headers = std::move(req.headers);
      r.body = std::move(req.body);
      front->Handle(std::move(r), std::make_shared<Exchange>(std::move(stream)));
    };
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace custos::cli
