// Replays Microsoft's "Get started with device twins" tutorial with the
// official Azure IoT Node SDKs (versions pinned in package-lock.json)
// against the embedded hub, plus a stale-etag write that must get 412 and
// a twin read over the MQTT-over-WebSocket transport.
//
// Environment: SERVICE_CONNECTION_STRING (HostName=localhost;...), and
// NODE_EXTRA_CA_CERTS pointing at the hub CA. The hub must serve HTTPS on
// localhost:443 (the service SDK always dials 443) and MQTT on
// localhost:8883. Exits non-zero on the first failed expectation. Never
// prints keys or connection strings.
'use strict';

const iothub = require('azure-iothub');
const { Client } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');

const deviceId = 'myDeviceId';
const byPlant = "SELECT * FROM devices WHERE tags.location.plant = 'Redmond43'";
const byPlantAndCellular = byPlant + " AND properties.reported.connectivity = 'cellular'";

function check(cond, what) {
  if (!cond) {
    throw new Error('expectation failed: ' + what);
  }
  console.log('ok -', what);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out: ' + what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function queryIds(registry, sql) {
  const query = registry.createQuery(sql, 100);
  const ids = [];
  do {
    const page = await query.nextAsTwin();
    for (const twin of page.result) {
      ids.push(twin.deviceId);
    }
  } while (query.hasMoreResults);
  return ids;
}

async function main() {
  const serviceCS = process.env.SERVICE_CONNECTION_STRING;
  if (!serviceCS) {
    throw new Error('SERVICE_CONNECTION_STRING is not set');
  }
  const hostName = /HostName=([^;]+)/.exec(serviceCS)[1];
  const registry = iothub.Registry.fromConnectionString(serviceCS);

  // 1. Create the device identity; the hub generates the keys.
  const created = (await registry.create({ deviceId })).responseBody;
  check(created.deviceId === deviceId, 'device created');
  const key = created.authentication.symmetricKey.primaryKey;
  check(typeof key === 'string' && key.length === 44, 'hub generated a primary key');

  // 2. Tags and desired property, written with the twin's etag.
  const twin = (await registry.getTwin(deviceId)).responseBody;
  const firstEtag = twin.etag;
  await twin.update({
    tags: { location: { region: 'US', plant: 'Redmond43' } },
    properties: { desired: { power_level: 1 } },
  });
  check(true, 'tags and desired power_level written with If-Match');

  // 3. Queries before the device reports.
  check((await queryIds(registry, byPlant)).includes(deviceId), 'query by plant lists the device');
  check(!(await queryIds(registry, byPlantAndCellular)).includes(deviceId), 'query by plant and cellular does not list it yet');

  // 4. The device connects over MQTT/TLS, reports, and receives desired patches.
  const deviceCS = 'HostName=' + hostName + ';DeviceId=' + deviceId + ';SharedAccessKey=' + key;
  const client = Client.fromConnectionString(deviceCS, Mqtt);
  await withTimeout(client.open(), 30000, 'device open');
  check(true, 'device connected over MQTT/TLS');
  const deviceTwin = await withTimeout(client.getTwin(), 30000, 'device getTwin');
  check(deviceTwin.properties.desired.power_level === 1, 'device twin GET shows desired power_level 1');

  const desiredSeen = [];
  let notify;
  const gotPowerLevel2 = new Promise((resolve) => { notify = resolve; });
  deviceTwin.on('properties.desired', (delta) => {
    desiredSeen.push(delta);
    if (delta.power_level === 2) {
      notify(delta);
    }
  });
  // reported.update takes a callback only.
  const reported = new Promise((resolve, reject) => {
    deviceTwin.properties.reported.update({ connectivity: 'cellular' }, (err) => (err ? reject(err) : resolve()));
  });
  await withTimeout(reported, 30000, 'reported update');
  check(true, 'device reported connectivity=cellular');

  // The desired subscription went out before the reported PATCH on the
  // same connection, so the hub has it by now.
  await registry.updateTwin(deviceId, { properties: { desired: { power_level: 2 } } }, '*');
  const delta = await withTimeout(gotPowerLevel2, 30000, 'desired notification');
  check(delta.power_level === 2 && typeof delta.$version === 'number', 'device received the desired patch');

  // 5. The second query now lists the device.
  check((await queryIds(registry, byPlantAndCellular)).includes(deviceId), 'query by plant and cellular lists the device');

  // 6. A write with the stale etag is refused with 412.
  let refused = null;
  try {
    await registry.updateTwin(deviceId, { tags: { stale: true } }, firstEtag);
  } catch (err) {
    refused = err;
  }
  check(refused && refused.constructor.name === 'InvalidEtagError', 'stale etag refused with InvalidEtagError (412)');

  await client.close();

  // 7. The same device over MQTT on WebSocket (wss://<host>:443/$iothub/websocket).
  const wsClient = Client.fromConnectionString(deviceCS, MqttWs);
  await withTimeout(wsClient.open(), 30000, 'websocket open');
  const wsTwin = await withTimeout(wsClient.getTwin(), 30000, 'websocket getTwin');
  check(wsTwin.properties.reported.connectivity === 'cellular' && wsTwin.properties.desired.power_level === 2,
    'device twin over MQTT/WebSocket shows the reported and desired values');
  await wsClient.close();

  await registry.delete(deviceId);
  check(true, 'device deleted');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error('FAIL:', err && err.message ? err.message : err);
    process.exit(1);
  },
);
