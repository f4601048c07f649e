// Package readmodel holds the read side of the orders example: two
// projections that fold the orders' events into SQL tables, and the queries
// that read them. The same SQL runs on SQLite and PostgreSQL.
//
// # Order summaries
//
// Projection "order-summaries" keeps one row per order, for a customer's
// order history: order ID, customer, when it was placed, status, item count
// and total.
//
// # Order details
//
// Projection "order-details" keeps an order's items with their line totals,
// its subtotal, and its timeline: one row per status change, with when it
// happened and its detail (the tracking number, the reason of a
// cancellation).
//
// # Versions
//
// Each projection writes tables named for the version being built
// (order_summaries_v2, …) and queries read views without the suffix, which
// point at the active version: a blue/green rebuild builds the next version
// beside the current one and switches the views atomically.
//
// # Partitions
//
// Both projections are split into [Partitions] partitions by order (each
// order's events are one stream): the replicas of the service share them,
// and a rebuild applies them in parallel. Every row belongs to one order,
// so the partitions never write the same rows. Version 2 is version 1
// split into partitions: a service that had version 1 rebuilds version 2
// beside it, blue/green, and switches once it has caught up.
package readmodel

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/eventfold/eventfold/projection"
	"github.com/eventfold/eventfold/projection/sqlproj"
)

// Names of the projections and of the views queries read.
const (
	SummariesName = "order-summaries"
	DetailsName   = "order-details"

	summaries = "order_summaries"
	details   = "order_details"
	items     = "order_items"
	timeline  = "order_timeline"
)

// timeLayout stores times as sortable UTC text, the same in SQLite and
// PostgreSQL.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

// Partitions is the number of partitions of the read models.
const Partitions = 4

// Version is the version of the read models' shape (see Versions).
const Version = 2

// Summaries returns the "order-summaries" projection.
func Summaries() projection.Projection[*sql.Tx] {
	return projection.Projection[*sql.Tx]{
		Name:       SummariesName,
		Version:    Version,
		Partitions: Partitions,
		Categories: []string{order.Definition().Category},
		Setup: func(ctx context.Context, tx *sql.Tx, version int) error {
			return exec(ctx, tx, `CREATE TABLE IF NOT EXISTS `+projection.VersionedName(summaries, version)+` (
				order_id    TEXT PRIMARY KEY,
				customer_id TEXT NOT NULL,
				placed_at   TEXT NOT NULL,
				status      TEXT NOT NULL,
				item_count  INTEGER NOT NULL,
				total       BIGINT NOT NULL,
				updated_at  TEXT NOT NULL)`,
				`CREATE INDEX IF NOT EXISTS `+projection.VersionedName(summaries, version)+`_customer ON `+
					projection.VersionedName(summaries, version)+` (customer_id, placed_at)`)
		},
		Reset: func(ctx context.Context, tx *sql.Tx, version int) error {
			return exec(ctx, tx, `DELETE FROM `+projection.VersionedName(summaries, version))
		},
		Handle:   projection.Each(applySummary),
		Activate: sqlproj.SwitchViews(summaries),
		Drop:     sqlproj.DropTables(summaries),
	}
}

