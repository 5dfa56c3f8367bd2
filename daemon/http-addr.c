/* The address classifier behind the HTTP client's SSRF veto (http-client.h).
 *
 * The tables follow the IANA special-purpose registries (RFC 6890 and its updates). Decisions:
 * IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64 well-known prefix, 6to4) are
 * judged by that IPv4 address, so ::ffff:169.254.169.254 is link-local, not "IPv6 public";
 * the local-use NAT64 prefix 64:ff9b:1::/48 and all of 2001::/23 (Teredo, benchmarking, ORCHID)
 * are refused outright; anything outside 2000::/3, the only block IANA allocates for global
 * unicast, is reserved. */
#include "daemon/http-client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"

typedef struct v4_range {
	uint32_t net;
	int prefix;
	http_addr_class cls;
} v4_range;

/* First match wins: the broadcast address comes before 240/4. */
static const v4_range v4_ranges[] = {
    {0x00000000, 8, HTTP_ADDR_THIS_NETWORK}, /* 0.0.0.0/8 */
    {0x0A000000, 8, HTTP_ADDR_PRIVATE},      /* 10/8 */
    {0x64400000, 10, HTTP_ADDR_SHARED},      /* 100.64/10 */
    {0x7F000000, 8, HTTP_ADDR_LOOPBACK},     /* 127/8 */
    {0xA9FE0000, 16, HTTP_ADDR_LINK_LOCAL},  /* 169.254/16 */
    {0xAC100000, 12, HTTP_ADDR_PRIVATE},     /* 172.16/12 */
    {0xC0000000, 24, HTTP_ADDR_RESERVED},    /* 192.0.0/24 IETF protocol assignments */
    {0xC0000200, 24, HTTP_ADDR_RESERVED},    /* 192.0.2/24 TEST-NET-1 */
    {0xC0586300, 24, HTTP_ADDR_RESERVED},    /* 192.88.99/24 6to4 relay anycast */
    {0xC0A80000, 16, HTTP_ADDR_PRIVATE},     /* 192.168/16 */
    {0xC6120000, 15, HTTP_ADDR_RESERVED},    /* 198.18/15 benchmarking */
    {0xC6336400, 24, HTTP_ADDR_RESERVED},    /* 198.51.100/24 TEST-NET-2 */
    {0xCB007100, 24, HTTP_ADDR_RESERVED},    /* 203.0.113/24 TEST-NET-3 */
    {0xE0000000, 4, HTTP_ADDR_MULTICAST},    /* 224/4 */
    {0xFFFFFFFF, 32, HTTP_ADDR_BROADCAST},   /* 255.255.255.255 */
    {0xF0000000, 4, HTTP_ADDR_RESERVED},     /* 240/4 */
};

typedef struct v6_range {
	uint8_t net[16];
	int prefix;
	http_addr_class cls;
} v6_range;

static const v6_range v6_ranges[] = {
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, HTTP_ADDR_RESERVED}, /* local-use NAT64 */
    {{0x01, 0x00}, 64, HTTP_ADDR_RESERVED},                         /* 100::/64 discard */
    {{0x20, 0x01, 0x00, 0x00}, 23, HTTP_ADDR_RESERVED},             /* 2001::/23 IETF */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, HTTP_ADDR_RESERVED},             /* documentation */
    {{0x3f, 0xff}, 20, HTTP_ADDR_RESERVED},                         /* documentation */
    {{0xfc}, 7, HTTP_ADDR_UNIQUE_LOCAL},                            /* ULA */
    {{0xfe, 0x80}, 10, HTTP_ADDR_LINK_LOCAL},                       /* link-local */
    {{0xfe, 0xc0}, 10, HTTP_ADDR_UNIQUE_LOCAL},                     /* site-local */
    {{0xff}, 8, HTTP_ADDR_MULTICAST},                               /* multicast */
};

static http_addr_class classify_v4(uint32_t a)
{
	for (size_t i = 0; i < ARRAY_SIZE(v4_ranges); i++) {
		uint32_t mask = v4_ranges[i].prefix ? ~0u << (32 - v4_ranges[i].prefix) : 0;
		if ((a & mask) == v4_ranges[i].net)
			return v4_ranges[i].cls;
	}
	return HTTP_ADDR_PUBLIC;
}

static bool v6_in(const uint8_t *a, const uint8_t *net, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, net, full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static http_addr_class classify_v6(const uint8_t *a)
{
	static const uint8_t zero[16], loopback[16] = {[15] = 1};
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
	static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	if (!memcmp(a, zero, 16))
		return HTTP_ADDR_THIS_NETWORK;
	if (!memcmp(a, loopback, 16))
		return HTTP_ADDR_LOOPBACK;
	/* IPv4-mapped, IPv4-compatible (deprecated ::a.b.c.d) and NAT64: the last 32 bits. */
	if (!memcmp(a, mapped, 12) || !memcmp(a, zero, 12) || !memcmp(a, nat64, 12))
		return classify_v4(be32(a + 12));
	if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:AABB:CCDD::/48 */
		return classify_v4(be32(a + 2));
	for (size_t i = 0; i < ARRAY_SIZE(v6_ranges); i++)
		if (v6_in(a, v6_ranges[i].net, v6_ranges[i].prefix))
			return v6_ranges[i].cls;
	if ((a[0] & 0xe0) != 0x20) /* outside 2000::/3 */
		return HTTP_ADDR_RESERVED;
	return HTTP_ADDR_PUBLIC;
}

http_addr_class http_addr_classify(const struct sockaddr *sa, socklen_t len)
{
	if (!sa)
		return HTTP_ADDR_UNKNOWN;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		return classify_v4(ntohl(s4->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		return classify_v6(s6->sin6_addr.s6_addr);
	}
	return HTTP_ADDR_UNKNOWN;
}

const char *http_addr_class_name(http_addr_class c)
{
	switch (c) {
	case HTTP_ADDR_PUBLIC:
		return "public";
	case HTTP_ADDR_LOOPBACK:
		return "loopback";
	case HTTP_ADDR_PRIVATE:
		return "private (RFC 1918)";
	case HTTP_ADDR_LINK_LOCAL:
		return "link-local";
	case HTTP_ADDR_SHARED:
		return "shared address space (carrier-grade NAT, RFC 6598)";
	case HTTP_ADDR_THIS_NETWORK:
		return "unspecified (\"this network\")";
	case HTTP_ADDR_MULTICAST:
		return "multicast";
	case HTTP_ADDR_BROADCAST:
		return "broadcast";
	case HTTP_ADDR_UNIQUE_LOCAL:
		return "unique local";
	case HTTP_ADDR_RESERVED:
		return "reserved for special use";
	case HTTP_ADDR_UNKNOWN:
		break;
	}
	return "not an IP address";
}

void http_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
	const void *a = NULL;
	if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (!a || !inet_ntop(sa->sa_family, a, out, (socklen_t)n))
		snprintf(out, n, "?");
}
