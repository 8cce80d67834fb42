package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// registry creates device identities over IoT Hub's REST API, just enough
// for load mode: PUT /devices/{id} as the official SDKs send it, and GET
// when the device already exists. It is written here because the service
// client in pkg/iothub does not offer device creation yet.
type registry struct {
	cs     *sas.ConnectionString
	client *http.Client
}

const registryAPIVersion = "2021-04-12"

func newRegistry(connectionString string, rootCAs *x509.CertPool, timeout time.Duration) (*registry, error) {
	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("registry connection string: %w", err)
	}
	if cs.Kind() != sas.KindService {
		return nil, fmt.Errorf("registry connection string: want a service policy string (SharedAccessKeyName), got a %s string", cs.Kind())
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
	}
	return &registry{cs: cs, client: &http.Client{Transport: transport, Timeout: timeout}}, nil
}

// deviceBody is the device identity JSON; empty keys ask the hub to
// generate them.
type deviceBody struct {
	DeviceID       string `json:"deviceId"`
	Status         string `json:"status,omitempty"`
	Authentication struct {
		Type         string `json:"type"`
		SymmetricKey struct {
			PrimaryKey   string `json:"primaryKey"`
			SecondaryKey string `json:"secondaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
}

// ensureDevice creates the device, or reads it if it exists, and returns
// its connection string (with GatewayHostName when gateway is set).
func (r *registry) ensureDevice(ctx context.Context, deviceID, gateway string) (string, error) {
	var body deviceBody
	body.DeviceID = deviceID
	body.Status = "enabled"
	body.Authentication.Type = "sas"
	dev, status, err := r.call(ctx, http.MethodPut, deviceID, body)
	if err == nil && status == http.StatusConflict {
		dev, status, err = r.call(ctx, http.MethodGet, deviceID, nil)
	}
	if err != nil {
		return "", err
	}
	if status >= 300 {
		return "", fmt.Errorf("creating device %q: the hub answered %d", deviceID, status)
	}
	key, err := sas.ParseKey(dev.Authentication.SymmetricKey.PrimaryKey)
	if err != nil {
		return "", fmt.Errorf("device %q: %w (only SAS devices can be simulated)", deviceID, err)
	}
	cs := sas.ConnectionString{HostName: r.cs.HostName, DeviceID: deviceID, SharedAccessKey: key, GatewayHostName: gateway}
	return cs.Secret(), nil
}

// call sends one request. 409 is returned as a status, not an error, so
// the caller can fall back to GET.
func (r *registry) call(ctx context.Context, method, deviceID string, body any) (*deviceBody, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	u := "https://" + r.cs.HostName + "/devices/" + url.PathEscape(deviceID) + "?api-version=" + registryAPIVersion
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", sas.Sign(r.cs.HostName, r.cs.SharedAccessKeyName, r.cs.SharedAccessKey, time.Now().Add(time.Hour)))
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	req.Header.Set("User-Agent", "twinsync-devicesim")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s device %q: %w", method, deviceID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%s device %q: %w", method, deviceID, err)
	}
	if resp.StatusCode == http.StatusConflict {
		return nil, resp.StatusCode, nil
	}
	if resp.StatusCode >= 300 {
		return nil, 0, fmt.Errorf("%s device %q: the hub answered %d: %s", method, deviceID, resp.StatusCode, hubMessage(b))
	}
	var dev deviceBody
	if err := json.Unmarshal(b, &dev); err != nil {
		return nil, 0, fmt.Errorf("%s device %q: the response is not a device: %w", method, deviceID, err)
	}
	return &dev, resp.StatusCode, nil
}

// hubMessage extracts the Message of IoT Hub's error body (shape A); it
// never holds a key.
func hubMessage(b []byte) string {
	var e struct {
		Message string `json:"Message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	return "(no message)"
}
