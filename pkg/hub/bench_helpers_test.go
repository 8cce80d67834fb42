package hub

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// startBenchHub starts a hub on loopback with its host name carrying the
// HTTPS port, durable in a temp dir unless inMemory.
func startBenchHub(tb testing.TB, inMemory bool) *Hub {
	tb.Helper()
	httpsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	mqttLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Hostname: httpsLn.Addr().String(), HTTPSListener: httpsLn, MQTTListener: mqttLn, InMemory: inMemory}
	if !inMemory {
		cfg.DataDir = tb.TempDir()
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	return h
}

// ownerToken signs a service token with the iothubowner policy.
func ownerToken(h *Hub) string {
	p := h.policies["iothubowner"]
	key, _ := sas.ParseKey(p.PrimaryKey)
	return sas.Sign(h.Hostname(), p.Name, key, time.Now().Add(time.Hour))
}

// deviceToken signs an MQTT password with the device's primary key.
func deviceToken(h *Hub, id string) string {
	rec := h.store.get(id)
	key, _ := sas.ParseKey(rec.Device.Authentication.SymmetricKey.PrimaryKey)
	return sas.Sign(h.Hostname()+"/devices/"+id, "", key, time.Now().Add(time.Hour))
}

// benchClient returns an HTTP/1.1 keep-alive client trusting the hub CA.
func benchClient(h *Hub) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: h.CACertPool()},
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
	}}
}

// rawMQTT is a minimal MQTT 3.1.1 client for benchmarks: it measures the
// server, not a client library's goroutines and buffering. It handles only
// what the benchmarks exchange (CONNECT, SUBSCRIBE, PUBLISH at QoS 0/1,
// PUBACK).
type rawMQTT struct {
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	nextID uint16
}

func dialRawMQTT(addr string, pool *tls.Config, clientID, username, password string) (*rawMQTT, error) {
	conn, err := tls.Dial("tcp", addr, pool)
	if err != nil {
		return nil, err
	}
	c := &rawMQTT{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	var body bytes.Buffer
	writeString(&body, "MQTT")
	body.Write([]byte{4, 0xC2, 0, 60}) // level 4; user name, password, clean session; keep-alive 60 s
	writeString(&body, clientID)
	writeString(&body, username)
	writeString(&body, password)
	if err := c.send(0x10, body.Bytes()); err != nil {
		return nil, err
	}
	typ, payload, err := c.read()
	if err != nil {
		return nil, err
	}
	if typ != 0x20 || len(payload) < 2 || payload[1] != 0 {
		return nil, fmt.Errorf("connect refused: %x %v", typ, payload)
	}
	return c, nil
}

func writeString(b *bytes.Buffer, s string) {
	_ = binary.Write(b, binary.BigEndian, uint16(len(s)))
	b.WriteString(s)
}

func (c *rawMQTT) id() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

func (c *rawMQTT) send(header byte, body []byte) error {
	buf := []byte{header}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		buf = append(buf, b)
		if n == 0 {
			break
		}
	}
	c.w.Write(buf)
	c.w.Write(body)
	return c.w.Flush()
}

func (c *rawMQTT) read() (typ byte, body []byte, err error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body = make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return h, body, err
}

func (c *rawMQTT) subscribe(filter string, qos byte) error {
	var body bytes.Buffer
	_ = binary.Write(&body, binary.BigEndian, c.id())
	writeString(&body, filter)
	body.WriteByte(qos)
	if err := c.send(0x82, body.Bytes()); err != nil {
		return err
	}
	typ, payload, err := c.read()
	if err != nil {
		return err
	}
	if typ != 0x90 || payload[len(payload)-1] == 0x80 {
		return errors.New("subscription refused")
	}
	return nil
}

// publish sends a PUBLISH at QoS 1.
func (c *rawMQTT) publish1(topic string, payload []byte) error {
	var body bytes.Buffer
	writeString(&body, topic)
	_ = binary.Write(&body, binary.BigEndian, c.id())
	body.Write(payload)
	return c.send(0x32, body.Bytes())
}

// awaitPublish reads until a PUBLISH whose topic starts with prefix
// arrives (acknowledging QoS 1 deliveries and skipping PUBACKs) and
// returns its topic.
func (c *rawMQTT) awaitPublish(prefix string) (string, error) {
	for {
		typ, body, err := c.read()
		if err != nil {
			return "", err
		}
		if typ>>4 != 3 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(body))
		topic := string(body[2 : 2+tl])
		if qos := (typ >> 1) & 3; qos == 1 {
			if err := c.send(0x40, body[2+tl:4+tl]); err != nil {
				return "", err
			}
		}
		if strings.HasPrefix(topic, prefix) {
			return topic, nil
		}
	}
}

// cpuTime returns the process's user plus system CPU time. On this shared,
// loaded machine CPU per operation is steadier than wall-clock rates.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
