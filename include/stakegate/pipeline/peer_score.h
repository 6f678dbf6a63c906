#pragma once
// Peer score as a worker keeps it for one staked source (DESIGN.md "Peer score"): each
// penalised drop lowers the score, the score decays towards 0 with a half-life, below
// the graylist threshold the source's rates are cut until the score is back above the
// recovery threshold. Inline, time passed in; only drops and graylisted sources touch it.
#include <cmath>
#include <cstdint>

#include "stakegate/base/verdict.h"
#include "stakegate/policy/meter.h"
#include "stakegate/policy/snapshot.h"

namespace stakegate {

// A score is decayed at most once per millisecond: under a flood, penalties between two
// decays just add up (the error is under 1e-5 of a step for any half-life over a second).
inline constexpr uint64_t kDecayStepNs = 1'000'000;

// `score` (as of `since_ns`) decayed to `now_ns`. Pure: readers on other threads use it
// for display, the worker through PeerScore::decay.
inline double decayed_score(double score, uint64_t since_ns, uint64_t now_ns, double half_life_ns) {
  if (now_ns <= since_ns || score == 0 || half_life_ns <= 0) return score;
  return score * std::exp2(-static_cast<double>(now_ns - since_ns) / half_life_ns);
}

// A source's meter profile while graylisted: rate and depth times `factor`.
inline MeterProfile scaled_profile(const MeterProfile& p, double factor) {
  if (p.rate == 0 || factor == 1.0) return p;
  uint64_t floor_one = factor > 0 ? 1 : 0;
  return MeterProfile::make(std::max<uint64_t>(floor_one, std::llround(p.rate * factor)),
                            std::max<uint64_t>(floor_one, std::llround(p.burst_units() * factor)));
}

struct PeerScore {
  double score = 0;            // <= 0; this worker's share of the source's score
  uint64_t score_ns = 0;       // when `score` was last decayed
  uint32_t samples_left = 0;   // dropped packets of verified connections still to sample for a case
  uint32_t unverified_left = 0;  // and of anything else from its address: at most a quarter, so
                                 // forged packets cannot crowd out the attributable evidence
  double over_rate_cost = 0;   // penalties.over_rate / the source's normal rate (per worker)
  // While graylisted: a shadow bucket at the source's normal rate. Only packets beyond it
  // are penalised, so a source back to its normal traffic recovers.
  MeterProfile normal;
  Meter normal_meter;
  bool beyond_normal = false;  // the last packet exceeded the normal bucket

  // Decays the score to now, at most once per decay step.
  void decay(uint64_t now_ns, double half_life_ns) {
    if (now_ns < score_ns + kDecayStepNs) return;
    score = decayed_score(score, score_ns, now_ns, half_life_ns);
    score_ns = now_ns;
  }
  // A source at the floor within the same decay step, with no sample wanted, would not
  // change by another drop: the common case of a sustained flood skips the slow path.
  void want_samples(uint32_t n) {
    samples_left = n;
    unverified_left = n / 4;
  }
  bool settled(const ScoreParams& sp, uint64_t now_ns) const {
    return score == sp.floor && now_ns < score_ns + kDecayStepNs && samples_left == 0;
  }
  // What a drop with verdict `v` costs. over_rate costs its penalty per second's worth of
  // the source's normal allowance, so the score measures excess traffic whatever the
  // stake; while graylisted, only what exceeds that normal allowance counts.
  double penalty(const ScoreParams& sp, Verdict v, bool graylisted) const {
    if (v != Verdict::kOverRate) return sp.penalty[static_cast<int>(v)];
    return graylisted && !beyond_normal ? 0 : over_rate_cost;
  }
  // Takes a penalty; true when the score just went below the graylist threshold.
  bool penalise(const ScoreParams& sp, double amount, uint64_t now_ns, bool graylisted) {
    decay(now_ns, sp.half_life_ns);
    score = std::max(score - amount, sp.floor);
    return !graylisted && score < sp.graylist;
  }
  // Graylisted: would this packet have fitted the source's normal allowance?
  void check_normal(uint64_t now_ns) { beyond_normal = !meter_take(normal_meter, normal, now_ns, kTokenScale); }
  void set_normal(const MeterProfile& p, const ScoreParams& sp) {
    normal = p;
    over_rate_cost = sp.penalty[static_cast<int>(Verdict::kOverRate)] / static_cast<double>(std::max<uint64_t>(p.rate, 1));
  }
};

}  // namespace stakegate
