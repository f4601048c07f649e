package redisproj

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/projection"
)

// seen is the stored checkpoint of a key as a Checkpoints last knew it:
// its next Commit of the key applies only if Redis still holds it.
type seen struct {
	cp     projection.Checkpoint
	exists bool
	gen    uint64 // counts the changes of this entry
	// rearm is set when a lease on the key is granted: the next Load
	// takes what it reads as the new state to expect.
	rearm bool
	known bool
}

// The fields of a checkpoint's hash.
const (
	fieldCommit     = "commit"
	fieldPrepare    = "prepare"
	fieldRebuilding = "rebuilding"
	fieldPartitions = "partitions"
)

// Load implements [projection.Checkpoints]: it returns the checkpoint
// stored under key, or the zero Checkpoint if there is none. A stored
// checkpoint that cannot be read is an error wrapping
// [projection.ErrCorruptCheckpoint] that names the key.
func (c *Checkpoints) Load(ctx context.Context, key string) (projection.Checkpoint, error) {
	c.mu.Lock()
	gen := c.seen[key].gen
	c.mu.Unlock()
	ctx, cancel := c.call(ctx)
	defer cancel()
	cp, exists, err := c.read(ctx, c.client, key)
	if err != nil {
		return projection.Checkpoint{}, err
	}
	c.mu.Lock()
	// Expect what was read if nothing is expected yet, or after a lease,
	// unless a Commit of key ended meanwhile.
	if st := c.seen[key]; st.gen == gen && (!st.known || st.rearm) {
		c.seen[key] = seen{cp: cp, exists: exists, gen: gen + 1, known: true}
	}
	c.mu.Unlock()
	return cp, nil
}

// rearm makes the next Load of key set the state its Commits expect.
func (c *Checkpoints) rearm(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.seen[key]
	st.rearm, st.gen = true, st.gen+1
	c.seen[key] = st
}

// read reads the checkpoint of key through r.
func (c *Checkpoints) read(ctx context.Context, r redis.Cmdable, key string) (cp projection.Checkpoint, exists bool, err error) {
	fields, err := r.HGetAll(ctx, c.checkpointKey(key)).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "WRONGTYPE") {
			return cp, false, fmt.Errorf("%w: %q: %s is not a hash", projection.ErrCorruptCheckpoint, key, c.checkpointKey(key))
		}
		return cp, false, c.fail(ctx, fmt.Sprintf("load checkpoint %q", key), err)
	}
	if len(fields) == 0 {
		return cp, false, nil
	}
	commit, err1 := strconv.ParseUint(fields[fieldCommit], 10, 64)
	prepare, err2 := strconv.ParseUint(fields[fieldPrepare], 10, 64)
	rebuilding, err3 := strconv.ParseBool(fields[fieldRebuilding])
	partitions, err4 := strconv.Atoi(fields[fieldPartitions])
	if err := errors.Join(err1, err2, err3, err4); err != nil || partitions < 0 {
		return cp, false, fmt.Errorf("%w: %q in %s: %v (%v)", projection.ErrCorruptCheckpoint, key, c.checkpointKey(key), fields, err)
	}
	cp = projection.Checkpoint{Position: es.Position{Commit: commit, Prepare: prepare}, Rebuilding: rebuilding, Partitions: partitions}
	return cp, true, nil
}

// maxWatchRetries is how many times a commit runs again when a key it
// watches changed under it: the lease's renewal by this process's own
// heartbeat does that.
const maxWatchRetries = 20

