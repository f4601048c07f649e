package redisproj

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/eventfold/eventfold/projection"
)

// Errors of this package, matched with [errors.Is].
var (
	// ErrInvalidOption means an [Option] was given a value it does not
	// accept, or [New] a client it cannot use.
	ErrInvalidOption = errors.New("redisproj: invalid option")
	// ErrConflict means a checkpoint changed in Redis since this
	// [Checkpoints] last read or wrote it: another runner of the same
	// projection applied events, Redis lost its data (a restart), or a
	// commit reported as failed had been applied. Nothing was written.
	// Recovery: start the runner again, which loads the checkpoint again.
	ErrConflict = fmt.Errorf("redisproj: checkpoint changed by another runner: %w", projection.ErrFenced)
	// ErrNoActiveVersion means no version of a projection was recorded as
	// active yet ([Checkpoints.ActivePrefix]): its runner has not started.
	ErrNoActiveVersion = errors.New("redisproj: no active version")
	// ErrPartialCommit means Redis ran a commit's MULTI/EXEC but some of
	// its commands failed at run time (a command on a key of the wrong
	// type): Redis does not roll back, so the others took effect, the
	// checkpoint included. The error names the first failed command.
	ErrPartialCommit = errors.New("redisproj: commands of a transaction failed")
)

// Defaults of the options.
const (
	// DefaultPrefix starts every key the package writes ([WithPrefix]).
	DefaultPrefix = "eventfold:"
	// DefaultLeasePoll is how often a waiting [Checkpoints.Lease] tries to
	// take the lease again ([WithLeasePoll]).
	DefaultLeasePoll = time.Second
	// DefaultLeaseTTL is the time-to-live of a lease ([WithLeaseTTL]).
	DefaultLeaseTTL = 15 * time.Second
	// DefaultCallTimeout bounds each call into Redis ([WithCallTimeout]).
	DefaultCallTimeout = 5 * time.Second
)

// minLeaseTTL is the shortest time-to-live WithLeaseTTL takes.
const minLeaseTTL = 100 * time.Millisecond

// Option configures [Checkpoints]. Each option checks its value, and [New]
// reports every invalid option together, each wrapping
// [ErrInvalidOption].
type Option func(*config) error

type config struct {
	prefix      string
	logger      *slog.Logger
	leasePoll   time.Duration
	leaseTTL    time.Duration
	leaseHolder string
	callTimeout time.Duration
}

// WithPrefix sets the prefix of every key the package writes
// ([DefaultPrefix] by default): checkpoints, leases, members, active
// versions, dead letters and the read models' keys ([Checkpoints.Prefix]).
// Checkpoints with different prefixes on one Redis are independent. The
// prefix is 1 to 100 bytes long.
func WithPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" || len(prefix) > 100 {
			return invalid("key prefix %q: want 1 to 100 bytes", prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithLogger sets the logger of leases and warnings; slog.Default() by
// default. It must not be nil.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return invalid("nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithLeasePoll sets how often a waiting lease tries to take the lease
// again ([DefaultLeasePoll] by default): the longest a standby replica
// takes to notice that a lease was given back. It must be positive.
func WithLeasePoll(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("lease poll interval %v", d)
		}
		c.leasePoll = d
		return nil
	}
}

// WithLeaseTTL sets the time-to-live of leases and memberships
// ([DefaultLeaseTTL] by default). A holder renews its lease every third of
// it; a holder that could not renew it within the time-to-live counts it
// lost and stops committing, and Redis lets the key expire so that a
// standby takes it over. It must be at least 100ms.
func WithLeaseTTL(ttl time.Duration) Option {
	return func(c *config) error {
		if ttl < minLeaseTTL {
			return invalid("lease time-to-live %v: want at least %v", ttl, minLeaseTTL)
		}
		c.leaseTTL = ttl
		return nil
	}
}

