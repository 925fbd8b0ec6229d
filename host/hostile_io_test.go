package host

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/connhost/connhost/abi"
)

// hostileDeadline is the call timeout of the hostile guest's calls; every
// call must end within it plus hostileSlack, sleeping or not.
const hostileDeadline = 300 * time.Millisecond

var hostileSlack = raceSlack(100 * time.Millisecond)

// TestHostileGuest runs each attack of the hostile guest and checks that
// the call ends as documented (kind or result) within the deadline plus
// 100 ms, measured after warm-up; that the host log holds no more records
// and bytes than the per-call budget, with one summary line when something
// was dropped; and that a call on another instance runs meanwhile.
func TestHostileGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the corpus times and measures the host; the run without -short holds it to its budgets")
	}
	tests := []struct {
		name, command string
		n             int64 // the command's number argument
		kind          abi.ErrorKind
		want          string        // in the error, or the whole result
		min           time.Duration // the call takes at least this long
		max           time.Duration // and at most this; default deadline + slack
		drops         bool          // the call drops log records
	}{
		{name: "empty log records in a loop", command: "log-empty", kind: abi.KindTimeout, want: "deadline exceeded", drops: true},
		{name: "fd_write of 1 MiB of newlines", command: "newlines", want: "1048576", drops: true},
		{name: "fd_write of 1024 iovecs at one buffer in a loop", command: "iovecs", n: 1024, kind: abi.KindTimeout, want: "deadline exceeded", drops: true},
		{name: "fd_write of 4096 iovecs", command: "iovecs", n: 4096, want: "28"},
		{name: "fd_write to fd 3", command: "write", n: 3, want: "8"},
		{name: "fd_read of stdin", command: "drain", want: "0"},
		{name: "poll_oneoff relative", command: "poll", n: 150, want: "0", min: 150 * time.Millisecond, max: 150*time.Millisecond + hostileSlack},
		{name: "poll_oneoff absolute realtime", command: "abs-real", n: 150, want: "0", min: 140 * time.Millisecond, max: 150*time.Millisecond + hostileSlack},
		{name: "poll_oneoff absolute monotonic", command: "mono-abs", n: 150, want: "0", min: 150 * time.Millisecond, max: 150*time.Millisecond + hostileSlack},
		{name: "poll_oneoff past the deadline", command: "poll", n: 60000, kind: abi.KindTimeout, want: "deadline exceeded", min: hostileDeadline},
		{name: "poll_oneoff on stdin", command: "unblocked", want: "58", max: hostileSlack},
		{name: "sleep of MaxInt64 ms", command: "sleep", n: math.MaxInt64, kind: abi.KindTimeout, want: "deadline exceeded", min: hostileDeadline},
		{name: "sleep of -1 ms", command: "sleep", n: -1, kind: abi.KindABIViolation, want: "sleep(-1): negative duration"},
		{name: "random_get of 1 MiB + 1", command: "random", n: 1<<20 + 1, want: "28"},
		{name: "random_get of 1 MiB", command: "random", n: 1 << 20, want: "0"},
		{name: "proc_exit with wazero's deadline code", command: "exit", n: int64(sys.ExitCodeDeadlineExceeded), kind: abi.KindTrap, want: "guest called proc_exit(4026531839)"},
		{name: "proc_exit with wazero's canceled code", command: "exit", n: int64(sys.ExitCodeContextCanceled), kind: abi.KindTrap, want: "guest called proc_exit(4294967295)"},
		{name: "proc_exit(0)", command: "exit", n: 0, kind: abi.KindTrap, want: "guest called proc_exit(0)"},
		{name: "envelope of kind timeout", command: "forge", kind: abi.KindFailed, want: "guest reported kind timeout: forged by the guest"},
		{name: "panic after flooding stderr", command: "crash", kind: abi.KindTrap, want: "unreachable: panic: boom", drops: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			lim := Limits{CallTimeout: hostileDeadline}
			a := e.instance(t, "hostile", NewMemServices(), InstanceSpec{Limits: lim})
			b := e.instance(t, "hostile", NewMemServices(), InstanceSpec{Info: abi.InstanceInfo{ID: "other", Name: "other"}, Limits: lim})
			ctx := context.Background()
			for _, inst := range []*Instance{a, b} {
				if err := inst.Warm(ctx, 1); err != nil {
					t.Fatal(err)
				}
			}
			type outcome struct {
				res  json.RawMessage
				err  error
				took time.Duration
			}
			done := make(chan outcome, 1)
			go func() {
				start := time.Now()
				res, err := exec1(t, a, tt.command, map[string]int64{"n": tt.n})
				done <- outcome{res, err, time.Since(start)}
			}()
			if got := mustExec[string](t, b, "ok", nil); got != "ok" {
				t.Errorf("call on the other instance meanwhile: %q", got)
			}
			out := <-done

			if tt.kind != "" {
				wantCallError(t, out.err, tt.kind, tt.want)
			} else if out.err != nil || string(out.res) != tt.want {
				t.Errorf("result %s, error %v; want %s", out.res, out.err, tt.want)
			}
			maxTook := tt.max
			if maxTook == 0 {
				maxTook = hostileDeadline + hostileSlack
			}
			if out.took < tt.min || out.took > maxTook {
				t.Errorf("call took %s, want %s to %s", out.took, tt.min, maxTook)
			}

			lg := guestLog(t, e.log.String(), "inst-hostile")
			if lg.records > DefaultLogRecords || lg.bytes > DefaultLogBytes+len(truncMarker) {
				t.Errorf("%d guest log records of %d bytes, over the per-call budget of %d records and %d bytes",
					lg.records, lg.bytes, DefaultLogRecords, DefaultLogBytes)
			}
			if want := map[bool]int{true: 1}[tt.drops]; lg.summaries != want {
				t.Errorf("%d summary lines of dropped records, want %d", lg.summaries, want)
			}
		})
	}
}

