// Package iothub is a client of the Azure IoT Hub service REST API: device
// and module twins, the identity registry and queries. There is no official
// Go service SDK, so this client puts on the wire what the official service
// SDKs put there, and works the same against real IoT Hub and the embedded
// hub of pkg/hub. Connection strings and SAS tokens live in the sas
// sub-package.
//
// # Wire
//
// Every request carries ?api-version=2021-04-12, a SAS token minted from the
// service connection string (cached and renewed 15 minutes before its one
// hour lifetime ends), a Request-Id UUID and a User-Agent; requests with a
// body carry Content-Type: application/json; charset=utf-8. Ids in paths
// are encoded like JavaScript's encodeURIComponent, as the Node SDK does.
// Connections are HTTP/1.1 keep-alive, like the Node SDK's agent, and the
// CA pool or the whole *tls.Config can be set for a private hub.
//
// # Concurrency control
//
// Conditional calls (UpdateTwin, ReplaceTwin, DeleteDevice and the module
// variants) take an etag and send it quoted in If-Match, because the hub
// ignores an unquoted twin etag. An empty etag is refused with ErrEmptyETag:
// to write unconditionally, pass ETagAny, which sends "*", so an
// unconditional write is always a visible choice.
//
// # Errors
//
// Hub errors are *Error values carrying the HTTP status, the hub's error
// name (the iothub-errorcode header, else the body), its numeric code when
// given, its message and tracking id. Both body shapes are read: shape A,
// {"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:..."},
// and shape B, where Message holds a JSON object with errorCode, message
// and trackingId (also accepted bare). Match them with errors.Is against
// ErrNotFound, ErrPreconditionFailed, ErrThrottled, ErrUnauthorized,
// ErrInvalid, ErrTooLarge, ErrConflict, ErrQuotaExceeded and ErrServer.
// Error messages never contain tokens or keys.
//
// # Throttling
//
// IoT Hub throttles per operation class (spec §7.2). The client keeps a
// token bucket per class (twin reads, twin updates, queries, registry
// operations) and waits in it before every attempt. TierLimits gives the
// presets for F1, S1, S2 and S3 with any number of units; the default is
// S1 with one unit, the smallest standard hub; NoLimits or custom Limits
// can be set. A 429 answer is retried after its Retry-After (or
// Retry-After-Ms) when present, else after an exponential backoff with
// equal jitter; 5xx and transport errors are retried only for idempotent
// calls (GETs, queries, ReplaceTwin, DeleteDevice), never for UpdateTwin or
// CreateDevice, which may have taken effect. RetryPolicy bounds the
// attempts and the total time; a wait that would pass the context's
// deadline is not started.
//
// # Metrics
//
// Requests, latency, throttled answers, retries and limiter waits are
// recorded in the collectors that Collectors returns (the operator registers
// them in controller-runtime's metrics registry), labelled by hub (the
// host name unless WithHubLabel sets another bounded name), operation (the
// method name), class, status code and retry reason. No label holds a
// device id or a secret.
//
// # Queries
//
// Client.Query returns a QueryPager; each NextPage is one POST
// /devices/query with x-ms-max-item-count (WithPageSize) and the previous
// page's x-ms-continuation. Pages expose raw items plus Twins() for SELECT *
// and Rows() for projections and aggregates.
//
// # Choices where the spec is unsure
//
//   - Page size: WithPageSize is capped at 100, the current documented
//     maximum (older docs said 1000; spec open question 2).
//   - Retry-After on a REST 429 is unverified on real IoT Hub (spec §7.2):
//     it is honoured when present, and exponential backoff covers its
//     absence.
//   - Bursts: per-second classes allow one second's worth of requests, the
//     per-minute classes (queries, registry) ten seconds' worth, because
//     IoT Hub queues short bursts before it answers 429.
//   - CreateDevice sends no If-Match, as the Node SDK does, so an existing
//     id fails with ErrConflict instead of being overwritten.
//   - The User-Agent names this client (DefaultUserAgent) rather than
//     impersonating an official SDK; every other header matches theirs.
package iothub
