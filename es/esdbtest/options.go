package esdbtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxAppendSize is EventStoreDB's default limit on the size of one
// append: 1 MiB.
const DefaultMaxAppendSize = 1 << 20

// DefaultServerVersion is the EventStoreDB version the server reports.
const DefaultServerVersion = "24.10.0"

// ErrInvalidOption is wrapped by the errors of [Start] (and the test
// failures of [New]) for options they cannot use.
var ErrInvalidOption = errors.New("esdbtest: invalid option")

// Option configures a [Server]. Options are checked by [Start] and [New],
// which report every invalid one together.
type Option func(*config) error

// config is the configuration of a [Server].
type config struct {
	tls           bool
	users         map[string]string // login → password, checked with TLS only
	addr          string
	maxAppendSize int
	now           func() time.Time
	version       string
	dataDir       string           // WithDataDir; "" keeps the log in memory
	dataset       string           // WithDataset; "" loads none
	logger        *slog.Logger     // WithLogger
	cert          *tls.Certificate // WithCertificate; nil generates one
}

func newConfig(opts []Option) (config, error) {
	cfg := config{
		addr:          "127.0.0.1:0",
		maxAppendSize: DefaultMaxAppendSize,
		now:           time.Now,
		version:       DefaultServerVersion,
		logger:        slog.New(slog.DiscardHandler),
		users:         map[string]string{DefaultUser: DefaultPassword},
	}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&cfg))
	}
	return cfg, errors.Join(errs...)
}

// WithMaxAppendSize sets the largest append, in bytes of event data,
// metadata and type, that the server accepts (at least 1). The default is
// [DefaultMaxAppendSize].
func WithMaxAppendSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: max append size %d < 1", ErrInvalidOption, n)
		}
		c.maxAppendSize = n
		return nil
	}
}

// WithClock sets the clock that stamps the created time of events and that
// `$maxAge` is measured against; [time.Now] by default. A nil clock is an
// error.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		c.now = now
		return nil
	}
}

// MaxServerMajorVersion is the newest major version [WithServerVersion]
// accepts: the server never claims a version whose features it does not
// serve, and KurrentDB 26.1 adds AppendRecords.
const MaxServerMajorVersion = 25

// WithServerVersion sets the version GetSupportedMethods reports, a
// three-part number such as "23.10.0": anything else is an error, as the
// client refuses a version with a non-numeric part, and so is a major
// version above [MaxServerMajorVersion]. The server behaves as the version
// it reports: from 22.6.0 stream reads carry positions; from 25.0.0 it
// serves and advertises KurrentDB's multi-stream append and fills in the
// details of caught-up and fell-behind messages. The default is
// [DefaultServerVersion]. From "25.0.0" on, the server also serves
// KurrentDB 25's multi-stream appends and caught-up details (see the
// package documentation), which it never offers below.
func WithServerVersion(v string) Option {
	return func(c *config) error {
		parts := strings.Split(v, ".")
		if len(parts) != 3 {
			return fmt.Errorf("%w: server version %q is not a three-part number", ErrInvalidOption, v)
		}
		for _, p := range parts {
			if n, err := strconv.ParseUint(p, 10, 32); err != nil || strconv.FormatUint(n, 10) != p {
				return fmt.Errorf("%w: server version %q is not a three-part number", ErrInvalidOption, v)
			}
		}
		if major, _ := strconv.ParseUint(parts[0], 10, 32); major > MaxServerMajorVersion {
			return fmt.Errorf("%w: server version %q: esdbtest imitates versions up to %d.x (KurrentDB 26.1 adds AppendRecords, which it does not serve)",
				ErrInvalidOption, v, MaxServerMajorVersion)
		}
		c.version = v
		return nil
	}
}

// WithAddress sets the TCP address to listen on, "127.0.0.1:2113" for
// example; an address without a port is an error. The default,
// "127.0.0.1:0", picks a free loopback port.
func WithAddress(addr string) Option {
	return func(c *config) error {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return fmt.Errorf("%w: address %q: want host:port", ErrInvalidOption, addr)
		}
		c.addr = addr
		return nil
	}
}

// WithTLS serves over TLS, with a self-signed certificate generated at
// start, and requires credentials like EventStoreDB does by default: a call
// without credentials is denied (PermissionDenied), one with unknown
// credentials is Unauthenticated. ServerFeatures and Gossip stay open.
// [Server.ConnectionString] then carries the admin credentials and
// tlsVerifyCert=false. Without TLS the v4 client sends no credentials and
// every call is accepted.
func WithTLS() Option {
	return func(c *config) error {
		c.tls = true
		return nil
	}
}

// WithUser adds a user a TLS server accepts, or changes the password of
// an existing one such as [DefaultUser]. An empty login or password is an
// error.
func WithUser(login, password string) Option {
	return func(c *config) error {
		if login == "" || password == "" {
			return fmt.Errorf("%w: user %q: empty login or password", ErrInvalidOption, login)
		}
		c.users[login] = password
		return nil
	}
}

// versionAtLeast reports whether the version the server reports is
// major.minor or later (behaviours that changed between EventStoreDB
// versions follow the version reported).
func (c *config) versionAtLeast(major, minor uint64) bool {
	parts := strings.SplitN(c.version, ".", 3)
	got := [2]uint64{}
	for i := range got {
		if i < len(parts) {
			got[i], _ = strconv.ParseUint(parts[i], 10, 32) // checked by WithServerVersion
		}
	}
	return got[0] > major || got[0] == major && got[1] >= minor
}
