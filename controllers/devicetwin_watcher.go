package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	iotv1alpha1 "github.com/twinsync/twinsync/api/v1alpha1"
	"github.com/twinsync/twinsync/pkg/iothub"
)

// watchBatch is the number of device ids per watcher query: one page of
// MaxPageSize rows, and a query text far below the hub's 8 KiB limit
// (100 ids of at most 128 characters plus quotes and commas is about 13 KiB
// in the worst case, so batches are also cut by length).
const (
	watchBatch         = iothub.MaxPageSize
	watchMaxQueryChars = 7000
)

// twinStamp is what the watcher compares: a service write changes the etag
// and the version, a reported patch the version, a connect or disconnect the
// connection state.
type twinStamp struct {
	etag            string
	version         int64
	connectionState string
}

// hubWatcher polls every hub in use for the stamps of the twins the
// DeviceTwins manage and enqueues the objects whose twin changed. It is a
// manager Runnable (leader only) feeding a source.Channel.
//
// One poll lists the DeviceTwins from the cache, groups them by hub (one
// shared client per hub, see Hubs) and scans the hubs concurrently. Each
// scan queries the managed ids in batches (`deviceId IN [...]`), so the
// cost is one query page per 100 managed twins, whatever else the hub holds.
// Each hub gets its own token bucket holding the watcher to its share of
// the hub's query limit; the client's own limiter, shared with TwinQuery
// objects, still applies on top.
type hubWatcher struct {
	reader   client.Reader
	hubs     *Hubs
	interval time.Duration
	share    float64
	changes  chan<- event.TypedGenericEvent[*iotv1alpha1.DeviceTwin]
	// written is the reconciler's record of the stamps it last wrote to
	// each status (types.NamespacedName -> twinStamp); it is newer than the
	// cache right after a write.
	written *sync.Map

	mu    sync.Mutex
	state map[*Hub]*hubWatchState
}

// hubWatchState is the watcher's memory of one hub.
type hubWatchState struct {
	limiter *rate.Limiter
	// enqueued remembers the stamp an object was last enqueued for, so an
	// object that stays behind (paused, failing) is not enqueued on every
	// poll for the same change.
	enqueued map[types.NamespacedName]twinStamp
}

// Start polls until ctx ends.
func (w *hubWatcher) Start(ctx context.Context) error {
	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			w.poll(ctx)
		}
	}
}

// NeedLeaderElection makes the watcher run on the leader only.
func (w *hubWatcher) NeedLeaderElection() bool { return true }

// poll runs one scan of every hub in use.
func (w *hubWatcher) poll(ctx context.Context) {
	// The objects are only read (and their keys enqueued), so the cache's
	// copies are used as they are: a poll over 10,000 objects would
	// otherwise copy them all.
	var list iotv1alpha1.DeviceTwinList
	if err := w.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "hub watcher: listing DeviceTwins")
		return
	}
	groups := map[*Hub][]*iotv1alpha1.DeviceTwin{}
	for i := range list.Items {
		dt := &list.Items[i]
		if !dt.DeletionTimestamp.IsZero() || dt.Annotations[iotv1alpha1.PausedAnnotation] == "true" || !watchable(dt) {
			continue
		}
		if dt.Status.ETag == "" || dt.Status.ObservedGeneration != dt.Generation {
			continue // not reconciled yet: its create or update event is queued already
		}
		hub, err := w.hubs.For(ctx, dt.Namespace, dt.Spec.HubSecretRef)
		if err != nil {
			continue // the object's own reconcile reports bad credentials
		}
		groups[hub] = append(groups[hub], dt)
	}
	var wg sync.WaitGroup
	for hub, objs := range groups {
		wg.Go(func() {
			if err := w.scan(ctx, hub, w.stateFor(hub), objs); err != nil && ctx.Err() == nil {
				logf.FromContext(ctx).Error(err, "hub watcher: scan failed", "hub", hub.HostName)
			}
		})
	}
	wg.Wait()
}

