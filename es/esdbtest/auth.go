package esdbtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultUser and DefaultPassword are the credentials of the user every
// TLS server has, like a fresh EventStoreDB; [WithUser] can change the
// password.
const (
	DefaultUser     = "admin"
	DefaultPassword = "changeit"
)

// headerConnectionName is the header in which clients send the name of
// their connection (the v4 Go client sends none; gRPC metadata in the
// call's context sets it).
const headerConnectionName = "connection-name"

// callUser returns the login of a call's Basic credentials, "" for none.
func callUser(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		return ""
	}
	encoded, ok := strings.CutPrefix(values[0], "Basic ")
	if !ok {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return ""
	}
	login, _, _ := strings.Cut(string(raw), ":")
	return login
}

// isSystemStream reports whether a stream is a system stream (its name
// starts with `$`), or the metadata stream of one.
func isSystemStream(name string) bool {
	return strings.HasPrefix(strings.TrimPrefix(name, metaStreamPrefix), "$")
}

// authorizeWrite applies EventStoreDB's default access control to a write
// (append, delete, tombstone) on a TLS server: only the admin user writes
// system streams. Without TLS every call is accepted, like EventStoreDB in
// insecure mode.
func (s *Server) authorizeWrite(ctx context.Context, name string, setTrailer func(metadata.MD)) error {
	if !s.cfg.tls || !isSystemStream(name) || callUser(ctx) == DefaultUser {
		return nil
	}
	setTrailer(metadata.Pairs(trailerException, exceptionAccessDenied))
	return status.Error(codes.PermissionDenied, "Access Denied")
}

// anonymous reports whether EventStoreDB serves a call without credentials.
func anonymous(method string) bool {
	return method == MethodGetSupportedMethods || method == "/event_store.client.gossip.Gossip/Read"
}

// selfSignedCertificate returns a certificate for localhost and the
// loopback addresses, valid for a day.
func selfSignedCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("esdbtest: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("esdbtest: generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "esdbtest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("esdbtest: create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// authenticate checks the Basic credentials of a call on a TLS server:
// none is access denied, wrong ones are unauthenticated, as with
// EventStoreDB's default (anonymous access disabled).
func (s *Server) authenticate(ctx context.Context, method string, setTrailer func(metadata.MD)) error {
	if !s.cfg.tls || anonymous(method) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) == 0 {
		setTrailer(metadata.Pairs(trailerException, exceptionAccessDenied))
		return status.Error(codes.PermissionDenied, "Access Denied")
	}
	encoded, ok := strings.CutPrefix(values[0], "Basic ")
	if !ok {
		return status.Error(codes.Unauthenticated, "Bad authorization header")
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return status.Error(codes.Unauthenticated, "Bad authorization header")
	}
	login, password, _ := strings.Cut(string(raw), ":")
	if want, ok := s.cfg.users[login]; !ok || want != password {
		return status.Error(codes.Unauthenticated, "Bad credentials")
	}
	return nil
}

// unaryAuth is the interceptor that authenticates unary calls.
func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := s.authenticate(ctx, info.FullMethod, trailerSetter(ctx)); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// streamAuth is the interceptor that authenticates streaming calls.
func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := s.authenticate(ss.Context(), info.FullMethod, ss.SetTrailer); err != nil {
		return err
	}
	return handler(srv, ss)
}
