// Package hub is an embedded, IoT-Hub-compatible server: the HTTPS REST
// API of the service side (registry, twins, queries), the MQTT device
// endpoint (twin topics, telemetry) and SAS authentication, over TLS, on a
// durable store, built so that the official Azure SDKs cannot tell it from
// Azure IoT Hub for everything twinsync uses (test/interop/hub replays the
// device twins tutorial with the Node SDKs against it). Package hubtest
// starts one inside a Go test; cmd/hub runs one as a binary.
//
// # Wire behaviour and the choices made where the spec is unsure
//
// The reference is iothub-spec.md and sdk-wire.md. Where those mark a fact
// as inferred, the hub does what the official SDKs need:
//
//   - Errors use body shape A ({"Message":"ErrorCode:<Name>;<text>",
//     "ExceptionMessage":"Tracking ID:..."}) plus the iothub-errorcode
//     header; MQTT twin errors carry {"errorCode":<number>,...} in the body
//     because the Node device SDK looks only there.
//   - If-Match on twins: absent, * or "*" is unconditional, a quoted etag
//     must match (412 PreconditionFailed), an unquoted etag is ignored as
//     IoT Hub does. On identities an unquoted real etag never matches (IoT
//     Hub answers 412). PUT /devices/{id} without If-Match only creates (409
//     DeviceAlreadyExists); with If-Match it updates, or creates a missing
//     identity.
//   - SAS: the HMAC covers sr exactly as received; sr is URL-decoded only
//     for the scope check, by path segment, host case-insensitive. The
//     scope root is the configured host name, with or without its port.
//     REST accepts only policy tokens (skn); MQTT accepts the identity's
//     own keys or a policy with DeviceConnect. Queries need ServiceConnect
//     or RegistryRead.
//   - Queries: x-ms-item-type is Twin for SELECT * and Raw otherwise;
//     x-ms-continuation is sent only when another page exists; the page
//     size is x-ms-max-item-count capped at 1000, 100 when absent. The body
//     key "query" is matched case-insensitively (amenzhinsky/iothub sends
//     "Query").
//   - MQTT: 3.1.1 over TLS on its own port and over WebSocket at
//     /$iothub/websocket on the HTTPS port (the SDKs' MqttWs transports),
//     any clean-session flag, user name
//     "<host>/<clientId>/[?]api-version=...&..." with the model-id copied
//     to the twin. Bad credentials, unknown or disabled identities get
//     CONNACK 5. A publish outside the identity's documented topics or at
//     QoS 2 closes the connection; a subscription to anything else gets
//     SUBACK 0x80; QoS 2 subscriptions are granted QoS 1. A new connection
//     with the same client id drops the older one. Responses and desired
//     notifications are written to one client only, at QoS 0 (both QoS are
//     accepted by every SDK), never relayed through the broker. The session
//     is closed when its SAS token expires.
//   - Telemetry on devices/{id}/messages/events/ is accepted (PUBACK at
//     QoS 1) and counted in memory; there is no event stream to read it.
//   - connectionState and connectionStateUpdatedTime change on connect and
//     disconnect; lastActivityTime on connect, disconnect and reported
//     patches. A restart marks every identity Disconnected.
//
// # Store
//
// Every identity (device or module) is one record holding the registry
// entry and the twin, kept in memory and, unless Config.InMemory is set, in
// a bbolt file in the data directory. A write is acknowledged (HTTP 2xx,
// MQTT twin response) only after bbolt committed it with fsync. Concurrent
// writes are group-committed: all changes queued while one fsync runs go
// into the next transaction, so throughput grows with concurrency instead
// of being one fsync per write. Records are copy-on-write, so readers and
// queries never see half a change and never wait for a disk.
//
// Queries run on pkg/query over an in-memory index that the store updates
// under the same per-identity lock as the write: documents in key order
// per collection and exact equality indexes over every primitive under
// tags and over deviceId, moduleId, status and connectionState.
//
// # Throttling
//
// With Config.Throttling (cmd/hub --tier S1 --units 1) every operation
// class of spec §7.2 (registry, connections, D2C, queries, twin reads, twin
// updates) has a token bucket holding one second's worth of operations
// (one minute's for per-minute limits). An empty bucket answers 429
// ThrottlingException on REST (with Retry-After: the seconds until the
// bucket has a token again; whether IoT Hub sends one is unverified),
// status 429 with errorCode 429001 on MQTT twin topics and CONNACK 3 on
// connect. IoT Hub queues a burst before it
// answers 429; the hub answers at once, which makes client backoff
// testable without waiting.
//
// # Not implemented
//
// Bulk registry operations (POST /devices), direct methods,
// cloud-to-device messages, jobs, file upload, X.509 and Microsoft Entra
// (Bearer) authentication, routing and the event stream (telemetry is only
// counted), twin change and lifecycle events. Requests for them get 404 or
// 405 in IoT Hub's error shape.
package hub
