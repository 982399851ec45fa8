// conv2d autotuner: on the first call of a new configuration, time every implementation of the
// selected ISA that can compute it -- including those the ordered list's thresholds would skip
// (dispatch/heuristics.h) -- and remember the fastest for the process. Later calls of the same
// configuration cost one hash lookup more than dispatch().
//
// Key: pass, dtype, ISA, thread count, the Winograd switch, bias/relu flags and every field of
// Conv2dShape (whatever can change which kernel is fastest or which kernels accept).
//
// First-call cost (documented bound). Round 1 runs each implementation once in list order
// (declines cost nothing: kernels decide at entry); the ordered list's own choice is among them.
// If round 1 took under kCheapSeconds, up to kMaxRounds - 1 more rounds run (alternating order,
// minimum per candidate) while the total stays under it, so cheap problems get a less noisy
// choice; otherwise only the two fastest are re-timed once, and only if within kCloseRatio of each
// other. Finally the winner runs once more unless it ran last, so the tuning call returns exactly
// what later calls return. With n candidates, the slowest taking t_max: the first call costs at
// most n + 3 kernel runs, <= (n + 3) * t_max (typically n + 1 or n + 2 runs) when round 1 takes
// kCheapSeconds or more, and under about 2 * kCheapSeconds + t_max (40 ms) otherwise.
// Problems under kMinTuneMacs multiply-adds, the ISA `ref`, and configurations where only one
// implementation accepts are not re-timed (the last are cached after one run, which is the call's).
//
// Outputs: every conv2d kernel fully overwrites its outputs (conv2d.h), including bwd_weight's
// grad_bias, so running several candidates into the same buffers never double-counts.
//
// Concurrency: the first thread to claim a key tunes it; a thread meeting a key being tuned
// runs the ordered list instead of waiting or timing alongside (which would skew both timings).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/parallel.h"
#include "dispatch/dispatch.h"
#include "dispatch/heuristics.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/winograd_switch.h"