// TestLogBudgetPerInstance: the per-minute budget of an Instance holds
// across calls, and a long-running execution, which has no per-call budget,
// meets it too; what it drops is reported once for the window.
func TestLogBudgetPerInstance(t *testing.T) {
	tests := []struct {
		name, command string
		calls         int
		wantRecords   int
	}{
		// 100 records per call, until the window's 250 are spent.
		{name: "calls", command: "log-empty", calls: 4, wantRecords: 250},
		// The hostile guest serves any command starting with "l" as log-empty.
		{name: "long-running execution", command: abi.CommandLongRunningExecution, calls: 1, wantRecords: 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			inst := e.instance(t, "hostile", NewMemServices(), InstanceSpec{Limits: Limits{
				CallTimeout: 100 * time.Millisecond, LogRecords: 100, LogRecordsPerMinute: 250,
			}})
			for range tt.calls {
				_, err := exec1(t, inst, tt.command, nil)
				wantCallError(t, err, abi.KindTimeout, "deadline exceeded")
			}
			if err := inst.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			lg := guestLog(t, e.log.String(), "inst-hostile")
			if lg.records != tt.wantRecords {
				t.Errorf("%d guest log records, want %d", lg.records, tt.wantRecords)
			}
			if lg.summaries != tt.calls || lg.windowSummaries != 1 {
				t.Errorf("%d call and %d window summaries, want %d and 1", lg.summaries, lg.windowSummaries, tt.calls)
			}
		})
	}
}

// TestLogWindowRollsOver: a new window grants a new budget, and the drops
// of the last one are reported when it ends.
func TestLogWindowRollsOver(t *testing.T) {
	e := newEnv(t)
	w := newLogWindow(Limits{LogRecordsPerMinute: 2, LogBytesPerMinute: 10}, e.rt.cfg.Logger)
	w.length = 50 * time.Millisecond
	now := time.Now()
	for k, want := range []int{6, 4, -1} {
		granted, _, ok := w.admit(now, 6)
		if (want < 0) == ok || (ok && granted != want) {
			t.Fatalf("record %d: granted %d ok %v, want %d", k, granted, ok, want)
		}
	}
	w.dropped(1, 6)
	if granted, _, ok := w.admit(now.Add(w.length), 6); !ok || granted != 6 {
		t.Errorf("next window: granted %d ok %v", granted, ok)
	}
	time.Sleep(2 * w.length)
	if lg := guestLog(t, e.log.String(), ""); lg.windowSummaries != 1 {
		t.Errorf("%d window summaries, want 1:\n%s", lg.windowSummaries, e.log.String())
	}
}