// Commit implements [projection.Checkpoints]: it runs apply (if not nil)
// on a [Tx], whose Pipe queues the handler's writes in a MULTI/EXEC, and
// queues the checkpoint's write after them; Redis then runs the whole
// transaction at once. An error of apply discards the transaction and is
// returned as is. Committing the zero Checkpoint deletes the key's
// checkpoint ([projection.Runner.DropVersion]).
//
// Commit is fenced, in two ways. It WATCHes the key's checkpoint and, when
// this Checkpoints holds the key's lease, the lease; it checks, on the
// watching connection, that the lease is still its own and that the
// checkpoint still is what it last read or wrote (as the first Load of
// the key, the first Load after each lease, and each Commit set it); and
// Redis runs the MULTI/EXEC only if neither key changed meanwhile. A
// replica whose lease expired or was taken over thus fails with an error
// matching [projection.ErrFenced] and [projection.ErrLeaseLost] without
// writing; a checkpoint that moved fails with [ErrConflict]. Committing
// the zero Checkpoint is not fenced by the checkpoint.
//
// The call timeout ([WithCallTimeout]) bounds the whole commit, and the
// lease's loss ends it. An error of Redis that is not its answer to a
// command (a lost connection, a timeout) matches
// [projection.ErrUnavailable].
func (c *Checkpoints) Commit(ctx context.Context, key string, cp projection.Checkpoint, apply func(tx Tx) error) error {
	if key == "" {
		return errors.New("redisproj: commit: empty key")
	}
	if cp.Partitions < 0 {
		return fmt.Errorf("redisproj: checkpoint %q: %d partitions", key, cp.Partitions)
	}
	lease, err := c.leaseOf(key)
	if err != nil {
		return err
	}
	c.mu.Lock()
	last := c.seen[key]
	c.mu.Unlock()
	if cp == (projection.Checkpoint{}) {
		last.known = false
	}
	if lease != nil {
		var stop context.CancelFunc
		ctx, stop = lease.bound(ctx)
		defer stop()
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	name, _, _ := strings.Cut(key, "/")
	t := txn{c: c, key: key, cp: cp, last: last, lease: lease, base: c.cfg.prefix + readModelInfix + name + ":", apply: apply}
	for range maxWatchRetries {
		if err = c.client.Watch(ctx, t.run(ctx), t.watched()...); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	switch {
	case errors.Is(err, redis.TxFailedErr):
		return fmt.Errorf("%w: %q kept changing during %d tries", ErrConflict, key, maxWatchRetries)
	case err != nil && !t.ran:
		return c.fail(ctx, fmt.Sprintf("commit %q: watch", key), err)
	case err != nil:
		if lease != nil && errors.Is(context.Cause(lease.loss), projection.ErrLeaseLost) {
			return fmt.Errorf("redisproj: commit %q: %w", key, errors.Join(projection.ErrFenced, context.Cause(lease.loss), err))
		}
		return err
	}
	c.mu.Lock()
	c.seen[key] = seen{cp: cp, exists: cp != (projection.Checkpoint{}), gen: c.seen[key].gen + 1, known: true}
	c.mu.Unlock()
	return nil
}

// txn is a commit under way.
type txn struct {
	c     *Checkpoints
	key   string
	cp    projection.Checkpoint
	last  seen
	lease *held
	base  string
	apply func(Tx) error
	// failed is set when the handler failed: its error is returned as
	// is.
	failed bool
	// ran is set once WATCH succeeded.
	ran bool
}

// watched returns the keys the commit watches.
func (t *txn) watched() []string {
	keys := []string{t.c.checkpointKey(t.key)}
	if t.lease != nil {
		keys = append(keys, t.c.leaseKey(t.key))
	}
	return keys
}

// run returns the function that checks the fences and runs the
// transaction, on the watching connection rtx.
func (t *txn) run(ctx context.Context) func(rtx *redis.Tx) error {
	return func(rtx *redis.Tx) error {
		t.ran = true
		if err := t.fence(ctx, rtx); err != nil {
			return err
		}
		t.failed = false
		cmds, err := rtx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if t.apply != nil {
				if err := t.apply(Tx{Pipe: p, Read: rtx, base: t.base}); err != nil {
					t.failed = true
					return err
				}
			}
			ck := t.c.checkpointKey(t.key)
			if t.cp == (projection.Checkpoint{}) {
				p.Del(ctx, ck)
				return nil
			}
			pos := t.cp.Position
			p.HSet(ctx, ck, fieldCommit, strconv.FormatUint(pos.Commit, 10), fieldPrepare, strconv.FormatUint(pos.Prepare, 10),
				fieldRebuilding, strconv.FormatBool(t.cp.Rebuilding), fieldPartitions, strconv.Itoa(t.cp.Partitions))
			return nil
		})
		switch {
		case t.failed, err == nil, errors.Is(err, redis.TxFailedErr):
			return err
		case len(cmds) > 0 && ranPartly(cmds):
			return fmt.Errorf("%w: commit %q: %w", ErrPartialCommit, t.key, err)
		}
		return t.c.fail(ctx, fmt.Sprintf("commit %q", t.key), err)
	}
}

