package engines

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "connhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestTLS: with engines.tls_cert the NATS listener takes TLS only: an
// engine trusting the certificate runs commands (params inside TLS), one
// connecting in clear or not trusting the certificate does not connect.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	hub, err := StartHub(t.Context(), HubOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Logger: zerolog.Nop(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	be := &backend{svc: host.NewMemServices(), groups: map[string]string{}}
	hub.Attach(be)
	base := newFixture(t)
	f := &fixture{hub: hub, be: be, rt: base.rt, wasm: base.wasm}
	_, seed, err := hub.Enroll(t.Context(), "t1", "dmz")
	if err != nil {
		t.Fatal(err)
	}
	opts := func(tc *tls.Config) EngineOptions {
		return EngineOptions{URL: hub.ClientURL(), Name: "t1", Group: "dmz", Seed: seed, TLS: tc, Runtime: f.rt, Logger: zerolog.Nop()}
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"in clear", nil},
		{"untrusted certificate", &tls.Config{MinVersion: tls.VersionTLS12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if e, err := Connect(t.Context(), opts(tc.tls)); err == nil {
				_ = e.Close(context.Background())
				t.Fatal("connected")
			}
		})
	}
	e, err := Connect(t.Context(), opts(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	sp := f.spec(t, "i1", "dmz")
	sp.Params = map[string]any{"api_key": "s3cret"}
	if res, err := hub.Execute(t.Context(), "dmz", sp.WithHash(), "echo", json.RawMessage(`{"i":1}`)); err != nil || string(res) != `{"i":1}` {
		t.Fatalf("over TLS: %s %v", res, err)
	}
}
