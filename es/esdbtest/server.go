package esdbtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	v2 "github.com/kurrent-io/KurrentDB-Client-Go/protos/kurrentdb/protocols/v2/streams/streams"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// maxRecvMsgSize bounds one incoming gRPC message; appends are limited
// separately, by the maximum append size.
const maxRecvMsgSize = 32 << 20

// Server is an EventStoreDB-compatible gRPC server with an in-memory log.
// Create it with [New] in tests or [Start] elsewhere; it is safe for
// concurrent use.
type Server struct {
	cfg    config
	store  *store
	faults faults
	gossip uuid.UUID
	cert   tls.Certificate // with WithTLS
	ps     *persistentService
	groups *groupLog     // with WithDataDir: the calls that changed groups
	done   chan struct{} // closed by Close

	life sync.Mutex // serializes Close and Restart

	mu      sync.Mutex // guards the fields below
	addr    string
	grpc    *grpc.Server
	dropped chan struct{} // closed and replaced by DropSubscriptions
	closed  bool

	serving sync.WaitGroup // the Serve goroutine
	workers sync.WaitGroup // goroutines of calls that outlive their handler
}

// New starts a server for a test on a free loopback port and closes it when
// the test ends. It fails the test if the server cannot start, an invalid
// option among others.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server, on a free loopback port unless [WithAddress] says
// otherwise. Stop it with [Server.Close]. Invalid options are reported
// together, each wrapping [ErrInvalidOption].
func Start(opts ...Option) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var cert tls.Certificate
	if cfg.cert != nil {
		cert = *cfg.cert
	} else if cfg.tls {
		c, err := selfSignedCertificate()
		if err != nil {
			return nil, err
		}
		cert = c
	}
	st := newStore(cfg.now)
	if cfg.dataDir != "" {
		if err := st.openJournal(cfg.dataDir, cfg.logger); err != nil {
			return nil, err
		}
	}
	if cfg.dataset != "" {
		if err := st.loadFile(cfg.dataset, cfg.maxAppendSize, cfg.logger); err != nil {
			_ = st.journal.close()
			return nil, err
		}
	}
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		_ = st.journal.close()
		return nil, fmt.Errorf("esdbtest: listen on %s: %w", cfg.addr, err)
	}
	s := &Server{
		cert:    cert,
		cfg:     cfg,
		store:   st,
		gossip:  uuid.New(),
		done:    make(chan struct{}),
		addr:    lis.Addr().String(),
		dropped: make(chan struct{}),
	}
	s.ps = newPersistentService(s)
	if cfg.dataDir != "" {
		if s.groups, err = s.openGroups(cfg.dataDir); err != nil {
			_ = lis.Close()
			_ = st.journal.close()
			return nil, err
		}
	}
	s.serve(lis)
	return s, nil
}

// keepalivePolicy lets clients ping as often as the v4 client does (every
// 10 s), even without active calls, instead of answering with GOAWAY.
func keepalivePolicy() keepalive.EnforcementPolicy {
	return keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}
}

// serve starts a gRPC server on lis.
func (s *Server) serve(lis net.Listener) {
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalivePolicy()),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 10 * time.Second}),
		grpc.MaxRecvMsgSize(max(maxRecvMsgSize, 2*s.cfg.maxAppendSize)),
		grpc.WaitForHandlers(true),
		// Protobuf, plus read events the server writes in wire form itself.
		grpc.ForceServerCodecV2(newServerCodec()),
		grpc.ChainUnaryInterceptor(recoverUnary, s.journalUnary, s.unaryAuth, s.faults.unary),
		grpc.ChainStreamInterceptor(recoverStream, s.journalStream, s.streamAuth, s.faults.stream),
	}
	if s.cfg.tls {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{s.cert},
			MinVersion:   tls.VersionTLS12,
		})))
	}
	gs := grpc.NewServer(opts...)
	api.RegisterStreamsServer(gs, &streamsService{srv: s})
	serverfeatures.RegisterServerFeaturesServer(gs, &featuresService{srv: s})
	gossip.RegisterGossipServer(gs, &gossipService{srv: s, id: s.gossip})
	persistent.RegisterPersistentSubscriptionsServer(gs, s.ps)
	if s.cfg.kurrentDB25() {
		v2.RegisterStreamsServiceServer(gs, &v2Service{srv: s})
	}
	s.mu.Lock()
	s.grpc = gs
	s.mu.Unlock()
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = gs.Serve(lis) // returns when the server stops
	}()
}

// Addr returns the host:port the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ConnectionString returns the connection string for the v4 client:
// "esdb://127.0.0.1:PORT?tls=false" for plain gRPC, where any (or no)
// credentials are accepted, and, with [WithTLS],
// "esdb://admin:changeit@127.0.0.1:PORT?tls=true&tlsVerifyCert=false".
func (s *Server) ConnectionString() string {
	if !s.cfg.tls {
		return "esdb://" + s.Addr() + "?tls=false"
	}
	u := url.URL{
		Scheme:   "esdb",
		User:     url.UserPassword(DefaultUser, s.cfg.users[DefaultUser]),
		Host:     s.Addr(),
		RawQuery: "tls=true&tlsVerifyCert=false",
	}
	return u.String()
}

// Close stops the server: it ends every call, closes every connection and
// waits for its goroutines. Calling it again does nothing.
func (s *Server) Close() {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	gs := s.grpc
	s.mu.Unlock()
	close(s.done)
	gs.Stop()
	s.serving.Wait()
	s.workers.Wait()
	s.ps.stopTimers()
	s.store.mu.Lock()
	if err := errors.Join(s.store.journal.close(), s.groups.close()); err != nil {
		s.cfg.logger.Error("esdbtest: close journal", "err", err)
	}
	s.store.mu.Unlock()
}

// Restart drops every connection, like a server restart, and listens again
// on the same address; the data stays. Clients see their calls and
// subscriptions fail with Unavailable and reconnect.
func (s *Server) Restart() error {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("esdbtest: restart: server is closed")
	}
	gs, addr := s.grpc, s.addr
	s.mu.Unlock()
	gs.Stop()
	s.serving.Wait()
	s.workers.Wait()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("esdbtest: restart: listen on %s: %w", addr, err)
	}
	s.serve(lis)
	return nil
}

// DropSubscriptions ends every running subscription with the gRPC status
// Unavailable, as when a server drops them; the connection stays up.
// Subscriptions started afterwards are not affected.
func (s *Server) DropSubscriptions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.dropped)
	s.dropped = make(chan struct{})
}

// dropChannel returns the channel DropSubscriptions closes next.
func (s *Server) dropChannel() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// SetError makes every call of a gRPC method (a full method name such as
// [MethodAppend]) fail with err until SetError(method, nil). An err that
// carries a gRPC status (status.Error) is sent as is; any other error is
// sent with the code Unknown.
func (s *Server) SetError(method string, err error) {
	s.faults.set(method, -1, err)
}

// FailNext makes the next n calls of a gRPC method fail with err, then lets
// calls through again. err is sent like with [Server.SetError].
func (s *Server) FailNext(method string, n int, err error) {
	if n <= 0 {
		return
	}
	s.faults.set(method, n, err)
}
