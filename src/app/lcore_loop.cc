#include "lcore_loop.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <time.h>

#include <algorithm>

namespace stakegate {
namespace {

__extension__ typedef unsigned __int128 u128;

// The worker's view of a received frame: its first buffer, and its whole length when the
// PMD chained several (net_pcap does for a frame longer than mbuf_data_room).
inline PacketView view_of(const rte_mbuf* m) {
  return {rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), rte_pktmbuf_pkt_len(m)};
}

// Transmits what it can and frees the rest, counting it.
inline void send_or_free(uint16_t port, uint16_t queue, bool can_send, rte_mbuf** pkts, uint16_t n, uint64_t& dropped) {
  if (n == 0) return;
  uint16_t sent = can_send ? rte_eth_tx_burst(port, queue, pkts, n) : 0;
  if (sent < n) {
    rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    dropped += n - sent;
  }
}

// The worker's clock: nanoseconds since the gateway's start. Its origin is taken here, on
// the worker's own CPU, against CLOCK_MONOTONIC (one clock for every CPU), because TSCs
// of different (virtual) CPUs need not agree; a TSC read before that origin counts as it.
class WorkerClock {
 public:
  WorkerClock(uint64_t ns_per_tsc_q32, uint64_t gateway_mono0_ns) : q32_(ns_per_tsc_q32) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    tsc0_ = rte_rdtsc();
    uint64_t mono = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
    base_ns_ = mono > gateway_mono0_ns ? mono - gateway_mono0_ns : 0;
  }
  uint64_t ns(uint64_t tsc) const {
    uint64_t d = tsc > tsc0_ ? tsc - tsc0_ : 0;
    return base_ns_ + static_cast<uint64_t>((static_cast<u128>(d) * q32_) >> 32);
  }

 private:
  uint64_t q32_, tsc0_ = 0, base_ns_ = 0;
};

// The frames a worker holds for it (Worker::kHold: fragments ahead of their first), in
// the order it held them.
struct Held {
  rte_mbuf* m[Worker::kHoldMax];
  uint16_t n = 0;
};

// Outside frames by verdict: passed ones to the inside port, handed-off ones to their
// worker's ring (a full ring frees them, counted as the inside's transmit drops), held
// ones kept in `held`, the rest freed; in monitor mode (the snapshot's `monitor`), the
// rest go to the inside port too, counted (they are counted by verdict all the same).
inline void forward(WorkerCtx* ctx, const Worker& w, rte_mbuf** rx, uint16_t n, const Verdict* verdicts, rte_mbuf** pass,
                    rte_mbuf** drop, Held& held) {
  const uint16_t q = ctx->queue;
  const bool monitor = w.snapshot().monitor;
  uint16_t np = 0, nd = 0, monitored = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (verdicts[i] == Verdict::kPass) {
      pass[np++] = rx[i];
    } else if (verdicts[i] == Worker::kHold) [[unlikely]] {
      held.m[held.n++] = rx[i];  // the worker holds at most kHoldMax
    } else if (verdicts[i] == Worker::kHandoff) [[unlikely]] {
      if (!ctx->handoff || rte_ring_mp_enqueue(ctx->handoff[w.handoff_target(i)], rx[i]) != 0) {
        rte_pktmbuf_free(rx[i]);
        ctx->tx_dropped[0]++;
      }
    } else if (monitor) [[unlikely]] {
      pass[np++] = rx[i];  // in its place among the passed ones: monitor mode reorders nothing
      monitored++;
    } else {
      drop[nd++] = rx[i];
    }
  }
  if (monitored) ctx->monitor_forwarded += monitored;
  if (nd) rte_pktmbuf_free_bulk(drop, nd);
  send_or_free(ctx->inside.port, q, q < ctx->inside.tx_queues, pass, np, ctx->tx_dropped[0]);
}

}  // namespace

