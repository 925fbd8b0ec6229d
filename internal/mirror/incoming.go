package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// ErrBusy is returned when an incoming cycle of the instance is already
// running.
var ErrBusy = errors.New("an incoming mirroring cycle of this instance is running")

// ErrNotMirroring is returned for an instance that is not enabled or does
// not mirror in the requested direction.
var ErrNotMirroring = errors.New("instance does not mirror incoming")

// Keys of the last mirror run the engine keeps per instance.
const (
	runLastUpdate = "last_update"
	runPending    = "pending"
)

// CycleReport sums up one incoming cycle.
type CycleReport struct {
	Instance string `json:"instance"`
	// Mode is "modified" (get-modified-remote-data) or "all" (fallback
	// after not_implemented).
	Mode      string        `json:"mode"`
	Candidate int           `json:"candidates"`
	Synced    int           `json:"synced"`
	Skipped   int           `json:"skipped"`
	Failed    int           `json:"failed"`
	Entries   int           `json:"entries"`
	Stopped   abi.ErrorKind `json:"stoppedBy,omitempty"` // rate_limited or skip_update
	Pending   []string      `json:"pending,omitempty"`   // remote ids to resume from
	Duration  time.Duration `json:"duration"`
}

// RunIncoming runs one incoming mirroring cycle of an instance now.
func (e *Engine) RunIncoming(ctx context.Context, instance string) (CycleReport, error) {
	rep := CycleReport{Instance: instance}
	t, ok := e.ins.Target(ctx, instance)
	if !ok || !mirrorsIn(t) {
		return rep, fmt.Errorf("instance %q: %w", instance, ErrNotMirroring)
	}
	e.mu.Lock()
	if e.cycling[instance] {
		e.mu.Unlock()
		return rep, fmt.Errorf("instance %q: %w", instance, ErrBusy)
	}
	e.cycling[instance] = true
	e.mu.Unlock()
	defer func() { e.mu.Lock(); delete(e.cycling, instance); e.mu.Unlock() }()

	start := e.now()
	rep, err := e.cycle(ctx, t, start)
	rep.Duration = e.now().Sub(start)
	e.record(instance, rep, err)
	return rep, err
}

