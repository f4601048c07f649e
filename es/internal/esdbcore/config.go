package esdbcore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultCallTimeout bounds each call into a client when the caller's
// context has no earlier deadline.
const DefaultCallTimeout = 5 * time.Second

// Config is the configuration of a Store, set by its options.
type Config struct {
	Logger      *slog.Logger
	Attempts    int // tries in all of a subscription that delivers nothing
	Backoff     time.Duration
	MaxBackoff  time.Duration
	CallTimeout time.Duration
}

// NewConfig applies opts to the defaults and reports every invalid one
// together.
func NewConfig[O ~func(*Config) error](opts []O) (Config, error) {
	c := Config{Logger: slog.Default(), Attempts: 11, Backoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, CallTimeout: DefaultCallTimeout}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&c))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// WithLogger is the option WithLogger of both packages; invalid is their
// ErrInvalidOption.
func WithLogger(invalid error, l *slog.Logger) func(*Config) error {
	return func(c *Config) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", invalid)
		}
		c.Logger = l
		return nil
	}
}

// WithResubscribe is the option WithResubscribe of both packages.
func WithResubscribe(invalid error, attempts int, backoff time.Duration) func(*Config) error {
	return func(c *Config) error {
		if attempts < 1 || backoff <= 0 {
			return fmt.Errorf("%w: resubscribe %d attempts from %v", invalid, attempts, backoff)
		}
		c.Attempts, c.Backoff, c.MaxBackoff = attempts, backoff, 50*backoff
		return nil
	}
}

// WithCallTimeout is the option WithCallTimeout of both packages.
func WithCallTimeout(invalid error, d time.Duration) func(*Config) error {
	return func(c *Config) error {
		if d <= 0 {
			return fmt.Errorf("%w: call timeout %v", invalid, d)
		}
		c.CallTimeout = d
		return nil
	}
}