int worker_main(void* arg) {
  auto* ctx = static_cast<WorkerCtx*>(arg);
  Worker& w = *ctx->worker;
  rte_mbuf* rx[kMaxBurst];
  rte_mbuf* pass[kMaxBurst];
  rte_mbuf* drop[kMaxBurst];
  PacketView views[kMaxBurst];
  Verdict verdicts[kMaxBurst];
  const uint16_t q = ctx->queue;
  const uint16_t burst = static_cast<uint16_t>(ctx->burst);
  const bool out_rx = q < ctx->outside.rx_queues, in_rx = q < ctx->inside.rx_queues;
  const bool out_tx = q < ctx->outside.tx_queues;
  const WorkerClock clock(ctx->ns_per_tsc_q32, ctx->mono0_ns);
  Held held;
  w.set_holding(true);

  auto release = [&](uint64_t now_ns) {
    const uint16_t n = held.n;
    std::copy(held.m, held.m + n, rx);
    held.n = 0;
    for (uint16_t i = 0; i < n; ++i) views[i] = view_of(rx[i]);
    w.process_held(views, n, now_ns, verdicts);
    forward(ctx, w, rx, n, verdicts, pass, drop, held);
  };

  const PolicySnapshot* bound = nullptr;
  rte_rcu_qsbr_thread_online(ctx->rcu, q);
  uint64_t last = rte_rdtsc();
  while (!ctx->stop->load(std::memory_order_relaxed)) {
    // A new snapshot is adopted between bursts; quiescent() below tells the control
    // plane this worker holds no reference to any older one.
    const PolicySnapshot* current = ctx->policy->load(std::memory_order_acquire);
    if (current != bound) {
      w.bind(current);
      bound = current;
    }
    uint32_t carried = 0;  // packets this iteration
    // The inside first: the sessions its packets open or refresh are in place before the
    // replies of the same round are decided.
    if (in_rx) {
      uint16_t n = rte_eth_rx_burst(ctx->inside.port, q, rx, burst);
      if (n) {
        carried += n;
        for (uint16_t i = 0; i < n; ++i) views[i] = view_of(rx[i]);
        w.process_inside(views, n, clock.ns(rte_rdtsc()));
        send_or_free(ctx->outside.port, q, out_tx, rx, n, ctx->tx_dropped[1]);
      }
    }
    if (out_rx) {
      uint16_t n = rte_eth_rx_burst(ctx->outside.port, q, rx, burst);
      if (n) {
        carried += n;
        for (uint16_t i = 0; i < n; ++i) views[i] = view_of(rx[i]);
        w.process_outside(views, n, clock.ns(rte_rdtsc()), verdicts);
        forward(ctx, w, rx, n, verdicts, pass, drop, held);
      }
    }
    // Frames other workers handed over (ICMP errors about this worker's sessions): rare,
    // so an empty ring costs one read of its producer index.
    if (ctx->handoff && !rte_ring_empty(ctx->handoff[q])) {
      uint16_t n = static_cast<uint16_t>(rte_ring_sc_dequeue_burst(ctx->handoff[q], reinterpret_cast<void**>(rx), burst, nullptr));
      if (n) {
        carried += n;
        for (uint16_t i = 0; i < n; ++i) views[i] = view_of(rx[i]);
        w.process_handoffs(views, n, clock.ns(rte_rdtsc()), verdicts);
        forward(ctx, w, rx, n, verdicts, pass, drop, held);
      }
    }
    // Fragments held for their first (rare): given back once it passed, or their time is up.
    if (held.n && w.held_due(clock.ns(rte_rdtsc()))) [[unlikely]] release(clock.ns(rte_rdtsc()));
    rte_rcu_qsbr_quiescent(ctx->rcu, q);
    uint64_t now = rte_rdtsc();
    // The worker's clock for readers on other threads (scores decay by it), idle or not.
    w.tick(clock.ns(now));
    // Cycles per packet for operators (stakegate_worker_cycles_per_packet): the whole loop
    // iteration, RX and TX included, over the packets it carried. Plain stores: the control
    // thread reads them relaxed, once a second.
    if (carried) {
      ctx->busy_tsc += now - last;
      ctx->busy_packets += carried;
    }
    ctx->total_tsc += now - last;
    last = now;
  }
  // Stopping: what is still held is decided as if its time were up (counted, as every
  // frame is: following a first that passed, or unregistered), while the worker is still
  // online. On the snapshot in force: the one bound last may be reclaimed already (this
  // worker reported quiescent since).
  if (held.n) {
    if (const PolicySnapshot* current = ctx->policy->load(std::memory_order_acquire); current != bound) w.bind(current);
    release(clock.ns(rte_rdtsc()) + Worker::kHoldNs);
  }
  rte_rcu_qsbr_thread_offline(ctx->rcu, q);
  return 0;
}

}  // namespace stakegate
