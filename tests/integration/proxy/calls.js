// proxy_fetch from JavaScript (tests/integration/test-proxy.sh): a Promise, one line per case.
const { proxy_fetch, ProxyError } = require('runtime');
const base = 'https://localhost:' + process.argv[2];

async function main() {
  const r = await proxy_fetch(base + '/v1/echo?q=1', { method: 'POST', service: 'echo',
                                                     body: 'hello', headers: { 'X-Test': 'js' } });
  const doc = r.json();
  console.log('js-get:', r.status, doc.auth_ok, doc.method, doc.body_len, doc.x_test);
  const all = await Promise.all([1, 2].map(() => proxy_fetch(base + '/v1/echo', { service: 'echo' })));
  console.log('js-parallel:', all.map((x) => x.status).join(','));
  try {
    await proxy_fetch('http://localhost/v1/echo', { service: 'echo' });
    console.log('js-http: resolved');
  } catch (e) {
    console.log('js-http:', e instanceof ProxyError, e.message);
  }
}
main();
