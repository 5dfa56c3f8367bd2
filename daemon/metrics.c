/* Prometheus text rendering of aispd's counters and histograms (metrics.h). */
#include "daemon/metrics.h"

#include <stdio.h>

const double metrics_bounds[METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5,   1,      2.5,   5,    10,    30,   120};

void metrics_hist_observe(metrics_hist *h, double seconds)
{
	size_t i = 0;
	while (i < METRICS_BUCKETS && seconds > metrics_bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += seconds;
}

void metrics_hist_render(const metrics_hist *h, const char *name, const char *help, buf *out)
{
	buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += h->counts[i];
		buf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bounds[i],
		            (unsigned long long)cum);
	}
	cum += h->counts[METRICS_BUCKETS];
	buf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	buf_appendf(out, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
	            (unsigned long long)h->count);
}

void metrics_render(const metrics *m, buf *out)
{
	buf_append_str(out, "# HELP aisp_tasks_total Results published by this node, by status.\n"
	                    "# TYPE aisp_tasks_total counter\n");
	for (int s = 0; s < PROTO_STATUS__COUNT; s++) {
		const char *name = proto_status_name((proto_status)s);
		buf_appendf(out, "aisp_tasks_total{status=\"%s\"} %llu\n", name ? name : "unknown",
		            (unsigned long long)m->tasks[s]);
	}
	buf_appendf(out,
	            "# HELP aisp_duplicates_total Entries acknowledged without running: the id "
	            "already had a result or was running elsewhere.\n"
	            "# TYPE aisp_duplicates_total counter\naisp_duplicates_total %llu\n",
	            (unsigned long long)m->duplicates);
	buf_appendf(out,
	            "# HELP aisp_handoffs_total Entries handed to another node because this node "
	            "does not offer their runtime, image or limits.\n"
	            "# TYPE aisp_handoffs_total counter\naisp_handoffs_total %llu\n",
	            (unsigned long long)m->handoffs);
	buf_appendf(out,
	            "# HELP aisp_retries_total Tasks retried after a sandbox error.\n"
	            "# TYPE aisp_retries_total counter\naisp_retries_total %llu\n",
	            (unsigned long long)m->retries);
	buf_appendf(out,
	            "# HELP aisp_dead_letters_total Entries moved to aisp:dead.\n"
	            "# TYPE aisp_dead_letters_total counter\naisp_dead_letters_total %llu\n",
	            (unsigned long long)m->dead);
	buf_appendf(out,
	            "# HELP aisp_queue_lag_seconds Age of the oldest entry in the last read.\n"
	            "# TYPE aisp_queue_lag_seconds gauge\naisp_queue_lag_seconds %.3f\n",
	            m->queue_lag_s);
	metrics_hist_render(&m->acquire, "aisp_acquire_seconds",
	                    "Time to get a ready sandbox for a task.", out);
	metrics_hist_render(&m->execute, "aisp_execute_seconds",
	                    "Time from handing a task to a sandbox to its result.", out);
	metrics_hist_render(&m->publish, "aisp_publish_seconds",
	                    "Time to publish a result (signing and the Redis script).", out);
}
