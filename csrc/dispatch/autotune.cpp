// The autotuner's process-wide cache (see autotune.h). Compiled without ISA flags.
#include "dispatch/autotune.h"

#include <mutex>
#include <unordered_map>

namespace cnnfast {
namespace autotune {
namespace {

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (int64_t x : k.v) {
      h ^= static_cast<uint64_t>(x);
      h *= 1099511628211ull;
    }
    return static_cast<size_t>(h);
  }
};

struct Cache {
  std::mutex m;
  std::unordered_map<Key, Entry, KeyHash> map;
};

Cache& cache() {
  static Cache* c = new Cache;  // leaked on purpose: kernels may run in threads during teardown
  return *c;
}

}  // namespace

// Off by default. chosen because on the 2-core Xeon here (2 threads, AVX-512, shared with other
// jobs) bench/autotune_check.py gave a geomean gain of only 1.01-1.04x over 96 layer-passes --
// the thresholds were mostly right; the real wins, 1.3-2.9x, were on ~6 of them -- while the first
// call of each configuration cost a median 5.6x (worst 45x) of a steady call, and under load
// single timings mis-picked a few layers (0.5x). Turn it on (set_autotune, CNNFAST_AUTOTUNE=1)
// for long runs of few shapes (training), or on CPUs unlike the ones the thresholds were set on.
std::atomic<bool>& enabled() {
  static std::atomic<bool> on{false};
  return on;
}

std::atomic<const void*>& pinned() {
  static std::atomic<const void*> f{nullptr};
  return f;
}

Counters& counters() {
  static Counters c;
  return c;
}

int claim(const Key& key, Entry* out) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  auto it = c.map.find(key);
  if (it == c.map.end()) {
    c.map.emplace(key, Entry{});  // pending: other threads meeting it run the ordered list
    return 0;
  }
  if (it->second.pending) return 2;
  *out = it->second;
  return 1;
}

void publish(const Key& key, const Entry& e) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  c.map[key] = e;  // also re-inserts it if clear() ran meanwhile
}

std::vector<std::pair<Key, Entry>> snapshot() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  std::vector<std::pair<Key, Entry>> v;
  for (const auto& kv : c.map)
    if (!kv.second.pending) v.push_back(kv);
  return v;
}

void clear() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.m);
  for (auto it = c.map.begin(); it != c.map.end();)  // pending entries belong to running tunings
    it = it->second.pending ? std::next(it) : c.map.erase(it);
}

}  // namespace autotune
}  // namespace cnnfast
