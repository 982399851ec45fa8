// The process-wide list of kernel scratch buffers: see common/scratch.h.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/portable.h"
#include "common/scratch.h"

namespace cnnfast {
namespace scratch_registry {
namespace {
std::mutex& list_mutex() {
  static std::mutex* m = new std::mutex;  // leaked on purpose: threads may exit during teardown
  return *m;
}
std::vector<Entry>& entries() {
  static std::vector<Entry>* v = new std::vector<Entry>;
  return *v;
}
std::shared_mutex& kernel_mutex() {
  static std::shared_mutex* m = new std::shared_mutex;
  return *m;
}
}  // namespace

void add(Entry e) {
  std::lock_guard<std::mutex> lock(list_mutex());
  entries().push_back(e);
}

void remove(void** ptr) {
  std::lock_guard<std::mutex> lock(list_mutex());
  auto& v = entries();
  v.erase(std::remove_if(v.begin(), v.end(), [ptr](const Entry& e) { return e.ptr == ptr; }), v.end());
}

std::size_t release_all() {
  std::unique_lock<std::shared_mutex> kernels(kernel_mutex(), std::try_to_lock);
  if (!kernels.owns_lock()) return 0;  // a kernel is running (another Python thread): keep everything
  std::lock_guard<std::mutex> lock(list_mutex());
  std::size_t freed = 0;
  for (const Entry& e : entries()) {
    aligned_free(*e.ptr);
    freed += *e.capacity;
    *e.ptr = nullptr;
    *e.capacity = 0;
  }
#if defined(__GLIBC__)
  // free() keeps large blocks in glibc's heap once its mmap threshold has grown; hand the pages
  // back to the OS so that the memory really goes (the point of calling empty_cache).
  if (freed) malloc_trim(0);
#endif
  return freed;
}

KernelScope::KernelScope() { kernel_mutex().lock_shared(); }
KernelScope::~KernelScope() { kernel_mutex().unlock_shared(); }

}  // namespace scratch_registry
}  // namespace cnnfast
