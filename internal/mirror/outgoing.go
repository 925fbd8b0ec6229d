package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/backoff"
	"github.com/connhost/connhost/internal/store"
)

// outboxBatch is how many due incidents one delivery round takes.
const outboxBatch = 100

// DeliverOutbox sends every due outgoing update now, one
// update-remote-system per incident (coalescing all its pending changes),
// incidents in parallel up to the concurrency bound. It returns how many
// were delivered. Failures are retried later with exponential back-off.
func (e *Engine) DeliverOutbox(ctx context.Context) (int, error) {
	delivered := 0
	for {
		due, err := e.st.Outbox(ctx, e.now(), outboxBatch)
		if err != nil {
			return delivered, err
		}
		if depth, err := e.st.OutboxLen(ctx); err == nil {
			e.m.outbox.Set(float64(depth))
		}
		if len(due) == 0 {
			return delivered, nil
		}
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			sem = make(chan struct{}, e.opts.Concurrency)
		)
		for _, inc := range due {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ok := e.deliver(ctx, inc)
				mu.Lock()
				if ok {
					delivered++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return delivered, ctx.Err()
		}
	}
}

// deliver sends one incident's pending changes and records the outcome.
func (e *Engine) deliver(ctx context.Context, inc store.Incident) bool {
	name := inc.DbotMirrorInstance
	t, ok := e.ins.Target(ctx, name)
	if !ok {
		e.retry(ctx, inc.ID, fmt.Errorf("instance %q is not enabled", name))
		return false
	}
	if ok, why := ConfigOf(t.Instance, t.Manifest).MirrorsOut(t.Manifest); !ok {
		// Kept for when it does again; said, since nothing else will.
		err := fmt.Errorf("instance %q does not mirror outgoing: %s", name, why)
		e.log.Warn().Err(err).Str("instance", name).Str("incident", inc.ID).Msg("outgoing mirror update held")
		e.retry(ctx, inc.ID, err)
		return false
	}
	args, fields, cursor, err := e.outgoingArgs(ctx, t, inc)
	if err != nil {
		e.retry(ctx, inc.ID, err)
		return false
	}
	if args.IncidentChanged || len(args.Entries) > 0 || args.IncStatus == abi.StatusDone {
		if _, err := e.ins.Call(ctx, name, abi.CommandUpdateRemoteSystem, args); err != nil {
			e.m.errors.WithLabelValues(name, "out").Inc()
			e.log.Warn().Err(err).Str("instance", name).Str("incident", inc.ID).Str("command", abi.CommandUpdateRemoteSystem).Msg("outgoing mirror update failed; will retry")
			e.retry(ctx, inc.ID, err)
			return false
		}
	}
	if err := e.complete(ctx, inc.ID, fields, cursor); err != nil {
		e.log.Error().Err(err).Str("instance", name).Str("incident", inc.ID).Msg("recording a delivered mirror update failed; it will be sent again")
		return false
	}
	e.m.pushed.WithLabelValues(name).Inc()
	return true
}

// outgoingArgs builds update-remote-system's arguments: the delta of the
// dirty fields, the whole incident as data, and the entries since the last
// push that carry a mirror tag and did not come from the mirror. It also
// returns the pushed field values and the new entry cursor.
func (e *Engine) outgoingArgs(ctx context.Context, t Target, inc store.Incident) (abi.UpdateRemoteSystemArgs, map[string]any, string, error) {
	data := incidentData(inc)
	delta := map[string]any{}
	for _, f := range inc.DbotCurrentDirtyFields {
		delta[f] = data[f]
	}
	status := inc.Status
	closing := status == abi.StatusDone || status == abi.StatusArchive
	if closing && !ConfigOf(t.Instance, t.Manifest).CloseOut {
		// A local close stays local without close_out; other changes go.
		status = abi.StatusActive
		delete(delta, "closeReason")
		delete(delta, "closeNotes")
	}
	pushed := make(map[string]any, len(inc.DbotCurrentDirtyFields))
	for _, f := range inc.DbotCurrentDirtyFields {
		pushed[f] = data[f]
	}
	cursor := ""
	if inc.MirrorOut != nil {
		cursor = inc.MirrorOut.EntryCursor
	}
	tags := mirrorTags(t, inc)
	origin := store.OriginMirrorPrefix + t.Instance.Name
	var entries []abi.ServerEntry
	for {
		page, next, err := e.st.ListEntries(ctx, inc.ID, store.EntryQuery{After: cursor, Limit: 500})
		if err != nil {
			return abi.UpdateRemoteSystemArgs{}, nil, "", err
		}
		for _, en := range page {
			cursor = en.ID
			if en.Origin == origin || !slices.ContainsFunc(en.Tags, func(tag string) bool { return slices.Contains(tags, tag) }) {
				continue
			}
			entries = append(entries, en.ServerEntry())
		}
		if next == "" || len(page) == 0 {
			break
		}
	}
	return abi.UpdateRemoteSystemArgs{
		Data: data, Entries: entries, IncidentChanged: len(delta) > 0, RemoteIncidentID: inc.DbotMirrorID,
		IncStatus: status, Delta: delta,
	}, pushed, cursor, nil
}

