// Package device is a device-side client for Azure IoT Hub device twins over
// IoT Hub's MQTT 3.1.1 dialect on TLS. It speaks to real IoT Hub and to the
// embedded hub in pkg/hub alike, and is what cmd/devicesim is built on.
//
// A [Client] is created from a device or module connection string (see
// [Config]). [Client.Connect] opens the session; [Client.GetTwin] reads the
// device view of the twin, [Client.UpdateReported] sends a reported-property
// merge patch and returns the new reported $version, and
// [Client.DesiredPatches] delivers desired-property changes in version order.
//
// # Wire choices
//
// The client sends what the official SDKs send (spec §5, sdk-wire §3):
//
//   - client id deviceId or deviceId/moduleId; user name
//     HostName/clientId/?api-version=2021-04-12&DeviceClientType=...; the
//     password is a device SAS token whose sr is HostName/devices/deviceId
//     (plus /modules/moduleId). GatewayHostName, when present, only changes
//     the host dialled; user name and sr keep HostName. Port 8883 is used
//     when the dial host has none.
//   - clean session false, like the Node and Python SDKs; the client still
//     subscribes again on every connection, because whether IoT Hub keeps twin
//     subscriptions across sessions is not settled.
//   - twin requests and subscriptions at QoS 1 (as the Python and C# SDKs):
//     the PUBACK tells the client the hub has the request, so a request lost
//     with a dropped connection is known to be lost and is sent again.
//   - $rid is a per-client counter; responses are matched by $rid, and a
//     request fails if status ≥ 300 or the body carries errorCode (the Node
//     SDK reads only errorCode, the others only the status; both are honoured).
//     Every request has a timeout ([Config.RequestTimeout]); the official
//     SDKs have none and hang when a response never comes.
//
// # Desired properties and the reconnect rule
//
// IoT Hub has no offline queue for desired notifications. On every
// connection the client therefore follows the documented rule: subscribe to
// desired patches, GET the twin, and drop every notification whose $version
// is not newer than the GET's desired $version. Notifications that arrive
// while the GET is outstanding are held back and released after it in
// arrival order. When the GET's desired $version is newer than the last one
// delivered, the whole desired document is delivered as a patch with
// [DesiredPatch.Full] set (the Python SDK does the same), so a change made
// while the device was offline is never lost; consumers treat a full patch
// as "this is the complete desired state now".
//
// A notification whose $version skips one (last+2 or more) means one was
// missed; the client does not deliver it and re-reads the twin instead,
// which yields a full patch. The sequence seen on [Client.DesiredPatches] is
// thus strictly increasing in $version, without duplicates, across
// reconnects and token renewals.
//
// # Tokens, reconnects and shutdown
//
// With a SharedAccessKey the client mints a token per connection, valid for
// [Config.TokenLifetime], and renews it [Config.RenewBefore] ahead of expiry
// by reconnecting (MQTT cannot change credentials on a live connection; the
// Node SDK does the same). Before such a planned reconnect it stops handing
// out the session and waits for requests in flight, so no reported patch is
// cut off. A connection lost unexpectedly is re-established with exponential
// backoff and jitter; a request whose response was lost with the connection
// is sent again on the next one (reported patches are therefore delivered at
// least once; applying the same merge patch twice yields the same state).
//
// A refusal of the credentials (CONNACK 4 or 5, or identifier rejected) or a
// server certificate that does not verify is final: retrying cannot fix
// either, so [Client.Connect] returns it, or, after a successful start,
// [Client.Done] is closed and [Client.Err] reports it. errors.Is(err,
// [ErrRefused]) and errors.Is(err, [ErrTLS]) tell them apart. A given
// SharedAccessSignature cannot be renewed: once the hub ends the session at
// its expiry, the reconnect is refused and reported the same way.
//
// [Client.Close] sends DISCONNECT, fails requests still waiting with
// [ErrClosed] and closes the desired channel.
//
// Secrets (keys, tokens, connection strings) never appear in errors or logs.
package device