func (e *Engine) cycle(ctx context.Context, t Target, start time.Time) (CycleReport, error) {
	name := t.Instance.Name
	rep := CycleReport{Instance: name, Mode: "modified"}
	run, err := e.st.LastMirrorRun(ctx, t.Instance.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return rep, err
	}
	lastUpdate := t.Instance.Created
	if s, ok := run[runLastUpdate].(string); ok {
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			lastUpdate = ts
		}
	}
	var pending []string
	if p, ok := run[runPending].([]any); ok {
		for _, v := range p {
			if s, ok := v.(string); ok {
				pending = append(pending, s)
			}
		}
	}

	var remoteIDs []string
	raw, err := e.ins.Call(ctx, name, abi.CommandGetModifiedRemoteData, abi.GetModifiedRemoteDataArgs{LastUpdate: lastUpdate.UTC().Format(time.RFC3339Nano)})
	switch kind := kindOf(err); kind {
	case "":
		var res abi.GetModifiedRemoteDataResponse
		if err := json.Unmarshal(raw, &res); err != nil {
			return rep, fmt.Errorf("instance %q command %s: result: %w", name, abi.CommandGetModifiedRemoteData, err)
		}
		remoteIDs = res.ModifiedIncidentIDs
	case abi.KindNotImplemented:
		rep.Mode = "all"
		err := e.st.MirroredIncidents(ctx, name, func(inc store.Incident) error {
			if !inc.MirrorPurged {
				remoteIDs = append(remoteIDs, inc.DbotMirrorID)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	case abi.KindRateLimited, abi.KindSkipUpdate:
		rep.Stopped = kind
		rep.Pending = pending
		return rep, nil
	default:
		return rep, err
	}

	ids := dedup(append(pending, remoteIDs...))
	rep.Candidate = len(ids)
	rest, err := e.syncMany(ctx, t, ids, &rep)
	if err != nil {
		return rep, err
	}
	rep.Pending = rest
	next := map[string]any{runLastUpdate: start.UTC().Format(time.RFC3339Nano)}
	if len(rest) > 0 {
		next[runPending] = rest
	}
	if err := e.st.SetLastMirrorRun(ctx, t.Instance.ID, next); err != nil {
		return rep, err
	}
	e.log.Info().Str("instance", name).Str("mode", rep.Mode).Int("candidates", rep.Candidate).Int("synced", rep.Synced).
		Int("entries", rep.Entries).Int("failed", rep.Failed).Str("stopped_by", string(rep.Stopped)).Msg("incoming mirroring cycle")
	return rep, nil
}

// kindOf is the error kind of a command failure after XSOAR's sentinel
// rule, so "API rate limit" in a plain error stops the cycle as
// rate_limited does.
func kindOf(err error) abi.ErrorKind {
	var e *abi.Error
	if errors.As(err, &e) {
		return abi.Normalize(e).Kind
	}
	return abi.KindOf(err)
}

func dedup(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// fetched is the outcome of one get-remote-data call, waiting to be
// applied.
type fetched struct {
	inc     store.Incident
	res     abi.GetRemoteDataResponse
	started time.Time
}

// applyBatch is how many synced incidents are written per transaction: a
// durable write costs a disk flush, so a cycle over thousands of incidents
// batches them.
const applyBatch = 200

// applyLinger is how long a partial batch waits for more results.
const applyLinger = 20 * time.Millisecond

// syncMany runs get-remote-data for ids with bounded concurrency and applies
// the results in batches. When the remote rate-limits, it stops starting
// new calls and returns the ids not done, failed one first, so the next
// cycle resumes from there.
func (e *Engine) syncMany(ctx context.Context, t Target, ids []string, rep *CycleReport) ([]string, error) {
	var (
		stop      atomic.Bool
		mu        sync.Mutex
		notDone   = map[int]bool{}
		results   = make(chan fetched, applyBatch)
		next      atomic.Int64
		wg        sync.WaitGroup
		skipped   atomic.Int64
		failed    atomic.Int64
		stoppedBy atomic.Value
	)
	for w := 0; w < min(e.opts.Concurrency, len(ids)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				if stop.Load() || ctx.Err() != nil {
					mu.Lock()
					notDone[i] = true
					mu.Unlock()
					continue
				}
				f, skip, err := e.fetchOne(ctx, t, ids[i], nil)
				switch kind := kindOf(err); {
				case err == nil && skip:
					skipped.Add(1)
				case err == nil:
					results <- f
				case kind == abi.KindRateLimited || kind == abi.KindSkipUpdate:
					stoppedBy.CompareAndSwap(nil, kind)
					stop.Store(true)
					mu.Lock()
					notDone[i] = true
					mu.Unlock()
				default:
					failed.Add(1)
					e.m.errors.WithLabelValues(t.Instance.Name, "in").Inc()
					e.log.Warn().Err(err).Str("instance", t.Instance.Name).Str("remote_id", ids[i]).Str("command", abi.CommandGetRemoteData).Msg("get-remote-data failed")
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	var applyErr error
	batch := make([]fetched, 0, applyBatch)
	flush := func() {
		if len(batch) == 0 || applyErr != nil {
			batch = batch[:0]
			return
		}
		n, err := e.apply(ctx, t, batch)
		if err != nil {
			applyErr = err
			stop.Store(true)
		}
		rep.Synced += len(batch)
		rep.Entries += n
		batch = batch[:0]
	}
	// A batch is written when full, or when results pause, so a slow remote
	// does not hold finished work back.
	linger := time.NewTimer(time.Hour)
	defer linger.Stop()
collect:
	for {
		select {
		case f, ok := <-results:
			if !ok {
				break collect
			}
			batch = append(batch, f)
			if len(batch) == 1 {
				linger.Reset(applyLinger)
			}
			if len(batch) == applyBatch {
				flush()
			}
		case <-linger.C:
			flush()
		}
	}
	flush()
	rep.Skipped, rep.Failed = int(skipped.Load()), int(failed.Load())
	if k, ok := stoppedBy.Load().(abi.ErrorKind); ok {
		rep.Stopped = k
	}
	var rest []string
	for i, id := range ids {
		if notDone[i] {
			rest = append(rest, id)
		}
	}
	return rest, applyErr
}

// fetchOne runs get-remote-data for one remote id. skip reports an id with
// no local incident, or one whose sync record was purged. trace, when not
// nil, receives a line per step.
func (e *Engine) fetchOne(ctx context.Context, t Target, remoteID string, trace func(string, ...any)) (fetched, bool, error) {
	tr := func(format string, args ...any) {
		if trace != nil {
			trace(format, args...)
		}
	}
	inc, err := e.st.IncidentByMirrorID(ctx, t.Instance.Name, remoteID)
	if errors.Is(err, store.ErrNotFound) {
		tr("remote id %q: no local incident mirrored by %q: skipped", remoteID, t.Instance.Name)
		return fetched{}, true, nil
	}
	if err != nil {
		return fetched{}, false, err
	}
	if inc.MirrorPurged {
		tr("incident %s: sync record purged: skipped", inc.ID)
		return fetched{}, true, nil
	}
	last := inc.DbotMirrorLastSync
	if last.IsZero() {
		last = inc.Created
	}
	started := e.now()
	args := abi.GetRemoteDataArgs{RemoteIncidentID: remoteID, LastUpdate: last.UTC().Format(time.RFC3339Nano)}
	tr("incident %s: get-remote-data remote_incident_id=%q last_update=%s", inc.ID, remoteID, args.LastUpdate)
	raw, err := e.ins.Call(ctx, t.Instance.Name, abi.CommandGetRemoteData, args)
	if err != nil {
		tr("incident %s: get-remote-data failed: %v", inc.ID, err)
		return fetched{}, false, err
	}
	var res abi.GetRemoteDataResponse
	if err := json.Unmarshal(raw, &res); err != nil {
		tr("incident %s: malformed result: %v", inc.ID, err)
		return fetched{}, false, abi.Errorf(abi.KindABIViolation, "instance %q command %s: result: %v", t.Instance.Name, abi.CommandGetRemoteData, err)
	}
	tr("incident %s: got %d mirrored fields and %d entries", inc.ID, len(res.MirroredObject), len(res.Entries))
	return fetched{inc: inc, res: res, started: started}, false, nil
}

// Fields of a mirrored object that never overwrite the local incident: ids,
// mirror bookkeeping, and state that changes only through close and reopen
// entries.
var protectedFields = map[string]bool{
	"id": true, "version": true, "created": true, "modified": true, "status": true, "closed": true,
	"closeReason": true, "closeNotes": true, "sourceInstance": true, "sourceId": true,
	"dbotMirrorId": true, "dbotMirrorDirection": true, "dbotMirrorInstance": true, "dbotMirrorTags": true,
	"dbotDirtyFields": true, "dbotCurrentDirtyFields": true, "dbotMirrorLastSync": true,
	"mirrorOut": true, "mirrorPurged": true,
}

// apply writes a batch of get-remote-data results: ordinary entries of
// active incidents first (idempotently), then fields, close and reopen, and
// the sync time. It returns the number of entries added.
func (e *Engine) apply(ctx context.Context, t Target, batch []fetched) (int, error) {
	origin := store.OriginMirrorPrefix + t.Instance.Name
	var entries []store.Entry
	for _, f := range batch {
		if f.inc.Status != abi.StatusActive {
			continue
		}
		for _, en := range f.res.Entries {
			if isClose(en) || isReopen(en) {
				continue
			}
			se := store.EntryFromABI(f.inc.ID, origin, en)
			se.ExternalID = externalID(en)
			entries = append(entries, se)
		}
	}
	added := 0
	if len(entries) > 0 {
		out, err := e.st.AddEntries(ctx, entries)
		if err != nil {
			return 0, fmt.Errorf("instance %q: storing mirrored entries: %w", t.Instance.Name, err)
		}
		for _, en := range out {
			if en.New {
				added++
			}
		}
	}
	byID := make(map[string]fetched, len(batch))
	ids := make([]string, 0, len(batch))
	for _, f := range batch {
		byID[f.inc.ID] = f
		ids = append(ids, f.inc.ID)
	}
	err := e.st.UpdateIncidents(ctx, ids, func(inc *store.Incident) error {
		f := byID[inc.ID]
		applyFetched(inc, f, t.Instance.Settings.CloseIncident, e.now())
		return nil
	})
	if err != nil {
		return added, fmt.Errorf("instance %q: applying mirrored incidents: %w", t.Instance.Name, err)
	}
	return added, nil
}

// applyFetched changes inc as one get-remote-data result says. A closed
// incident takes only a reopen; fields apply to active and pending
// incidents, except those dirty locally.
func applyFetched(inc *store.Incident, f fetched, closeIncident bool, now time.Time) {
	inc.DbotMirrorLastSync = f.started.UTC()
	closed := inc.Status == abi.StatusDone || inc.Status == abi.StatusArchive
	reopen := slices.ContainsFunc(f.res.Entries, isReopen)
	if closed {
		if reopen {
			inc.Status, inc.Closed = abi.StatusActive, time.Time{}
		}
		return
	}
	for k, v := range f.res.MirroredObject {
		if protectedFields[k] || slices.Contains(inc.DbotDirtyFields, k) {
			continue
		}
		setField(inc, k, v)
	}
	if i := slices.IndexFunc(f.res.Entries, isClose); i >= 0 && closeIncident {
		c, _ := f.res.Entries[i].Contents.(map[string]any)
		inc.Status, inc.Closed = abi.StatusDone, now.UTC()
		inc.CloseReason, _ = c[abi.KeyCloseReason].(string)
		inc.CloseNotes, _ = c[abi.KeyCloseNotes].(string)
	}
}

// setField sets one incident field by its XSOAR name; names that are not
// incident fields, and the members of CustomFields, are custom fields.
func setField(inc *store.Incident, k string, v any) {
	switch k {
	case "name":
		if s, ok := v.(string); ok && s != "" {
			inc.Name = s
		}
	case "type":
		inc.Type, _ = v.(string)
	case "severity":
		if f, ok := v.(float64); ok {
			inc.Severity = f
		}
	case "owner":
		inc.Owner, _ = v.(string)
	case "details":
		inc.Details, _ = v.(string)
	case "rawJSON":
		inc.RawJSON, _ = v.(string)
	case "occurred":
		if s, ok := v.(string); ok {
			if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
				inc.Occurred = ts.UTC()
			}
		}
	case "labels":
		var labels []abi.Label
		if b, err := json.Marshal(v); err == nil && json.Unmarshal(b, &labels) == nil {
			inc.Labels = labels
		}
	case "CustomFields":
		m, _ := v.(map[string]any)
		for ck, cv := range m {
			if !slices.Contains(inc.DbotDirtyFields, ck) {
				setCustom(inc, ck, cv)
			}
		}
	default:
		setCustom(inc, k, v)
	}
}

func setCustom(inc *store.Incident, k string, v any) {
	if v == nil {
		delete(inc.CustomFields, k)
		return
	}
	if inc.CustomFields == nil {
		inc.CustomFields = map[string]any{}
	}
	if !reflect.DeepEqual(inc.CustomFields[k], v) {
		inc.CustomFields[k] = v
	}
}

func contentsFlag(en abi.Entry, key string) bool {
	c, ok := en.Contents.(map[string]any)
	if !ok {
		return false
	}
	b, _ := c[key].(bool)
	return b
}

func isClose(en abi.Entry) bool  { return contentsFlag(en, abi.KeyIncidentClose) }
func isReopen(en abi.Entry) bool { return contentsFlag(en, abi.KeyIncidentReopen) }

// externalID is the idempotency key of a mirrored entry: the remote's id,
// or a digest of what the entry says.
func externalID(en abi.Entry) string {
	if en.ID != "" {
		return "id:" + en.ID
	}
	b, _ := json.Marshal([]any{en.Type, en.ContentsFormat, en.Tags, en.Note, en.Contents})
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:16])
}
