package bus

import (
	"context"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// ProcessedStore records which events each handler group has processed,
// for [WithIdempotency]. Implementations must be safe for concurrent use:
// [MemoryProcessed] here, and a SQL table in package bus/sqlbus.
type ProcessedStore interface {
	// Processed reports whether group has processed event id.
	Processed(ctx context.Context, group string, id uuid.UUID) (bool, error)
	// MarkProcessed records that group processed event id. Marking an
	// event twice is not an error.
	MarkProcessed(ctx context.Context, group string, id uuid.UUID) error
}

// idempotent wraps h so that an event that group processed before is
// acknowledged without calling h, and an event h handled is marked
// processed.
func idempotent(store ProcessedStore, group string, h eventHandler) eventHandler {
	return func(ctx context.Context, msg *message.Message, v any) error {
		rec, _ := EventFromContext(ctx)
		done, err := store.Processed(ctx, group, rec.ID)
		if err != nil {
			return fmt.Errorf("bus: idempotent %s: %w", group, err)
		}
		if done {
			return nil
		}
		if err := h(ctx, msg, v); err != nil {
			return err
		}
		if err := store.MarkProcessed(ctx, group, rec.ID); err != nil {
			return fmt.Errorf("bus: idempotent %s: %w", group, err)
		}
		return nil
	}
}

// MemoryProcessed is a [ProcessedStore] in memory, for tests and handlers
// whose effects are in memory too. The zero value is ready to use.
type MemoryProcessed struct {
	mu   sync.Mutex
	done map[string]map[uuid.UUID]bool
}

var _ ProcessedStore = (*MemoryProcessed)(nil)

// Processed implements [ProcessedStore].
func (m *MemoryProcessed) Processed(_ context.Context, group string, id uuid.UUID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done[group][id], nil
}

// MarkProcessed implements [ProcessedStore].
func (m *MemoryProcessed) MarkProcessed(_ context.Context, group string, id uuid.UUID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		m.done = make(map[string]map[uuid.UUID]bool)
	}
	if m.done[group] == nil {
		m.done[group] = make(map[uuid.UUID]bool)
	}
	m.done[group][id] = true
	return nil
}
