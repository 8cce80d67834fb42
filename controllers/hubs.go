package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/iothub"
	"github.com/twinsync/twinsync/pkg/iothub/sas"
)

// DefaultConnectionStringKey is the Secret key read when a HubSecretReference
// names none.
const DefaultConnectionStringKey = "connectionString"

// CredentialsError says why an object's hub credentials cannot be used. Its
// message names the Secret and the key, never their values.
type CredentialsError struct {
	// Reason is a condition reason: SecretNotFound or InvalidSecret.
	Reason  string
	Message string
}

func (e *CredentialsError) Error() string { return e.Message }

// Hub is one IoT Hub as the controllers see it: a shared client and the
// facts a provisioning Secret needs.
type Hub struct {
	// Client is shared by every object that uses this hub, so that its rate
	// limiter sees all traffic to the hub.
	Client *iothub.Client
	// HostName is the hub's host name (with a port for an embedded hub).
	HostName string
	// CABundle is the PEM CA bundle trusted for the hub, empty for the system
	// roots.
	CABundle []byte
	// GatewayHostName is the GatewayHostName of the service connection
	// string, if it carries one: the host[:port] devices dial for MQTT when
	// it differs from HostName (an embedded hub serves MQTT on its own
	// port). Provisioned device connection strings copy it.
	GatewayHostName string
}

// Hubs resolves objects' hub credentials from Secrets and hands out one
// client per distinct hub (connection string and CA bundle).
type Hubs struct {
	// Reader reads Secrets (the manager's cached client).
	Reader client.Reader
	// Default is the manager-wide Secret used by objects without
	// spec.hubSecretRef; an empty Name means there is none.
	Default types.NamespacedName
	// DefaultKey is the key of the default Secret holding the connection
	// string; empty means connectionString.
	DefaultKey string
	// DefaultCAKey is the key of the default Secret holding a PEM CA bundle;
	// empty means the system roots.
	DefaultCAKey string
	// Options are applied to every client created (limits, retry policy).
	Options []iothub.Option

	mu      sync.Mutex
	clients map[string]*Hub
	// resolved remembers the hub each Secret reference resolved to at a
	// Secret resourceVersion, so that the reconcilers and the hub watcher,
	// which ask once per object, neither copy the Secret nor hash it again
	// until it changes.
	resolved map[secretRef]resolvedHub
}

// secretRef is a Secret and the keys read from it.
type secretRef struct {
	name       types.NamespacedName
	key, caKey string
}

// resolvedHub is the hub a secretRef gave at one version of the Secret.
type resolvedHub struct {
	uid             types.UID
	resourceVersion string
	hub             *Hub
}

// For returns the hub an object in namespace uses: ref when set, else the
// manager's default. Errors are *CredentialsError when the Secret is missing
// or malformed, and other errors when the Secret could not be read.
func (h *Hubs) For(ctx context.Context, namespace string, ref *iotv1alpha1.HubSecretReference) (*Hub, error) {
	key, name, caKey := h.DefaultKey, h.Default, h.DefaultCAKey
	if ref != nil {
		name = types.NamespacedName{Namespace: namespace, Name: ref.Name}
		key, caKey = ref.Key, ref.CAKey
	}
	if key == "" {
		key = DefaultConnectionStringKey
	}
	if name.Name == "" {
		return nil, &CredentialsError{Reason: iotv1alpha1.ReasonSecretNotFound,
			Message: "no spec.hubSecretRef and the manager has no default hub Secret (--default-hub-secret)"}
	}

	// The Secret is only read here, so the cache's copy is used as is.
	var secret corev1.Secret
	if err := h.Reader.Get(ctx, name, &secret, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &CredentialsError{Reason: iotv1alpha1.ReasonSecretNotFound,
				Message: fmt.Sprintf("Secret %s not found", name)}
		}
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	resolved := secretRef{name: name, key: key, caKey: caKey}
	if hub := h.lookup(resolved, &secret); hub != nil {
		return hub, nil
	}
	cs, ok := secret.Data[key]
	if !ok || len(cs) == 0 {
		return nil, &CredentialsError{Reason: iotv1alpha1.ReasonInvalidSecret,
			Message: fmt.Sprintf("Secret %s has no key %q", name, key)}
	}
	var ca []byte
	if caKey != "" {
		if ca, ok = secret.Data[caKey]; !ok || len(ca) == 0 {
			return nil, &CredentialsError{Reason: iotv1alpha1.ReasonInvalidSecret,
				Message: fmt.Sprintf("Secret %s has no key %q", name, caKey)}
		}
	}
	hub, err := h.client(string(cs), ca, fmt.Sprintf("Secret %s key %q", name, key))
	if err != nil {
		return nil, err
	}
	h.remember(resolved, &secret, hub)
	return hub, nil
}

// lookup returns the hub ref resolved to at this version of the Secret, or
// nil. A Secret without a resourceVersion (a reader that is not the
// apiserver's) is never looked up.
func (h *Hubs) lookup(ref secretRef, secret *corev1.Secret) *Hub {
	if secret.ResourceVersion == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.resolved[ref]
	if !ok || r.uid != secret.UID || r.resourceVersion != secret.ResourceVersion {
		return nil
	}
	return r.hub
}

// remember records what ref resolved to, replacing what an older version of
// the Secret gave.
func (h *Hubs) remember(ref secretRef, secret *corev1.Secret, hub *Hub) {
	if secret.ResourceVersion == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.resolved == nil {
		h.resolved = map[secretRef]resolvedHub{}
	}
	h.resolved[ref] = resolvedHub{uid: secret.UID, resourceVersion: secret.ResourceVersion, hub: hub}
}

// client returns the cached client for a connection string and CA bundle,
// creating it on first use. The cache key is a hash so that no secret is
// kept in a map key.
func (h *Hubs) client(connectionString string, ca []byte, origin string) (*Hub, error) {
	sum := sha256.New()
	sum.Write([]byte(connectionString))
	sum.Write([]byte{0})
	sum.Write(ca)
	id := hex.EncodeToString(sum.Sum(nil))

	h.mu.Lock()
	defer h.mu.Unlock()
	if hub, ok := h.clients[id]; ok {
		return hub, nil
	}

	cs, err := sas.ParseConnectionString(connectionString)
	if err != nil {
		return nil, &CredentialsError{Reason: iotv1alpha1.ReasonInvalidSecret,
			Message: fmt.Sprintf("%s: %v", origin, err)}
	}
	opts := append([]iothub.Option{}, h.Options...)
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, &CredentialsError{Reason: iotv1alpha1.ReasonInvalidSecret,
				Message: fmt.Sprintf("%s: the CA bundle holds no PEM certificate", origin)}
		}
		opts = append(opts, iothub.WithRootCAs(pool))
	}
	c, err := iothub.NewFromConnectionString(connectionString, opts...)
	if err != nil {
		return nil, &CredentialsError{Reason: iotv1alpha1.ReasonInvalidSecret,
			Message: fmt.Sprintf("%s: %v", origin, err)}
	}
	hub := &Hub{Client: c, HostName: cs.HostName, CABundle: bytes.Clone(ca), GatewayHostName: cs.GatewayHostName}
	if h.clients == nil {
		h.clients = map[string]*Hub{}
	}
	h.clients[id] = hub
	return hub, nil
}

// IsCredentialsError reports whether err is a *CredentialsError and returns
// it.
func IsCredentialsError(err error) (*CredentialsError, bool) {
	var ce *CredentialsError
	ok := errors.As(err, &ce)
	return ce, ok
}
