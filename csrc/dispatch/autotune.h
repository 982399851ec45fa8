// conv2d autotuner: on the first call of a new configuration, time every implementation of the
// selected ISA that can compute it -- including those the ordered list's thresholds would skip
// (dispatch/heuristics.h) -- and remember the fastest for the process. Later calls of the same
// configuration cost one hash lookup more than dispatch().
//
// Key: pass, dtype, ISA, thread count, the Winograd switch, bias/relu flags and every field of
// Conv2dShape (whatever can change which kernel is fastest or which kernels accept).
//
// First-call cost (documented bound), n = kernels of the selected ISA that accept:
//   1. Screening, problems of kScreenMinMacs (8 M multiply-adds) or more with 4 images or more:
//      each kernel runs twice on the first N/8 images (at least one); those more than kPruneRatio
//      (4x) slower than the fastest there are dropped, except the ordered list's choice. <= n/2 runs.
//   2. Round 1: each remaining kernel once at full size, in list order; the first one accepting
//      without relaxed thresholds is the ordered list's choice (kept as 'heuristic').
//   3. Contenders only (within kCloseRatio of the fastest, plus the ordered list's choice if it is
//      not the fastest): while the call has taken under kCheapSeconds (20 ms), up to two more
//      rounds; past it, one more run each of the fastest, the second if close, and the ordered
//      list's choice.
//   4. The ordered list's choice is kept unless another kernel is kSwitchMargin (10%) faster,
//      both in its best time and in their latest, back-to-back runs.
//   5. The winner runs once more unless it ran last, so the tuning call returns exactly what
//      later calls return.
// So the first call costs at most n/2 + n + 4 kernel runs of at most the slowest survivor's time
// t_max: <= (1.5 n + 4) * t_max, typically n + 1 or n + 2 runs; for problems whose kernels take
// under 20 ms in all, about 20 ms + t_max. Measured (bench/autotune_check.py, 32 layers x 3
// passes, 2 threads, Xeon AVX-512): median 5.6x the tuned steady call (24 ms), worst 45x/0.5 s.
// Problems under kMinTuneMacs multiply-adds, the ISA `ref`, and configurations where only one
// implementation accepts are not re-timed (the last are cached after one run, which is the call's).
//
// Outputs: every conv2d kernel fully overwrites its outputs (conv2d.h), including bwd_weight's
// grad_bias, so running several candidates into the same buffers never double-counts.
//
// Concurrency: the first thread to claim a key tunes it; a thread meeting a key being tuned
// runs the ordered list instead of waiting or timing alongside (which would skew both timings).
#pragma once
#include <algorithm>
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
// Screening (problems of kScreenMinMacs or more): every kernel first runs twice on
// 1/kScreenDivisor of the problem (screen_shape), and only those within kPruneRatio of the
// fastest there are timed at full size. chosen because relaxed kernels far off their domain run
// 5-60x slower than the best at full size (direct grad_weight on 512-channel 3x3 layers: 274 ms
// against 10 ms; GEMM on depthwise layers 4-30x), while the largest win of a relaxed kernel
// measured here was 1.9x, and a small screening problem can distort ratios by ~2x.
// The ordered list's choice is kept unless another kernel is faster by this factor, both timed
// at least twice (minimum). chosen because the thresholds were tuned on this CPU and, repeated
// on the 2-core Xeon here under other jobs' load, minimum-of-two times of one kernel differed
// by up to ~10%: a smaller gain is as likely noise as a real one.
constexpr double kSwitchMargin = 1.1;
constexpr int64_t kScreenMinMacs = int64_t(8) << 20;
constexpr int64_t kScreenDivisor = 8;
constexpr double kPruneRatio = 4.0;
constexpr int64_t kScreenMinImages = 4;  // below, two screening runs cost a full run or more

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
  double latest = 0;         // time of its latest run
};

struct Entry {
  bool pending = true;  // being tuned by some thread
  int n = 0;            // candidates
  Candidate cand[kMaxImpls];
  int winner = -1;     // index into cand
  int heuristic = -1;  // the ordered list's choice (index into cand); -1: ref; -2: unknown (pruned)
  int screened = 0;    // kernels run on the screening problem (0: not screened)
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
  return Key{{static_cast<int64_t>(pass),
              elem,
              static_cast<int64_t>(isa),
              max_threads(),
              winograd_enabled().load(std::memory_order_relaxed) ? 1 : 0,
              flags,
              p.N,
              p.C,
              p.H,
              p.W,
              p.K,
              p.R,
              p.S,
              p.OH,
              p.OW,
              p.sh,
              p.sw,
              p.ph,
              p.pw,
              p.dh,
              p.dw,
              p.groups}};
}

