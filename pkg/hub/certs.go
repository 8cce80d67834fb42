package hub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names inside the data directory.
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// Validity periods of the generated certificates. The CA outlives many
// server certificates; a server certificate is re-issued when its SANs no
// longer cover the configured names or it is about to expire.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 2 * 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
)

// certificates is the hub's TLS material: a private CA and a server
// certificate it issued.
type certificates struct {
	caPEM   []byte
	caCert  *x509.Certificate
	caKey   *ecdsa.PrivateKey
	server  tls.Certificate
	srvLeaf *x509.Certificate
}

// serverNames returns the SANs the server certificate must cover: the hub
// host name (without a port), localhost, the loopback addresses and extras.
func serverNames(hostname string, extra []string) []string {
	names := []string{hostOnly(hostname), "localhost", "127.0.0.1", "::1"}
	for _, n := range extra {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// hostOnly strips an optional ":port" from a host name.
func hostOnly(hostname string) string {
	if h, _, err := net.SplitHostPort(hostname); err == nil {
		return h
	}
	return hostname
}

// loadOrCreateCertificates returns the CA and server certificate kept in dir,
// creating or re-issuing them as needed. With dir == "" everything is made in
// memory only.
func loadOrCreateCertificates(dir string, names []string) (*certificates, error) {
	c := &certificates{}
	if err := c.loadOrCreateCA(dir); err != nil {
		return nil, err
	}
	if err := c.loadOrIssueServer(dir, names); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificates) loadOrCreateCA(dir string) error {
	if dir != "" {
		cert, key, err := readPair(filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile))
		if err == nil {
			c.caCert, c.caKey = cert, key
			c.caPEM = pemCert(cert.Raw)
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("load hub CA: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "twinsync hub CA", Organization: []string{"twinsync"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create hub CA: %w", err)
	}
	c.caCert, _ = x509.ParseCertificate(der)
	c.caKey = key
	c.caPEM = pemCert(der)
	if dir == "" {
		return nil
	}
	return writePair(filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile), der, key)
}

func (c *certificates) loadOrIssueServer(dir string, names []string) error {
	if dir != "" {
		cert, key, err := readPair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile))
		if err == nil && c.serverCertUsable(cert, names) {
			c.setServer(cert, key)
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("load hub server certificate: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"twinsync"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		return fmt.Errorf("issue hub server certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	c.setServer(cert, key)
	if dir == "" {
		return nil
	}
	return writePair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile), der, key)
}

// serverCertUsable reports whether a stored server certificate was issued by
// the current CA, covers every name and is not about to expire.
func (c *certificates) serverCertUsable(cert *x509.Certificate, names []string) bool {
	if cert.CheckSignatureFrom(c.caCert) != nil || time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	for _, n := range names {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func (c *certificates) setServer(cert *x509.Certificate, key *ecdsa.PrivateKey) {
	c.srvLeaf = cert
	c.server = tls.Certificate{Certificate: [][]byte{cert.Raw, c.caCert.Raw}, PrivateKey: key, Leaf: cert}
}

// tlsConfig is the server TLS configuration shared by HTTPS and MQTT:
// TLS 1.2 or later, as IoT Hub requires.
func (c *certificates) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.server},
	}
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func readPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pemCert(der), 0o644)
}

// writeFileAtomic writes data to a temporary file, syncs it and renames it
// over path, so a crash never leaves a half-written file behind.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