// TestWASIOverrides: the host's WASI module exports the same functions,
// with the same signatures, as wazero's, so replacing some of them neither
// adds nor drops an import a guest may use. (TestHostileGuest shows that
// the replacements are the ones guests call.)
func TestWASIOverrides(t *testing.T) {
	ctx := context.Background()
	ours, theirs := wazero.NewRuntime(ctx), wazero.NewRuntime(ctx)
	defer ours.Close(ctx)
	defer theirs.Close(ctx)
	if err := instantiateWASI(ctx, ours); err != nil {
		t.Fatal(err)
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, theirs)
	got := ours.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	want := theirs.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	if len(got) != len(want) {
		t.Errorf("%d functions, wazero has %d", len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if !sigOf(g).equal(sigOf(w)) {
			t.Errorf("%s has signature %s, wazero's %s", name, sigOf(g), sigOf(w))
		}
	}
}

// guestLogStats counts what the captured log holds.
type guestLogStats struct {
	records, bytes  int // guest records of the instance (log, stdout, stderr)
	summaries       int // per-call lines about dropped records
	windowSummaries int // per-window lines about dropped records
}

// guestLog counts the guest records and summary lines of instance ("" for
// any) in a captured JSON log.
func guestLog(t *testing.T, log, instance string) guestLogStats {
	t.Helper()
	var st guestLogStats
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Instance, Source, Message string
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if instance != "" && line.Instance != instance {
			continue
		}
		switch {
		case line.Source != "":
			st.records++
			st.bytes += len(line.Message)
		case strings.HasPrefix(line.Message, "guest log truncated"):
			st.summaries++
		case strings.HasPrefix(line.Message, "guest log over the instance's per-minute budget"):
			st.windowSummaries++
		}
	}
	return st
}

// TestDroppedCountsExact: dropped records and bytes are counted exactly
// while the call is not muted, and past the budget stdout is counted in
// bytes without being split.
func TestDroppedCountsExact(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "hostile", NewMemServices(), InstanceSpec{Limits: Limits{LogRecords: 10}})
	mustExec[int](t, inst, "newlines", nil)
	var summary struct {
		DroppedRecords int `json:"dropped_records"`
		DroppedBytes   int `json:"dropped_bytes"`
	}
	for l := range strings.Lines(e.log.String()) {
		if strings.Contains(l, "guest log truncated") {
			if err := json.Unmarshal([]byte(l), &summary); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Ten empty lines logged; the rest of the 1 MiB counted as bytes.
	if summary.DroppedRecords != 0 || summary.DroppedBytes != 1<<20-10 {
		t.Errorf("summary %+v, want 0 records and %d bytes dropped", summary, 1<<20-10)
	}
	if n := guestLog(t, e.log.String(), "inst-hostile").records; n != 10 {
		t.Errorf("%d records logged, want 10", n)
	}
}

// TestGoGuestSleeps: a Go guest's time.Sleep, which its runtime turns into
// poll_oneoff, sleeps for real and then returns.
func TestGoGuestSleeps(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "wasisleeper", NewMemServices(), InstanceSpec{})
	if err := inst.Warm(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if got := mustExec[string](t, inst, "sleep", map[string]int{"ms": 80}); got != "slept" {
		t.Errorf("sleep returned %q", got)
	}
	if took := time.Since(start); took < 80*time.Millisecond || took > 80*time.Millisecond+hostileSlack {
		t.Errorf("time.Sleep(80ms) took %s", took)
	}
}
