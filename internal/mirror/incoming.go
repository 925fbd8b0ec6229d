package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
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
	t, err := e.notMirroringIn(ctx, instance)
	if err != nil {
		return rep, err
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
	rep, err = e.cycle(ctx, t, start)
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
					mu.Lock()
					notDone[i] = true
					mu.Unlock()
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
		n, _, err := e.apply(ctx, t, batch)
		if err != nil {
			applyErr = err
			stop.Store(true)
			batch = batch[:0]
			return
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
	tr("incident %s: get-remote-data remote_incident_id=%q last_update=%s (changes the remote made before it are not asked for)", inc.ID, remoteID, args.LastUpdate)
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

// applied is what applying one get-remote-data result did, and why each
// entry or field it did not apply was left out.
type applied struct {
	Reopened, Closed bool
	// Entries counts the entries added.
	Entries int
	// Fields are the fields set, by the name the connector sent.
	Fields []string
	// NotApplied gives a reason per entry or field left out.
	NotApplied []string
}

// apply writes a batch of get-remote-data results in one transaction: per
// incident a reopen first, then the update's entries (idempotently), its
// fields and a close, and the sync time. An update is applied whole or,
// when the write fails, not at all, sync time included. It returns the
// number of entries added and what happened per incident id.
func (e *Engine) apply(ctx context.Context, t Target, batch []fetched) (int, map[string]*applied, error) {
	origin := store.OriginMirrorPrefix + t.Instance.Name
	cfg := ConfigOf(t.Instance, t.Manifest)
	byID := make(map[string]fetched, len(batch))
	ids := make([]string, 0, len(batch))
	for _, f := range batch {
		if _, dup := byID[f.inc.ID]; !dup {
			ids = append(ids, f.inc.ID)
		}
		byID[f.inc.ID] = f
	}
	outcomes := make(map[string]*applied, len(ids))
	now := e.now()
	stored, err := e.st.ApplyMirrorUpdates(ctx, ids, func(inc *store.Incident) ([]store.Entry, error) {
		a := &applied{} // a conflict retry starts over
		outcomes[inc.ID] = a
		return applyFetched(inc, byID[inc.ID], origin, cfg, now, a), nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("instance %q: applying mirrored updates: %w", t.Instance.Name, err)
	}
	added := 0
	for id, entries := range stored {
		a := outcomes[id]
		for _, en := range entries {
			if en.New {
				a.Entries++
				continue
			}
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("entry %s: duplicate: already mirrored in as entry %s", entryName(en), en.ID))
		}
		added += a.Entries
	}
	return added, outcomes, nil
}

// entryName names a mirrored entry in a reason: its remote id, or its
// idempotency key.
func entryName(en store.Entry) string {
	if id, ok := strings.CutPrefix(en.ExternalID, "id:"); ok {
		return strconv.Quote(id)
	}
	return en.ExternalID
}

// applyFetched changes inc as one get-remote-data result says and returns
// the entries to add, recording in a why anything was left out. A reopen
// entry reopens a closed incident first, so the rest of the same update
// applies too; a closed incident takes nothing else. Entries go to active
// incidents only, fields to active and pending ones except those dirty
// locally, and a close entry closes the incident last, with close_incident
// on.
func applyFetched(inc *store.Incident, f fetched, origin string, cfg Config, now time.Time, a *applied) []store.Entry {
	inc.DbotMirrorLastSync = f.started.UTC()
	if slices.ContainsFunc(f.res.Entries, isReopen) {
		if isClosed(inc.Status) {
			inc.Status, inc.Closed = abi.StatusActive, time.Time{}
			a.Reopened = true
		} else {
			a.NotApplied = append(a.NotApplied, "reopen entry: the incident is not closed")
		}
	}
	if isClosed(inc.Status) {
		if n := len(f.res.Entries); n > 0 {
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("%d entries: the incident is closed and the update does not reopen it", n))
		}
		if n := len(f.res.MirroredObject); n > 0 {
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("fields %v: the incident is closed and the update does not reopen it", slices.Sorted(maps.Keys(f.res.MirroredObject))))
		}
		return nil
	}
	var entries []store.Entry
	for i, en := range f.res.Entries {
		if isClose(en) || isReopen(en) {
			continue
		}
		if inc.Status != abi.StatusActive {
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("entry %d: the incident is pending; entries mirror into active incidents only", i))
			continue
		}
		se := store.EntryFromABI(inc.ID, origin, en)
		se.ExternalID = externalID(en)
		entries = append(entries, se)
	}
	for _, k := range slices.Sorted(maps.Keys(f.res.MirroredObject)) {
		switch {
		case protectedFields[k]:
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("field %s: set by the host, never by the remote", k))
		case slices.Contains(inc.DbotDirtyFields, k):
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("field %s: dirty: changed locally and not yet delivered out", k))
		default:
			if why := setField(inc, k, f.res.MirroredObject[k]); why != "" {
				a.NotApplied = append(a.NotApplied, fmt.Sprintf("field %s: %s", k, why))
			} else {
				a.Fields = append(a.Fields, k)
			}
		}
	}
	if i := slices.IndexFunc(f.res.Entries, isClose); i >= 0 {
		if cfg.CloseIncident {
			c, _ := f.res.Entries[i].Contents.(map[string]any)
			inc.Status, inc.Closed = abi.StatusDone, now.UTC()
			inc.CloseReason, _ = c[abi.KeyCloseReason].(string)
			inc.CloseNotes, _ = c[abi.KeyCloseNotes].(string)
			a.Closed = true
		} else {
			a.NotApplied = append(a.NotApplied, fmt.Sprintf("close entry: %s is off", cfg.Source[ParamCloseIncident]))
		}
	}
	return entries
}