// WithCallTimeout bounds each call into Redis ([DefaultCallTimeout] by
// default): a load, a commit (the handler's reads and a Reset's SCAN
// included: raise it for rebuilds in place of very large read models), a
// version's switch, a dead letter. A Redis that stalls or a lost
// connection then fails the call instead of hanging it. Renewals of leases
// are bounded by the leases' expiry. It must be positive.
//
// go-redis applies a context's deadline to the socket only when the
// client was made with ContextTimeoutEnabled; otherwise its own
// ReadTimeout and WriteTimeout bound each command, and [New] logs a
// warning.
func WithCallTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("call timeout %v", d)
		}
		c.callTimeout = d
		return nil
	}
}

// WithLeaseHolder sets the name this process's leases are held under, as
// status reports show it ([projection.Status].Holder): the host name and
// process ID by default ("host:1234"). Any text of 1 to 200 bytes;
// fencing does not depend on it.
func WithLeaseHolder(name string) Option {
	return func(c *config) error {
		if name == "" || len(name) > 200 {
			return invalid("lease holder %q: want 1 to 200 bytes", name)
		}
		c.leaseHolder = name
		return nil
	}
}

// invalid returns an error wrapping ErrInvalidOption.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

// defaultHolder names this process: host name and process ID.
func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + ":" + strconv.Itoa(os.Getpid())
}

// Checkpoints keeps the checkpoints of projections in Redis and commits
// each batch of a read model in Redis in the MULTI/EXEC that stores its
// checkpoint. It also grants leases ([projection.Leaser],
// [projection.LeaseHolders]), lets replicas see each other
// ([projection.Membership]), records the active version of blue/green read
// models ([projection.Versions]) and keeps dead letters
// ([projection.DeadLetters]). It is safe for concurrent use.
type Checkpoints struct {
	client redis.UniversalClient
	cfg    config
	// instance identifies this value in the leases it holds.
	instance string

	taking sync.Mutex // held while a lease is taken
	mu     sync.Mutex
	seen   map[string]seen  // the checkpoints this value last read or wrote
	leased map[string]*held // the leases this value holds, by key
}

var (
	_ projection.Checkpoints[Tx] = (*Checkpoints)(nil)
	_ projection.Leaser          = (*Checkpoints)(nil)
	_ projection.LeaseHolders    = (*Checkpoints)(nil)
	_ projection.Membership      = (*Checkpoints)(nil)
	_ projection.Versions[Tx]    = (*Checkpoints)(nil)
	_ projection.DeadLetters     = (*Checkpoints)(nil)
)

// New returns checkpoints kept in Redis through client, which stays the
// caller's: New does not close it. client is a single Redis server's
// client (*redis.Client, also from a Sentinel failover); Redis Cluster and
// Ring clients are refused with [ErrInvalidOption], for a transaction
// there cannot span the keys of a checkpoint and its read model. New
// checks that Redis answers (PING).
func New(ctx context.Context, client redis.UniversalClient, opts ...Option) (*Checkpoints, error) {
	cfg := config{prefix: DefaultPrefix, logger: slog.Default(), leasePoll: DefaultLeasePoll,
		leaseTTL: DefaultLeaseTTL, leaseHolder: defaultHolder(), callTimeout: DefaultCallTimeout}
	var errs []error
	for _, opt := range opts {
		if opt != nil {
			errs = append(errs, opt(&cfg))
		}
	}
	switch c := client.(type) {
	case nil:
		errs = append(errs, invalid("nil client"))
	case *redis.ClusterClient, *redis.Ring:
		errs = append(errs, invalid("%T: want the client of a single Redis server", c))
	case *redis.Client:
		if c == nil {
			errs = append(errs, invalid("nil client"))
		} else if !c.Options().ContextTimeoutEnabled {
			cfg.logger.WarnContext(ctx, "redisproj: the client was made without ContextTimeoutEnabled: its ReadTimeout and WriteTimeout bound the calls, not the call timeout")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Checkpoints{client: client, cfg: cfg, instance: uuid.NewString(),
		seen: make(map[string]seen), leased: make(map[string]*held)}
	pctx, cancel := c.call(ctx)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		return nil, c.fail(pctx, "ping", err)
	}
	return c, nil
}

// call bounds a call into Redis by the call timeout.
func (c *Checkpoints) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.callTimeout)
}

