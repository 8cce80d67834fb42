package hub

import (
	"bytes"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
	"github.com/twinsync/twinsync/pkg/query"
	"github.com/twinsync/twinsync/pkg/twin"
)

// IoT Hub MQTT topics (spec §5.2, §5.3).
const (
	topicTwinResponses   = "$iothub/twin/res/#"
	topicDesiredFilter   = "$iothub/twin/PATCH/properties/desired/#"
	topicMethodsFilter   = "$iothub/methods/POST/#"
	prefixTwinGet        = "$iothub/twin/GET/"
	prefixReportedPatch  = "$iothub/twin/PATCH/properties/reported/"
	prefixMethodResponse = "$iothub/methods/res/"
	prefixTwinResponse   = "$iothub/twin/res/"
)

// mqttEndpoint is the device-facing MQTT 3.1.1 endpoint: a mochi-mqtt
// broker whose hook authenticates devices, confines each to its own topics
// and answers twin requests itself. Nothing is ever relayed between
// clients: responses and notifications are written to one client only.
type mqttEndpoint struct {
	hub    *Hub
	server *mqtt.Server
	ln     net.Listener // the MQTT/TLS listener
	addr   string       // its bound address
	ws     *wsListener  // MQTT over WebSocket on the HTTPS port

	mu       sync.Mutex
	sessions map[string]*session // identity key → current connection

	// pending holds authenticated connections (*mqtt.Client → *session)
	// until mochi has established their session.
	pending sync.Map

	telemetry sync.Map // identity key → *atomic.Int64
}

// session is what the hub knows about a connected identity.
type session struct {
	client  *mqtt.Client
	key     string
	modelID string
	expiry  *time.Timer // disconnects when the SAS token expires
}

func newMQTTEndpoint(h *Hub, ln net.Listener, log *slog.Logger) (*mqttEndpoint, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1 // IoT Hub has no QoS 2: subscriptions are granted 1
	caps.RetainAvailable = 0
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumSessionExpiryInterval = 0
	srv := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           false,
		Logger:                 slog.New(redactingHandler{log.Handler()}),
		SysTopicResendInterval: 0,
	})
	e := &mqttEndpoint{hub: h, server: srv, sessions: map[string]*session{}, ln: ln, addr: ln.Addr().String()}
	if err := srv.AddHook(&mqttHook{e: e}, nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewNet("mqtts", ln)); err != nil {
		return nil, err
	}
	e.ws = newWSListener(srv.EstablishConnection)
	if err := srv.AddListener(e.ws); err != nil {
		return nil, err
	}
	return e, nil
}

