package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/es/esdbtest"
	"github.com/eventfold/eventfold/es/esdbtest/internal/v4suite"
)

func TestRunWritesALoadableDataset(t *testing.T) {
	out := filepath.Join(t.TempDir(), "v4suite.jsonl")
	require.NoError(t, run(t.Context(), []string{"-o", out}, nil))

	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	srv := esdbtest.New(t)
	require.NoError(t, srv.Load(f))
	assert.Len(t, srv.Events(v4suite.Stream0), v4suite.Stream0Len)
	assert.Len(t, srv.Events(v4suite.Stream1800), v4suite.Stream1800Len)

	// Standard output by default, and the same bytes every time.
	resources, err := v4suite.ResourcesDir(t.Context())
	require.NoError(t, err)
	var stdout bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-resources", resources}, &stdout))
	written, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, written, stdout.Bytes())
}

func TestRunErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"extra"},
		{"-resources", t.TempDir()},
		{"-o", filepath.Join(t.TempDir(), "missing", "out.jsonl")},
	} {
		assert.Error(t, run(t.Context(), args, &bytes.Buffer{}), "%q", args)
	}
}
