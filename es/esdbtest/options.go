package esdbtest

import "time"

// DefaultMaxAppendSize is EventStoreDB's default limit on the size of one
// append: 1 MiB.
const DefaultMaxAppendSize = 1 << 20

// DefaultServerVersion is the EventStoreDB version the server reports.
const DefaultServerVersion = "24.10.0"

// Option configures a [Server].
type Option func(*config)

// config is the configuration of a [Server].
type config struct {
	tls           bool
	users         map[string]string // login → password, checked with TLS only
	addr          string
	maxAppendSize int
	now           func() time.Time
	version       string
}

func newConfig(opts []Option) config {
	cfg := config{
		addr:          "127.0.0.1:0",
		maxAppendSize: DefaultMaxAppendSize,
		now:           time.Now,
		version:       DefaultServerVersion,
		users:         map[string]string{DefaultUser: DefaultPassword},
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// WithMaxAppendSize sets the largest append, in bytes of event data,
// metadata and type, that the server accepts. Values below 1
// keep the default, [DefaultMaxAppendSize].
func WithMaxAppendSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxAppendSize = n
		}
	}
}

// WithClock sets the clock that stamps the created time of events and that
// `$maxAge` is measured against. A nil clock keeps [time.Now].
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithServerVersion sets the version GetSupportedMethods reports, a
// three-part number such as "23.10.0" (the client refuses a version with a
// non-numeric part). The default is [DefaultServerVersion].
func WithServerVersion(v string) Option {
	return func(c *config) {
		if v != "" {
			c.version = v
		}
	}
}

// WithAddress sets the TCP address to listen on, "127.0.0.1:2113" for
// example. The default, "127.0.0.1:0", picks a free loopback port.
func WithAddress(addr string) Option {
	return func(c *config) {
		if addr != "" {
			c.addr = addr
		}
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
	return func(c *config) { c.tls = true }
}

// WithUser adds a user a TLS server accepts, or changes the password of
// an existing one such as [DefaultUser].
func WithUser(login, password string) Option {
	return func(c *config) {
		if login != "" {
			c.users[login] = password
		}
	}
}
