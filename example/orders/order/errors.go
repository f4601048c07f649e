package order

import (
	"errors"
	"fmt"
)

// Errors the deciders return, often wrapped with details; match them with
// [errors.Is].
var (
	// ErrInvalidCommand means a command is malformed, whatever the state of
	// the order. The errors below that are about a command's data match it
	// too.
	ErrInvalidCommand = errors.New("order: invalid command")
	// ErrMissingField means a required field of a command is empty: an
	// order or customer ID, a product ID, a tracking number, a reason or a
	// time.
	ErrMissingField = fmt.Errorf("%w: missing field", ErrInvalidCommand)
	// ErrEmptyOrder means an order was placed without items.
	ErrEmptyOrder = fmt.Errorf("%w: an order needs at least one item", ErrInvalidCommand)
	// ErrInvalidQuantity means an item's quantity is not positive.
	ErrInvalidQuantity = fmt.Errorf("%w: quantity must be positive", ErrInvalidCommand)
	// ErrInvalidPrice means an item's unit price is not positive.
	ErrInvalidPrice = fmt.Errorf("%w: unit price must be positive", ErrInvalidCommand)

	// ErrInvalidTransition means the order's status forbids the command:
	// confirming an order that is not pending, shipping one that is not
	// confirmed, cancelling one that was shipped or cancelled, or placing
	// an order that exists.
	ErrInvalidTransition = errors.New("order: invalid transition")
)

// missing returns an error matching [ErrMissingField] for the named field.
func missing(field string) error {
	return fmt.Errorf("%w: %s", ErrMissingField, field)
}

// invalidTransition returns an error matching [ErrInvalidTransition] that
// says why order id cannot do what verb says.
func invalidTransition(verb, id string, from Status) error {
	if from == "" {
		return fmt.Errorf("%w: cannot %s order %s: it was never placed", ErrInvalidTransition, verb, id)
	}
	return fmt.Errorf("%w: cannot %s order %s: it is %s", ErrInvalidTransition, verb, id, from)
}
