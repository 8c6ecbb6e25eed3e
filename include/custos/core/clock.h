#pragma once
// Clock is the kernel's only source of time, injected so tests are hermetic.
// Times are integers: milliseconds since the Unix epoch (log entries carry no floats).
//
// Thread-safe: both implementations may be read from any thread.

#include <atomic>
#include <cstdint>

namespace custos {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMillis() const = 0;
  // Monotonic nanoseconds, for measuring durations only.
  virtual int64_t MonotonicNanos() const = 0;
};

// The system clock; a process-wide singleton.
Clock& SystemClock();

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMillis() const override { return now_ms_.load(); }
  int64_t MonotonicNanos() const override { return now_ms_.load() * 1'000'000; }
  void Advance(int64_t ms) { now_ms_.fetch_add(ms); }
  void Set(int64_t ms) { now_ms_.store(ms); }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace custos
