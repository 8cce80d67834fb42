package hub

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// webSocketPath is where IoT Hub serves MQTT over WebSocket on its HTTPS
// port (spec §5.1); the Node and Python SDKs use it through their MqttWs
// transports.
const webSocketPath = "/$iothub/websocket"

// wsListenerID names the mochi listener that owns WebSocket connections.
const wsListenerID = "mqtt-ws"

// wsListener is a mochi listener without a socket of its own: the HTTPS
// server upgrades requests and hands the connections to it, so mochi
// tracks them and closes them when the broker stops.
type wsListener struct {
	mu        sync.Mutex
	establish listeners.EstablishFn
	done      chan struct{}
	closeOnce sync.Once
}

// newWSListener returns a listener that hands connections to establish,
// from the start: a WebSocket may arrive before mochi calls Serve.
func newWSListener(establish listeners.EstablishFn) *wsListener {
	return &wsListener{establish: establish, done: make(chan struct{})}
}

// ID implements listeners.Listener.
func (l *wsListener) ID() string { return wsListenerID }

// Address implements listeners.Listener.
func (l *wsListener) Address() string { return webSocketPath }

// Protocol implements listeners.Listener.
func (l *wsListener) Protocol() string { return "wss" }

// Init implements listeners.Listener.
func (l *wsListener) Init(*slog.Logger) error { return nil }

// Serve implements listeners.Listener: it keeps the broker's callback for
// upgraded connections until the listener closes.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.establish = establish
	l.mu.Unlock()
	<-l.done
}

// Close implements listeners.Listener.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.refuse()
	closeClients(wsListenerID)
}

// refuse makes the listener turn away new connections.
func (l *wsListener) refuse() { l.closeOnce.Do(func() { close(l.done) }) }

// errWSNotServing is returned when a WebSocket arrives before the broker
// serves or after it stopped.
var errWSNotServing = errors.New("mqtt over websocket is not being served")

func (l *wsListener) serve(conn net.Conn) error {
	l.mu.Lock()
	establish := l.establish
	l.mu.Unlock()
	select {
	case <-l.done:
		establish = nil
	default:
	}
	if establish == nil {
		return errWSNotServing
	}
	return establish(wsListenerID, conn)
}

var upgrader = websocket.Upgrader{
	Subprotocols:     []string{"mqtt"},
	HandshakeTimeout: 10 * time.Second,
	// Device SDKs are not browsers; there is no origin to check.
	CheckOrigin: func(*http.Request) bool { return true },
}

// serveWebSocket upgrades GET /$iothub/websocket and runs an MQTT session
// over it. Authentication happens in CONNECT, as on the TLS port.
func (e *mqttEndpoint) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	if err := e.ws.serve(&wsConn{Conn: c.NetConn(), ws: c}); err != nil {
		e.hub.log.Debug("websocket mqtt session ended", "error", err)
	}
}

// wsConn presents a WebSocket as the byte stream mochi reads MQTT from:
// binary messages are concatenated, each write is one message.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
}

// Read implements net.Conn.
func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("mqtt over websocket needs binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write implements net.Conn.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements net.Conn.
func (c *wsConn) Close() error { return c.ws.Close() }