// watchable reports whether the object's ids can be put in a query literal;
// ids holding a quote or backslash are left to their reconciles.
func watchable(dt *iotv1alpha1.DeviceTwin) bool {
	return !strings.ContainsAny(dt.EffectiveDeviceID(), `'\`)
}

// stateFor returns the watch state of a hub, with its rate limiter.
func (w *hubWatcher) stateFor(hub *Hub) *hubWatchState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == nil {
		w.state = map[*Hub]*hubWatchState{}
	}
	if s, ok := w.state[hub]; ok {
		return s
	}
	s := &hubWatchState{limiter: shareOf(hub.Client.Limits().Query, w.share), enqueued: map[types.NamespacedName]twinStamp{}}
	w.state[hub] = s
	return s
}

// shareOf returns a token bucket with a share of a limit's rate and burst.
func shareOf(l iothub.Limit, share float64) *rate.Limiter {
	if l.Rate == rate.Inf {
		return rate.NewLimiter(rate.Inf, 1)
	}
	return rate.NewLimiter(l.Rate*rate.Limit(share), max(1, int(float64(l.Burst)*share)))
}

// scan queries the stamps of objs on one hub, batch by batch, and enqueues
// the objects whose twin changed.
func (w *hubWatcher) scan(ctx context.Context, hub *Hub, st *hubWatchState, objs []*iotv1alpha1.DeviceTwin) error {
	byKey := map[string]*iotv1alpha1.DeviceTwin{}
	var devices, modules []string
	for _, dt := range objs {
		byKey[watchKey(dt.EffectiveDeviceID(), dt.Spec.ModuleID)] = dt
		if dt.Spec.ModuleID == "" {
			devices = append(devices, dt.EffectiveDeviceID())
		} else {
			modules = append(modules, dt.EffectiveDeviceID())
		}
	}
	for _, q := range []struct {
		from string
		ids  []string
	}{{"devices", devices}, {"devices.modules", dedupe(modules)}} {
		for _, batch := range batches(q.ids) {
			sql := fmt.Sprintf("SELECT deviceId, moduleId, etag, version, connectionState FROM %s WHERE deviceId IN [%s]", q.from, batch)
			if err := w.query(ctx, hub, st, sql, byKey); err != nil {
				return err
			}
		}
	}
	return nil
}

// query runs one watcher query to its last page.
func (w *hubWatcher) query(ctx context.Context, hub *Hub, st *hubWatchState, sql string, byKey map[string]*iotv1alpha1.DeviceTwin) error {
	pager := hub.Client.Query(sql, iothub.WithPageSize(iothub.MaxPageSize))
	for pager.More() {
		if err := st.limiter.Wait(ctx); err != nil {
			return err
		}
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		watcherPages.Inc()
		rows, err := page.Rows()
		if err != nil {
			return err
		}
		for _, row := range rows {
			deviceID, _ := row["deviceId"].(string)
			moduleID, _ := row["moduleId"].(string)
			if dt, ok := byKey[watchKey(deviceID, moduleID)]; ok {
				if err := w.compare(ctx, st, dt, stampOf(row)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// compare enqueues dt when the hub's stamp differs from its status and it
// was not already enqueued for that stamp.
func (w *hubWatcher) compare(ctx context.Context, st *hubWatchState, dt *iotv1alpha1.DeviceTwin, seen twinStamp) error {
	key := client.ObjectKeyFromObject(dt)
	if seen == stampOfStatus(&dt.Status) {
		delete(st.enqueued, key)
		return nil
	}
	if written, ok := w.written.Load(key); ok && written.(twinStamp) == seen {
		delete(st.enqueued, key)
		return nil
	}
	if last, ok := st.enqueued[key]; ok && last == seen {
		return nil
	}
	st.enqueued[key] = seen
	select {
	case w.changes <- event.TypedGenericEvent[*iotv1alpha1.DeviceTwin]{Object: dt}:
		watcherEnqueued.Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stampOfStatus is the stamp a status records.
func stampOfStatus(s *iotv1alpha1.DeviceTwinStatus) twinStamp {
	return twinStamp{etag: s.ETag, version: s.Version, connectionState: s.ConnectionState}
}

// stampOf reads a watcher query row.
func stampOf(row map[string]any) twinStamp {
	s := twinStamp{}
	s.etag, _ = row["etag"].(string)
	s.connectionState, _ = row["connectionState"].(string)
	if n, ok := row["version"].(json.Number); ok {
		s.version, _ = n.Int64()
	}
	return s
}

func watchKey(deviceID, moduleID string) string { return deviceID + "/" + moduleID }

// batches renders ids as quoted IN-list bodies of at most watchBatch ids and
// watchMaxQueryChars characters each.
func batches(ids []string) []string {
	var out []string
	var b strings.Builder
	n := 0
	for _, id := range ids {
		if n == watchBatch || (n > 0 && b.Len()+len(id)+3 > watchMaxQueryChars) {
			out = append(out, b.String())
			b.Reset()
			n = 0
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + id + "'")
		n++
	}
	if n > 0 {
		out = append(out, b.String())
	}
	return out
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
