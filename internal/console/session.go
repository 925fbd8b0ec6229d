package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"

	"github.com/connhost/connhost/internal/service"
)

// Cookie names.
const (
	// SessionCookie carries the session id after sign-in.
	SessionCookie = "connhost_session"
	// loginCookie carries the sign-in form's CSRF token (double submit):
	// there is no session yet to hold it.
	loginCookie = "connhost_login"
)

// session is one signed-in browser. It holds the API key in clear, in
// memory only, to check it again through the service on every request: a
// revoked or expired key ends the session at its next request. A restart
// of the server ends every session.
type session struct {
	key     string
	keyID   string
	keyName string
	role    service.Role
	csrf    string
	expires time.Time
	seq     uint64 // order of creation, to end the oldest
}

// maxSessionsPerKey bounds the sessions of one API key: signing in again
// and again (a script, or a leaked key) ends the oldest instead of growing
// the server's memory.
const maxSessionsPerKey = 16

// sessions holds the live sessions by the SHA-256 of their id, so the map
// holds nothing a cookie could be made from.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu  sync.Mutex
	m   map[string]*session
	seq uint64
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[string]*session{}}
}

// token returns 32 random bytes as hex.
func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// create starts a session for an authenticated key and returns its id.
func (ss *sessions) create(key string, k service.APIKeyView) (string, *session) {
	id := token()
	now := ss.now()
	s := &session{key: key, keyID: k.ID, keyName: k.Name, role: k.Role, csrf: token(), expires: now.Add(ss.ttl)}
	if !k.Expires.IsZero() && k.Expires.Before(s.expires) {
		s.expires = k.Expires
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	oldest, n := "", 0
	for h, old := range ss.m { // drop the expired, so the map stays bounded by live sign-ins
		switch {
		case !now.Before(old.expires):
			delete(ss.m, h)
		case old.keyID == k.ID:
			n++
			if oldest == "" || old.seq < ss.m[oldest].seq {
				oldest = h
			}
		}
	}
	if n >= maxSessionsPerKey {
		delete(ss.m, oldest)
	}
	ss.seq++
	s.seq = ss.seq
	ss.m[hashID(id)] = s
	return id, s
}

// get returns the live session of id.
func (ss *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	h := hashID(id)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[h]
	if !ok {
		return nil, false
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, h)
		return nil, false
	}
	return s, true
}

// end removes the session of id.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	delete(ss.m, hashID(id))
	ss.mu.Unlock()
}

// endKey removes every session of an API key (revoked through the
// console or found dead).
func (ss *sessions) endKey(keyID string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for h, s := range ss.m {
		if s.keyID == keyID {
			delete(ss.m, h)
		}
	}
}

// sameToken compares two tokens in constant time; an empty one never
// matches.
func sameToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