// ranPartly reports whether the commands of an EXEC ran, some of them
// failing: EXEC answered, and not every command failed alike (as all do
// when the transaction was discarded or the connection lost).
func ranPartly(cmds []redis.Cmder) bool {
	for _, cmd := range cmds {
		if cmd.Err() == nil {
			return true
		}
	}
	return false
}

// fence checks, on the watching connection, that the commit's lease is
// still its own and that the checkpoint is still what it expects.
func (t *txn) fence(ctx context.Context, rtx *redis.Tx) error {
	if t.lease != nil {
		v, err := rtx.Get(ctx, t.c.leaseKey(t.key)).Result()
		switch {
		case errors.Is(err, redis.Nil) || (err == nil && v != t.lease.value):
			return fmt.Errorf("redisproj: the lease of %q expired or was taken over: %w", t.key,
				errors.Join(projection.ErrFenced, projection.ErrLeaseLost))
		case err != nil:
			return t.c.fail(ctx, fmt.Sprintf("lease of %q", t.key), err)
		}
	}
	if !t.last.known {
		return nil
	}
	cp, exists, err := t.c.read(ctx, rtx, t.key)
	if err != nil {
		return err
	}
	if exists != t.last.exists || cp != t.last.cp {
		return fmt.Errorf("%w: %q was at %s when last seen, is at %s", ErrConflict, t.key, describe(t.last.cp, t.last.exists), describe(cp, exists))
	}
	return nil
}

func describe(cp projection.Checkpoint, exists bool) string {
	switch {
	case !exists:
		return "none"
	case cp.Rebuilding:
		return cp.Position.String() + " (rebuilding)"
	}
	return cp.Position.String()
}

// ActiveVersion implements [projection.Versions]: the version of
// projection name that queries read, or 0 if none was recorded.
func (c *Checkpoints) ActiveVersion(ctx context.Context, name string) (int, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	s, err := c.client.Get(ctx, c.activeKey(name)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return 0, nil
	case err != nil:
		return 0, c.fail(ctx, fmt.Sprintf("active version of %q", name), err)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("redisproj: active version of %q: %q in %s is not a version", name, s, c.activeKey(name))
	}
	return v, nil
}

// SetActiveVersion implements [projection.Versions]: it runs apply (if not
// nil) and records version as the active version of projection name, in
// one MULTI/EXEC. An error of apply discards both and is returned as is.
// Queries that look the active version up ([Checkpoints.ActivePrefix])
// read the new version's keys from then on.
func (c *Checkpoints) SetActiveVersion(ctx context.Context, name string, version int, apply func(tx Tx) error) error {
	if version < 0 {
		return fmt.Errorf("redisproj: active version of %q: negative version %d", name, version)
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	base := c.cfg.prefix + readModelInfix + name + ":"
	var failed bool
	err := c.client.Watch(ctx, func(rtx *redis.Tx) error {
		_, err := rtx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if apply != nil {
				if err := apply(Tx{Pipe: p, Read: rtx, base: base}); err != nil {
					failed = true
					return err
				}
			}
			p.Set(ctx, c.activeKey(name), strconv.Itoa(version), 0)
			return nil
		})
		return err
	})
	if err != nil && !failed {
		return c.fail(ctx, fmt.Sprintf("set active version of %q", name), err)
	}
	return err
}

// unlinkBatch is how many keys one UNLINK of DeleteVersion deletes, and
// one SCAN step looks at.
const unlinkBatch = 500

