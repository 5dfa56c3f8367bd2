#!/usr/bin/env bash
# The credential proxy end to end (issue 21): a real redis-server, aispd on runc and runsc, and a
# loopback HTTPS API (tests/mock/https_server.py) with a certificate of a test CA made here.
# Programs in sandboxes with no network call proxy_fetch (Python, JavaScript); the node injects
# the service's credential from its secret store, and refuses every attack of the issue with a
# precise error before it leaves the node (the server's request log shows what reached it).
# Every call is in the result's hash-chained audit trail, whose head is signed; aisp verify
# checks the chain and fails an edited one. The credential canary is nowhere in the sandbox,
# the results, Redis or the log. TAP output.
# (-e is off on purpose: a TAP suite goes on after a failing check.)
set -uo pipefail
. "$(dirname "$0")/../lib/node.sh"
need_nodes
redis_start
SRC=${AISP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}

# ---------------------------------------------------------------- the API, its key, the store
proxy_store_start
CANARY=$MOCK_HTTPS_KEY
PROXY_CONF="[secrets]
dir = $SECRETS
[proxy]
max_calls = 40
[proxy.echo]
hosts = localhost:$PORT
methods = GET, POST
paths = /v1/
secret = ECHO_TOKEN
timeout_ms = 3000
max_response_bytes = 65536
max_calls = 30
ca_file = $MOCK_HTTPS_CA
allow_private_addresses = true
[proxy.budget]
hosts = localhost:$PORT
paths = /v1/echo
secret = ECHO_TOKEN
max_calls = 2
ca_file = $MOCK_HTTPS_CA
allow_private_addresses = true
[proxy.strict]
hosts = localhost:$PORT, 169.254.169.254, [::ffff:127.0.0.1]:$PORT, 127.0.0.1:$PORT
ca_file = $MOCK_HTTPS_CA"
SLOTS=2 RT_ENABLED="runc, runsc" POOL="runc/default/python = 1
runsc/default/python = 1" EXTRA_SECTIONS="$PROXY_CONF" node_conf c1
node_start c1
wait_for 60 node_registered c1 || bail "node c1 did not register: $(node_log c1 | tail -5)"

hits() { grep -cx "$1" "$MOCK_HTTPS_LOG"; }
verify() { "$AISP" verify --pubkey "$TEST_TMP/key/public.pem" "$TEST_TMP/$1.result.json" --task "$TEST_TMP/$1.task.json" "${@:2}"; }
# proxy_task ID LANG FILE RUNTIME SERVICES-JSON [ARGS-JSON]: runs it, keeps task and result
proxy_task() {
	local json
	json=$(task_json "$1" "$2" "$3" "$4" null "{\"services\":$5,\"args\":${6:-[]}}")
	printf '%s' "$json" >"$TEST_TMP/$1.task.json"
	submit_json "$json" >/dev/null
	wait_result "$1" 180 || { not_ok "$1: no result" "$(node_log c1 | tail -5)"; return 1; }
	result "$1" >"$TEST_TMP/$1.result.json"
}
line() { rfield "$1" .stdout | grep "^$2: " | head -1 | cut -d' ' -f2-; }
has() { # has ID CASE SUBSTRING: the case's line holds the text
	local got
	got=$(line "$1" "$2")
	if [[ "$got" == *"$3"* ]]; then ok "$1 $2: $3"; else not_ok "$1 $2" "got: $got" "want: ...$3..."; fi
}

