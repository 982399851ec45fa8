// Output-buffer cache: see allocator.h.
#include "common/allocator.h"
#include "common/portable.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace cnnfast {
namespace {

constexpr std::size_t kHugePage = std::size_t(2) << 20;
constexpr std::size_t kDefaultLimit = std::size_t(256) << 20;  // chosen to hold a few VGG-sized activations

// Size class of a request: rounded up to 1/8 of its power of two (at most 12.5% waste) and to
// whole pages, so that requests of nearly the same size share blocks.
std::size_t size_class(std::size_t bytes) {
  std::size_t top = 4096;
  while (top * 2 <= bytes) top *= 2;
  std::size_t g = top / 8 < 4096 ? 4096 : top / 8;
  return (bytes + g - 1) / g * g;
}

void* os_alloc(std::size_t cap) {
#ifdef __linux__
  // Over-map by one huge page and trim, so the block starts on a 2 MiB boundary (what THP needs).
  const std::size_t align = cap >= kHugePage ? kHugePage : 4096;
  const std::size_t len = cap + align - 4096;
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<std::uintptr_t>(m);
  const std::uintptr_t start = (base + align - 1) / align * align;
  if (start > base) munmap(m, start - base);
  const std::uintptr_t end = start + cap, mend = base + len;
  if (mend > end) munmap(reinterpret_cast<void*>(end), mend - end);
#ifdef MADV_HUGEPAGE
  if (cap >= kHugePage) madvise(reinterpret_cast<void*>(start), cap, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
  return reinterpret_cast<void*>(start);
#else
  return aligned_malloc(cap >= kHugePage ? kHugePage : 64, cap);  // cap is a multiple of 4096
#endif
}

void os_free(void* p, std::size_t cap) {
#ifdef __linux__
  munmap(p, cap);
#else
  (void)cap;
  aligned_free(p);
#endif
}

struct Entry {
  void* p;
  std::size_t cap;
};

struct Cache {
  std::mutex mu;
  std::vector<Entry> free;  // oldest first
  std::size_t bytes = 0, limit = kDefaultLimit, hits = 0, misses = 0;

  // CNNFAST_CACHE_MB is read (and validated) at import, in bindings/bind_runtime.cpp.
  // Drops the oldest blocks until `bytes` <= target; returns them (freed outside the lock).
  std::vector<Entry> evict_to(std::size_t target) {
    std::vector<Entry> out;
    std::size_t i = 0;
    while (bytes > target && i < free.size()) {
      bytes -= free[i].cap;
      out.push_back(free[i++]);
    }
    free.erase(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(i));
    return out;
  }
};

Cache& cache() {
  static Cache* c = new Cache;  // leaked on purpose: capsules may die during interpreter teardown
  return *c;
}

}  // namespace

void* cache_acquire(std::size_t bytes, std::size_t* capacity) {
  const std::size_t cap = size_class(bytes);
  *capacity = cap;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (std::size_t i = c.free.size(); i-- > 0;)  // newest first: most likely still in cache
      if (c.free[i].cap == cap) {
        void* p = c.free[i].p;
        c.free.erase(c.free.begin() + static_cast<std::ptrdiff_t>(i));
        c.bytes -= cap;
        ++c.hits;
        return p;
      }
    ++c.misses;
  }
  return os_alloc(cap);
}

void cache_release(void* p, std::size_t cap) {
  Cache& c = cache();
  std::vector<Entry> gone;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (cap <= c.limit) {
      gone = c.evict_to(c.limit - cap);
      c.free.push_back({p, cap});
      c.bytes += cap;
      p = nullptr;
    }
  }
  for (const Entry& e : gone) os_free(e.p, e.cap);
  if (p) os_free(p, cap);
}

std::size_t empty_cache() {
  Cache& c = cache();
  std::vector<Entry> gone;
  std::size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    n = c.bytes;
    gone = c.evict_to(0);
  }
  for (const Entry& e : gone) os_free(e.p, e.cap);
  return n;
}

std::size_t set_cache_limit(std::size_t limit) {
  Cache& c = cache();
  std::vector<Entry> gone;
  std::size_t prev = 0;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    prev = c.limit;
    c.limit = limit;
    gone = c.evict_to(limit);
  }
  for (const Entry& e : gone) os_free(e.p, e.cap);
  return prev;
}

std::size_t cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.limit;
}

CacheStats cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.bytes, c.free.size(), c.hits, c.misses};
}

namespace detail {
pybind11::capsule block_owner(void* p, std::size_t capacity) {
  auto* b = new CachedBlock{p, capacity};
  return pybind11::capsule(b, [](void* q) {
    auto* blk = static_cast<CachedBlock*>(q);
    cache_release(blk->p, blk->capacity);
    delete blk;
  });
}
}  // namespace detail

}  // namespace cnnfast