// DeleteVersion deletes every key of version of the projection's read
// model (those under [Tx.Prefix]): it finds them with SCAN on tx.Read and
// queues UNLINKs of up to 500 keys each on tx.Pipe, so that they take
// effect in the transaction, with the rest of it. It is the
// [projection.Projection] Reset of a rebuild in place (the keys go in the
// transaction of the first batch replayed, so queries never see the read
// model emptied without its checkpoint set back) and its Drop after a
// blue/green switch:
//
//	Reset: redisproj.DeleteVersion,
//	Drop:  redisproj.DeleteVersion,
//
// The SCAN walks the whole key space of the Redis database: on a large one
// it takes its time, within the commit's call timeout ([WithCallTimeout]).
func DeleteVersion(ctx context.Context, tx Tx, version int) error {
	if tx.Pipe == nil || tx.Read == nil {
		return errors.New("redisproj: delete version: a Tx without Pipe or Read")
	}
	match := globEscape(tx.Prefix(version)) + "*"
	var cursor uint64
	for {
		keys, next, err := tx.Read.Scan(ctx, cursor, match, unlinkBatch).Result()
		if err != nil {
			return fmt.Errorf("redisproj: delete version %d: scan: %w", version, err)
		}
		if len(keys) > 0 {
			tx.Pipe.Unlink(ctx, keys...)
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// globEscape escapes the characters of s that SCAN's MATCH reads as a
// pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// deadLetter is how a dead letter is stored: JSON, in a hash per
// projection whose fields are the events' IDs.
type deadLetter struct {
	ID          uuid.UUID   `json:"id"`
	Stream      string      `json:"stream"`
	Revision    uint64      `json:"revision"`
	Position    es.Position `json:"position"`
	Type        string      `json:"type"`
	ContentType string      `json:"contentType,omitempty"`
	Created     time.Time   `json:"created"`
	Data        []byte      `json:"data,omitempty"`
	Metadata    []byte      `json:"metadata,omitempty"`
	Error       string      `json:"error"`
	At          time.Time   `json:"at"`
}

// SaveDeadLetter implements [projection.DeadLetters]: it records d in the
// hash "<prefix>dead:<projection>", replacing the dead letter of the same
// event ID.
func (c *Checkpoints) SaveDeadLetter(ctx context.Context, d projection.DeadLetter) error {
	ev := d.Event
	data, err := json.Marshal(deadLetter{ID: ev.ID, Stream: ev.Stream, Revision: ev.Revision, Position: ev.Position,
		Type: ev.Type, ContentType: ev.ContentType, Created: ev.Created, Data: ev.Data, Metadata: ev.Metadata, Error: d.Error, At: d.At})
	if err != nil {
		return fmt.Errorf("redisproj: dead letter %s of %q: %w", ev.ID, d.Projection, err)
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	if err := c.client.HSet(ctx, c.deadKey(d.Projection), ev.ID.String(), data).Err(); err != nil {
		return c.fail(ctx, fmt.Sprintf("save dead letter %s of %q", ev.ID, d.Projection), err)
	}
	return nil
}

// DeadLetters implements [projection.DeadLetters]: the dead letters of
// projection, in log order.
func (c *Checkpoints) DeadLetters(ctx context.Context, projectionName string) ([]projection.DeadLetter, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	all, err := c.client.HGetAll(ctx, c.deadKey(projectionName)).Result()
	if err != nil {
		return nil, c.fail(ctx, fmt.Sprintf("dead letters of %q", projectionName), err)
	}
	out := make([]projection.DeadLetter, 0, len(all))
	for id, raw := range all {
		var d deadLetter
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			return nil, fmt.Errorf("redisproj: dead letter %s of %q: %w", id, projectionName, err)
		}
		out = append(out, projection.DeadLetter{Projection: projectionName, Error: d.Error, At: d.At, Event: es.RecordedEvent{
			ID: d.ID, Stream: d.Stream, Revision: d.Revision, Position: d.Position, Type: d.Type, ContentType: d.ContentType,
			Created: d.Created, Data: d.Data, Metadata: d.Metadata}})
	}
	slices.SortFunc(out, func(a, b projection.DeadLetter) int {
		return cmp.Or(a.Event.Position.Compare(b.Event.Position), strings.Compare(a.Event.ID.String(), b.Event.ID.String()))
	})
	return out, nil
}
