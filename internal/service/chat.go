package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// Chat mirroring (XSOAR mirrorInvestigation): a chat connector records that
// an incident is mirrored to one of its channels; the server then delivers
// the incident's new entries to the instance with send-notification,
// messageType "mirrorEntry", and with auto-close tells it when the incident
// closes (messageType "incidentClosed").

// Mirror types and directions of mirror_investigation.
const (
	MirrorTypeAll  = "all"
	MirrorTypeChat = "chat"
	MirrorTypeNone = "none"

	DirectionBoth        = "both"
	DirectionFromDemisto = "FromDemisto"
	DirectionToDemisto   = "ToDemisto"
)

// ChatTag marks an entry for chat mirrors of type "chat"; an entry tagged
// with the instance's name is delivered too.
const ChatTag = "chat"

// Message types of send-notification.
const (
	MessageMirrorEntry    = "mirrorEntry"
	MessageIncidentClosed = "incidentClosed"
)

// chatBatch bounds the entries delivered per mirror per pass.
const chatBatch = 100

// parseMirrorType splits "type[:direction]" into its validated parts.
func parseMirrorType(s string) (typ, dir string, err error) {
	t, d, _ := strings.Cut(strings.TrimSpace(s), ":")
	switch typ = strings.ToLower(t); typ {
	case MirrorTypeAll, MirrorTypeChat, MirrorTypeNone:
	default:
		return "", "", fmt.Errorf("mirror_type %q: want all, chat or none, optionally :both, :FromDemisto or :ToDemisto", s)
	}
	switch strings.ToLower(d) {
	case "", "both":
		dir = DirectionBoth
	case "fromdemisto":
		dir = DirectionFromDemisto
	case "todemisto":
		dir = DirectionToDemisto
	default:
		return "", "", fmt.Errorf("mirror_type %q: direction %q: want both, FromDemisto or ToDemisto", s, d)
	}
	return typ, dir, nil
}

// MirrorInvestigation records (or with type none removes) a chat mirror.
func (h hostServices) MirrorInvestigation(ctx context.Context, inst abi.InstanceInfo, req abi.MirrorInvestigationRequest) error {
	if strings.TrimSpace(req.IncidentID) == "" {
		return abi.Errorf(abi.KindBadRequest, "mirror_investigation: incident_id is required")
	}
	typ, dir, err := parseMirrorType(req.MirrorType)
	if err != nil {
		return abi.Errorf(abi.KindBadRequest, "mirror_investigation: %v", err)
	}
	if typ == MirrorTypeNone {
		return typed(h.c.st.DeleteChatMirror(ctx, inst.ID, req.IncidentID))
	}
	m, err := h.c.st.PutChatMirror(ctx, store.ChatMirror{
		InstanceID: inst.ID, IncidentID: req.IncidentID, Type: typ, Direction: dir, AutoClose: req.AutoClose,
	})
	if err != nil {
		return typed(err)
	}
	h.c.log.Info().Str("instance", inst.Name).Str("incident", m.IncidentID).Str("mirror_type", typ).Str("direction", dir).
		Msg("incident mirrored to chat")
	return nil
}

