package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// Stats are an instance's mirroring statistics (XSOAR getMirrorStatistics).
type Stats struct {
	Instance      string        `json:"instance"`
	Mirrored      int           `json:"mirrored"` // incidents mirrored by the instance
	Closed        int           `json:"closedRecords"`
	Purged        int           `json:"purgedRecords"`
	Cycles        int           `json:"cycles"`
	RateLimited   int           `json:"rateLimited"`
	SkipUpdate    int           `json:"skipUpdate"`
	Errors        int           `json:"errors"`
	LastRun       time.Time     `json:"lastRun,omitzero"`
	LastDuration  time.Duration `json:"lastDuration"`
	LastError     string        `json:"lastError,omitempty"`
	LastReport    *CycleReport  `json:"lastReport,omitempty"`
	OutboxPending int           `json:"outboxPending"`
}

// record keeps a cycle's outcome in the instance's statistics.
func (e *Engine) record(instance string, rep CycleReport, err error) {
	outcome := "ok"
	e.mu.Lock()
	s := e.stats[instance]
	if s == nil {
		s = &Stats{Instance: instance}
		e.stats[instance] = s
	}
	s.Cycles++
	s.LastRun, s.LastDuration, s.LastError = e.now().UTC(), rep.Duration, ""
	r := rep
	s.LastReport = &r
	switch {
	case err != nil:
		s.Errors++
		s.LastError = err.Error()
		outcome = "error"
	case rep.Stopped == abi.KindRateLimited:
		s.RateLimited++
		outcome = string(rep.Stopped)
	case rep.Stopped == abi.KindSkipUpdate:
		s.SkipUpdate++
		outcome = string(rep.Stopped)
	}
	e.mu.Unlock()
	e.m.cycles.WithLabelValues(instance, outcome).Inc()
	e.m.duration.WithLabelValues(instance).Observe(rep.Duration.Seconds())
}

// Stats returns an instance's mirroring statistics, counting its mirrored
// incidents from the store.
func (e *Engine) Stats(ctx context.Context, instance string) (Stats, error) {
	e.mu.Lock()
	s := Stats{Instance: instance}
	if cur := e.stats[instance]; cur != nil {
		s = *cur
	}
	e.mu.Unlock()
	err := e.st.MirroredIncidents(ctx, instance, func(inc store.Incident) error {
		s.Mirrored++
		if inc.Status == abi.StatusDone || inc.Status == abi.StatusArchive {
			s.Closed++
		}
		if inc.MirrorPurged {
			s.Purged++
		}
		if inc.OutboxPending() {
			s.OutboxPending++
		}
		return nil
	})
	return s, err
}

// SyncRecord is one mirrored incident's sync state (XSOAR
// getSyncMirrorRecords).
type SyncRecord struct {
	IncidentID  string             `json:"incidentId"`
	Instance    string             `json:"instance"`
	RemoteID    string             `json:"remoteId"`
	Direction   string             `json:"direction"`
	Status      abi.IncidentStatus `json:"status"`
	LastSync    time.Time          `json:"lastSync,omitzero"`
	DirtyFields []string           `json:"dirtyFields,omitempty"`
	Outgoing    *store.MirrorOut   `json:"outgoing,omitempty"`
	Purged      bool               `json:"purged,omitempty"`
}

func syncRecord(inc store.Incident) SyncRecord {
	return SyncRecord{
		IncidentID: inc.ID, Instance: inc.DbotMirrorInstance, RemoteID: inc.DbotMirrorID,
		Direction: inc.DbotMirrorDirection, Status: inc.Status, LastSync: inc.DbotMirrorLastSync,
		DirtyFields: inc.DbotDirtyFields, Outgoing: inc.MirrorOut, Purged: inc.MirrorPurged,
	}
}

// SyncRecord returns the sync record of one incident.
func (e *Engine) SyncRecord(ctx context.Context, incidentID string) (SyncRecord, error) {
	inc, err := e.st.GetIncident(ctx, incidentID)
	if err != nil {
		return SyncRecord{}, fmt.Errorf("incident %q: %w", incidentID, err)
	}
	if inc.DbotMirrorID == "" {
		return SyncRecord{}, fmt.Errorf("incident %q is not mirrored: %w", incidentID, store.ErrNotFound)
	}
	return syncRecord(inc), nil
}

// SyncRecords returns up to limit sync records of an instance.
func (e *Engine) SyncRecords(ctx context.Context, instance string, limit int) ([]SyncRecord, error) {
	var out []SyncRecord
	errFull := errors.New("full")
	err := e.st.MirroredIncidents(ctx, instance, func(inc store.Incident) error {
		if len(out) == limit {
			return errFull
		}
		out = append(out, syncRecord(inc))
		return nil
	})
	if errors.Is(err, errFull) {
		err = nil
	}
	return out, err
}