func applySummary(ctx context.Context, tx *sql.Tx, version int, ev projection.Event) error {
	table := projection.VersionedName(summaries, version)
	switch e := ev.Payload.(type) {
	case order.Placed:
		count := 0
		for _, it := range e.Items {
			count += it.Quantity
		}
		// ON CONFLICT: a batch applied again after a crash must not fail.
		_, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (order_id, customer_id, placed_at, status, item_count, total, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (order_id) DO NOTHING`,
			e.OrderID, e.CustomerID, formatTime(e.PlacedAt), string(order.StatusPending), count, int64(e.Total), formatTime(e.PlacedAt))
		return err
	case order.Confirmed:
		return setStatus(ctx, tx, table, e.OrderID, order.StatusConfirmed, e.ConfirmedAt)
	case order.Shipped:
		return setStatus(ctx, tx, table, e.OrderID, order.StatusShipped, e.ShippedAt)
	case order.Cancelled:
		return setStatus(ctx, tx, table, e.OrderID, order.StatusCancelled, e.CancelledAt)
	}
	return nil
}

func setStatus(ctx context.Context, tx *sql.Tx, table, id string, s order.Status, at time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE `+table+` SET status = $1, updated_at = $2 WHERE order_id = $3`, string(s), formatTime(at), id)
	return err
}

// Details returns the "order-details" projection.
func Details() projection.Projection[*sql.Tx] {
	return projection.Projection[*sql.Tx]{
		Name:       DetailsName,
		Version:    Version,
		Partitions: Partitions,
		Categories: []string{order.Definition().Category},
		Setup: func(ctx context.Context, tx *sql.Tx, version int) error {
			return exec(ctx, tx,
				`CREATE TABLE IF NOT EXISTS `+projection.VersionedName(details, version)+` (
					order_id    TEXT PRIMARY KEY,
					customer_id TEXT NOT NULL,
					status      TEXT NOT NULL,
					subtotal    BIGINT NOT NULL,
					tracking    TEXT NOT NULL DEFAULT '',
					version     BIGINT NOT NULL)`,
				`CREATE TABLE IF NOT EXISTS `+projection.VersionedName(items, version)+` (
					order_id   TEXT NOT NULL,
					line       INTEGER NOT NULL,
					product_id TEXT NOT NULL,
					quantity   INTEGER NOT NULL,
					unit_price BIGINT NOT NULL,
					line_total BIGINT NOT NULL,
					PRIMARY KEY (order_id, line))`,
				`CREATE TABLE IF NOT EXISTS `+projection.VersionedName(timeline, version)+` (
					order_id TEXT NOT NULL,
					revision BIGINT NOT NULL,
					status   TEXT NOT NULL,
					at       TEXT NOT NULL,
					detail   TEXT NOT NULL,
					PRIMARY KEY (order_id, revision))`)
		},
		Reset: func(ctx context.Context, tx *sql.Tx, version int) error {
			return exec(ctx, tx,
				`DELETE FROM `+projection.VersionedName(details, version),
				`DELETE FROM `+projection.VersionedName(items, version),
				`DELETE FROM `+projection.VersionedName(timeline, version))
		},
		Handle:   projection.Each(applyDetail),
		Activate: sqlproj.SwitchViews(details, items, timeline),
		Drop:     sqlproj.DropTables(details, items, timeline),
	}
}

func applyDetail(ctx context.Context, tx *sql.Tx, version int, ev projection.Event) error {
	d, it, tl := projection.VersionedName(details, version), projection.VersionedName(items, version), projection.VersionedName(timeline, version)
	step := func(id string, s order.Status, at time.Time, detail string) error {
		if _, err := tx.ExecContext(ctx, `UPDATE `+d+` SET status = $1, version = $2 WHERE order_id = $3`, string(s), int64(ev.Revision), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+tl+` (order_id, revision, status, at, detail) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (order_id, revision) DO NOTHING`, id, int64(ev.Revision), string(s), formatTime(at), detail)
		return err
	}
	switch e := ev.Payload.(type) {
	case order.Placed:
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+d+` (order_id, customer_id, status, subtotal, version) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (order_id) DO NOTHING`, e.OrderID, e.CustomerID, string(order.StatusPending), int64(e.Total), int64(ev.Revision)); err != nil {
			return err
		}
		for i, item := range e.Items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+it+` (order_id, line, product_id, quantity, unit_price, line_total) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (order_id, line) DO NOTHING`, e.OrderID, i+1, item.ProductID, item.Quantity, int64(item.UnitPrice), int64(item.Subtotal())); err != nil {
				return err
			}
		}
		detail := fmt.Sprintf("%d items", len(e.Items))
		if len(e.Items) == 1 {
			detail = "1 item"
		}
		return step(e.OrderID, order.StatusPending, e.PlacedAt, detail)
	case order.Confirmed:
		return step(e.OrderID, order.StatusConfirmed, e.ConfirmedAt, "")
	case order.Shipped:
		if _, err := tx.ExecContext(ctx, `UPDATE `+d+` SET tracking = $1 WHERE order_id = $2`, e.TrackingNumber, e.OrderID); err != nil {
			return err
		}
		return step(e.OrderID, order.StatusShipped, e.ShippedAt, "tracking number "+e.TrackingNumber)
	case order.Cancelled:
		return step(e.OrderID, order.StatusCancelled, e.CancelledAt, e.Reason)
	}
	return nil
}

