// Package sas parses Azure IoT Hub connection strings and mints, parses and
// verifies shared access signature (SAS) tokens. It serves both sides of the
// wire: clients (the service client in pkg/iothub and the device client in
// pkg/device) mint tokens, and the embedded hub (pkg/hub) verifies them.
//
// The package depends on the standard library only.
//
// # Connection strings
//
// A connection string is a list of Key=Value pairs joined by ';'. Each pair is
// split at its first '=' because base64 keys end in '='. Empty segments (a
// trailing ';') are skipped, pairs with an empty value count as absent (as in
// the Node SDK) and unknown keys are ignored, so strings written by newer
// tools still parse. Key names are case-sensitive, as in every official SDK.
// Three forms are accepted:
//
//	service: HostName=h;SharedAccessKeyName=policy;SharedAccessKey=base64
//	device:  HostName=h;DeviceId=d;SharedAccessKey=base64
//	module:  HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=base64
//
// A device or module string may carry SharedAccessSignature=<token> or
// x509=true instead of the key (exactly one of the three). GatewayHostName
// names the host to dial; tokens and MQTT user names still use HostName.
// HostName may carry a port (localhost:8443) so the embedded hub can listen
// anywhere. Parse errors name the offending part and never contain a key or
// token; [ConnectionString.String] redacts secrets, [ConnectionString.Secret]
// renders the full string for writing into a Kubernetes Secret.
//
// # Tokens
//
// A token reads
//
//	SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>[&skn=<policy>]
//
// with the fields in any order. The signature is HMAC-SHA256, keyed with the
// base64-decoded key, over the URL-encoded resource, a line feed and the
// expiry in Unix seconds. [Sign] encodes the resource with
// [url.QueryEscape], like the C# and Go SDKs.
//
// The official SDKs disagree on how they encode sr (Node's service SDK sends
// the bare host name, Node's device SDK encodeURIComponent, Python quote or
// quote_plus, docs examples lower-case %2f), and each signs exactly the text
// it sends. [Token.Verify] therefore computes the HMAC over the raw sr as
// received and URL-decodes sr only for the scope check, so every variant
// verifies. sr and sig are decoded with path unescaping, which keeps a literal
// '+' (legal in device ids and unencoded base64) instead of turning it into a
// space.
//
// The scope check treats sr as a prefix by path segment: host/devices covers
// host/devices/d1 but not host/devicesX. The host part compares
// case-insensitively (DNS names are), the rest exactly, because device and
// module ids are case-sensitive.
//
// # Renewal
//
// A [KeySource] mints tokens on demand and caches each one until it is
// within its renewal margin of expiry (15 minutes by default, like the Node
// SDK, for a one-hour lifetime), so a busy client signs once per renewal
// period rather than once per request.
package sas
