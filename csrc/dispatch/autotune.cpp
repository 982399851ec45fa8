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

std::atomic<bool>& enabled() {
  static std::atomic<bool> on{true};
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
