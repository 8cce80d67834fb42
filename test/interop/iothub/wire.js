// Sends the service calls of the wire check (wire_test.go) with the official
// Azure IoT Hub Node SDK (azure-iothub, pinned in package-lock.json):
// create, get twin, conditional update, unconditional update, query pages 1
// and 2, delete. The Go test records what reaches the hub and compares it
// with what pkg/iothub sends for the same calls.
//
// Environment: SERVICE_CONNECTION_STRING (HostName=localhost;...),
// HUB_PORT (the Registry always dials port 443, so an https.Agent whose
// defaultPort is HUB_PORT is set through the SDK's private
// _restApiClient.setOptions, the only way to reach another port), DEVICE_ID,
// QUERY, and NODE_EXTRA_CA_CERTS pointing at the hub CA. Prints one "ok -"
// line per call and never prints keys or connection strings.
'use strict';

const https = require('https');
const iothub = require('azure-iothub');

function check(cond, what) {
  if (!cond) {
    throw new Error('expectation failed: ' + what);
  }
  console.log('ok -', what);
}

async function main() {
  const deviceId = process.env.DEVICE_ID;
  const registry = iothub.Registry.fromConnectionString(process.env.SERVICE_CONNECTION_STRING);
  const agent = new https.Agent({ keepAlive: true });
  agent.defaultPort = Number(process.env.HUB_PORT);
  registry._restApiClient.setOptions({ http: { agent } });

  const created = (await registry.create({ deviceId })).responseBody;
  check(created.deviceId === deviceId, 'create');

  const twin = (await registry.getTwin(deviceId)).responseBody;
  check(typeof twin.etag === 'string' && twin.etag.length > 0, 'get twin');

  const conditional = {
    tags: { location: { region: 'US', plant: 'Redmond43' } },
    properties: { desired: { power_level: 1 } },
  };
  const updated = (await registry.updateTwin(deviceId, conditional, twin.etag)).responseBody;
  check(updated.etag !== twin.etag, 'conditional update');

  const unconditional = { properties: { desired: { power_level: 2, mode: null } } };
  await registry.updateTwin(deviceId, unconditional, '*');
  check(true, 'unconditional update');

  // nextAsTwin, as in the tutorial: the promise form of next() without
  // arguments drops the stored continuation token (azure-iothub 1.16.6
  // query.js) and would fetch page 1 again.
  const query = registry.createQuery(process.env.QUERY, 2);
  const page1 = await query.nextAsTwin();
  check(page1.result.length === 2 && query.hasMoreResults, 'query page 1');
  const page2 = await query.nextAsTwin();
  const seen = new Set(page1.result.map((t) => t.deviceId));
  check(page2.result.length >= 1 && page2.result.every((t) => !seen.has(t.deviceId)), 'query page 2');

  await registry.delete(deviceId);
  check(true, 'delete');
  agent.destroy();
}

main().catch((err) => {
  console.error('FAILED:', err && err.message ? err.message : err);
  process.exit(1);
});
