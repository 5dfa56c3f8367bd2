/* The cost of a sandbox's run from its host-side usage (cost.h). 128-bit integers hold the
 * exact sum: with the config's caps (prices at most 10^12 nano-USD, usage within int64) no
 * product overflows before the one rounding. */
#include "daemon/cost.h"

static uint64_t nonneg(int64_t v)
{
	return v > 0 ? (uint64_t)v : 0;
}

int64_t cost_usage_micro_usd(const proto_usage *u, int64_t cpu_nusd, int64_t gib_nusd)
{
	const unsigned __int128 gibi = (unsigned __int128)1 << 30;
	unsigned __int128 cpu = (unsigned __int128)nonneg(u->cpu_ms) * nonneg(cpu_nusd) * gibi;
	unsigned __int128 mem =
	    (unsigned __int128)nonneg(u->memory_peak_bytes) * nonneg(u->wall_ms) * nonneg(gib_nusd);
	unsigned __int128 d = gibi * 1000000;
	unsigned __int128 q = (cpu + mem + d / 2) / d;
	return q > (unsigned __int128)INT64_MAX ? INT64_MAX : (int64_t)q;
}
