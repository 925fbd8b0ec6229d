package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	sdk "github.com/connhost/connhost/sdk-guest"
)

// ledger is what this connector remembers between calls, in the instance's
// integration context (module instances run in parallel, so nothing durable
// lives in guest memory). It is the origin metadata of the loop guards:
// the peer ids this instance itself created, so that they never come back.
type ledger struct {
	// Closed maps a peer incident id to when a close entry was reported
	// for it, so that a later reopen is recognised.
	Closed map[string]time.Time `json:"closed,omitempty"`
	// Posted maps a peer incident id to local entry id → the peer entry
	// this connector posted for it: re-delivered updates do not post twice,
	// and get-remote-data does not bring our own posts back.
	Posted map[string]map[string]record `json:"posted,omitempty"`
	// Created maps a local incident id to the peer incident created for
	// it by update-remote-system: a retried create reuses it, and fetch
	// never fetches it back.
	Created map[string]record `json:"created,omitempty"`
}

// record is a peer object this connector made, and when. A post is
// recorded before it is sent, with Remote empty and Sum set: until the
// answer names the peer entry, get-remote-data knows it by its contents, so
// an incoming cycle running while the post is in flight does not bring it
// back.
type record struct {
	Remote string    `json:"remote"`
	At     time.Time `json:"at"`
	Sum    string    `json:"sum,omitempty"`
}

// ledgerKey is the integration context key of the ledger; other keys are
// left alone.
const ledgerKey = "connhost_peer"

// ledgerTTL is how long ledger records are kept. Entries are only compared
// with peer entries newer than the incident's last sync, and creations with
// incidents newer than the last fetch, both far younger in a healthy setup.
const ledgerTTL = 30 * 24 * time.Hour

// contextAttempts bounds retries when another module instance wrote the
// context between our read and write.
const contextAttempts = 10

func decodeLedger(v map[string]any) (ledger, error) {
	var l ledger
	raw, ok := v[ledgerKey]
	if !ok {
		return l, nil
	}
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, &l)
	}
	if err != nil {
		return l, fmt.Errorf("integration context %s: %w", ledgerKey, err)
	}
	return l, nil
}

// readLedger returns the ledger without writing.
func readLedger(ctx context.Context, h *sdk.Host) (ledger, error) {
	v, _, err := h.IntegrationContext(ctx)
	if err != nil {
		return ledger{}, err
	}
	return decodeLedger(v)
}

// updateLedger reads the ledger, lets fn change it and writes it back with
// the version read, from a fresh read when another writer won the race. fn
// reports whether it changed anything; nothing is written otherwise. fn may
// run several times and must not have other side effects.
func updateLedger(ctx context.Context, h *sdk.Host, fn func(*ledger) bool) error {
	for range contextAttempts {
		v, ver, err := h.IntegrationContext(ctx)
		if err != nil {
			return err
		}
		l, err := decodeLedger(v)
		if err != nil {
			return err
		}
		if !fn(&l) {
			return nil
		}
		l.prune(now())
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		v[ledgerKey] = m
		_, err = h.SetIntegrationContext(ctx, v, ver)
		if !errors.Is(err, sdk.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("integration context %s: still conflicting after %d attempts: %w", ledgerKey, contextAttempts, sdk.ErrConflict)
}

// prune drops records older than ledgerTTL.
func (l *ledger) prune(t time.Time) {
	cut := t.Add(-ledgerTTL)
	for id, at := range l.Closed {
		if at.Before(cut) {
			delete(l.Closed, id)
		}
	}
	for id, es := range l.Posted {
		for local, r := range es {
			if r.At.Before(cut) {
				delete(es, local)
			}
		}
		if len(es) == 0 {
			delete(l.Posted, id)
		}
	}
	for local, r := range l.Created {
		if r.At.Before(cut) {
			delete(l.Created, local)
		}
	}
}

// createdRemote reports whether peer incident id was created by this
// instance.
func (l ledger) createdRemote(id string) bool {
	for _, r := range l.Created {
		if r.Remote == id {
			return true
		}
	}
	return false
}

// postedRemote returns the set of peer entry ids this instance posted to
// peer incident id, and the contents sums of posts still in flight.
func (l ledger) postedRemote(id string) (ids, inFlight map[string]bool) {
	ids, inFlight = map[string]bool{}, map[string]bool{}
	for _, r := range l.Posted[id] {
		if r.Remote != "" {
			ids[r.Remote] = true
		} else if r.Sum != "" {
			inFlight[r.Sum] = true
		}
	}
	return ids, inFlight
}

// contentsSum identifies an entry's contents for the in-flight records.
func contentsSum(contents any) string {
	b, _ := json.Marshal(contents)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
