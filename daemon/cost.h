/* What a sandbox's run costs ([cost] in aispd.conf; proto/CHAINS.md, "Cost"): exact integer
 * arithmetic, no floating point. */
#pragma once

#include <stdint.h>

#include "proto/proto.h"

/* micro-USD of a run: cpu_ms CPU-milliseconds at cpu_nusd nano-USD per CPU-second, plus
 * memory_peak_bytes held for wall_ms at gib_nusd nano-USD per GiB-second, summed exactly
 * ((cpu_ms * cpu * 2^30 + mem * wall * gib) / (2^30 * 10^6)) and rounded half up once;
 * INT64_MAX when it does not fit. Negative usage counts as 0. */
int64_t cost_usage_micro_usd(const proto_usage *u, int64_t cpu_nusd, int64_t gib_nusd);