// mirrorTags are the entry tags that select entries for mirroring out: the
// incident's dbotMirrorTags and the instance's comment, work-notes and file
// tags.
func mirrorTags(t Target, inc store.Incident) []string {
	tags := slices.Clone(inc.DbotMirrorTags)
	cfg := ConfigOf(t.Instance, t.Manifest)
	for _, tag := range []string{cfg.CommentTag, cfg.WorkNotesTag, cfg.FileTag} {
		if tag != "" {
			tags = append(tags, tag)
		}
	}
	return tags
}

// incidentData renders an incident as update-remote-system's data: its
// fields by XSOAR name, custom fields at the top level as XSOAR's
// delta and data carry them.
func incidentData(inc store.Incident) map[string]any {
	d := map[string]any{
		"id": inc.ID, "name": inc.Name, "type": inc.Type, "severity": inc.Severity, "status": inc.Status,
		"owner": inc.Owner, "details": inc.Details, "labels": inc.Labels, "closeReason": inc.CloseReason,
		"closeNotes": inc.CloseNotes, "dbotMirrorId": inc.DbotMirrorID,
	}
	if !inc.Occurred.IsZero() {
		d["occurred"] = inc.Occurred.Format(time.RFC3339Nano)
	}
	for k, v := range inc.CustomFields {
		if _, taken := d[k]; !taken {
			d[k] = v
		}
	}
	return d
}

// complete records a delivered update: pushed fields whose value did not
// change meanwhile are no longer dirty, the entry cursor advances, and the
// incident leaves the outbox unless something new came in.
func (e *Engine) complete(ctx context.Context, id string, pushed map[string]any, cursor string) error {
	inc, err := e.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		data := incidentData(*inc)
		keep := func(list []string) []string {
			return slices.DeleteFunc(slices.Clone(list), func(f string) bool {
				v, ok := pushed[f]
				return ok && sameJSON(v, data[f])
			})
		}
		inc.DbotCurrentDirtyFields = keep(inc.DbotCurrentDirtyFields)
		inc.DbotDirtyFields = keep(inc.DbotDirtyFields)
		if inc.MirrorOut == nil {
			inc.MirrorOut = &store.MirrorOut{}
		}
		inc.MirrorOut.Pending, inc.MirrorOut.EntryCursor = false, cursor
		inc.MirrorOut.Attempts, inc.MirrorOut.NextAttempt, inc.MirrorOut.LastError = 0, time.Time{}, ""
		inc.MirrorOut.LastPush = e.now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	// An entry added after the listing above is not lost: it sits after the
	// new cursor, so the incident goes back into the outbox.
	page, _, err := e.st.ListEntries(ctx, id, store.EntryQuery{After: cursor, Limit: 1})
	if err != nil || len(page) == 0 {
		return err
	}
	_, err = e.st.UpdateIncident(ctx, inc.ID, func(inc *store.Incident) error {
		inc.MirrorOut.Pending = true
		return nil
	})
	return err
}

// retry schedules the next delivery attempt with jittered exponential
// back-off: when a remote comes back, the incidents queued for it do not
// all retry in the same instant.
func (e *Engine) retry(ctx context.Context, id string, cause error) {
	_, err := e.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		if inc.MirrorOut == nil {
			inc.MirrorOut = &store.MirrorOut{}
		}
		mo := inc.MirrorOut
		mo.Attempts++
		mo.NextAttempt = e.now().Add(backoff.Delay(e.opts.RetryBase, e.opts.RetryMax, mo.Attempts)).UTC()
		mo.LastError = cause.Error()
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).Str("incident", id).Msg("recording an outbox retry failed")
	}
}

func sameJSON(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
