package host

import (
	"bytes"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
)

// Guest logs (the log host function and stdout/stderr) fall under two
// budgets, both counted in records and bytes, empty records included: one
// per call (Limits.LogRecords, LogBytes) and one per Instance and minute
// (LogRecordsPerMinute, LogBytesPerMinute). What goes over is dropped and
// counted, never logged record by record: a guest in a loop of empty log
// calls must cost the host a counter increment per call, not a log line.

const truncMarker = " …[log truncated]"

// maxLine is the longest stdout/stderr line logged as one record; a longer
// one is split.
const maxLine = 4096

// logWindowLength is the period of an Instance's log budget.
const logWindowLength = time.Minute

// logTally counts one call's log records and bytes, logged and dropped.
type logTally struct {
	records, bytes               int
	droppedRecords, droppedBytes int
	// mutedUntil is the end of the Instance's log window once it refused a
	// record of this call: until then the call drops without asking again.
	mutedUntil time.Time
}

// callBudget returns the records and bytes one call may log. A long-running
// execution has none of its own: it never ends, and a per-call budget would
// silence it for good after its first few records.
func (cs *callState) callBudget() (records, bytes int) {
	if cs.command == abi.CommandLongRunningExecution {
		return math.MaxInt, math.MaxInt
	}
	return cs.lim.LogRecords, cs.lim.LogBytes
}

// callFull reports whether the call's own budget is used up.
func (cs *callState) callFull() bool {
	maxRecords, maxBytes := cs.callBudget()
	return cs.tally.records >= maxRecords || cs.tally.bytes >= maxBytes
}

// muted reports whether everything the guest logs now is dropped, so that
// stdout/stderr can be counted without being split into lines.
func (cs *callState) muted(now time.Time) bool {
	return cs.callFull() || now.Before(cs.tally.mutedUntil)
}

// drop counts records and bytes dropped by the call, and by the Instance's
// window when that is what mutes the call.
func (cs *callState) drop(now time.Time, records, n int) {
	cs.tally.droppedRecords += records
	cs.tally.droppedBytes += n
	if !cs.callFull() && now.Before(cs.tally.mutedUntil) {
		cs.inst.logw.dropped(records, n)
	}
}

// record logs one guest message within the budgets, truncating it with a
// marker to the bytes left.
func (cs *callState) record(level zerolog.Level, source string, msg []byte) {
	t := &cs.tally
	maxRecords, maxBytes := cs.callBudget()
	if t.records >= maxRecords || (len(msg) > 0 && t.bytes >= maxBytes) {
		t.droppedRecords++
		t.droppedBytes += len(msg)
		return
	}
	n := min(len(msg), maxBytes-t.bytes)
	if cs.inst != nil {
		now := time.Now()
		if now.Before(t.mutedUntil) {
			cs.drop(now, 1, len(msg))
			return
		}
		granted, until, ok := cs.inst.logw.admit(now, n)
		if !ok {
			t.mutedUntil = until
			cs.drop(now, 1, len(msg))
			return
		}
		n = granted
	}
	t.records++
	var text string
	if n < len(msg) {
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		t.droppedBytes += len(msg) - n
		text = string(msg[:n]) + truncMarker
	} else {
		text = string(msg)
	}
	t.bytes += n
	cs.log.WithLevel(level).Str("command", cs.command).Str("source", source).Msg(text)
}

// writeStream takes guest stdout (fd 1) or stderr (fd 2) bytes and logs
// whole lines. Once the call is muted the bytes are only counted: a guest
// writing gigabytes of newlines costs no scanning. On stderr it remembers
// the Go runtime's "panic: " or "fatal error: " line so the call's error can
// name it, muted or not.
func (cs *callState) writeStream(now time.Time, fd int, p []byte) {
	for len(p) > 0 {
		if cs.muted(now) {
			if fd == 2 {
				cs.watchPanic(p)
			}
			cs.drop(now, 0, len(cs.lines[fd])+len(p))
			cs.lines[fd] = cs.lines[fd][:0]
			return
		}
		i := bytes.IndexByte(p, '\n')
		pending := cs.lines[fd]
		switch {
		case i >= 0 && len(pending)+i <= maxLine:
			line := p[:i]
			if len(pending) > 0 {
				line = append(pending, line...)
			}
			cs.streamLine(fd, line)
			cs.lines[fd] = pending[:0]
			p = p[i+1:]
		case i < 0 && len(pending)+len(p) <= maxLine:
			cs.lines[fd] = append(pending, p...)
			p = nil
		default: // a line longer than maxLine: log its first maxLine bytes
			k := maxLine - len(pending)
			cs.streamLine(fd, append(pending, p[:k]...))
			cs.lines[fd] = pending[:0]
			p = p[k:]
			if fd == 2 {
				cs.stderrMidLine = true
			}
			continue
		}
		if fd == 2 {
			cs.stderrMidLine = len(cs.lines[2]) > 0
		}
	}
}

