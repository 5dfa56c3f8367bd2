# The credential proxy's cases from inside a sandbox (tests/integration/test-proxy.sh): one
# line per case, "name: status ..." or "name: ERR <message>". PORT is argv[1].
import json
import sys

from runtime import ProxyError, proxy_fetch

PORT = sys.argv[1]
BASE = "https://localhost:%s" % PORT


def case(name, url, **kw):
    kw.setdefault("service", "echo")
    try:
        r = proxy_fetch(url, **kw)
    except ProxyError as e:
        print("%s: ERR %s" % (name, e))
        return None
    print("%s: %d %s" % (name, r.status, r.body[:300].decode("utf-8", "replace")))
    return r


r = case("get", BASE + "/v1/echo?token=query-secret")
case("post", BASE + "/v1/echo", method="POST", body=b"x" * 1000, headers={"X-Test": "yes"})
print("dict-form:", proxy_fetch(BASE + "/v1/echo", {"service": "echo"}).json()["auth_ok"])
case("undeclared", BASE + "/v1/echo", service="other")
case("host", "https://example.com/v1/echo")
case("path", BASE + "/admin")
case("dots", BASE + "/v1/../admin")
case("encoded", BASE + "/v1/%2e%2e/admin")
case("http", "http://localhost:%s/v1/echo" % PORT)
case("mapped_http", "http://[::ffff:127.0.0.1]/")
case("userinfo", "https://user:pw@localhost:%s/v1/echo" % PORT)
case("method", BASE + "/v1/echo", method="DELETE")
case("crlf", BASE + "/v1/echo", headers={"X-Test": "a\r\nX-Evil: 1"})
case("authz", BASE + "/v1/echo", headers={"Authorization": "Bearer mine"})
case("host_hdr", BASE + "/v1/echo", headers={"Host": "evil.example"})
case("cookie", BASE + "/v1/echo", headers={"Cookie": "a=b"})
case("proxy_hdr", BASE + "/v1/echo", headers={"Proxy-Authorization": "x"})
case("te", BASE + "/v1/echo", headers={"Transfer-Encoding": "chunked"})
case("loopback", BASE + "/", service="strict")
case("metadata", "https://169.254.169.254/latest/meta-data/", service="strict")
case("mapped", "https://[::ffff:127.0.0.1]:%s/" % PORT, service="strict")
case("decimal", "https://2130706433:%s/" % PORT, service="strict")
r = case("redirect", BASE + "/v1/redirect")
if r is not None:
    print("redirect-location:", r.header("location"))
case("big", BASE + "/v1/big?n=200000")
case("slow", BASE + "/v1/slow")
r = case("setcookie", BASE + "/v1/cookie")
if r is not None:
    print("setcookie-headers:", ",".join(sorted(k.lower() for k, _ in r.headers)))
for i in range(3):
    case("budget%d" % i, BASE + "/v1/echo", service="budget")
