package esdbtest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
)

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]esdbtest.Option{
		"nil clock":                esdbtest.WithClock(nil),
		"zero max append size":     esdbtest.WithMaxAppendSize(0),
		"negative max append size": esdbtest.WithMaxAppendSize(-1),
		"empty version":            esdbtest.WithServerVersion(""),
		"two-part version":         esdbtest.WithServerVersion("24.10"),
		"non-numeric version":      esdbtest.WithServerVersion("24.10.0-rc1"),
		"a version not imitated":   esdbtest.WithServerVersion("26.1.0"),
		"empty address":            esdbtest.WithAddress(""),
		"address without port":     esdbtest.WithAddress("127.0.0.1"),
		"user without login":       esdbtest.WithUser("", "pw"),
		"user without password":    esdbtest.WithUser("bob", ""),
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := esdbtest.Start(opt)
			require.ErrorIs(t, err, esdbtest.ErrInvalidOption)
			assert.Nil(t, srv)
		})
	}

	_, err := esdbtest.Start(esdbtest.WithClock(nil), esdbtest.WithServerVersion("x"))
	require.ErrorIs(t, err, esdbtest.ErrInvalidOption)
	assert.ErrorContains(t, err, "nil clock", "every invalid option is reported")
	assert.ErrorContains(t, err, `server version "x"`)
}

func TestValidOptions(t *testing.T) {
	srv, err := esdbtest.Start(esdbtest.WithServerVersion("23.10.1"), esdbtest.WithMaxAppendSize(1),
		esdbtest.WithAddress("127.0.0.1:0"), esdbtest.WithUser("bob", "s3cret"))
	require.NoError(t, err)
	srv.Close()
}