func isClosed(s abi.IncidentStatus) bool { return s == abi.StatusDone || s == abi.StatusArchive }

// setField sets one incident field by its XSOAR name; names that are not
// incident fields, and the members of CustomFields, are custom fields. It
// returns why a value was not set, or "".
func setField(inc *store.Incident, k string, v any) string {
	bad := func(want string) string { return fmt.Sprintf("want %s, got %s", want, jsonType(v)) }
	switch k {
	case "name":
		s, ok := v.(string)
		if !ok || s == "" {
			return bad("a non-empty string")
		}
		inc.Name = s
	case "type", "owner", "details", "rawJSON":
		s, ok := v.(string)
		if !ok && v != nil {
			return bad("a string")
		}
		switch k {
		case "type":
			inc.Type = s
		case "owner":
			inc.Owner = s
		case "details":
			inc.Details = s
		default:
			inc.RawJSON = s
		}
	case "severity":
		f, ok := v.(float64)
		if !ok {
			return bad("a number")
		}
		inc.Severity = f
	case "occurred":
		s, _ := v.(string)
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad("an RFC 3339 time")
		}
		inc.Occurred = ts.UTC()
	case "labels":
		var labels []abi.Label
		b, err := json.Marshal(v)
		if err != nil || json.Unmarshal(b, &labels) != nil {
			return bad("a list of {type, value}")
		}
		inc.Labels = labels
	case "CustomFields":
		m, ok := v.(map[string]any)
		if !ok && v != nil {
			return bad("an object")
		}
		var dirty []string
		for ck, cv := range m {
			if slices.Contains(inc.DbotDirtyFields, ck) {
				dirty = append(dirty, ck)
				continue
			}
			setCustom(inc, ck, cv)
		}
		if len(dirty) > 0 {
			slices.Sort(dirty)
			return fmt.Sprintf("members %v dirty: changed locally and not yet delivered out; the others applied", dirty)
		}
	default:
		setCustom(inc, k, v)
	}
	return ""
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a bool"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
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
