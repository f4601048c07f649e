package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"

	"github.com/eventfold/eventfold/es"
	"github.com/eventfold/eventfold/es/sqlstore/internal/backend"
)

func TestIsUnavailable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"es.ErrUnavailable", fmt.Errorf("x: %w", es.ErrUnavailable), true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), true},
		{"driver.ErrBadConn", driver.ErrBadConn, true},
		{"pgconn.ErrConnClosed", fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		{"terminated by an administrator", &pgconn.PgError{Code: "57P01"}, true},
		{"server starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"authentication failed", &pgconn.PgError{Code: "28P01"}, false},
		{"SQLITE_BUSY", errors.New("database is locked (5) (SQLITE_BUSY)"), false},
		{"context.Canceled", context.Canceled, false},
		{"unknown outcome", &backend.UnknownOutcomeError{Err: syscall.ECONNRESET}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, isUnavailable(c.err))
			if c.want {
				assert.ErrorIs(t, backend.Unavailable(c.err, isUnavailable), es.ErrUnavailable)
			} else if c.err != nil {
				assert.NotErrorIs(t, backend.Unavailable(c.err, isUnavailable), es.ErrUnavailable)
			}
		})
	}
}
