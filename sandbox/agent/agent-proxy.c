/* The credential proxy's relay in the agent (frame.h, "The credential proxy"): while a task
 * runs, one PROXY_REQUEST at a time from the program's fd 5 goes to the host, and the host's
 * PROXY_RESPONSE back to the program's fd 6. The agent only frames and bounds: it reads at
 * most one request's bytes (header first, then exactly its payload, at most
 * PROXY_REQUEST_MAX), reads nothing more from the program until the host has answered and the
 * answer is written, and checks the request's grammar (sandbox_proxy_request_parse) so that a
 * flood or garbage never reaches the host. A program that breaks the framing gets one error
 * response and loses the channel. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "sandbox/agent/agent.h"

sandbox_frame_reader *agent_host_reader;

void agent_proxy_init(agent_proxy *px, agent_child *c)
{
	*px = (agent_proxy){.c = c};
}

void agent_proxy_deinit(agent_proxy *px)
{
	free(px->req);
	sandbox_frame_buf_free(&px->resp);
	*px = (agent_proxy){0};
}

/* An error response for the program (the request never left the sandbox). */
static void answer_error(agent_proxy *px, const char *msg)
{
	sandbox_frame_buf f = {0};
	sandbox_frame_put_field(&f, PX_ERROR, msg, strlen(msg));
	sandbox_frame_put(&px->resp, FRAME_PROXY_RESPONSE, f.data, f.len);
	sandbox_frame_buf_free(&f);
	px->roff = 0;
}

/* The program broke the framing: one error, then no channel. */
static void broken(agent_proxy *px, const char *msg)
{
	answer_error(px, msg);
	px->closing = true;
	agent_close_fd(&px->c->px_req);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A whole request is in px->req: checked, then forwarded in frames. */
static void forward(agent_proxy *px, sandbox_frame_buf *frames)
{
	sandbox_proxy_request rq;
	char msg[256];
	const uint8_t *payload = px->req + FRAME_HEADER;
	size_t n = px->req_len - FRAME_HEADER;
	px->req_len = 0;
	if (sandbox_proxy_request_parse(payload, n, &rq, msg, sizeof(msg)) < 0)
		return broken(px, msg);
	if (px->host_gone)
		return answer_error(px, "the node is gone");
	sandbox_frame_put(frames, FRAME_PROXY_REQUEST, payload, n);
	px->pending = true;
}

static void agent_proxy_on_request(agent_proxy *px, sandbox_frame_buf *frames)
{
	if (!px->req)
		px->req = xmalloc(FRAME_HEADER + PROXY_REQUEST_MAX);
	size_t want = FRAME_HEADER;
	if (px->req_len >= FRAME_HEADER)
		want += be32(px->req + 1);
	ssize_t r = read(px->c->px_req, px->req + px->req_len, want - px->req_len);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) { /* the program closed its end: no more calls */
		agent_close_fd(&px->c->px_req);
		return;
	}
	px->req_len += (size_t)r;
	if (px->req_len == FRAME_HEADER) {
		uint32_t len = be32(px->req + 1);
		if (px->req[0] != FRAME_PROXY_REQUEST)
			return broken(px, "malformed proxy channel: not a proxy request frame");
		if (len > PROXY_REQUEST_MAX)
			return broken(px, "a proxy request over 1 MiB + 128 KiB: refused in the "
			                  "sandbox");
	}
	if (px->req_len >= FRAME_HEADER && px->req_len == FRAME_HEADER + be32(px->req + 1))
		forward(px, frames);
}

static void agent_proxy_on_host(agent_proxy *px)
{
	uint8_t chunk[65536];
	ssize_t r = read(STDIN_FILENO, chunk, sizeof(chunk));
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		px->pending = false;
		px->host_gone = true;
		return answer_error(px, "the node is gone");
	}
	sandbox_frame_reader_feed(agent_host_reader, chunk, (size_t)r);
	uint8_t type;
	const uint8_t *p;
	size_t n;
	int k = sandbox_frame_reader_next(agent_host_reader, &type, &p, &n);
	if (k == 0)
		return;
	px->pending = false;
	if (k < 0 || type != FRAME_PROXY_RESPONSE || n > PROXY_RESPONSE_MAX) {
		px->host_gone = true;
		return answer_error(px, "the node sent a malformed proxy response");
	}
	sandbox_frame_put(&px->resp, FRAME_PROXY_RESPONSE, p, n);
	px->roff = 0;
}

static void agent_proxy_on_writable(agent_proxy *px)
{
	while (px->roff < px->resp.len) {
		ssize_t w =
		    write(px->c->px_resp, px->resp.data + px->roff, px->resp.len - px->roff);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) { /* the program does not read its answers: that is its choice */
			agent_close_fd(&px->c->px_resp);
			break;
		}
		px->roff += (size_t)w;
	}
	px->resp.len = px->roff = 0;
	if (px->closing)
		agent_close_fd(&px->c->px_resp);
}

void agent_proxy_poll(const agent_proxy *px, struct pollfd pfd[3])
{
	bool answering = px->roff < px->resp.len;
	bool idle = !px->pending && !answering;
	pfd[0] = (struct pollfd){idle ? px->c->px_req : -1, POLLIN, 0};
	pfd[1] = (struct pollfd){px->pending ? STDIN_FILENO : -1, POLLIN, 0};
	pfd[2] = (struct pollfd){answering ? px->c->px_resp : -1, POLLOUT, 0};
}

void agent_proxy_events(agent_proxy *px, const struct pollfd pfd[3], sandbox_frame_buf *frames)
{
	if (pfd[0].fd >= 0 && pfd[0].revents)
		agent_proxy_on_request(px, frames);
	if (pfd[1].fd >= 0 && pfd[1].revents)
		agent_proxy_on_host(px);
	if (pfd[2].fd >= 0 && pfd[2].revents)
		agent_proxy_on_writable(px);
}
