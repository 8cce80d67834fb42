package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// registry creates (or reuses) the device identities of load mode through
// the service client.
type registry struct {
	client    *iothub.Client
	host      string
	transport *http.Transport
}

func newRegistry(connectionString string, rootCAs *x509.CertPool, timeout time.Duration, limits iothub.Limits) (*registry, error) {
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
	}
	client, err := iothub.NewFromConnectionString(connectionString,
		iothub.WithHTTPClient(&http.Client{Transport: transport, Timeout: timeout}),
		iothub.WithLimits(limits),
		iothub.WithUserAgent("twinsync-devicesim/"+version))
	if err != nil {
		return nil, fmt.Errorf("registry connection string: %w", err)
	}
	return &registry{client: client, host: client.Host(), transport: transport}, nil
}

// close releases idle connections; load mode is done with REST after
// provisioning.
func (r *registry) close() { r.transport.CloseIdleConnections() }

// ensureDevice creates the device with hub-generated keys, or reads it if it
// exists, and returns its connection string (with GatewayHostName when
// gateway is set).
func (r *registry) ensureDevice(ctx context.Context, deviceID, gateway string) (string, error) {
	d, err := r.client.CreateDevice(ctx, &iothub.Device{DeviceID: deviceID, Status: iothub.StatusEnabled})
	if errors.Is(err, iothub.ErrConflict) {
		d, err = r.client.GetDevice(ctx, deviceID)
	}
	if err != nil {
		return "", err
	}
	if d.Authentication == nil || d.Authentication.SymmetricKey == nil {
		return "", fmt.Errorf("device %q has no symmetric key; only SAS devices can be simulated", deviceID)
	}
	key, err := sas.ParseKey(d.Authentication.SymmetricKey.PrimaryKey)
	if err != nil {
		return "", fmt.Errorf("device %q: %w", deviceID, err)
	}
	cs := sas.ConnectionString{HostName: r.host, DeviceID: deviceID, SharedAccessKey: key, GatewayHostName: gateway}
	return cs.Secret(), nil
}

// parseLimits reads --registry-limits: "none", or tier:units such as S1:1,
// for the client-side limiter of the registry calls (a real S1 hub allows
// 100 registry operations a minute per unit).
func parseLimits(s string) (iothub.Limits, error) {
	if s == "" || s == "none" {
		return iothub.NoLimits, nil
	}
	tier, units, ok := strings.Cut(s, ":")
	if !ok {
		units = "1"
	}
	n, err := strconv.Atoi(units)
	if err != nil {
		return iothub.Limits{}, fmt.Errorf("--registry-limits %q: want none or tier:units, e.g. S1:1", s)
	}
	return iothub.TierLimits(iothub.Tier(tier), n)
}
