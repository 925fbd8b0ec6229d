package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// ChatMirror records that an incident is mirrored to a chat channel by a
// connector instance (XSOAR mirrorInvestigation). The server delivers the
// incident's new entries to the instance from Since on, and moves Cursor
// past each entry it delivered.
type ChatMirror struct {
	InstanceID string `json:"instanceId"`
	IncidentID string `json:"investigationId"`
	// Type is "all" or "chat": which entries are delivered.
	Type string `json:"mirror_type"`
	// Direction is "both", "FromDemisto" or "ToDemisto".
	Direction string    `json:"mirror_direction"`
	AutoClose bool      `json:"auto_close,omitempty"`
	Since     time.Time `json:"since"`
	// Cursor is the id of the last entry delivered; "" before the first.
	Cursor   string    `json:"cursor,omitempty"`
	Modified time.Time `json:"modified"`
}

func chatKey(instanceID, incidentID string) []byte { return key(pChat, instanceID, sep, incidentID) }

// PutChatMirror creates or replaces the mirror of (InstanceID, IncidentID).
// Replacing keeps the stored Since and Cursor, so re-mirroring does not
// deliver entries again. Both the instance and the incident must exist.
func (s *Store) PutChatMirror(ctx context.Context, m ChatMirror) (ChatMirror, error) {
	if err := errors.Join(checkPart("chat mirror", "instance id", m.InstanceID), checkPart("chat mirror", "incident id", m.IncidentID)); err != nil {
		return ChatMirror{}, err
	}
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := requireInstance(txn, m.InstanceID); err != nil {
			return err
		}
		if ok, err := exists(txn, incKey(m.IncidentID)); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("incident %s: %w", m.IncidentID, ErrNotFound))
		}
		now := s.now().UTC()
		var old ChatMirror
		switch err := getJSON(txn, chatKey(m.InstanceID, m.IncidentID), &old); {
		case err == nil:
			m.Since, m.Cursor = old.Since, old.Cursor
		case errors.Is(err, ErrNotFound):
			if m.Since.IsZero() {
				m.Since = now
			}
		default:
			return err
		}
		m.Modified = now
		return setJSON(txn, chatKey(m.InstanceID, m.IncidentID), m)
	})
	if err != nil {
		return ChatMirror{}, fmt.Errorf("mirror incident %s to instance %s: %w", m.IncidentID, m.InstanceID, err)
	}
	return m, nil
}

// ListChatMirrors returns every chat mirror, by instance then incident.
func (s *Store) ListChatMirrors(ctx context.Context) ([]ChatMirror, error) {
	var out []ChatMirror
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(txn, pChat, func() any { out = append(out, ChatMirror{}); return &out[len(out)-1] })
	})
	if err != nil {
		return nil, fmt.Errorf("list chat mirrors: %w", err)
	}
	return out, nil
}

// SetChatCursor records that the entries of a mirror up to the entry with id
// cursor were delivered. A mirror deleted meanwhile is ErrNotFound.
func (s *Store) SetChatCursor(ctx context.Context, instanceID, incidentID, cursor string) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		var m ChatMirror
		if err := getJSON(txn, chatKey(instanceID, incidentID), &m); err != nil {
			return err
		}
		m.Cursor, m.Modified = cursor, s.now().UTC()
		return setJSON(txn, chatKey(instanceID, incidentID), m)
	})
	if err != nil {
		return fmt.Errorf("chat mirror of incident %s to instance %s: %w", incidentID, instanceID, err)
	}
	return nil
}

// DeleteChatMirror removes one mirror; a missing one is no error.
func (s *Store) DeleteChatMirror(ctx context.Context, instanceID, incidentID string) error {
	err := s.update(ctx, func(txn *badger.Txn) error { return txn.Delete(chatKey(instanceID, incidentID)) })
	if err != nil {
		return fmt.Errorf("delete chat mirror of incident %s to instance %s: %w", incidentID, instanceID, err)
	}
	return nil
}

// DeleteChatMirrors removes every mirror of an instance.
func (s *Store) DeleteChatMirrors(ctx context.Context, instanceID string) error {
	if err := s.deletePrefix(ctx, key(pChat, instanceID, sep)); err != nil {
		return fmt.Errorf("delete chat mirrors of instance %s: %w", instanceID, err)
	}
	return nil
}