// entitlementGUIDRe bounds entitlement GUIDs: XSOAR's are UUIDs; any short
// token without spaces or separators is accepted.
var entitlementGUIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// HandleEntitlement records a user's answer to a question asked in an
// incident's war room (or a task of it) as an entry, once per GUID and
// task.
func (h hostServices) HandleEntitlement(ctx context.Context, inst abi.InstanceInfo, req abi.EntitlementRequest) error {
	var errs []error
	if strings.TrimSpace(req.IncidentID) == "" {
		errs = append(errs, errors.New("incident_id is required"))
	}
	if !entitlementGUIDRe.MatchString(req.GUID) {
		errs = append(errs, fmt.Errorf("guid %q: want 1 to 128 letters, digits, '-' or '_'", req.GUID))
	}
	if strings.TrimSpace(req.Content) == "" {
		errs = append(errs, errors.New("content is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return abi.Errorf(abi.KindBadRequest, "handle_entitlement_for_user: %v", err)
	}
	user := req.Email
	if req.Email != "" {
		if u, err := h.c.st.FindUser(ctx, "", req.Email); err == nil {
			user = u.Username
		}
	}
	tags := []string{"entitlement", req.GUID}
	if req.TaskID != "" {
		tags = append(tags, "task:"+req.TaskID)
	}
	_, err := h.c.st.AddEntries(ctx, []store.Entry{{
		IncidentID: req.IncidentID, Type: abi.EntryNote, Format: abi.FormatText, Contents: req.Content,
		Tags: tags, User: user, Origin: store.OriginPluginPrefix + inst.Name,
		ExternalID: "entitlement:" + req.GUID + ":" + req.TaskID,
	}})
	return typed(err)
}

// DirectMessage handles free text a chat user sent the bot: "new incident
// name=... [type=...] [severity=...] [details=...]" creates an incident
// owned by the user (a known user, or anyone when the plugin allows it),
// "list incidents" lists the open ones, anything else gets the help text.
func (h hostServices) DirectMessage(ctx context.Context, inst abi.InstanceInfo, req abi.DirectMessageRequest) (string, error) {
	msg := strings.TrimSpace(req.Message)
	if msg == "" {
		return "", abi.Errorf(abi.KindBadRequest, "direct_message: message is required")
	}
	if req.Username == "" && req.Email == "" {
		return "", abi.Errorf(abi.KindBadRequest, "direct_message: username or email is required")
	}
	lower := strings.ToLower(msg)
	switch {
	case strings.HasPrefix(lower, "new incident"), strings.HasPrefix(lower, "create incident"):
		_, rest, _ := strings.Cut(msg, "incident")
		return h.dmNewIncident(ctx, inst, req, rest)
	case lower == "list incidents":
		return h.dmListIncidents(ctx)
	}
	return dmHelp, nil
}

const dmHelp = "I understand:\n" +
	"• new incident name=<name> [type=<type>] [severity=<0-4>] [details=<text>]\n" +
	"• list incidents"

// dmNewIncident creates the incident a "new incident" message asks for.
func (h hostServices) dmNewIncident(ctx context.Context, inst abi.InstanceInfo, req abi.DirectMessageRequest, args string) (string, error) {
	kv, err := parseKeyValues(args)
	if err != nil {
		return "", abi.Errorf(abi.KindBadRequest, "direct_message: %v", err)
	}
	owner := ""
	u, err := h.c.st.FindUser(ctx, req.Username, req.Email)
	switch {
	case err == nil:
		owner = u.Username
	case !errors.Is(err, store.ErrNotFound):
		return "", err
	case !req.AnyoneCanOpenIncidents:
		return "You are not allowed to open incidents: no connhost user matches you.", nil
	}
	name := kv["name"]
	if name == "" {
		return "Please give the incident a name: new incident name=<name>", nil
	}
	a := abi.Incident{Name: name, Type: kv["type"], Details: kv["details"], Owner: owner}
	if sev := kv["severity"]; sev != "" {
		var f float64
		if _, err := fmt.Sscanf(sev, "%g", &f); err != nil || f < 0 || f > 4 {
			return fmt.Sprintf("Severity %q: want a number from 0 to 4.", sev), nil
		}
		a.Severity = f
	}
	rec, m, err := h.c.instanceOf(ctx, inst.ID)
	if err != nil {
		return "", typed(err)
	}
	incs, err := incidentsFromABI(rec, m, []abi.Incident{a})
	if err != nil {
		return "", abi.Errorf(abi.KindBadRequest, "direct_message: %v", err)
	}
	created, err := h.c.st.CreateIncidents(ctx, incs)
	if err != nil {
		return "", typed(err)
	}
	return fmt.Sprintf("Incident %s created: %s", created[0].ID, name), nil
}

// dmListIncidents lists up to ten open incidents.
func (h hostServices) dmListIncidents(ctx context.Context) (string, error) {
	active := abi.StatusActive
	incs, _, err := h.c.st.SearchIncidents(ctx, store.IncidentQuery{Status: &active, Limit: 10})
	if err != nil {
		return "", err
	}
	if len(incs) == 0 {
		return "No open incidents.", nil
	}
	var b strings.Builder
	for _, inc := range incs {
		fmt.Fprintf(&b, "%s %s\n", inc.ID, inc.Name)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// parseKeyValues parses `key=value key2="quoted value"`.
func parseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	s = strings.TrimSpace(s)
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || strings.ContainsAny(k, " \t") || k == "" {
			return nil, fmt.Errorf("%q: want key=value pairs", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return nil, fmt.Errorf("%s: unterminated quote", k)
			}
			v, rest = rest[1:end+1], rest[end+2:]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		out[strings.ToLower(k)] = v
		s = strings.TrimSpace(rest)
	}
	return out, nil
}

// chatLoop delivers mirrored entries every ChatInterval until close.
func (lr *LongRunning) chatLoop() {
	defer close(lr.chatDone)
	t := time.NewTicker(lr.opts.ChatInterval)
	defer t.Stop()
	paused := false // the last pass met a full disk: logged once, not every pass
	for {
		select {
		case <-lr.stopChat:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-lr.stopChat:
			case <-ctx.Done():
			}
			cancel()
		}()
		err := lr.DeliverChat(ctx)
		switch noSpace := errors.Is(err, ErrNoSpace); {
		case noSpace && !paused:
			lr.c.log.Error().Err(err).Msg("chat delivery paused: the store is out of space")
		case !noSpace && paused:
			lr.c.log.Info().Msg("chat delivery resumed: the store has space again")
		}
		paused = errors.Is(err, ErrNoSpace)
		if err != nil && !paused && ctx.Err() == nil {
			lr.c.log.Warn().Err(err).Msg("chat delivery pass failed")
		}
		cancel()
	}
}

// DeliverChat runs one delivery pass over every chat mirror: new entries
// go to enabled instances with send-notification; a failed delivery is
// retried on the next pass, from the same entry. While the store refuses
// writes for lack of space it sends nothing and returns ErrNoSpace: a
// cursor it could not move would have the same entries sent again on
// every pass.
func (lr *LongRunning) DeliverChat(ctx context.Context) error {
	if err := lr.c.st.Writable(); err != nil {
		return fromStore(err)
	}
	mirrors, err := lr.c.st.ListChatMirrors(ctx)
	if err != nil {
		return fromStore(err)
	}
	var errs []error
	for _, m := range mirrors {
		li, release := lr.c.hold(m.InstanceID)
		if li == nil {
			continue // disabled: delivered once it is enabled again
		}
		if err := lr.deliverMirror(ctx, li, m); err != nil {
			errs = append(errs, err)
		}
		release()
	}
	return fromStore(errors.Join(errs...))
}

// deliverMirror delivers one mirror's new entries and, with auto-close,
// the incident's closing; a mirror of a deleted incident is removed.
func (lr *LongRunning) deliverMirror(ctx context.Context, li *liveInstance, m store.ChatMirror) error {
	inc, err := lr.c.st.GetIncident(ctx, m.IncidentID)
	if errors.Is(err, store.ErrNotFound) {
		return lr.c.st.DeleteChatMirror(ctx, m.InstanceID, m.IncidentID)
	}
	if err != nil {
		return err
	}
	if m.Direction != DirectionToDemisto {
		if err := lr.deliverEntries(ctx, li, m); err != nil {
			return err
		}
	}
	if m.AutoClose && inc.Status == abi.StatusDone {
		args := map[string]any{"messageType": MessageIncidentClosed, "incident_id": inc.ID, "investigation_id": inc.ID,
			"message": fmt.Sprintf("Incident %s was closed: %s", inc.ID, inc.CloseReason)}
		if err := lr.notify(ctx, li, args); err != nil {
			return err
		}
		return lr.c.st.DeleteChatMirror(ctx, m.InstanceID, m.IncidentID)
	}
	return nil
}

// deliverEntries delivers up to chatBatch entries after the mirror's
// cursor and moves the cursor past those delivered (or not wanted).
func (lr *LongRunning) deliverEntries(ctx context.Context, li *liveInstance, m store.ChatMirror) error {
	q := store.EntryQuery{After: m.Cursor, Limit: chatBatch}
	if m.Cursor == "" {
		q.Since = m.Since
	}
	entries, _, err := lr.c.st.ListEntries(ctx, m.IncidentID, q)
	if err != nil {
		return err
	}
	cursor := m.Cursor
	var deliverErr error
	for _, e := range entries {
		if wantsEntry(m, li.rec.Name, e) {
			se := e.ServerEntry()
			args := map[string]any{
				"messageType": MessageMirrorEntry, "message": entryText(e), "entry": se,
				"incident_id": m.IncidentID, "investigation_id": m.IncidentID,
				"mirror_type": m.Type, "mirror_direction": m.Direction,
			}
			if deliverErr = lr.notify(ctx, li, args); deliverErr != nil {
				break
			}
		}
		cursor = e.ID
	}
	if cursor != m.Cursor {
		if err := lr.c.st.SetChatCursor(ctx, m.InstanceID, m.IncidentID, cursor); err != nil && !errors.Is(err, store.ErrNotFound) {
			return errors.Join(deliverErr, err)
		}
	}
	return deliverErr
}

// notify runs send-notification on the instance's warm pool.
func (lr *LongRunning) notify(ctx context.Context, li *liveInstance, args map[string]any) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("instance %q: encode send-notification: %w", li.rec.Name, err)
	}
	start := time.Now()
	_, err = li.inst.Execute(ctx, abi.CommandSendNotification, raw)
	lr.c.observe(li.rec.Name, abi.CommandSendNotification, TriggerMirrorOut, start, err)
	if err != nil {
		lr.c.log.Warn().Str("instance", li.rec.Name).Str("plugin", li.plugin.Label()).Err(err).Msg("chat delivery failed; retrying next pass")
		return err
	}
	return nil
}

// wantsEntry reports whether a mirror delivers entry e: never the
// instance's own entries (no echo loops), every other entry for type all,
// entries tagged ChatTag or with the instance's name for type chat.
func wantsEntry(m store.ChatMirror, instance string, e store.Entry) bool {
	if e.Origin == store.OriginPluginPrefix+instance || e.Origin == store.OriginMirrorPrefix+instance {
		return false
	}
	if m.Type == MirrorTypeAll {
		return true
	}
	for _, t := range e.Tags {
		if t == ChatTag || t == instance {
			return true
		}
	}
	return false
}

// entryText renders an entry's contents as chat text.
func entryText(e store.Entry) string {
	if s, ok := e.Contents.(string); ok {
		return s
	}
	b, _ := json.Marshal(e.Contents) // contents decoded from JSON always re-encode
	return string(b)
}