func (cs *callState) streamLine(fd int, line []byte) {
	level, source := zerolog.InfoLevel, "stdout"
	if fd == 2 {
		level, source = zerolog.WarnLevel, "stderr"
		if cs.panicLine == "" && isPanicLine(line) {
			cs.panicLine = string(line)
		}
	}
	cs.record(level, source, line)
}

var panicPrefixes = [...][]byte{[]byte("panic: "), []byte("fatal error: ")}

func isPanicLine(b []byte) bool {
	for _, p := range panicPrefixes {
		if bytes.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// watchPanic finds the Go runtime's panic line in muted stderr at the cost
// of looking at the start and end of each write: the runtime writes
// "panic: " as a write of its own at the start of a line, then the rest of
// the line in further writes.
func (cs *callState) watchPanic(p []byte) {
	switch {
	case cs.panicLine != "":
	case cs.panicBuf != nil:
		i := bytes.IndexByte(p[:min(len(p), maxLine-len(cs.panicBuf))], '\n')
		if i < 0 {
			i = min(len(p), maxLine-len(cs.panicBuf))
		}
		cs.panicBuf = append(cs.panicBuf, p[:i]...)
		if i < len(p) || len(cs.panicBuf) >= maxLine {
			cs.panicLine, cs.panicBuf = string(cs.panicBuf), nil
		}
	case !cs.stderrMidLine && isPanicLine(p):
		cs.panicBuf = []byte{}
		cs.watchPanic(p)
	}
	cs.stderrMidLine = p[len(p)-1] != '\n'
}

// finish flushes partial output lines and reports what the call dropped,
// in one line.
func (cs *callState) finish() {
	for fd := 1; fd <= 2; fd++ {
		if len(cs.lines[fd]) > 0 {
			cs.streamLine(fd, cs.lines[fd])
			cs.lines[fd] = nil
		}
	}
	if t := cs.tally; t.droppedRecords > 0 || t.droppedBytes > 0 {
		maxRecords, maxBytes := cs.callBudget()
		ev := cs.log.Warn().Str("command", cs.command).
			Int("dropped_records", t.droppedRecords).Int("dropped_bytes", t.droppedBytes)
		if maxRecords < math.MaxInt {
			ev = ev.Int("limit_records", maxRecords).Int("limit_bytes", maxBytes)
		}
		ev.Msg("guest log truncated: records over the log budget dropped (stdout/stderr past the budget counted in bytes only)")
	}
}

// logWindow is an Instance's log budget over time, shared by all its module
// instances and calls: LogRecordsPerMinute records and LogBytesPerMinute
// bytes per fixed window of logWindowLength.
type logWindow struct {
	maxRecords, maxBytes int
	length               time.Duration
	log                  zerolog.Logger

	mu             sync.Mutex
	start          time.Time
	records, bytes int
	// report logs the window's drops when it ends; nil while there are none.
	report *time.Timer
	closed bool

	droppedRecords, droppedBytes atomic.Int64
}

func newLogWindow(lim Limits, log zerolog.Logger) *logWindow {
	return &logWindow{maxRecords: lim.LogRecordsPerMinute, maxBytes: lim.LogBytesPerMinute, length: logWindowLength, log: log}
}

// admit charges a record of up to want bytes to the current window. It
// returns the bytes granted, or ok false when the window is used up, and
// the window's end either way.
func (w *logWindow) admit(now time.Time, want int) (granted int, until time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= w.length {
		w.start, w.records, w.bytes = now, 0, 0
	}
	until = w.start.Add(w.length)
	if w.records >= w.maxRecords || (want > 0 && w.bytes >= w.maxBytes) {
		if w.report == nil && !w.closed {
			w.report = time.AfterFunc(until.Sub(now), w.flush)
		}
		return 0, until, false
	}
	granted = min(want, w.maxBytes-w.bytes)
	w.records++
	w.bytes += granted
	return granted, until, true
}

// dropped counts what the window refused.
func (w *logWindow) dropped(records, n int) {
	w.droppedRecords.Add(int64(records))
	w.droppedBytes.Add(int64(n))
}

// flush logs, in one line, what was dropped since the last report.
func (w *logWindow) flush() {
	w.mu.Lock()
	w.report = nil
	w.mu.Unlock()
	records, n := w.droppedRecords.Swap(0), w.droppedBytes.Swap(0)
	if records == 0 && n == 0 {
		return
	}
	w.log.Warn().Int64("dropped_records", records).Int64("dropped_bytes", n).
		Int("limit_records_per_minute", w.maxRecords).Int("limit_bytes_per_minute", w.maxBytes).
		Msg("guest log over the instance's per-minute budget: records dropped")
}

// close reports what is left to report, at once.
func (w *logWindow) close() {
	w.mu.Lock()
	w.closed = true
	if w.report != nil {
		w.report.Stop()
	}
	w.mu.Unlock()
	w.flush()
}