# ---------------------------------------------------------------- every case, both runtimes
for rt in runc runsc; do
	id=py-$rt
	before_echo=$(hits "GET /v1/echo")
	proxy_task $id python "$SRC/tests/integration/proxy/calls.py" $rt '["echo","strict","budget"]' "[\"$PORT\"]" || continue
	is "$rt: the program ran to its end" "$(rfield $id '.status + " " + (.exit_code | tostring)')" "ok 0"
	[ "$(rfield $id .status)" = ok ] || diag "$(rfield $id '.stderr')"
	has $id get '200 {"method": "GET", "path": "/v1/echo", "query": "token=query-secret", "auth_ok": true'
	check "$rt get: the server saw the credential; the program did not" \
		bash -c "! grep -qF '$CANARY' '$TEST_TMP/$id.result.json'"
	has $id post '200 {"method": "POST"'
	has $id post '"x_test": "yes", "body_len": 1000'
	is "$rt: the seed's proxy_fetch(url, {service}) form" "$(line $id dict-form)" True
	has $id undeclared "ERR proxy_fetch refused (service other): service other is not one of this task's services (budget, echo, strict)"
	has $id host "ERR proxy_fetch refused (service echo): host example.com is not one of service echo's hosts"
	has $id path "path /admin is outside the prefixes of service echo"
	has $id dots "the path has dot segments, backslashes or encoded separators: refused"
	has $id encoded "the path has dot segments, backslashes or encoded separators: refused"
	has $id http "only https URLs are allowed (the URL's scheme is http)"
	has $id mapped_http "only https URLs are allowed (the URL's scheme is http)"
	has $id userinfo "a URL with user-info is refused"
	has $id method "method DELETE is not allowed for service echo (allowed: GET, POST)"
	has $id crlf "request header X-Test: its value holds CR, LF or NUL (header injection): refused"
	has $id authz "request header Authorization is set by the node, not by the program"
	has $id host_hdr "request header Host is set by the node, not by the program"
	has $id cookie "request header Cookie is set by the node, not by the program"
	has $id proxy_hdr "request header Proxy-Authorization is set by the node, not by the program"
	has $id te "request header Transfer-Encoding is set by the node, not by the program"
	has $id loopback "ERR proxy_fetch failed (service strict): "
	has $id loopback "loopback"
	has $id metadata "link-local"
	has $id mapped "loopback"
	has $id decimal "loopback"
	has $id redirect "302 "
	is "$rt redirect: the 3xx is returned, not followed" "$(line $id redirect-location)" "https://169.254.169.254/latest/meta-data/"
	has $id big "ERR proxy_fetch failed (service echo): "
	has $id big "65536"
	has $id slow "ERR proxy_fetch failed (service echo): "
	has $id slow "timed out"
	has $id setcookie "200 {}"
	is "$rt setcookie: Set-Cookie stripped, the rest kept" "$(line $id setcookie-headers)" "content-length,content-type,date,server,x-kept"
	has $id budget0 "200 "
	has $id budget1 "200 "
	has $id budget2 "the task's budget of 2 calls to this service is spent"
	# the trail: every call that left the node, in order; refused ones are counted only
	is "$rt trail: the calls that left the node" \
		"$(rfield $id '[.proxy.calls[] | .service + " " + .method + " " + .path + " " + (.status | tostring)] | join(";")')" \
		"echo GET /v1/echo 200;echo POST /v1/echo 200;echo GET /v1/echo 200;strict GET / 0;strict GET /latest/meta-data/ 0;strict GET / 0;strict GET / 0;echo GET /v1/redirect 302;echo GET /v1/big 0;echo GET /v1/slow 0;echo GET /v1/cookie 200;budget GET /v1/echo 200;budget GET /v1/echo 200"
	is "$rt trail: the refused calls are counted" "$(rfield $id .proxy.refused)" 16
	is "$rt trail: no query string, bytes recorded" "$(rfield $id '.proxy.calls[1] | (.request_bytes | tostring) + " " + (.response_bytes > 0 | tostring)')" "1000 true"
	check "$rt trail: the query string is nowhere in the result's trail" \
		bash -c "! jq -c .proxy '$TEST_TMP/$id.result.json' | grep -q query-secret"
	is "$rt trail: services and head" "$(rfield $id '(.proxy.services | join(",")) + " " + (.proxy.head | startswith("sha256:") | tostring)')" "budget,echo,strict true"
	verify $id >"$TEST_TMP/$id.v" 2>&1
	is "$rt: the result verifies" "$?" 0
	check "$rt: verify checked the proxy trail" grep -q "^PASS proxy" "$TEST_TMP/$id.v"
	is "$rt: the statement signs the trail's head" \
		"$(rfield $id '.attestation.payload' | base64 -d | jq -r .predicate.metadata.proxy.head)" "$(rfield $id .proxy.head)"
	is "$rt: a task with services is nondeterministic for replay" \
		"$(rfield $id '.attestation.payload' | base64 -d | jq -r .predicate.nondeterministic)" true
	is "$rt: the server got exactly the allowed echo GETs" "$(($(hits "GET /v1/echo") - before_echo))" 4
done
check "no refused call reached the server (/admin)" bash -c "! grep -q admin '$MOCK_HTTPS_LOG'"
check "... nor a private address (only loopback is served, and strict has no private access)" \
	bash -c "[ \$(grep -c '^GET /\$' '$MOCK_HTTPS_LOG') = 0 ]"

# ---------------------------------------------------------------- the chain with the openssl CLI
calls_prev1=$(jq -r '.proxy.calls[1].prev' "$TEST_TMP/py-runc.result.json")
is "ATTESTATION.md 17: calls[1].prev is sha256 of jq -cS calls[0], by openssl" \
	"sha256:$(jq -cS '.proxy.calls[0]' "$TEST_TMP/py-runc.result.json" | tr -d '\n' | openssl dgst -sha256 -r | cut -d' ' -f1)" "$calls_prev1"

