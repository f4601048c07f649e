package main

import (
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventfold/eventfold/example/orders/order"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// bareAPI is the baseline of BenchmarkService: the same HTTP shape as the
// service's POST /orders and GET /orders/{id}, done by hand-written SQL on
// one database, with no event store, bus, relay, runner or process
// manager. A POST reads the stream's head, inserts the event row and the
// read model's row in one transaction, and answers with the row read back;
// a GET reads the row. It is the floor that the service's figures are
// compared with.
type bareAPI struct {
	writer *sql.DB // for the POST's transaction
	reader *sql.DB // for reading the row back
	now    func() time.Time
}

// Schemas of the baseline: an event table with the columns of es/sqlstore's
// (the position, the stream and its revision, unique together), and one
// read-model row per order with its items as JSON.
var (
	bareSQLite = []string{
		`CREATE TABLE bare_events (
			position     INTEGER PRIMARY KEY AUTOINCREMENT,
			stream       TEXT NOT NULL,
			revision     INTEGER NOT NULL,
			id           TEXT NOT NULL,
			type         TEXT NOT NULL,
			content_type TEXT NOT NULL,
			data         BLOB NOT NULL,
			metadata     BLOB NOT NULL,
			created      INTEGER NOT NULL,
			UNIQUE (stream, revision))`,
		bareOrdersTable,
	}
	barePostgres = []string{
		`CREATE TABLE bare_events (
			position     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			stream       TEXT NOT NULL,
			revision     BIGINT NOT NULL,
			id           TEXT NOT NULL,
			type         TEXT NOT NULL,
			content_type TEXT NOT NULL,
			data         BYTEA NOT NULL,
			metadata     BYTEA NOT NULL,
			created      BIGINT NOT NULL,
			UNIQUE (stream, revision))`,
		bareOrdersTable,
	}
	bareOrdersTable = `CREATE TABLE bare_orders (
		order_id    TEXT PRIMARY KEY,
		customer_id TEXT NOT NULL,
		status      TEXT NOT NULL,
		subtotal    BIGINT NOT NULL,
		items       TEXT NOT NULL,
		placed_at   TEXT NOT NULL,
		version     BIGINT NOT NULL)`
)

// newBareSQLite returns the baseline on a SQLite file at path, as a
// careful hand-written service would open it: one connection that writes
// (so that writers queue in the pool instead of in SQLite's busy handler,
// as in es/sqlstore), and a pool that reads.
func newBareSQLite(tb testing.TB, path string) *bareAPI {
	tb.Helper()
	writer, err := sql.Open("sqlite", sqliteDSN(path))
	require.NoError(tb, err)
	tb.Cleanup(func() { writer.Close() })
	writer.SetMaxOpenConns(1)
	reader, err := sql.Open("sqlite", sqliteDSN(path))
	require.NoError(tb, err)
	tb.Cleanup(func() { reader.Close() })
	reader.SetMaxIdleConns(16)
	return newBareAPI(tb, writer, reader, bareSQLite)
}

// newBarePostgres returns the baseline on the PostgreSQL database at url,
// with a pool that keeps a connection for each of 16 clients (the default
// keeps two, and opens and closes the others for every request).
func newBarePostgres(tb testing.TB, url string) *bareAPI {
	tb.Helper()
	db, err := sql.Open("pgx", url)
	require.NoError(tb, err)
	tb.Cleanup(func() { db.Close() })
	db.SetMaxIdleConns(16)
	return newBareAPI(tb, db, db, barePostgres)
}

// newBareAPI creates the baseline's tables with schema, and returns its
// API.
func newBareAPI(tb testing.TB, writer, reader *sql.DB, schema []string) *bareAPI {
	tb.Helper()
	for _, stmt := range schema {
		_, err := writer.ExecContext(tb.Context(), stmt)
		require.NoError(tb, err)
	}
	return &bareAPI{writer: writer, reader: reader, now: time.Now}
}

func (b *bareAPI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", b.placeOrder)
	mux.HandleFunc("GET /orders/{id}", b.getOrder)
	return mux
}

// bareOrder is the baseline's read model of an order.
type bareOrder struct {
	OrderID    string       `json:"orderId"`
	CustomerID string       `json:"customerId"`
	Status     order.Status `json:"status"`
	Subtotal   order.Money  `json:"subtotal"`
	Items      []order.Item `json:"items"`
	PlacedAt   string       `json:"placedAt"`
	Version    uint64       `json:"version"`
}

func (b *bareAPI) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req placeRequest
	if !(&api{}).decode(w, r, &req) {
		return
	}
	if req.OrderID == "" || req.CustomerID == "" || len(req.Items) == 0 {
		writeError(w, http.StatusBadRequest, "an order needs an ID, a customer and items")
		return
	}
	now := b.now().UTC()
	e := order.Placed{OrderID: req.OrderID, CustomerID: req.CustomerID, Items: req.Items, PlacedAt: now}
	for _, it := range req.Items {
		e.Total += it.Subtotal()
	}
	data, err := json.Marshal(e)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	metadata, err := json.Marshal(map[string]string{"correlationId": requestID(r)})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	items, err := json.Marshal(req.Items)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}

	position, err := b.append(r, e, data, metadata, string(items))
	if errors.Is(err, errBareExists) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set(PositionHeader, strconv.FormatInt(position, 10))
	w.Header().Set("Location", "/orders/"+e.OrderID)
	b.writeOrder(w, r, http.StatusCreated, e.OrderID)
}

var errBareExists = errors.New("the order exists already")

// append reads the stream's head, and inserts the event and the read
// model's row, in one transaction.
func (b *bareAPI) append(r *http.Request, e order.Placed, data, metadata []byte, items string) (int64, error) {
	ctx := r.Context()
	tx, err := b.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	stream := "order-" + e.OrderID
	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(revision), -1) FROM bare_events WHERE stream = $1`, stream).Scan(&head); err != nil {
		return 0, err
	}
	if head != -1 {
		return 0, errBareExists
	}
	var position int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO bare_events (stream, revision, id, type, content_type, data, metadata, created)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING position`,
		stream, head+1, uuid.NewString(), "OrderPlaced", "application/json", data, metadata, e.PlacedAt.UnixNano()).Scan(&position); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bare_orders (order_id, customer_id, status, subtotal, items, placed_at, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.OrderID, e.CustomerID, string(order.StatusPending), int64(e.Total), items, e.PlacedAt.Format(time.RFC3339Nano), head+1); err != nil {
		return 0, err
	}
	return position, tx.Commit()
}

func (b *bareAPI) getOrder(w http.ResponseWriter, r *http.Request) {
	b.writeOrder(w, r, http.StatusOK, r.PathValue("id"))
}

// writeOrder answers with the read model's row of order id.
func (b *bareAPI) writeOrder(w http.ResponseWriter, r *http.Request, status int, id string) {
	var o bareOrder
	var items string
	err := b.reader.QueryRowContext(r.Context(), `SELECT order_id, customer_id, status, subtotal, items, placed_at, version FROM bare_orders WHERE order_id = $1`, id).
		Scan(&o.OrderID, &o.CustomerID, &o.Status, &o.Subtotal, &items, &o.PlacedAt, &o.Version)
	if errors.Is(err, sql.ErrNoRows) {
		writeError(w, http.StatusNotFound, "order not found")
		return
	}
	if err == nil {
		err = json.Unmarshal([]byte(items), &o.Items)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, status, o)
}