namespace cnnfast {
namespace autotune {

// Below this many multiply-adds the choice cannot matter much: 2^20 MACs take ~10 us at the
// 2-thread AVX-512 peak here, about one Python-level call's overhead. chosen because the LeNet
// layers at batch 1 (c1 0.12 M, c2 0.24 M MACs) stay on the ordered list, while training
// batches (64: 7.5 M and 15 M) are tuned.
constexpr int64_t kMinTuneMacs = int64_t(1) << 20;
// Extra rounds only while round 1 took less than this: 20 ms of one-time cost per shape.
constexpr double kCheapSeconds = 0.020;
constexpr int kMaxRounds = 3;
// Above kCheapSeconds, the two fastest are re-timed once if within this ratio: a single run
// includes one-off costs (a kernel's first scratch allocation faults in its pages: Winograd's
// 30 MB take ~4 ms) and the noise of a shared machine, both of this size. chosen because on the
// 2-core Xeon here single first runs of the same kernel differed by up to ~25%.
constexpr double kCloseRatio = 1.3;

enum class Pass : int64_t { fwd = 0, bwd_input = 1, bwd_weight = 2 };

// Flattened key: pass, dtype size, isa, threads, winograd, flags, N, C, H, W, K, R, S, OH, OW,
// sh, sw, ph, pw, dh, dw, groups.
constexpr int kKeyLen = 22;
struct Key {
  int64_t v[kKeyLen];
  bool operator==(const Key& o) const { return std::memcmp(v, o.v, sizeof(v)) == 0; }
};

struct Candidate {
  const void* fn = nullptr;  // the kernel (an Fn*), named by bind_runtime.cpp from kernels.inc
  bool relaxed = false;      // accepted only with heuristics relaxed
  double seconds = 0;        // best time over the rounds
};

struct Entry {
  bool pending = true;  // being tuned by some thread
  int n = 0;            // candidates
  Candidate cand[kMaxImpls];
  int winner = -1;     // index into cand
  int heuristic = -1;  // the ordered list's choice (index into cand), -1 if it would run ref
  int rounds = 0;
  double first_call_seconds = 0;  // the whole tuning call
};

std::atomic<bool>& enabled();  // set_autotune / CNNFAST_AUTOTUNE; see bind_runtime.cpp for the default

// Test and benchmark hook (_core._pin_conv2d_kernel): while non-null, conv2d calls whose
// implementation list holds this kernel run it, heuristics relaxed, bypassing tuner and cache.
std::atomic<const void*>& pinned();

struct Counters {
  std::atomic<int64_t> tunings{0};     // configurations tuned
  std::atomic<int64_t> timed_runs{0};  // kernel runs made while tuning (including the winner's re-run)
  std::atomic<int64_t> hits{0};        // calls served from the cache
  std::atomic<int64_t> untuned{0};     // calls that bypassed the tuner (small, ref, off, or busy key)
};
Counters& counters();

// The cache (autotune.cpp). claim(): if key is cached and done, copies it to *out and returns
// 1; if it is being tuned returns 2; else inserts a pending entry and returns 0 (caller tunes
// and must then call publish()).
int claim(const Key& key, Entry* out);
void publish(const Key& key, const Entry& e);
std::vector<std::pair<Key, Entry>> snapshot();
void clear();

inline Key make_key(Pass pass, int64_t elem, Isa isa, int64_t flags, const Conv2dShape& p) {
  return Key{{static_cast<int64_t>(pass), elem, static_cast<int64_t>(isa), max_threads(),
              winograd_enabled().load(std::memory_order_relaxed) ? 1 : 0, flags, p.N, p.C, p.H, p.W, p.K, p.R, p.S,
              p.OH, p.OW, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.groups}};
}

// conv2d's dispatch: as dispatch(), through the cache when autotuning is on. `flags` are the
// call's options that are not in Conv2dShape (bias present, fused relu).
template <typename T, typename Fn, typename... Args>
void dispatch_conv2d(ImplList<Fn> KernelTable<T>::*member, Pass pass, const Conv2dShape& p, int64_t flags,
                     Args... args) {
  const Isa isa = current_isa();
  if (const void* pin = pinned().load(std::memory_order_relaxed))
    for (Fn* f : kernel_table<T>(isa).*member)
      if (f && reinterpret_cast<const void*>(f) == pin) {
        bool ok;
        {
          const scratch_registry::KernelScope running;
          const RelaxHeuristics relax(true);
          ok = f(args...);
        }
        if (!ok) break;
        last_kernel<Fn>().store(f, std::memory_order_relaxed);
        return;
      }
  const int64_t macs = p.N * p.K * p.OH * p.OW * p.Cg() * p.R * p.S;
  if (!enabled().load(std::memory_order_relaxed) || isa == Isa::ref || macs < kMinTuneMacs) {
    counters().untuned.fetch_add(1, std::memory_order_relaxed);
    return dispatch<T>(member, args...);
  }
  const Key key = make_key(pass, sizeof(T), isa, flags, p);
  Entry e;
  const int state = claim(key, &e);
  if (state == 1 && e.winner >= 0) {
    counters().hits.fetch_add(1, std::memory_order_relaxed);
    Fn* f = reinterpret_cast<Fn*>(const_cast<void*>(e.cand[e.winner].fn));
    bool ok;
    {
      const scratch_registry::KernelScope running;
      const RelaxHeuristics relax(e.cand[e.winner].relaxed);
      ok = f(args...);
    }
    if (ok) {
      last_kernel<Fn>().store(f, std::memory_order_relaxed);
      return;
    }
    return dispatch<T>(member, args...);  // declined now (e.g. out of memory): the ordered list
  }
  if (state != 0) {  // another thread is tuning this key (or it has no candidate): don't wait
    counters().untuned.fetch_add(1, std::memory_order_relaxed);
    return dispatch<T>(member, args...);
  }

  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  const ImplList<Fn>& list = kernel_table<T>(isa).*member;
  int64_t runs = 0;
  int last = -1;
  // One run of candidate f; returns false if it declines. Declines happen at entry, before any
  // output is written (conv2d.h), so a decline is free and leaves the outputs alone.
  auto timed = [&](Fn* f, bool relaxed, double* sec) {
    const RelaxHeuristics relax(relaxed);
    const auto t0 = clock::now();
    const bool ok = f(args...);
    *sec = std::chrono::duration<double>(clock::now() - t0).count();
    runs += ok;
    return ok;
  };
  {
    const scratch_registry::KernelScope running;
    for (Fn* f : list) {
      if (!f) continue;
      double sec = 0;
      bool relaxed = false, ok = timed(f, false, &sec);
      if (!ok) relaxed = true, ok = timed(f, true, &sec);
      if (!ok) continue;
      if (e.heuristic < 0 && !relaxed) e.heuristic = e.n;
      e.cand[e.n] = Candidate{reinterpret_cast<const void*>(f), relaxed, sec};
      last = e.n++;
    }
    e.rounds = 1;
    if (e.n > 1) {
      while (e.rounds < kMaxRounds &&
             std::chrono::duration<double>(clock::now() - t_start).count() < kCheapSeconds) {
        for (int i = e.n - 1; i >= 0; --i) {  // reverse order: first- and last-position effects cancel
          const int j = e.rounds % 2 ? i : e.n - 1 - i;
          double sec = 0;
          if (timed(reinterpret_cast<Fn*>(const_cast<void*>(e.cand[j].fn)), e.cand[j].relaxed, &sec)) {
            if (sec < e.cand[j].seconds) e.cand[j].seconds = sec;
            last = j;
          }
        }
        ++e.rounds;
      }
      if (e.rounds == 1) {  // expensive: re-time only the two best, and only if within kCloseRatio
        int b1 = 0, b2 = -1;
        for (int i = 1; i < e.n; ++i)
          if (e.cand[i].seconds < e.cand[b1].seconds) b1 = i;
        for (int i = 0; i < e.n; ++i)
          if (i != b1 && (b2 < 0 || e.cand[i].seconds < e.cand[b2].seconds)) b2 = i;
        if (e.cand[b2].seconds < kCloseRatio * e.cand[b1].seconds) {
          for (int j : {b2, b1}) {  // the likely winner last: usually no re-run below
            double sec = 0;
            if (timed(reinterpret_cast<Fn*>(const_cast<void*>(e.cand[j].fn)), e.cand[j].relaxed, &sec)) {
              if (sec < e.cand[j].seconds) e.cand[j].seconds = sec;
              last = j;
            }
          }
          e.rounds = 2;
        }
      }
    }
    if (e.n > 0) {
      e.winner = 0;
      for (int i = 1; i < e.n; ++i)
        if (e.cand[i].seconds < e.cand[e.winner].seconds) e.winner = i;
      Fn* w = reinterpret_cast<Fn*>(const_cast<void*>(e.cand[e.winner].fn));
      if (last != e.winner) {  // the outputs must be the winner's, as on every later call
        double sec = 0;
        if (!timed(w, e.cand[e.winner].relaxed, &sec)) e.winner = -1;  // cannot happen short of OOM
      }
      if (e.winner >= 0) last_kernel<Fn>().store(w, std::memory_order_relaxed);
    }
  }
  e.first_call_seconds = std::chrono::duration<double>(clock::now() - t_start).count();
  e.pending = false;
  counters().tunings.fetch_add(1, std::memory_order_relaxed);
  counters().timed_runs.fetch_add(runs, std::memory_order_relaxed);
  publish(key, e);
  if (e.winner < 0) dispatch<T>(member, args...);  // nothing of this ISA accepted: ref, now and later
}

}  // namespace autotune
}  // namespace cnnfast
