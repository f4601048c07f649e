package esdbtest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

// TestNodeClients runs the suite in testdata/node, written with the
// official Node.js clients (@eventstore/db-client and
// @kurrent/kurrentdb-client), against an in-process server: each client
// over plain gRPC and over TLS with credentials. It needs Node.js 20 or
// later and the packages installed with `npm ci` in testdata/node.
func TestNodeClients(t *testing.T) {
	if os.Getenv("EVENTFOLD_TEST_NODE") == "" {
		t.Skip("EVENTFOLD_TEST_NODE is not set: set it to run the Node.js clients' suite (after npm ci in es/esdbtest/testdata/node)")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Fatalf("testdata/node/node_modules is missing: run npm ci in es/esdbtest/testdata/node (%v)", err)
	}
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is not on PATH")
	cert, caFile := nodeTestCertificate(t)

	for _, client := range []string{"eventstore", "kurrent"} {
		for _, mode := range []string{"insecure", "tls"} {
			t.Run(client+"/"+mode, func(t *testing.T) {
				var opts []esdbtest.Option
				if mode == "tls" {
					opts = append(opts, esdbtest.WithCertificate(cert), esdbtest.WithUser("ops", "ops-secret"))
				}
				srv := esdbtest.New(t, opts...)
				conn := srv.ConnectionString()
				if mode == "tls" {
					// @eventstore/db-client ignores tlsVerifyCert=false: both
					// clients verify the certificate against its CA file.
					conn = strings.Replace(conn, "tlsVerifyCert=false", "tlsCAFile="+url.QueryEscape(caFile), 1)
				}
				runNode(t, node, dir, []string{
					"ESDBTEST_CLIENT=" + client,
					"ESDBTEST_CONNECTION=" + conn,
					"ESDBTEST_VERSION=" + esdbtest.DefaultServerVersion,
					"ESDBTEST_TLS=" + map[string]string{"insecure": "0", "tls": "1"}[mode],
				})
			})
		}
	}
	// The persistent subscriptions again as EventStoreDB 23.10, whose
	// clients see the same behaviour as 24.10's.
	t.Run("eventstore/insecure/23.10.0", func(t *testing.T) {
		srv := esdbtest.New(t, esdbtest.WithServerVersion("23.10.0"))
		runNode(t, node, dir, []string{
			"ESDBTEST_CLIENT=eventstore",
			"ESDBTEST_CONNECTION=" + srv.ConnectionString(),
			"ESDBTEST_VERSION=23.10.0",
		}, "persistent.test.mjs")
	})
}

// runNode runs `node --test` in dir (on files, or every *.test.mjs) with
// env added, and fails the test with node's output if a test failed or it
// ran over its deadline.
func runNode(t *testing.T, node, dir string, env []string, files ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second // node's children may hold the output open
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Log(string(out))
		t.Fatalf("node --test: %v (context: %v)", err, ctx.Err())
	}
}

// nodeTestCertificate returns a certificate for 127.0.0.1 signed by a CA
// made for the test, and the PEM file of that CA for the clients'
// tlsCAFile. (The Rust core of @kurrent/kurrentdb-client refuses a CA
// certificate as the server's own.)
func nodeTestCertificate(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	caDER, caKey := signedCertificate(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "esdbtest node suite CA"},
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	der, key := signedCertificate(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "esdbtest"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}, ca, caKey)
	file := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}

// signedCertificate makes a key and a certificate of it from tmpl, valid
// for a day, signed by parent's key (self-signed when parent is nil).
func signedCertificate(t *testing.T, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	require.NoError(t, err)
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	return der, key
}