# ---------------------------------------------------------------- an edited trail fails verify
for edit in '.proxy.calls[1].status = 201' '.proxy.calls |= .[1:]' '.proxy.calls |= [.[1], .[0]] + .[2:]' '.proxy.refused = 0' '.proxy.head = "sha256:" + ("0" * 64)'; do
	jq -c "$edit" "$TEST_TMP/py-runc.result.json" >"$TEST_TMP/edit.result.json"
	cp "$TEST_TMP/py-runc.task.json" "$TEST_TMP/edit.task.json"
	verify edit >"$TEST_TMP/edit.v" 2>&1
	rc=$?
	if [ $rc = 1 ] && grep -q "^FAIL proxy" "$TEST_TMP/edit.v"; then ok "an edited trail ($edit) fails the proxy check"
	else not_ok "an edited trail ($edit) fails" "rc $rc: $(grep -v ^PASS "$TEST_TMP/edit.v" | head -3)"; fi
done

# ---------------------------------------------------------------- replay: the calls are not
# recorded, so a replay's calls fail: its exit and output may differ (EXPECTED), the rest not
printf 'from runtime import proxy_fetch\nprint(proxy_fetch("https://localhost:%s/v1/echo", {"service": "echo"}).status)\n' "$PORT" >"$TEST_TMP/rp.py"
proxy_task rp python "$TEST_TMP/rp.py" runc '["echo"]'
is "replay: the task ran on the node" "$(rfield rp '.status + " " + .stdout')" "ok 200"
verify rp --replay >"$TEST_TMP/rp.v" 2>&1
rc=$?
is "replay of a task with services passes" "$rc" 0
[ $rc = 0 ] || diag "$(cat "$TEST_TMP/rp.v")"
check "... its exit is expected to differ, naming the proxy" grep -q "^EXPECTED replay.exit: .*the credential proxy, whose responses are not recorded" "$TEST_TMP/rp.v"
check "... and input and environment still must match" grep -q "^PASS replay.environment" "$TEST_TMP/rp.v"

# ---------------------------------------------------------------- JavaScript: a Promise
for rt in runc runsc; do
	proxy_task js-$rt javascript "$SRC/tests/integration/proxy/calls.js" $rt '["echo"]' "[\"$PORT\"]" || continue
	is "$rt js: proxy_fetch resolves with the response" "$(line js-$rt js-get)" "200 true POST 5 js"
	is "$rt js: concurrent calls are queued, both answered" "$(line js-$rt js-parallel)" "200,200"
	has js-$rt js-http "true proxy_fetch refused (service echo): only https URLs are allowed"
	is "$rt js: three calls in the trail" "$(rfield js-$rt '.proxy.calls | length')" 3
done

# ---------------------------------------------------------------- a flood, and a lying frame
proxy_task flood python "$SRC/tests/integration/proxy/flood.py" runsc '["echo"]' || true
is "flood: 300 refused calls, each answered" "$(line flood flood-refused)" 300
is "flood: a frame claiming 2 GiB is refused in the sandbox" "$(line flood huge)" "a a proxy request over 1 MiB + 128 KiB: refused in the sandbox"
is "flood: ... and the channel is closed after it" "$(line flood after)" "ProxyUnavailableError the proxy channel is closed"
is "flood: the task itself ends normally" "$(rfield flood .status)" ok
is "flood: the refusals are counted, nothing left the node" "$(rfield flood '(.proxy.refused | tostring) + " " + (.proxy.calls | length | tostring)')" "300 0"

# ---------------------------------------------------------------- admission, and no services
printf 'from runtime import proxy_fetch\nproxy_fetch("https://localhost/v1/echo", service="echo")\n' >"$TEST_TMP/none.py"
run_task none python "$TEST_TMP/none.py" runc
is "a task without services: proxy_fetch raises, naming the field" \
	"$(rfield none .stderr | grep -o 'ProxyError: .*')" 'ProxyError: proxy_fetch: this task names no services (set the task'"'"'s "services")'
is "... and its result has no trail" "$(rfield none '.proxy // "none"')" none
json=$(task_json unknown python "$TEST_TMP/none.py" runc null '{"services":["nosuch"]}')
submit_json "$json" >/dev/null
wait_result unknown 60
is "a task naming a service the node does not serve is rejected" "$(rfield unknown '.status + ": " + .error')" \
	"rejected: service \"nosuch\" is not served by this node (its services: echo, budget, strict)"
