package device

import (
	"reflect"
	"testing"
)

// step is one event fed to the sequencer.
type step struct {
	begin    bool  // beginSync
	notify   int64 // a notification with this version (0: none)
	getVer   int64 // endSync with a GET at this desired version (0: none)
	wantSync bool  // whether the step should ask for a re-read
}

func TestSequencer(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  []DesiredPatch // versions and Full flags delivered
	}{
		{
			name:  "first connect delivers the GET as full, then patches",
			steps: []step{{getVer: 1}, {notify: 2}, {notify: 3}},
			want:  []DesiredPatch{{Version: 1, Full: true}, {Version: 2}, {Version: 3}},
		},
		{
			name:  "notifications during the GET are held and filtered",
			steps: []step{{notify: 2}, {notify: 3}, {notify: 4}, {getVer: 3}, {notify: 5}},
			want:  []DesiredPatch{{Version: 3, Full: true}, {Version: 4}, {Version: 5}},
		},
		{
			name:  "reconnect: redelivered old notifications are dropped, no duplicates",
			steps: []step{{getVer: 1}, {notify: 2}, {begin: true}, {notify: 2}, {getVer: 2}, {notify: 2}, {notify: 3}},
			want:  []DesiredPatch{{Version: 1, Full: true}, {Version: 2}, {Version: 3}},
		},
		{
			name:  "change while offline is picked up by the GET",
			steps: []step{{getVer: 1}, {notify: 2}, {begin: true}, {getVer: 4}, {notify: 5}},
			want:  []DesiredPatch{{Version: 1, Full: true}, {Version: 2}, {Version: 4, Full: true}, {Version: 5}},
		},
		{
			name:  "a gap asks for a re-read and holds the patch",
			steps: []step{{getVer: 1}, {notify: 3, wantSync: true}, {notify: 4}, {getVer: 3}},
			want:  []DesiredPatch{{Version: 1, Full: true}, {Version: 3, Full: true}, {Version: 4}},
		},
		{
			name:  "a held patch revealing another gap asks again",
			steps: []step{{notify: 2}, {notify: 5}, {getVer: 2, wantSync: true}, {getVer: 5}},
			want:  []DesiredPatch{{Version: 2, Full: true}, {Version: 5, Full: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []DesiredPatch
			s := newSequencer(func(p DesiredPatch) { got = append(got, DesiredPatch{Version: p.Version, Full: p.Full}) })
			for i, st := range tt.steps {
				var asked bool
				switch {
				case st.begin:
					s.beginSync()
				case st.notify != 0:
					asked = s.notify(DesiredPatch{Version: st.notify})
				case st.getVer != 0:
					asked = s.endSync(Properties{Version: st.getVer})
				}
				if asked != st.wantSync {
					t.Fatalf("step %d (%+v): re-read asked = %v, want %v", i, st, asked, st.wantSync)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("delivered %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPatchQueuePreservesOrder(t *testing.T) {
	q := newPatchQueue()
	out := make(chan DesiredPatch)
	stop := make(chan struct{})
	go q.pump(out, stop)
	for v := int64(1); v <= 100; v++ {
		q.push(DesiredPatch{Version: v})
	}
	for want := int64(1); want <= 100; want++ {
		if got := (<-out).Version; got != want {
			t.Fatalf("got version %d, want %d", got, want)
		}
	}
	close(stop)
	if _, open := <-out; open {
		t.Fatal("out not closed after stop")
	}
}