// PurgeClosed stops mirroring the instance's incidents that were closed
// more than olderThan ago (XSOAR purgeClosedSyncMirrorRecords) and returns
// how many it purged. A purged incident gets no more incoming updates, not
// even a reopen.
func (e *Engine) PurgeClosed(ctx context.Context, instance string, olderThan time.Duration) (int, error) {
	cutoff := e.now().Add(-olderThan)
	var ids []string
	err := e.st.MirroredIncidents(ctx, instance, func(inc store.Incident) error {
		closed := inc.Status == abi.StatusDone || inc.Status == abi.StatusArchive
		if closed && !inc.MirrorPurged && !inc.Closed.After(cutoff) {
			ids = append(ids, inc.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for start := 0; start < len(ids); start += applyBatch {
		batch := ids[start:min(start+applyBatch, len(ids))]
		if err := e.st.UpdateIncidents(ctx, batch, func(inc *store.Incident) error {
			inc.MirrorPurged = true
			return nil
		}); err != nil {
			return start, err
		}
	}
	e.log.Info().Str("instance", instance).Int("purged", len(ids)).Dur("older_than_ms", olderThan).Msg("purged closed mirror records")
	return len(ids), nil
}

// Debug runs get-remote-data for one mirrored incident now, applies it, and
// returns a log of every step (XSOAR triggerDebugMirroringRun).
func (e *Engine) Debug(ctx context.Context, incidentID string) ([]string, error) {
	var steps []string
	trace := func(format string, args ...any) {
		steps = append(steps, e.now().UTC().Format(time.RFC3339Nano)+" "+fmt.Sprintf(format, args...))
	}
	inc, err := e.st.GetIncident(ctx, incidentID)
	if err != nil {
		return nil, fmt.Errorf("incident %q: %w", incidentID, err)
	}
	if inc.DbotMirrorID == "" {
		return nil, fmt.Errorf("incident %q is not mirrored: %w", incidentID, store.ErrNotFound)
	}
	lastSync := "never"
	if !inc.DbotMirrorLastSync.IsZero() {
		lastSync = inc.DbotMirrorLastSync.Format(time.RFC3339Nano)
	}
	trace("incident %s: mirrored by %q as remote id %q, direction %q, last sync %s, dirty fields %v",
		inc.ID, inc.DbotMirrorInstance, inc.DbotMirrorID, inc.DbotMirrorDirection, lastSync, inc.DbotDirtyFields)
	t, err := e.notMirroringIn(ctx, inc.DbotMirrorInstance)
	if err != nil {
		trace("%v: stop", err)
		return steps, nil
	}
	f, skip, err := e.fetchOne(ctx, t, inc.DbotMirrorID, trace)
	if err != nil || skip {
		return steps, nil
	}
	n, outcomes, err := e.apply(ctx, t, []fetched{f})
	if err != nil {
		trace("apply failed, nothing stored, dbotMirrorLastSync not advanced: %v", err)
		return steps, nil
	}
	a := outcomes[inc.ID]
	after, _ := e.st.GetIncident(ctx, incidentID)
	trace("applied: %d new entries, fields %v, reopened %v, closed %v; status %d; dbotMirrorLastSync %s",
		n, a.Fields, a.Reopened, a.Closed, after.Status, after.DbotMirrorLastSync.Format(time.RFC3339Nano))
	for _, why := range a.NotApplied {
		trace("not applied: %s", why)
	}
	if inc.OutboxPending() || after.OutboxPending() {
		trace("an outgoing update is pending (attempts %d)", attemptsOf(after))
	}
	return steps, nil
}

func attemptsOf(inc store.Incident) int {
	if inc.MirrorOut == nil {
		return 0
	}
	return inc.MirrorOut.Attempts
}

// ErrPushQueueFull is returned when the push queue is full; the next cycle
// will pick the change up.
var ErrPushQueueFull = errors.New("mirror push queue is full")

// Push marks one remote incident of an instance as changed (a webhook from
// the remote, say): get-remote-data runs for it at once, without waiting
// for the next cycle. It returns once the push is queued.
func (e *Engine) Push(ctx context.Context, instance, remoteID string) error {
	if _, err := e.notMirroringIn(ctx, instance); err != nil {
		return err
	}
	if remoteID == "" {
		return fmt.Errorf("instance %q: remote incident id is required: %w", instance, store.ErrInvalid)
	}
	select {
	case e.push <- pushReq{instance: instance, remoteID: remoteID}:
		return nil
	default:
		return ErrPushQueueFull
	}
}

func (e *Engine) pushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-e.push:
			if err := e.pushOne(ctx, p); err != nil && ctx.Err() == nil {
				e.log.Warn().Err(err).Str("instance", p.instance).Str("remote_id", p.remoteID).Msg("pushed mirror update failed; the next cycle retries")
			}
		}
	}
}

func (e *Engine) pushOne(ctx context.Context, p pushReq) error {
	t, err := e.notMirroringIn(ctx, p.instance)
	if err != nil {
		return err
	}
	start := e.now()
	f, skip, err := e.fetchOne(ctx, t, p.remoteID, nil)
	if err != nil || skip {
		return err
	}
	if _, _, err := e.apply(ctx, t, []fetched{f}); err != nil {
		return err
	}
	e.m.pushLatency.Observe(e.now().Sub(start).Seconds())
	return nil
}

type metrics struct {
	cycles      *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	pushed      *prometheus.CounterVec
	outbox      prometheus.Gauge
	pushLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "connhost_mirror_cycles_total",
			Help: "Incoming mirroring cycles by instance and outcome (ok, error, rate_limited, skip_update)."}, []string{"instance", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connhost_mirror_cycle_seconds",
			Help: "Duration of incoming mirroring cycles.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"instance"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "connhost_mirror_errors_total",
			Help: "Failed mirroring calls by instance and direction (in, out)."}, []string{"instance", "direction"}),
		pushed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "connhost_mirror_outgoing_total",
			Help: "Outgoing mirror updates delivered, by instance."}, []string{"instance"}),
		outbox: prometheus.NewGauge(prometheus.GaugeOpts{Name: "connhost_mirror_outbox_depth",
			Help: "Incidents with an outgoing mirror update pending."}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "connhost_mirror_push_seconds",
			Help: "Time from a push to the remote change applied.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.cycles, m.duration, m.errors, m.pushed, m.outbox, m.pushLatency)
	}
	return m
}
