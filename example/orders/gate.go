package main

import (
	"context"
	"errors"
	"sync"

	"github.com/eventfold/eventfold/es"
)

// gatedStore is an [es.Store] that can hold back the next append to a
// stream, so that the demo can stage a conflict between two writers without
// depending on timing: writer A loads an aggregate and is held at its append;
// writer B appends; A is released, and its append fails with a wrong expected
// version, which the repository retries. The store also keeps the conflicts
// it sees, so that the demo can show them.
//
// Everything but Append goes straight to the wrapped store.
type gatedStore struct {
	es.Store

	mu        sync.Mutex
	gates     map[string]*gate // armed, by stream
	conflicts []*es.WrongExpectedVersionError
}

// gate holds back one append.
type gate struct {
	// held receives the expected revision of the append when it arrives,
	// and is then held until release is closed.
	held    chan es.ExpectedRevision
	release chan struct{}
}

func newGatedStore(store es.Store) *gatedStore {
	return &gatedStore{Store: store, gates: make(map[string]*gate)}
}

// holdNextAppend arms a gate for the next append to stream.
func (s *gatedStore) holdNextAppend(stream string) *gate {
	g := &gate{held: make(chan es.ExpectedRevision, 1), release: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates[stream] = g
	return g
}

// disarm removes the gate of stream, if no append used it.
func (s *gatedStore) disarm(stream string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.gates, stream)
}

// Append implements [es.Store]: it waits at an armed gate, then appends, and
// records a wrong expected version.
func (s *gatedStore) Append(ctx context.Context, stream string, expected es.ExpectedRevision, events ...es.EventData) (es.AppendResult, error) {
	s.mu.Lock()
	g := s.gates[stream]
	delete(s.gates, stream)
	s.mu.Unlock()
	if g != nil {
		g.held <- expected
		select {
		case <-g.release:
		case <-ctx.Done():
			return es.AppendResult{}, ctx.Err()
		}
	}

	res, err := s.Store.Append(ctx, stream, expected, events...)
	if wrong := (*es.WrongExpectedVersionError)(nil); errors.As(err, &wrong) {
		s.mu.Lock()
		s.conflicts = append(s.conflicts, wrong)
		s.mu.Unlock()
	}
	return res, err
}

// conflictsSince returns the conflicts seen after the first n.
func (s *gatedStore) conflictsSince(n int) []*es.WrongExpectedVersionError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*es.WrongExpectedVersionError(nil), s.conflicts[min(n, len(s.conflicts)):]...)
}

// conflictCount returns how many conflicts the store has seen.
func (s *gatedStore) conflictCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conflicts)
}
