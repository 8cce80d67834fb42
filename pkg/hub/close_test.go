package hub

import (
	"crypto/tls"
	"strconv"
	"testing"
	"time"
)

// TestCloseWhileClientsDisconnect stops a hub while hundreds of devices
// drop their connections. mochi's Close alone can deadlock in that case;
// Close must return promptly.
func TestCloseWhileClientsDisconnect(t *testing.T) {
	h := startBenchHub(t, true)
	tlsConfig := &tls.Config{RootCAs: h.CACertPool(), ServerName: "127.0.0.1"}
	const n = 300
	clients := make([]*rawMQTT, n)
	for i := range clients {
		id := "dev" + strconv.Itoa(i)
		if _, err := h.RegisterDevice(id); err != nil {
			t.Fatal(err)
		}
		c, err := dialRawMQTT(h.MQTTAddr(), tlsConfig, id, h.Hostname()+"/"+id+"/?api-version=2021-04-12", deviceToken(h, id))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	go func() {
		for _, c := range clients {
			_ = c.conn.Close()
		}
	}()
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s")
	}
}
