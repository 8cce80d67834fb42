// Package writecount wraps a controller-runtime client so that tests and
// benchmarks can count the writes a reconciler sends to the apiserver, and
// so prove that an object whose state did not change costs no write.
package writecount

import (
	"context"
	"errors"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// Status returns c wrapped so that every status update or patch adds one
// to n.
func Status(c client.Client, n *atomic.Int64) client.Client {
	return interceptor.NewClient(noWatch{c}, statusFuncs(n))
}

// All returns c wrapped so that every create, update and patch, of objects
// and of their status, adds one to n.
func All(c client.Client, n *atomic.Int64) client.Client {
	funcs := statusFuncs(n)
	funcs.Create = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		n.Add(1)
		return c.Create(ctx, obj, opts...)
	}
	funcs.Update = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		n.Add(1)
		return c.Update(ctx, obj, opts...)
	}
	funcs.Patch = func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
		n.Add(1)
		return c.Patch(ctx, obj, patch, opts...)
	}
	return interceptor.NewClient(noWatch{c}, funcs)
}

func statusFuncs(n *atomic.Int64) interceptor.Funcs {
	return interceptor.Funcs{
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			if sub == "status" {
				n.Add(1)
			}
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if sub == "status" {
				n.Add(1)
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}
}

// noWatch lets a manager's client, which cannot watch, be wrapped by
// interceptor.NewClient.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("writecount: the wrapped client does not watch")
}
