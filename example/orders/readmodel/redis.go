package readmodel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/redisproj"
)

// RedisDetailsName is the name of the order-details read model kept in
// Redis, the query service's read model for an order's details (level 3).
const RedisDetailsName = "order-details-redis"

// RedisDetails returns the "order-details-redis" projection: an order's
// details in Redis, where the query service reads them in two round trips.
// Each order is a hash "order:<id>" (customer, status, subtotal, tracking
// number, version, and the items as JSON) and a list "timeline:<id>" of its
// steps as JSON, under the key prefix of the projection's version
// ([redisproj.Tx.Key]). The handler only writes (HSET, RPUSH): a batch
// commits in the MULTI/EXEC that stores its checkpoint, so a step is never
// pushed twice.
func RedisDetails() projection.Projection[redisproj.Tx] {
	return projection.Projection[redisproj.Tx]{
		Name:       RedisDetailsName,
		Version:    1,
		Partitions: Partitions,
		Categories: []string{order.Definition().Category},
		Handle:     projection.Each(applyRedisDetail),
		Reset:      redisproj.DeleteVersion,
		Drop:       redisproj.DeleteVersion,
	}
}

// Fields of an order's hash in Redis.
const (
	fieldCustomer = "customer"
	fieldStatus   = "status"
	fieldSubtotal = "subtotal"
	fieldTracking = "tracking"
	fieldVersion  = "version"
	fieldItems    = "items"
)

func applyRedisDetail(ctx context.Context, tx redisproj.Tx, version int, ev projection.Event) error {
	push := func(id string, s order.Status, at time.Time, detail string, fields ...any) error {
		step, err := json.Marshal(Step{Status: s, At: at.UTC().Truncate(time.Microsecond), Detail: detail})
		if err != nil {
			return err
		}
		fields = append(fields, fieldStatus, string(s), fieldVersion, ev.Revision)
		tx.Pipe.HSet(ctx, tx.Key(version, "order", id), fields...)
		tx.Pipe.RPush(ctx, tx.Key(version, "timeline", id), step)
		return nil
	}
	switch e := ev.Payload.(type) {
	case order.Placed:
		lines := make([]Line, len(e.Items))
		for i, it := range e.Items {
			lines[i] = Line{ProductID: it.ProductID, Quantity: it.Quantity, UnitPrice: it.UnitPrice, LineTotal: it.Subtotal()}
		}
		items, err := json.Marshal(lines)
		if err != nil {
			return err
		}
		detail := fmt.Sprintf("%d items", len(e.Items))
		if len(e.Items) == 1 {
			detail = "1 item"
		}
		return push(e.OrderID, order.StatusPending, e.PlacedAt, detail,
			fieldCustomer, e.CustomerID, fieldSubtotal, int64(e.Total), fieldItems, items)
	case order.Confirmed:
		return push(e.OrderID, order.StatusConfirmed, e.ConfirmedAt, "")
	case order.Shipped:
		return push(e.OrderID, order.StatusShipped, e.ShippedAt, "tracking number "+e.TrackingNumber, fieldTracking, e.TrackingNumber)
	case order.Cancelled:
		return push(e.OrderID, order.StatusCancelled, e.CancelledAt, e.Reason)
	}
	return nil
}

// RedisQueries reads the order details of [RedisDetails] from Redis.
type RedisQueries struct {
	cps    *redisproj.Checkpoints
	client redis.UniversalClient
}

// NewRedisQueries returns queries on the read model that cps keeps in
// client's Redis.
func NewRedisQueries(cps *redisproj.Checkpoints, client redis.UniversalClient) *RedisQueries {
	return &RedisQueries{cps: cps, client: client}
}

// Order returns an order's details, or [ErrNotFound]: it looks up the
// active version, then reads the order's hash and timeline in one
// MULTI/EXEC, so that they are of the same batch.
func (q *RedisQueries) Order(ctx context.Context, orderID string) (Detail, error) {
	prefix, _, err := q.cps.ActivePrefix(ctx, RedisDetailsName)
	if errors.Is(err, redisproj.ErrNoActiveVersion) {
		return Detail{}, fmt.Errorf("%w: %q", ErrNotFound, orderID)
	}
	if err != nil {
		return Detail{}, fmt.Errorf("readmodel: order %q: %w", orderID, err)
	}
	var hash *redis.MapStringStringCmd
	var steps *redis.StringSliceCmd
	_, err = q.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		hash = p.HGetAll(ctx, prefix+"order:"+orderID)
		steps = p.LRange(ctx, prefix+"timeline:"+orderID, 0, -1)
		return nil
	})
	if err != nil {
		return Detail{}, fmt.Errorf("readmodel: order %q: %w", orderID, err)
	}
	return decodeRedisDetail(orderID, hash.Val(), steps.Val())
}

// decodeRedisDetail makes a Detail of an order's hash and timeline.
func decodeRedisDetail(orderID string, h map[string]string, steps []string) (Detail, error) {
	if len(h) == 0 {
		return Detail{}, fmt.Errorf("%w: %q", ErrNotFound, orderID)
	}
	d := Detail{OrderID: orderID, CustomerID: h[fieldCustomer], Status: order.Status(h[fieldStatus]),
		TrackingNumber: h[fieldTracking], Items: []Line{}, Timeline: make([]Step, len(steps))}
	bad := func(field string, err error) (Detail, error) {
		return Detail{}, fmt.Errorf("readmodel: order %q in Redis: %s: %w", orderID, field, err)
	}
	subtotal, err := strconv.ParseInt(h[fieldSubtotal], 10, 64)
	if err != nil {
		return bad(fieldSubtotal, err)
	}
	d.Subtotal = order.Money(subtotal)
	if d.Version, err = strconv.ParseUint(h[fieldVersion], 10, 64); err != nil {
		return bad(fieldVersion, err)
	}
	if err := json.Unmarshal([]byte(h[fieldItems]), &d.Items); err != nil {
		return bad(fieldItems, err)
	}
	for i, s := range steps {
		if err := json.Unmarshal([]byte(s), &d.Timeline[i]); err != nil {
			return bad(fmt.Sprintf("timeline step %d", i), err)
		}
	}
	return d, nil
}