// close stops the broker. mochi's own Close can deadlock when clients
// disconnect while it runs (Clients.GetByListener takes the map's read
// lock twice, and a Delete queued in between blocks both), so new
// connections are refused first and every client is disconnected and
// waited for before mochi closes its listeners.
func (e *mqttEndpoint) close() error {
	_ = e.ln.Close()
	e.ws.refuse()
	for _, cl := range e.server.Clients.GetAll() {
		if !cl.Closed() {
			_ = e.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	e.server.Listeners.ClientsWg.Wait()
	return e.server.Close()
}

// connectedCount returns the number of connected identities.
func (e *mqttEndpoint) connectedCount() int {
	if e == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

// disconnect drops the connection of an identity, if any (device disabled,
// deleted or its keys changed).
func (e *mqttEndpoint) disconnect(key string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	s := e.sessions[key]
	e.mu.Unlock()
	if s != nil {
		_ = e.server.DisconnectClient(s.client, packets.ErrNotAuthorized)
	}
}

// notifyDesired publishes a desired-properties notification to the
// identity if it is connected and subscribed (no offline queue, as in IoT
// Hub).
func (e *mqttEndpoint) notifyDesired(key string, n *twin.DesiredNotification) {
	if e == nil || n == nil {
		return
	}
	e.mu.Lock()
	s := e.sessions[key]
	e.mu.Unlock()
	if s == nil {
		return
	}
	if _, ok := s.client.State.Subscriptions.Get(topicDesiredFilter); !ok {
		return
	}
	_ = writePublish(s.client, n.Topic(), n.Body)
}

// telemetryCount returns the number of telemetry messages accepted from an
// identity since the hub started.
func (e *mqttEndpoint) telemetryCount(key string) int64 {
	if v, ok := e.telemetry.Load(key); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// writePublish writes a QoS 0 PUBLISH to one client.
func writePublish(cl *mqtt.Client, topic string, payload []byte) error {
	return cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}

// clientIdentity is the identity a client id names.
type clientIdentity struct {
	deviceID, moduleID string
}

func (c clientIdentity) key() string { return query.Key(c.deviceID, c.moduleID) }

func (c clientIdentity) resourcePath() string {
	if c.moduleID != "" {
		return "/devices/" + c.deviceID + "/modules/" + c.moduleID
	}
	return "/devices/" + c.deviceID
}

// parseClientID splits "deviceId" or "deviceId/moduleId".
func parseClientID(id string) (clientIdentity, bool) {
	dev, mod, _ := strings.Cut(id, "/")
	if validateID("device", dev) != nil || (strings.Contains(id, "/") && validateID("module", mod) != nil) {
		return clientIdentity{}, false
	}
	return clientIdentity{dev, mod}, true
}

// parseUsername checks "<host>/<clientId>/?api-version=...&..." (the "?"
// and every parameter are optional) and returns the url-decoded model-id.
func (e *mqttEndpoint) parseUsername(username, clientID string) (modelID string, ok bool) {
	host, rest, found := strings.Cut(username, "/")
	if !found || !e.hub.isHubHost(host) {
		return "", false
	}
	rest, found = strings.CutPrefix(rest, clientID)
	if !found || (rest != "" && rest[0] != '/') {
		return "", false
	}
	params := strings.TrimPrefix(strings.TrimPrefix(rest, "/"), "?")
	values, err := url.ParseQuery(params)
	if err != nil {
		return "", true
	}
	return values.Get("model-id"), true
}

// allowedPublish reports whether an identity may publish on topic.
func allowedPublish(id clientIdentity, topic string) bool {
	switch {
	case strings.HasPrefix(topic, prefixTwinGet), strings.HasPrefix(topic, prefixReportedPatch),
		strings.HasPrefix(topic, prefixMethodResponse):
		return true
	}
	return strings.HasPrefix(topic, telemetryPrefix(id))
}

// allowedFilter reports whether an identity may subscribe to filter.
func allowedFilter(id clientIdentity, filter string) bool {
	switch filter {
	case topicTwinResponses, topicDesiredFilter, topicMethodsFilter:
		return true
	}
	if id.moduleID != "" {
		return filter == "devices/"+id.deviceID+"/modules/"+id.moduleID+"/inputs/#"
	}
	return filter == "devices/"+id.deviceID+"/messages/devicebound/#"
}

func telemetryPrefix(id clientIdentity) string {
	if id.moduleID != "" {
		return "devices/" + id.deviceID + "/modules/" + id.moduleID + "/messages/events/"
	}
	return "devices/" + id.deviceID + "/messages/events/"
}

// mqttHook implements the hub's behaviour on mochi-mqtt's hook API.
type mqttHook struct {
	mqtt.HookBase
	e *mqttEndpoint
}

// ID implements mqtt.Hook.
func (h *mqttHook) ID() string { return "iothub" }

// Provides implements mqtt.Hook.
func (h *mqttHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish,
		mqtt.OnDisconnect, mqtt.OnPacketRead, mqtt.OnPublish,
	}, []byte{b})
}

// OnConnect refuses protocol levels other than 4 (IoT Hub speaks MQTT
// 3.1.1; its MQTT 5 support is a preview with other topics) and applies
// the new-connection throttle.
func (h *mqttHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Properties.ProtocolVersion != 4 {
		_ = h.e.server.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
		return packets.ErrUnsupportedProtocolVersion
	}
	if !h.e.hub.throttle.allow(classConnect) {
		_ = h.e.server.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		return packets.ErrServerUnavailable
	}
	return nil
}

// OnConnectAuthenticate checks client id, user name and SAS password (spec
// §5.1). A refusal is CONNACK 5 (not authorized), as Azure answers.
func (h *mqttHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, ok := parseClientID(cl.ID)
	if !ok {
		return false
	}
	modelID, ok := h.e.parseUsername(string(pk.Connect.Username), cl.ID)
	if !ok {
		return false
	}
	rec := h.e.hub.store.get(id.key())
	if rec == nil || rec.Device.Status != "enabled" {
		return false
	}
	password := string(pk.Connect.Password)
	if !h.e.hub.auth.authorizeDevice(password, id.resourcePath(), &rec.Device) {
		return false
	}
	s := &session{client: cl, key: id.key(), modelID: modelID}
	if tok, err := sas.ParseToken(password); err == nil {
		s.expiry = time.AfterFunc(time.Until(tok.Expiry), func() {
			_ = h.e.server.DisconnectClient(cl, packets.ErrNotAuthorized)
		})
	}
	h.e.pending.Store(cl, s)
	return true
}

// OnSessionEstablish makes the connection the identity's current one and
// records the connection state, before mochi drops an older connection
// with the same id and before the CONNACK: a client that got its CONNACK
// finds the twin Connected, and the older connection's disconnect no
// longer counts.
func (h *mqttHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	v, ok := h.e.pending.LoadAndDelete(cl)
	if !ok {
		return
	}
	s := v.(*session)
	h.e.mu.Lock()
	h.e.sessions[s.key] = s
	h.e.mu.Unlock()
	h.e.recordConnectionState(s.key, s.modelID)
}

// OnDisconnect records the disconnection unless a newer connection of the
// same identity has taken over.
func (h *mqttHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if v, ok := h.e.pending.LoadAndDelete(cl); ok {
		if s := v.(*session); s.expiry != nil {
			s.expiry.Stop()
		}
	}
	id, ok := parseClientID(cl.ID)
	if !ok {
		return
	}
	key := id.key()
	h.e.mu.Lock()
	s := h.e.sessions[key]
	current := s != nil && s.client == cl
	if current {
		delete(h.e.sessions, key)
	}
	h.e.mu.Unlock()
	if !current {
		return
	}
	if s.expiry != nil {
		s.expiry.Stop()
	}
	h.e.recordConnectionState(key, "")
}

// recordConnectionState writes connectionState (and on connect the model
// id) to the identity. The state is read from the session table inside the
// store's per-key lock, so whichever write runs last reflects the latest
// connect or disconnect.
func (e *mqttEndpoint) recordConnectionState(key, modelID string) {
	now := e.hub.now()
	_, _ = e.hub.store.update(key, func(cur *identity) (*identity, error) {
		if cur == nil {
			return nil, errNotFound
		}
		e.mu.Lock()
		_, connected := e.sessions[key]
		e.mu.Unlock()
		state := stateDisconnected
		if connected {
			state = stateConnected
		}
		next := cur.clone()
		if next.Device.ConnectionState != state {
			next.Device.ConnectionState = state
			next.Device.ConnectionStateUpdatedTime = formatTime(now)
		}
		next.Device.LastActivityTime = formatTime(now)
		if connected && modelID != "" {
			next.Twin.ModelID = modelID
		}
		next.refresh()
		return next, nil
	})
}

// OnACLCheck confines subscriptions to the identity's documented filters.
// Publishes are checked earlier, in OnPacketRead, so that a bad publish at
// any QoS closes the connection.
func (h *mqttHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	id, ok := parseClientID(cl.ID)
	if !ok {
		return false
	}
	if write {
		return allowedPublish(id, topic)
	}
	return allowedFilter(id, topic)
}

// OnPacketRead closes the connection on a QoS 2 publish or a publish to a
// topic the device may not use, as IoT Hub does.
func (h *mqttHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	// mochi closes the connection only for ErrRejectPacket from this hook.
	if pk.FixedHeader.Qos > 1 {
		return pk, packets.ErrRejectPacket
	}
	id, ok := parseClientID(cl.ID)
	if !ok || !allowedPublish(id, pk.TopicName) {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// OnPublish answers twin requests and counts telemetry. Every device
// publish is consumed here: the hub never relays it to other clients, but
// mochi still acknowledges QoS 1.
func (h *mqttHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	id, ok := parseClientID(cl.ID)
	if !ok {
		return pk, packets.ErrRejectPacket
	}
	topic := pk.TopicName
	switch {
	case strings.HasPrefix(topic, prefixTwinGet):
		h.e.twinGet(cl, id, requestID(topic))
	case strings.HasPrefix(topic, prefixReportedPatch):
		h.e.reportedPatch(cl, id, requestID(topic), pk.Payload)
	case strings.HasPrefix(topic, telemetryPrefix(id)):
		if h.e.hub.throttle.allow(classD2C) {
			h.e.countTelemetry(id.key())
		}
	}
	return pk, packets.CodeSuccessIgnore
}

func (e *mqttEndpoint) countTelemetry(key string) {
	v, ok := e.telemetry.Load(key)
	if !ok {
		v, _ = e.telemetry.LoadOrStore(key, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// requestID returns the $rid of a request topic, verbatim.
func requestID(topic string) string {
	_, q, _ := strings.Cut(topic, "?")
	for _, kv := range strings.Split(q, "&") {
		if v, ok := strings.CutPrefix(kv, "$rid="); ok {
			return v
		}
	}
	return ""
}

// respond publishes a twin response to the requesting client only.
func respond(cl *mqtt.Client, status int, rid string, version int64, payload []byte) {
	topic := prefixTwinResponse + strconv.Itoa(status) + "/?$rid=" + rid
	if version > 0 {
		topic += "&$version=" + strconv.FormatInt(version, 10)
	}
	_ = writePublish(cl, topic, payload)
}

func respondError(cl *mqtt.Client, rid string, e *hubError) {
	respond(cl, e.status, rid, 0, mqttErrorPayload(e))
}

// twinGet answers $iothub/twin/GET with the device view of the twin.
func (e *mqttEndpoint) twinGet(cl *mqtt.Client, id clientIdentity, rid string) {
	if !e.hub.throttle.allow(classTwinRead) {
		respondError(cl, rid, errThrottled())
		return
	}
	rec := e.hub.store.get(id.key())
	if rec == nil {
		respondError(cl, rid, notFound(id.deviceID, id.moduleID))
		return
	}
	respond(cl, 200, rid, 0, rec.Twin.DeviceView())
}

// reportedPatch applies a reported-properties patch and answers 204 with
// the new reported $version once the change is on disk.
func (e *mqttEndpoint) reportedPatch(cl *mqtt.Client, id clientIdentity, rid string, body []byte) {
	if !e.hub.throttle.allow(classTwinUpdate) {
		respondError(cl, rid, errThrottled())
		return
	}
	now := e.hub.now()
	var version int64
	var herr *hubError
	_, err := e.hub.store.update(id.key(), func(cur *identity) (*identity, error) {
		if cur == nil {
			herr = notFound(id.deviceID, id.moduleID)
			return nil, herr
		}
		next := cur.clone()
		v, err := next.Twin.PatchReported(body, now, twin.Options{APIVersion: usernameAPIVersion(cl.Properties.Username)})
		if err != nil {
			herr = twinError(err)
			return nil, herr
		}
		version = v
		next.Device.LastActivityTime = formatTime(now)
		next.refresh()
		return next, nil
	})
	switch {
	case herr != nil:
		respondError(cl, rid, herr)
	case err != nil:
		respondError(cl, rid, errServer("the change could not be stored"))
	default:
		respond(cl, 204, rid, version, nil)
	}
}