// fail returns the error of a call into Redis that failed: prefixed with
// what, matching ctx's error if ctx is done, and matching
// [projection.ErrUnavailable] if Redis could not be reached or did not
// answer in time, so that a runner does not blame its events.
func (c *Checkpoints) fail(ctx context.Context, what string, err error) error {
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		// The socket's deadline, the context's, may fire before its timer.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	if transient(err) {
		return fmt.Errorf("redisproj: %s: %w: %w", what, projection.ErrUnavailable, err)
	}
	return fmt.Errorf("redisproj: %s: %w", what, err)
}

// transient reports whether err says that Redis could not be reached or
// answer for now, rather than that it refused a command.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "BUSY ", "CLUSTERDOWN"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// Names of the keys, after the prefix.
const (
	checkpointInfix = "cp:"
	leaseInfix      = "lease:"
	membersInfix    = "members:"
	activeInfix     = "active:"
	deadInfix       = "dead:"
	readModelInfix  = "rm:"
)

func (c *Checkpoints) checkpointKey(key string) string { return c.cfg.prefix + checkpointInfix + key }
func (c *Checkpoints) leaseKey(key string) string      { return c.cfg.prefix + leaseInfix + key }
func (c *Checkpoints) activeKey(name string) string    { return c.cfg.prefix + activeInfix + name }
func (c *Checkpoints) deadKey(name string) string      { return c.cfg.prefix + deadInfix + name }
func (c *Checkpoints) membersKey(group string) string  { return c.cfg.prefix + membersInfix + group }

// Prefix returns the prefix of the keys of version of the read model of
// projection name: "<prefix>rm:<name>:v<version>:" ("eventfold:rm:orders:v2:"
// by default). Handlers build the same with [Tx.Key]; queries read the
// active version's keys under [Checkpoints.ActivePrefix].
func (c *Checkpoints) Prefix(name string, version int) string {
	return versionPrefix(c.cfg.prefix+readModelInfix+name+":", version)
}

func versionPrefix(base string, version int) string {
	return base + "v" + strconv.Itoa(version) + ":"
}

// ActivePrefix returns the active version of projection name and the
// prefix of its keys ([Checkpoints.Prefix]), where queries read the read
// model. Before the projection's runner first started, it returns an error
// matching [ErrNoActiveVersion].
func (c *Checkpoints) ActivePrefix(ctx context.Context, name string) (prefix string, version int, err error) {
	version, err = c.ActiveVersion(ctx, name)
	if err != nil {
		return "", 0, err
	}
	if version == 0 {
		return "", 0, fmt.Errorf("%w of %q", ErrNoActiveVersion, name)
	}
	return c.Prefix(name, version), version, nil
}

// Tx is the transaction of a batch: its handler queues its writes on Pipe,
// and they run in the MULTI/EXEC that stores the projection's checkpoint,
// all or nothing with it. Read runs reads at once, on the connection that
// watches the checkpoint: they see Redis as it was before the
// transaction, without the writes queued on Pipe.
//
// Writes must go to Pipe, never to Read (they would not be part of the
// transaction); commands queued on Pipe report their results only once
// the transaction has run, after the handler returned.
type Tx struct {
	// Pipe queues the transaction's writes.
	Pipe redis.Pipeliner
	// Read reads now, before the transaction.
	Read redis.Cmdable
	// base is "<prefix>rm:<name>:", the keys of the projection's read
	// models.
	base string
}

// Prefix returns the prefix of the keys of version of the projection's
// read model: "<prefix>rm:<name>:v<version>:", as [Checkpoints.Prefix].
func (tx Tx) Prefix(version int) string { return versionPrefix(tx.base, version) }

// Key returns the key of version of the projection's read model made of
// parts joined by ":": tx.Key(2, "order", "42") is
// "eventfold:rm:orders:v2:order:42" for projection "orders".
func (tx Tx) Key(version int, parts ...string) string {
	return tx.Prefix(version) + strings.Join(parts, ":")
}
