package esdbtest

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Full gRPC method names of the calls tests most often break, for
// [Server.SetError] and [Server.FailNext]. Any other full method name works
// too, "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Read"
// for example.
const (
	MethodRead                = "/event_store.client.streams.Streams/Read"
	MethodAppend              = "/event_store.client.streams.Streams/Append"
	MethodDelete              = "/event_store.client.streams.Streams/Delete"
	MethodTombstone           = "/event_store.client.streams.Streams/Tombstone"
	MethodGetSupportedMethods = "/event_store.client.server_features.ServerFeatures/GetSupportedMethods"
)

// fault is an error injected into a method: remaining < 0 means until
// cleared.
type fault struct {
	err       error
	remaining int
}

// faults holds the injected errors, keyed by full method name.
type faults struct {
	mu sync.Mutex
	m  map[string]*fault
}

// set injects err into the next n calls of method (n < 0: every call).
func (f *faults) set(method string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil || n == 0 {
		delete(f.m, method)
		return
	}
	if f.m == nil {
		f.m = make(map[string]*fault)
	}
	if _, ok := status.FromError(err); !ok {
		err = status.Error(codes.Unknown, err.Error())
	}
	// A trailerError is kept as is: take hands it to the interceptors.
	f.m[method] = &fault{err: err, remaining: n}
}

// take returns the error to fail a call of method with, if any.
func (f *faults) take(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := f.m[method]
	if ft == nil {
		return nil
	}
	if ft.remaining > 0 {
		ft.remaining--
		if ft.remaining == 0 {
			delete(f.m, method)
		}
	}
	return ft.err
}

// unary is the interceptor that applies faults to unary calls.
func (f *faults) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := f.take(info.FullMethod); err != nil {
		if te, ok := err.(trailerError); ok {
			_ = grpc.SetTrailer(ctx, te.md)
		}
		return nil, err
	}
	return handler(ctx, req)
}

// stream is the interceptor that applies faults to streaming calls.
func (f *faults) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := f.take(info.FullMethod); err != nil {
		if te, ok := err.(trailerError); ok {
			ss.SetTrailer(te.md)
		}
		return err
	}
	return handler(srv, ss)
}

// trailerError is an injected status that also sets trailers.
type trailerError struct {
	st *status.Status
	md metadata.MD
}

func (e trailerError) Error() string { return e.st.Err().Error() }

// GRPCStatus lets grpc send the status of the error.
func (e trailerError) GRPCStatus() *status.Status { return e.st }

// NotLeader returns the error EventStoreDB sends when a call that needs the
// leader reaches a follower: NotFound, with the exception "not-leader" and
// the leader's host and port in the trailers. The v4 client answers it by
// reconnecting to that address. Inject it with [Server.SetError] or
// [Server.FailNext]; leaderAddr is a host:port, such as the [Server.Addr]
// of another server. The v4 client reads the trailers of unary and server
// streaming calls only (Delete, Tombstone, Read), not of Append.
func NotLeader(leaderAddr string) error {
	host, port, err := net.SplitHostPort(leaderAddr)
	if err != nil {
		host, port = leaderAddr, "2113"
	}
	return trailerError{
		st: status.New(codes.NotFound, "Leader info available"),
		md: metadata.Pairs(trailerException, "not-leader", "leader-endpoint-host", host, "leader-endpoint-port", port),
	}
}
