package es_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eventfold/eventfold/es"
)

func TestValidateStreamName(t *testing.T) {
	for _, name := range []string{"a", "order-42", "$$order-42", "$all", "Ünïcode ✓", strings.Repeat("x", es.MaxNameLength)} {
		assert.NoErrorf(t, es.ValidateStreamName(name), "%.40q", name)
	}
	for _, name := range []string{"", strings.Repeat("x", es.MaxNameLength+1), "bad\xff", "nul\x00"} {
		assert.ErrorIsf(t, es.ValidateStreamName(name), es.ErrInvalidArgument, "%.40q", name)
	}
}

func TestValidateEventType(t *testing.T) {
	assert.NoError(t, es.ValidateEventType("OrderPlaced"))
	for _, name := range []string{"", strings.Repeat("x", es.MaxNameLength+1), "bad\xff", "nul\x00"} {
		err := es.ValidateEventType(name)
		assert.ErrorIsf(t, err, es.ErrInvalidArgument, "%.40q", name)
		assert.Containsf(t, err.Error(), "event type", "%.40q", name)
	}
}