func exec(ctx context.Context, tx *sql.Tx, stmts ...string) error {
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotFound means the read model has no such order (yet).
var ErrNotFound = errors.New("readmodel: order not found")

// Summary is a row of a customer's order history.
type Summary struct {
	OrderID    string       `json:"orderId"`
	CustomerID string       `json:"customerId"`
	PlacedAt   time.Time    `json:"placedAt"`
	Status     order.Status `json:"status"`
	ItemCount  int          `json:"itemCount"`
	Total      order.Money  `json:"total"`
}

// Line is an item of an order with its line total.
type Line struct {
	ProductID string      `json:"productId"`
	Quantity  int         `json:"quantity"`
	UnitPrice order.Money `json:"unitPrice"`
	LineTotal order.Money `json:"lineTotal"`
}

// Step is a change of an order's status.
type Step struct {
	Status order.Status `json:"status"`
	At     time.Time    `json:"at"`
	Detail string       `json:"detail,omitempty"`
}

// Detail is an order with its items and timeline.
type Detail struct {
	OrderID        string       `json:"orderId"`
	CustomerID     string       `json:"customerId"`
	Status         order.Status `json:"status"`
	Items          []Line       `json:"items"`
	Subtotal       order.Money  `json:"subtotal"`
	TrackingNumber string       `json:"trackingNumber,omitempty"`
	Timeline       []Step       `json:"timeline"`
	// Version is the revision of the order's last event applied.
	Version uint64 `json:"version"`
}

// Queries reads the read models, through the views of their active
// versions.
type Queries struct {
	db *sql.DB
}

// NewQueries returns queries on db.
func NewQueries(db *sql.DB) *Queries { return &Queries{db: db} }

// CustomerOrders returns a customer's orders, newest first.
func (q *Queries) CustomerOrders(ctx context.Context, customerID string) ([]Summary, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT order_id, customer_id, placed_at, status, item_count, total
		FROM `+summaries+` WHERE customer_id = $1 ORDER BY placed_at DESC, order_id DESC`, customerID)
	if err != nil {
		return nil, fmt.Errorf("readmodel: orders of %q: %w", customerID, err)
	}
	defer rows.Close()
	out := []Summary{}
	for rows.Next() {
		var s Summary
		var placed, status string
		var total int64
		if err := rows.Scan(&s.OrderID, &s.CustomerID, &placed, &status, &s.ItemCount, &total); err != nil {
			return nil, fmt.Errorf("readmodel: orders of %q: %w", customerID, err)
		}
		if s.PlacedAt, err = parseTime(placed); err != nil {
			return nil, fmt.Errorf("readmodel: order %q: placed at: %w", s.OrderID, err)
		}
		s.Status, s.Total = order.Status(status), order.Money(total)
		out = append(out, s)
	}
	return out, rows.Err()
}

// Order returns an order's details, or [ErrNotFound].
func (q *Queries) Order(ctx context.Context, orderID string) (Detail, error) {
	d := Detail{OrderID: orderID, Items: []Line{}, Timeline: []Step{}}
	var status string
	var subtotal, version int64
	err := q.db.QueryRowContext(ctx, `SELECT customer_id, status, subtotal, tracking, version FROM `+details+` WHERE order_id = $1`, orderID).
		Scan(&d.CustomerID, &status, &subtotal, &d.TrackingNumber, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return Detail{}, fmt.Errorf("%w: %q", ErrNotFound, orderID)
	}
	if err != nil {
		return Detail{}, fmt.Errorf("readmodel: order %q: %w", orderID, err)
	}
	d.Status, d.Subtotal, d.Version = order.Status(status), order.Money(subtotal), uint64(version)

	rows, err := q.db.QueryContext(ctx, `SELECT product_id, quantity, unit_price, line_total FROM `+items+` WHERE order_id = $1 ORDER BY line`, orderID)
	if err != nil {
		return Detail{}, fmt.Errorf("readmodel: items of %q: %w", orderID, err)
	}
	for rows.Next() {
		var l Line
		var price, total int64
		if err := rows.Scan(&l.ProductID, &l.Quantity, &price, &total); err != nil {
			rows.Close()
			return Detail{}, fmt.Errorf("readmodel: items of %q: %w", orderID, err)
		}
		l.UnitPrice, l.LineTotal = order.Money(price), order.Money(total)
		d.Items = append(d.Items, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Detail{}, err
	}

	rows, err = q.db.QueryContext(ctx, `SELECT status, at, detail FROM `+timeline+` WHERE order_id = $1 ORDER BY revision`, orderID)
	if err != nil {
		return Detail{}, fmt.Errorf("readmodel: timeline of %q: %w", orderID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Step
		var st, at string
		if err := rows.Scan(&st, &at, &s.Detail); err != nil {
			return Detail{}, fmt.Errorf("readmodel: timeline of %q: %w", orderID, err)
		}
		if s.At, err = parseTime(at); err != nil {
			return Detail{}, fmt.Errorf("readmodel: timeline of %q: %w", orderID, err)
		}
		s.Status = order.Status(st)
		d.Timeline = append(d.Timeline, s)
	}
	return d, rows.Err()
}
