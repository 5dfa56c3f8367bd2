/* aispd's own metrics: counters and latency histograms rendered in the Prometheus text
 * format. Pool gauges come from pool_metrics(); this file knows nothing of the pool. */
#pragma once

#include <stdint.h>

#include "common/buf.h"
#include "proto/proto.h"

#define METRICS_BUCKETS 15

typedef struct metrics_hist {
	uint64_t counts[METRICS_BUCKETS + 1]; /* the last one is +Inf */
	uint64_t count;
	double sum; /* seconds */
} metrics_hist;

/* Upper bounds (seconds) of the histogram buckets. */
extern const double metrics_bounds[METRICS_BUCKETS];

void metrics_hist_observe(metrics_hist *h, double seconds);
/* Appends the _bucket/_sum/_count lines of a histogram (with HELP and TYPE). */
void metrics_hist_render(const metrics_hist *h, const char *name, const char *help, buf *out);

typedef struct metrics {
	uint64_t tasks[PROTO_STATUS__COUNT]; /* results published, by status */
	uint64_t tasks_done;                 /* results published, in all */
	uint64_t duplicates;                 /* entries acked because the id already had a result */
	uint64_t handoffs;                   /* entries handed to a node that serves them */
	uint64_t retries;                    /* sandbox_error retries */
	uint64_t dead;                       /* entries dead-lettered */
	double queue_lag_s;                  /* age of the oldest entry of the last read */
	metrics_hist acquire, execute, publish;
} metrics;

/* Appends the counters and histograms (not the gauges the caller owns). */
void metrics_render(const metrics *m, buf *out);