json=$(task_json badname python "$TEST_TMP/none.py" runc null '{"services":["Bad Name"]}')
submit_json "$json" >/dev/null
wait_result badname 60
is "a malformed service name is rejected" "$(rfield badname '.status + ": " + .error')" \
	'rejected: field "services"[0] must be a service name ([a-z][a-z0-9_-]{0,63})'

# ---------------------------------------------------------------- aisp submit --services
"$AISP" submit --id cli-svc --runtime runc --services echo \
	-c "from runtime import proxy_fetch
print(proxy_fetch('https://localhost:$PORT/v1/echo', {'service': 'echo'}).json()['auth_ok'])" >/dev/null
wait_result cli-svc 60
is "aisp submit --services: the task may call the service" "$(rfield cli-svc '.status + " " + .stdout')" "ok True"

# ---------------------------------------------------------------- the store is read at each call
printf 'from runtime import proxy_fetch, ProxyError\ntry:\n    print(proxy_fetch("https://localhost:%s/v1/echo", {"service": "echo"}).json()["auth_ok"])\nexcept ProxyError as e:\n    print("ERR", e)\n' "$PORT" >"$TEST_TMP/auth.py"
ROTATED="sk-proxy-canary-rotated$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$ROTATED" >"$SECRETS/node/ECHO_TOKEN" # the server expects the new one too
proxy_task rot python "$TEST_TMP/auth.py" runc '["echo"]'
is "a rotated secret is used from the next call on" "$(rfield rot .stdout)" "True"
chmod 644 "$SECRETS/node/ECHO_TOKEN"
proxy_task badmode python "$TEST_TMP/auth.py" runc '["echo"]'
is "a secret file the store refuses (mode 0644): the call is refused, the reason is the operator's" \
	"$(rfield badmode .stdout)" "ERR proxy_fetch refused (service echo): the service's credential is not available on this node"
check "... and the log tells the operator why" grep -q "event=proxy_credential service=echo error=.*mode 0644" "$(node_dir c1)/log"
chmod 600 "$SECRETS/node/ECHO_TOKEN"

# ---------------------------------------------------------------- the node stays healthy
printf 'print(6*7)\n' >"$TEST_TMP/after.py"
run_task after python "$TEST_TMP/after.py" runsc
is "after all of it a plain task runs" "$(rfield after '.status + " " + .stdout')" "ok 42"
check "aispd is alive" node_alive c1
check "each call is logged (service, host, path, status)" \
	grep -q "event=proxy_call service=echo method=GET host=localhost:$PORT path=/v1/echo status=200" "$(node_dir c1)/log"
check "refusals are logged" grep -q "event=proxy_refused" "$(node_dir c1)/log"

# ---------------------------------------------------------------- the canary
check "the server received the credential (the scans below would see a leak)" \
	bash -c "jq -r .stdout '$TEST_TMP/py-runc.result.json' | grep -q '\"auth_ok\": true'"
redis_dump "$TEST_TMP/redis-dump"
check "the scan read Redis" grep -q "py-runsc" "$TEST_TMP/redis-dump"
for c in "$CANARY" "$ROTATED"; do
	check "the credential canary ${c:0:22}... is nowhere in Redis" bash -c "! grep -qF '$c' '$TEST_TMP/redis-dump'"
	check "... nor in any result" bash -c "! cat '$TEST_TMP'/*.result.json | grep -qF '$c'"
	check "... nor in aispd's log" bash -c "! grep -qF '$c' '$(node_dir c1)/log'"
done
# Every file a task's sandbox holds but the image's own trees (made before this test's canary
# existed: read-only, shared), and the program's environment, searched for the canary's
# prefix (built at run time, so main.py does not hold it).
cat >"$TEST_TMP/scan.py" <<'PY'
import os
mark = ("sk-proxy-" + "canary").encode()
found = [k for k, v in os.environb.items() if mark in v]
skip = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/var/lib/dpkg")
for root, ds, fs in os.walk("/"):
    ds[:] = [d for d in ds if os.path.join(root, d) not in skip]
    for f in fs:
        p = os.path.join(root, f)
        try:
            with open(p, "rb") as fh:
                if mark in fh.read(1 << 20):
                    found.append(p)
        except OSError:
            pass
print("found:", found)
PY
for rt in runc runsc; do
	proxy_task scan-$rt python "$TEST_TMP/scan.py" $rt '["echo"]' || continue
	is "$rt: nothing in the sandbox's files or environment holds the credential" "$(line scan-$rt found)" "[]"
done

node_stop c1
check "node c1 left no residue" [ -z "$(residue c1)" ]
done_testing
