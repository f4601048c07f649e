package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/internal/faultproxy"
)

// echo starts a line echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads the answer within wait.
func (c *client) roundTrip(line string, wait time.Duration) (string, error) {
	_ = c.c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c.c, line+"\n"); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s, err
}

func TestForwards(t *testing.T) {
	p := faultproxy.Start(t, echo(t))
	c := dial(t, p.Addr())
	got, err := c.roundTrip("hello", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "hello", got)
	assert.Equal(t, 1, p.Dialed())
	assert.Equal(t, 1, p.Open())
}

func TestCutClosesAndRefusesUntilRestored(t *testing.T) {
	p := faultproxy.Start(t, echo(t))
	c := dial(t, p.Addr())
	_, err := c.roundTrip("a", 5*time.Second)
	require.NoError(t, err)

	p.Cut()
	_, err = c.roundTrip("b", 5*time.Second)
	require.Error(t, err, "the connection is gone")
	var ne net.Error
	if errors.As(err, &ne) {
		assert.False(t, ne.Timeout(), "a cut is seen at once, not after a deadline: %v", err)
	}
	if nc, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil { // or reset during the handshake
		defer nc.Close()
		_, err = (&client{c: nc, r: bufio.NewReader(nc)}).roundTrip("c", 5*time.Second)
		require.Error(t, err, "a new connection is refused")
	}

	p.Restore()
	got, err := dial(t, p.Addr()).roundTrip("d", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "d", got)
}

func TestStallDropsBytesUntilRestored(t *testing.T) {
	p := faultproxy.Start(t, echo(t))
	c := dial(t, p.Addr())
	_, err := c.roundTrip("a", 5*time.Second)
	require.NoError(t, err)

	p.Stall()
	_, err = c.roundTrip("b", 200*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "a stalled connection answers nothing: only the deadline ends the wait")
	fresh := dial(t, p.Addr()) // accepted, but held
	_, err = fresh.roundTrip("c", 200*time.Millisecond)
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	p.Restore()
	_, err = c.roundTrip("d", 5*time.Second)
	require.Error(t, err, "a connection that lost bytes is closed on restore")
	got, err := dial(t, p.Addr()).roundTrip("e", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "e", got)
}

func TestResetClosesButAccepts(t *testing.T) {
	p := faultproxy.Start(t, echo(t))
	c := dial(t, p.Addr())
	_, err := c.roundTrip("a", 5*time.Second)
	require.NoError(t, err)
	p.Reset()
	_, err = c.roundTrip("b", 5*time.Second)
	require.Error(t, err)
	got, err := dial(t, p.Addr()).roundTrip("c", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "c", got)
}

func TestDelay(t *testing.T) {
	p := faultproxy.Start(t, echo(t))
	c := dial(t, p.Addr())
	p.Delay(100 * time.Millisecond)
	start := time.Now()
	got, err := c.roundTrip("slow", 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "slow", got)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "held once each way")
}

func TestCloseEndsStalledConnections(t *testing.T) {
	p, err := faultproxy.New(echo(t))
	require.NoError(t, err)
	c := dial(t, p.Addr())
	p.Stall()
	_ = dial(t, p.Addr())
	_, err = c.roundTrip("x", 50*time.Millisecond)
	require.Error(t, err)
	p.Close() // returns: the held connections are let go
	p.Close() // twice is fine
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.Error(t, err, "nothing listens any more")
}