// The screening problem: p's first N / kScreenDivisor images (at least one), whose buffers are
// prefixes of p's in every pass; false if p is too small or has fewer than kScreenMinImages.
// (Fewer output channels would be cheaper for one image, but change which kernel is fastest:
// the direct kernels win at small K -- a K/8 screen pruned GEMM where it is 2x faster.)
inline bool screen_shape(const Conv2dShape& p, Conv2dShape* q) {
  const int64_t macs = p.N * p.K * p.OH * p.OW * p.Cg() * p.R * p.S;
  if (macs < kScreenMinMacs || p.N < kScreenMinImages) return false;
  *q = p;
  q->N = p.N >= kScreenDivisor ? p.N / kScreenDivisor : 1;
  return true;
}

// conv2d's dispatch: as dispatch(), through the cache when autotuning is on. `flags` are the
// call's options that are not in Conv2dShape (bias present, fused relu); the kernels are called
// as f(p, rest...).
template <typename T, typename Fn, typename... Rest>
void dispatch_conv2d(ImplList<Fn> KernelTable<T>::* member, Pass pass, int64_t flags, const Conv2dShape& p,
                     Rest... rest) {
  const Isa isa = current_isa();
  if (const void* pin = pinned().load(std::memory_order_relaxed))
    for (Fn* f : kernel_table<T>(isa).*member)
      if (f && reinterpret_cast<const void*>(f) == pin) {
        bool ok;
        {
          const scratch_registry::KernelScope running;
          const RelaxHeuristics relax(true);
          p.act_done = false;  // (set by a kernel that applies p.act: conv2d.h)
          ok = f(p, rest...);
        }
        if (!ok) break;
        last_kernel<Fn>().store(f, std::memory_order_relaxed);
        return;
      }
  const int64_t macs = p.N * p.K * p.OH * p.OW * p.Cg() * p.R * p.S;
  if (!enabled().load(std::memory_order_relaxed) || isa == Isa::ref || macs < kMinTuneMacs) {
    counters().untuned.fetch_add(1, std::memory_order_relaxed);
    return dispatch<T>(member, p, rest...);
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
      p.act_done = false;
      ok = f(p, rest...);
    }
    if (ok) {
      last_kernel<Fn>().store(f, std::memory_order_relaxed);
      return;
    }
    return dispatch<T>(member, p, rest...);  // declined now (e.g. out of memory): the ordered list
  }
  if (state != 0) {  // another thread is tuning this key (or it has no candidate): don't wait
    counters().untuned.fetch_add(1, std::memory_order_relaxed);
    return dispatch<T>(member, p, rest...);
  }

  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto since = [&](clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); };
  const ImplList<Fn>& list = kernel_table<T>(isa).*member;
  int64_t runs = 0;
  int last = -1;
  // One run of candidate f on shape s; false if it declines. Declines happen at entry, before
  // any output is written (conv2d.h), so a decline is free and leaves the outputs alone.
  auto timed = [&](Fn* f, bool relaxed, const Conv2dShape& s, double* sec) {
    const RelaxHeuristics relax(relaxed);
    s.act_done = false;  // the last run's kernel says whether p.act was applied (the winner's, finally)
    const auto t0 = clock::now();
    const bool ok = f(s, rest...);
    *sec = since(t0);
    runs += ok;
    return ok;
  };
  auto fn = [&](int i) { return reinterpret_cast<Fn*>(const_cast<void*>(e.cand[i].fn)); };
  auto best = [&](int skip) {
    int b = -1;
    for (int i = 0; i < e.n; ++i)
      if (i != skip && (b < 0 || e.cand[i].seconds < e.cand[b].seconds)) b = i;
    return b;
  };
  {
    const scratch_registry::KernelScope running;
    // Screening: each kernel once on ~1/8 of the problem; those over kPruneRatio x the fastest
    // are not run at full size (a kernel far off its domain can be 30x slower than the best).
    bool keep[kMaxImpls];
    for (bool& k : keep) k = true;
    Conv2dShape q;
    if (screen_shape(p, &q)) {
      double sec[kMaxImpls] = {};
      bool relax_q[kMaxImpls] = {};
      int accepted = 0;
      for (int i = 0; i < kMaxImpls; ++i) {
        keep[i] = false;
        if (!list[i]) continue;
        if (timed(list[i], false, q, &sec[i]) || (relax_q[i] = true, timed(list[i], true, q, &sec[i])))
          keep[i] = true, ++accepted;
      }
      // Twice, keeping the minimum: a kernel's first run in the process also pays its scratch
      // allocation and page faults, which a small problem does not amortise.
      for (int i = kMaxImpls - 1; i >= 0; --i) {
        double again = 0;
        if (keep[i] && timed(list[i], relax_q[i], q, &again)) sec[i] = std::min(sec[i], again);
      }
      double fastest = -1;
      int protect = -1;  // the ordered list's choice on the screen is never dropped
      for (int i = 0; i < kMaxImpls; ++i) {
        if (keep[i] && (fastest < 0 || sec[i] < fastest)) fastest = sec[i];
        if (keep[i] && !relax_q[i] && protect < 0) protect = i;
      }
      for (int i = 0; i < kMaxImpls; ++i) keep[i] = keep[i] && (i == protect || sec[i] <= kPruneRatio * fastest);
      e.screened = accepted;
    }
    // Round 1, full size: each remaining kernel once, in list order; the first one accepting
    // without relaxation is the ordered list's choice (known if no earlier kernel was pruned).
    for (int pass = 0; pass < 2 && e.n == 0; ++pass) {  // pass 1: all, if every kept one declines
      bool pruned_before = false;
      for (int i = 0; i < kMaxImpls; ++i) {
        Fn* f = list[i];
        if (!f) continue;
        if (!keep[i] && pass == 0) {
          pruned_before = true;
          continue;
        }
        double sec = 0;
        bool relaxed = false, ok = timed(f, false, p, &sec);
        if (!ok) relaxed = true, ok = timed(f, true, p, &sec);
        if (!ok) continue;
        if (e.heuristic == -1 && !relaxed) e.heuristic = pruned_before ? -2 : e.n;
        e.cand[e.n] = Candidate{reinterpret_cast<const void*>(f), relaxed, sec, sec};
        last = e.n++;
      }
    }
    e.rounds = 1;
    // More rounds for the contenders only -- those within kCloseRatio of the fastest, and the
    // ordered list's choice if another is faster: while the tuning call is under kCheapSeconds,
    // up to kMaxRounds in all; past it, one more round for the fastest, the second if close,
    // and the ordered list's choice.
    const int h = e.heuristic >= 0 ? e.heuristic : -1;
    if (e.n > 1) {
      const bool cheap = since(t_start) < kCheapSeconds;
      while (e.rounds < (cheap ? kMaxRounds : 2) && (!cheap || since(t_start) < kCheapSeconds)) {
        const int b1 = best(-1), b2 = best(b1);
        const double limit = kCloseRatio * e.cand[b1].seconds;
        int order[kMaxImpls], m = 0;
        for (int i = 0; i < e.n; ++i)
          if (i != b1 && ((e.cand[i].seconds < limit && (cheap || i == b2)) || i == h)) order[m++] = i;
        if (m == 0) break;
        order[m++] = b1;  // the fastest last: usually no re-run below
        for (int k = 0; k < m; ++k) {
          const int j = order[k];
          double sec = 0;
          if (timed(fn(j), e.cand[j].relaxed, p, &sec)) {
            if (sec < e.cand[j].seconds) e.cand[j].seconds = sec;
            e.cand[j].latest = sec;
            last = j;
          }
        }
        ++e.rounds;
      }
    }
    if (e.n > 0) {
      e.winner = best(-1);
      // Leave the ordered list's choice only for a clear gain (see kSwitchMargin), in the best
      // times and in the latest runs, which ran back to back in the last round: a burst of
      // other load during one run cannot make the switch on its own.
      const Candidate& w = e.cand[e.winner];
      if (h >= 0 && e.winner != h &&
          !(kSwitchMargin * w.seconds < e.cand[h].seconds && kSwitchMargin * w.latest < e.cand[h].latest))
        e.winner = h;
      if (last != e.winner) {  // the outputs must be the winner's, as on every later call
        double sec = 0;
        if (!timed(fn(e.winner), e.cand[e.winner].relaxed, p, &sec)) e.winner = -1;  // only if out of memory
      }
      if (e.winner >= 0) last_kernel<Fn>().store(fn(e.winner), std::memory_order_relaxed);
    }
  }
  e.first_call_seconds = since(t_start);
  e.pending = false;
  counters().tunings.fetch_add(1, std::memory_order_relaxed);
  counters().timed_runs.fetch_add(runs, std::memory_order_relaxed);
  publish(key, e);
  if (e.winner < 0) dispatch<T>(member, p, rest...);  // nothing of this ISA accepted: ref, now and later
}

}  // namespace autotune
}  // namespace cnnfast
