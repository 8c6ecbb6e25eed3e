#pragma once
// DemoHttpServer is a deliberately small HTTP/1.1 server on 127.0.0.1 (port chosen by the OS) for
// `custos demo`: it serves canned pages and counts what is POSTed to it, so the demo can show that
// the collector received nothing. One thread, one connection at a time, Connection: close.
// Not for anything but the demo and tests.
//
// Thread-safe: counters are atomics; routes are fixed before Start().

#include <atomic>
#include <map>
#include <string>
#include <thread>

namespace custos::cli {

class DemoHttpServer {
 public:
  DemoHttpServer() = default;
  ~DemoHttpServer();
  DemoHttpServer(const DemoHttpServer&) = delete;
  DemoHttpServer& operator=(const DemoHttpServer&) = delete;

  // GET `path` answers 200 with `body`.
  void AddPage(const std::string& path, const std::string& body) { pages_[path] = body; }
  // Binds and starts serving; returns false if it cannot bind.
  bool Start();
  void Stop();
  int port() const { return port_; }

  int64_t requests() const { return requests_.load(); }
  int64_t bytes_posted() const { return bytes_posted_.load(); }

 private:
  void Serve();
  std::map<std::string, std::string> pages_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> bytes_posted_{0};
  std::thread thread_;
};

}  // namespace custos::cli
