package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Exceptions and trailers of the PersistentSubscriptions service.
const (
	exceptionPSNotFound      = "persistent-subscription-does-not-exist"
	exceptionPSExists        = "persistent-subscription-exists"
	exceptionPSMaxConsumers  = "maximum-subscribers-reached"
	exceptionPSDropped       = "persistent-subscription-dropped"
	exceptionPSFailed        = "persistent-subscription-failed"
	trailerReason            = "reason"
	trailerGroupName         = "group-name"
	psStatusLive             = "Live"
	strategyRoundRobin       = "RoundRobin"
	strategyDispatchToSingle = "DispatchToSingle"
	strategyPinned           = "Pinned"
	strategyPinnedByCorr     = "PinnedByCorrelation"

	// psBuckets is the number of buckets the pinned strategies hash their
	// keys onto; buckets, not keys, are assigned to consumers.
	psBuckets = 1024
)

// psKey names a persistent subscription group: a stream (or `$all`) and a
// group name.
type psKey struct {
	stream string
	group  string
}

// psSettings are the settings of a group.
type psSettings struct {
	resolveLinks       bool
	extraStatistics    bool
	maxRetryCount      int32
	minCheckpointCount int32
	maxCheckpointCount int32
	maxSubscriberCount int32
	liveBufferSize     int32
	readBatchSize      int32
	historyBufferSize  int32
	strategy           string
	messageTimeout     time.Duration // 0: messages never time out
	checkpointAfter    time.Duration
}

// psStart is where a group starts reading, inclusive.
type psStart struct {
	kind  fromKind
	point uint64 // revision, or commit position for `$all`
}

// psGroup is a persistent subscription group. Guarded by persistentService.mu.
type psGroup struct {
	key      psKey
	all      bool
	filter   *filter
	settings psSettings
	start    psStart

	nextRev uint64 // stream: next revision to read
	nextIdx int    // `$all`: next log index to read
	minPos  uint64 // `$all`: records before this position are skipped

	retry     []*psMessage // messages to deliver again, in order
	peeked    *psMessage   // read from the source, not yet dispatched
	inflight  []*psMessage // dispatched, not yet acknowledged
	consumers []*psConsumer
	buckets   []*psConsumer // pinned strategies: the consumer of each bucket, nil for none

	delivered int64
	rr        int     // round-robin cursor over consumers
	lastKnown *record // newest record read from the source

	// Checkpoints. pending holds the messages read from the source, in
	// source order, from the oldest one not yet settled (acknowledged,
	// skipped or parked); settled is the newest record up to which every
	// read record is settled, since the number of records settled since the
	// last checkpoint, and checkpoint the record of the last checkpoint
	// written to the checkpoint stream.
	pending    []*psMessage
	settled    *record
	since      int32
	checkpoint *record
	timer      *time.Timer // writes a checkpoint after checkpointAfter; nil when not armed
}

// psMessage is a record on its way through a group.
type psMessage struct {
	rec      *record
	retry    int32
	deadline time.Time // zero: no timeout
	owner    *psConsumer
	settled  bool      // acknowledged, skipped or parked
	replayed bool      // replayed from the parked stream: outside checkpointing
	sent     time.Time // when it was dispatched to its owner
}

// psConsumer is one connected Read call of a group.
type psConsumer struct {
	from        string
	name        string // the connection name the client sent
	user        string
	buckets     int // pinned strategies: how many buckets are assigned to it
	bufferSize  int
	inflight    int
	delivered   int64
	outbox      []*psMessage  // dispatched to this consumer, not yet sent
	latencies   latencies     // extra statistics: dispatch to ack times
	stop        chan struct{} // closed to end the call with stopErr
	stopErr     error
	stopTrailer metadata.MD
}

// free reports whether the consumer has room for another message.
func (c *psConsumer) free() bool {
	return c.inflight < c.bufferSize
}

// end stops the consumer's call with trailers md and status err; the first
// call wins.
func (c *psConsumer) end(md metadata.MD, err error) {
	if c.stopErr == nil {
		c.stopErr, c.stopTrailer = err, md
		close(c.stop)
	}
}

// persistentService serves the PersistentSubscriptions service. Groups
// live in memory; like EventStoreDB, they write their checkpoints and parked
// messages to system streams (see psCheckpointStream and psParkedStream).
type persistentService struct {
	persistent.UnimplementedPersistentSubscriptionsServer
	srv *Server

	mu      sync.Mutex
	groups  map[psKey]*psGroup
	changed chan struct{} // closed and replaced on every state change
}

func newPersistentService(srv *Server) *persistentService {
	return &persistentService{srv: srv, groups: make(map[psKey]*psGroup), changed: make(chan struct{})}
}

func (p *persistentService) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// trailerSetter returns the function that sets the trailers of a unary call.
func trailerSetter(ctx context.Context) func(metadata.MD) {
	return func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }
}

func psNotFound(setTrailer func(metadata.MD), k psKey) error {
	setTrailer(metadata.Pairs(trailerException, exceptionPSNotFound, trailerStreamName, k.stream, trailerGroupName, k.group))
	return status.Errorf(codes.NotFound, "Subscription group %s on stream %s does not exist.", k.group, k.stream)
}

func psExists(setTrailer func(metadata.MD), k psKey) error {
	setTrailer(metadata.Pairs(trailerException, exceptionPSExists, trailerStreamName, k.stream, trailerGroupName, k.group))
	return status.Errorf(codes.AlreadyExists, "Subscription group %s on stream %s exists.", k.group, k.stream)
}

// psFailed returns the error for a group that cannot be created or
// updated, with the reason.
func psFailed(setTrailer func(metadata.MD), k psKey, reason string) error {
	setTrailer(metadata.Pairs(trailerException, exceptionPSFailed, trailerStreamName, k.stream, trailerGroupName, k.group, trailerReason, reason))
	return status.Errorf(codes.Internal, "Subscription group %s on stream %s failed: '%s'", k.group, k.stream, reason)
}

// psDropped returns the status and trailers that end a consumer whose
// group was updated or restarted, or who asked to stop.
func psDropped(k psKey) (metadata.MD, error) {
	return metadata.Pairs(trailerException, exceptionPSDropped, trailerStreamName, k.stream, trailerGroupName, k.group),
		status.Errorf(codes.Canceled, "Subscription group %s on stream %s was dropped.", k.group, k.stream)
}

// psStream decodes the stream of a request: a stream identifier or `$all`.
func psStream(id *shared.StreamIdentifier, all bool) (string, error) {
	if all {
		return allStreamName, nil
	}
	return streamName(id)
}

// settingsWire is what the Create and Update settings messages share.
type settingsWire interface {
	GetResolveLinks() bool
	GetExtraStatistics() bool
	GetMaxRetryCount() int32
	GetMinCheckpointCount() int32
	GetMaxCheckpointCount() int32
	GetMaxSubscriberCount() int32
	GetLiveBufferSize() int32
	GetReadBatchSize() int32
	GetHistoryBufferSize() int32
	GetMessageTimeoutMs() int32
	GetMessageTimeoutTicks() int64
	GetCheckpointAfterMs() int32
	GetCheckpointAfterTicks() int64
}

// parseSettings validates group settings; strategy is the consumer
// strategy's name. Its errors are reasons for psFailed.
func parseSettings(w settingsWire, strategy string) (psSettings, error) {
	switch strategy {
	case strategyRoundRobin, strategyDispatchToSingle, strategyPinned, strategyPinnedByCorr:
	default:
		return psSettings{}, fmt.Errorf("unknown consumer strategy %q", strategy)
	}
	// A maximum checkpoint count below the minimum is valid: the maximum
	// forces a checkpoint, so it wins (see checkpointLocked).
	if w.GetMaxRetryCount() < 0 || w.GetMaxSubscriberCount() < 0 || w.GetMinCheckpointCount() < 0 ||
		w.GetMaxCheckpointCount() < 0 {
		return psSettings{}, errors.New("negative counts")
	}
	s := psSettings{
		resolveLinks:       w.GetResolveLinks(),
		extraStatistics:    w.GetExtraStatistics(),
		maxRetryCount:      w.GetMaxRetryCount(),
		minCheckpointCount: w.GetMinCheckpointCount(),
		maxCheckpointCount: w.GetMaxCheckpointCount(),
		maxSubscriberCount: w.GetMaxSubscriberCount(),
		liveBufferSize:     w.GetLiveBufferSize(),
		readBatchSize:      w.GetReadBatchSize(),
		historyBufferSize:  w.GetHistoryBufferSize(),
		strategy:           strategy,
		messageTimeout:     time.Duration(w.GetMessageTimeoutMs()) * time.Millisecond,
		checkpointAfter:    time.Duration(w.GetCheckpointAfterMs()) * time.Millisecond,
	}
	if ticks := w.GetMessageTimeoutTicks(); ticks > 0 {
		s.messageTimeout = time.Duration(ticks) * 100
	}
	if ticks := w.GetCheckpointAfterTicks(); ticks > 0 {
		s.checkpointAfter = time.Duration(ticks) * 100
	}
	if s.messageTimeout < 0 {
		s.messageTimeout = 0
	}
	return s, nil
}

// strategyName maps the deprecated strategy enum (the one the v4 client
// sends) to its name.
func strategyName(v int32) string {
	switch v {
	case int32(persistent.CreateReq_DispatchToSingle):
		return strategyDispatchToSingle
	case int32(persistent.CreateReq_Pinned):
		return strategyPinned
	// The enum has no PinnedByCorrelation: clients send its name in
	// consumer_strategy.
	case int32(persistent.CreateReq_RoundRobin):
		return strategyRoundRobin
	default:
		return ""
	}
}

// resolveStartLocked places a group's read cursor at its start. Needs the
// store's lock.
func (g *psGroup) resolveStartLocked(s *store) {
	if g.all {
		switch g.start.kind {
		case fromStart:
			g.nextIdx, g.minPos = 0, 0
		case fromEnd:
			g.nextIdx, g.minPos = len(s.log), s.headLocked()+1
		default:
			g.nextIdx, g.minPos = s.indexFromLocked(g.start.point), g.start.point
		}
		return
	}
	switch g.start.kind {
	case fromStart:
		g.nextRev = 0
	case fromEnd:
		g.nextRev = uint64(s.streams[g.key.stream].last() + 1)
	default:
		g.nextRev = g.start.point
	}
}

// Create implements PersistentSubscriptions.Create.
func (p *persistentService) Create(ctx context.Context, req *persistent.CreateReq) (*persistent.CreateResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("create options are missing")
	}
	if opts.GetGroupName() == "" {
		return nil, invalidArgument("group name must not be empty")
	}
	g, err := newGroup(opts)
	if err != nil {
		return nil, err
	}
	if opts.GetSettings() == nil {
		return nil, invalidArgument("settings are missing")
	}
	strategy := opts.GetSettings().GetConsumerStrategy()
	if strategy == "" {
		//lint:ignore SA1019 older clients send the consumer strategy in this deprecated field
		strategy = strategyName(int32(opts.GetSettings().GetNamedConsumerStrategy()))
	}
	g.key.group = opts.GetGroupName()
	settings, err := parseSettings(opts.GetSettings(), strategy)
	if err != nil {
		return nil, psFailed(trailerSetter(ctx), g.key, err.Error())
	}
	g.settings = settings

	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.groups[g.key]; ok {
		return nil, psExists(trailerSetter(ctx), g.key)
	}
	p.srv.store.mu.Lock()
	g.resolveStartLocked(p.srv.store)
	p.srv.store.mu.Unlock()
	p.groups[g.key] = g
	return &persistent.CreateResp{}, nil
}

// newGroup returns a group with the source and the start that Create's
// options name: a stream, `$all` (maybe filtered), or for clients before
// 21.10 the stream in a deprecated field and the start in the settings.
func newGroup(opts *persistent.CreateReq_Options) (*psGroup, error) {
	g := &psGroup{}
	var err error
	switch so := opts.GetStreamOption().(type) {
	case *persistent.CreateReq_Options_Stream:
		g.key.stream, g.start, err = createStreamStart(so.Stream)
	case *persistent.CreateReq_Options_All:
		g.all, g.key.stream = true, allStreamName
		g.start, g.filter, err = createAllStart(so.All)
	case nil:
		// Servers before 21.10 took the stream from the deprecated field
		// and the start from settings.revision.
		//lint:ignore SA1019 older clients send the stream in this deprecated field; the server must read it
		g.key.stream, err = streamName(opts.GetStreamIdentifier())
		//lint:ignore SA1019 older clients (the Node.js ones) send the start revision in this deprecated field
		g.start = legacyStart(opts.GetSettings().GetRevision())
	default:
		err = invalidArgument("unknown stream option")
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// legacyStart decodes the deprecated settings.revision of Create and
// Update, which clients before 21.10 (and the Node.js clients, for such
// servers) send with the stream in the deprecated stream_identifier field:
// 2^64-1 is the end of the stream, any other number a revision (0 being the
// start).
func legacyStart(rev uint64) psStart {
	if rev == ^uint64(0) {
		return psStart{kind: fromEnd}
	}
	return psStart{kind: fromPoint, point: rev}
}

// createStreamStart decodes the stream and the start of a group on one
// stream.
func createStreamStart(so *persistent.CreateReq_StreamOptions) (string, psStart, error) {
	name, err := streamName(so.GetStreamIdentifier())
	if err != nil {
		return "", psStart{}, err
	}
	switch r := so.GetRevisionOption().(type) {
	case *persistent.CreateReq_StreamOptions_Start:
		return name, psStart{kind: fromStart}, nil
	case *persistent.CreateReq_StreamOptions_End:
		return name, psStart{kind: fromEnd}, nil
	case *persistent.CreateReq_StreamOptions_Revision:
		return name, psStart{kind: fromPoint, point: r.Revision}, nil
	default:
		return "", psStart{}, invalidArgument("stream revision option is missing")
	}
}

// createAllStart decodes the start and the filter (nil for none) of a
// group on `$all`.
func createAllStart(ao *persistent.CreateReq_AllOptions) (psStart, *filter, error) {
	var start psStart
	switch r := ao.GetAllOption().(type) {
	case *persistent.CreateReq_AllOptions_Start:
		start = psStart{kind: fromStart}
	case *persistent.CreateReq_AllOptions_End:
		start = psStart{kind: fromEnd}
	case *persistent.CreateReq_AllOptions_Position:
		if r.Position == nil || r.Position.CommitPosition < r.Position.PreparePosition {
			return psStart{}, nil, invalidArgument("invalid position")
		}
		start = psStart{kind: fromPoint, point: r.Position.CommitPosition}
	default:
		return psStart{}, nil, invalidArgument("$all position option is missing")
	}
	fo := ao.GetFilter()
	if fo == nil {
		return start, nil, nil
	}
	f, err := parsePersistentFilter(fo)
	if err != nil {
		return psStart{}, nil, err
	}
	return start, f, nil
}

// parsePersistentFilter decodes the filter of a `$all` group.
func parsePersistentFilter(fo *persistent.CreateReq_AllOptions_FilterOptions) (*filter, error) {
	f := &filter{interval: defaultCheckpointWindow}
	var expr *persistent.CreateReq_AllOptions_FilterOptions_Expression
	switch v := fo.GetFilter().(type) {
	case *persistent.CreateReq_AllOptions_FilterOptions_StreamIdentifier:
		f.byStream, expr = true, v.StreamIdentifier
	case *persistent.CreateReq_AllOptions_FilterOptions_EventType:
		expr = v.EventType
	default:
		return nil, invalidArgument("filter must select by stream identifier or event type")
	}
	return compileFilter(f, expr.GetRegex(), expr.GetPrefix())
}

// Update implements PersistentSubscriptions.Update: it changes the
// settings, drops the connected consumers, and changes the start while
// nothing was acknowledged yet.
func (p *persistentService) Update(ctx context.Context, req *persistent.UpdateReq) (*persistent.UpdateResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("update options are missing")
	}
	stream, start, err := updateSource(opts)
	if err != nil {
		return nil, err
	}
	k := psKey{stream: stream, group: opts.GetGroupName()}
	if k.group == "" {
		return nil, invalidArgument("group name must not be empty")
	}
	if opts.GetSettings() == nil {
		return nil, invalidArgument("settings are missing")
	}
	settings, err := parseSettings(opts.GetSettings(), strategyName(int32(opts.GetSettings().GetNamedConsumerStrategy())))
	if err != nil {
		return nil, psFailed(trailerSetter(ctx), k, err.Error())
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return nil, psNotFound(trailerSetter(ctx), k)
	}
	if g.settings.strategy != settings.strategy {
		g.buckets = nil
	}
	g.settings = settings
	// EventStoreDB restarts the group: consumers are dropped, and the
	// group resumes from its checkpoint, or from the new start without one.
	// The new start is the group's setting (GetInfo reports it) either way.
	for _, c := range g.consumers {
		c.end(psDropped(k))
	}
	if start == nil {
		return p.updated(), nil
	}
	g.start = *start
	if g.settled == nil && len(g.inflight) == 0 && len(g.retry) == 0 {
		g.peeked, g.pending = nil, nil
		p.srv.store.mu.Lock()
		g.resolveStartLocked(p.srv.store)
		p.srv.store.mu.Unlock()
	}
	return p.updated(), nil
}

// updated wakes the group's readers after an Update and returns its
// response. Needs p.mu.
func (p *persistentService) updated() *persistent.UpdateResp {
	p.notifyLocked()
	return &persistent.UpdateResp{}
}

// updateSource decodes the stream of the group an Update names, and the
// new start if it gives one (nil keeps the start).
func updateSource(opts *persistent.UpdateReq_Options) (string, *psStart, error) {
	switch so := opts.GetStreamOption().(type) {
	case *persistent.UpdateReq_Options_Stream:
		name, err := streamName(so.Stream.GetStreamIdentifier())
		if err != nil {
			return "", nil, err
		}
		return name, updateStreamStart(so.Stream), nil
	case *persistent.UpdateReq_Options_All:
		start, err := updateAllStart(so.All)
		if err != nil {
			return "", nil, err
		}
		return allStreamName, start, nil
	case nil:
		// Clients before 21.10 name the stream in the deprecated field and
		// the start in the deprecated settings.revision, as for Create.
		//lint:ignore SA1019 older clients send the stream in this deprecated field; the server must read it
		name, err := streamName(opts.GetStreamIdentifier())
		if err != nil {
			return "", nil, err
		}
		//lint:ignore SA1019 older clients (the Node.js ones) send the start revision in this deprecated field
		start := legacyStart(opts.GetSettings().GetRevision())
		return name, &start, nil
	default:
		return "", nil, invalidArgument("unknown stream option")
	}
}

// updateStreamStart decodes the new start of a group on one stream, nil
// for none.
func updateStreamStart(so *persistent.UpdateReq_StreamOptions) *psStart {
	switch r := so.GetRevisionOption().(type) {
	case *persistent.UpdateReq_StreamOptions_Start:
		return &psStart{kind: fromStart}
	case *persistent.UpdateReq_StreamOptions_End:
		return &psStart{kind: fromEnd}
	case *persistent.UpdateReq_StreamOptions_Revision:
		return &psStart{kind: fromPoint, point: r.Revision}
	default:
		return nil
	}
}

// updateAllStart decodes the new start of a group on `$all`, nil for none.
func updateAllStart(ao *persistent.UpdateReq_AllOptions) (*psStart, error) {
	switch r := ao.GetAllOption().(type) {
	case *persistent.UpdateReq_AllOptions_Start:
		return &psStart{kind: fromStart}, nil
	case *persistent.UpdateReq_AllOptions_End:
		return &psStart{kind: fromEnd}, nil
	case *persistent.UpdateReq_AllOptions_Position:
		if r.Position == nil || r.Position.CommitPosition < r.Position.PreparePosition {
			return nil, invalidArgument("invalid position")
		}
		return &psStart{kind: fromPoint, point: r.Position.CommitPosition}, nil
	default:
		return nil, nil
	}
}

// Delete implements PersistentSubscriptions.Delete; connected consumers
// end with NotFound, as the group no longer exists.
func (p *persistentService) Delete(ctx context.Context, req *persistent.DeleteReq) (*persistent.DeleteResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("delete options are missing")
	}
	_, all := opts.GetStreamOption().(*persistent.DeleteReq_Options_All)
	name, err := psStream(opts.GetStreamIdentifier(), all)
	if err != nil {
		return nil, err
	}
	k := psKey{stream: name, group: opts.GetGroupName()}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return nil, psNotFound(trailerSetter(ctx), k)
	}
	delete(p.groups, k)
	g.stopTimer()
	p.srv.store.deleteSystemStreams(psParkedStream(k), psCheckpointStream(k))
	for _, c := range g.consumers {
		md := metadata.Pairs(trailerException, exceptionPSNotFound, trailerStreamName, k.stream, trailerGroupName, k.group)
		c.end(md, status.Errorf(codes.NotFound, "Subscription group %s on stream %s does not exist.", k.group, k.stream))
	}
	p.notifyLocked()
	return &persistent.DeleteResp{}, nil
}

// GetInfo implements PersistentSubscriptions.GetInfo.
func (p *persistentService) GetInfo(ctx context.Context, req *persistent.GetInfoReq) (*persistent.GetInfoResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("get info options are missing")
	}
	_, all := opts.GetStreamOption().(*persistent.GetInfoReq_Options_All)
	name, err := psStream(opts.GetStreamIdentifier(), all)
	if err != nil {
		return nil, err
	}
	k := psKey{stream: name, group: opts.GetGroupName()}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return nil, psNotFound(trailerSetter(ctx), k)
	}
	return &persistent.GetInfoResp{SubscriptionInfo: g.infoLocked(p.srv.store)}, nil
}

// List implements PersistentSubscriptions.List: every group, or the groups
// of one stream (NotFound if it has none).
func (p *persistentService) List(ctx context.Context, req *persistent.ListReq) (*persistent.ListResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("list options are missing")
	}
	var only *string
	switch v := opts.GetListOption().(type) {
	case *persistent.ListReq_Options_ListAllSubscriptions:
	case *persistent.ListReq_Options_ListForStream:
		_, all := v.ListForStream.GetStreamOption().(*persistent.ListReq_StreamOption_All)
		name, err := psStream(v.ListForStream.GetStream(), all)
		if err != nil {
			return nil, err
		}
		only = &name
	default:
		return nil, invalidArgument("list option is missing")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var infos []*persistent.SubscriptionInfo
	for k, g := range p.groups {
		if only == nil || k.stream == *only {
			infos = append(infos, g.infoLocked(p.srv.store))
		}
	}
	if only != nil && len(infos) == 0 {
		return nil, psNotFound(trailerSetter(ctx), psKey{stream: *only})
	}
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].EventSource != infos[j].EventSource {
			return infos[i].EventSource < infos[j].EventSource
		}
		return infos[i].GroupName < infos[j].GroupName
	})
	return &persistent.ListResp{Subscriptions: infos}, nil
}

// ReplayParked implements PersistentSubscriptions.ReplayParked: parked
// messages (all, or the first stop_at) are delivered again.
func (p *persistentService) ReplayParked(ctx context.Context, req *persistent.ReplayParkedReq) (*persistent.ReplayParkedResp, error) {
	opts := req.GetOptions()
	if opts == nil {
		return nil, invalidArgument("replay options are missing")
	}
	_, all := opts.GetStreamOption().(*persistent.ReplayParkedReq_Options_All)
	name, err := psStream(opts.GetStreamIdentifier(), all)
	if err != nil {
		return nil, err
	}
	k := psKey{stream: name, group: opts.GetGroupName()}
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[k]
	if g == nil {
		return nil, psNotFound(trailerSetter(ctx), k)
	}
	limit := -1
	if v, ok := opts.GetStopAtOption().(*persistent.ReplayParkedReq_Options_StopAt); ok && v.StopAt >= 0 {
		limit = int(v.StopAt)
	}
	for _, rec := range p.srv.store.takeParked(psParkedStream(k), limit) {
		g.retry = append(g.retry, &psMessage{rec: rec, replayed: true})
	}
	p.notifyLocked()
	return &persistent.ReplayParkedResp{}, nil
}

// RestartSubsystem implements PersistentSubscriptions.RestartSubsystem:
// every consumer is dropped (Canceled), the groups stay.
func (p *persistentService) RestartSubsystem(context.Context, *shared.Empty) (*shared.Empty, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.groups {
		for _, c := range g.consumers {
			c.end(psDropped(g.key))
		}
	}
	p.notifyLocked()
	return &shared.Empty{}, nil
}

// infoLocked describes a group the way EventStoreDB does.
func (g *psGroup) infoLocked(s *store) *persistent.SubscriptionInfo {
	info := &persistent.SubscriptionInfo{
		EventSource:                 g.key.stream,
		GroupName:                   g.key.group,
		Status:                      psStatusLive,
		TotalItems:                  g.delivered,
		ResolveLinkTos:              g.settings.resolveLinks,
		StartFrom:                   g.startText(),
		MessageTimeoutMilliseconds:  int32(g.settings.messageTimeout / time.Millisecond),
		ExtraStatistics:             g.settings.extraStatistics,
		MaxRetryCount:               g.settings.maxRetryCount,
		LiveBufferSize:              g.settings.liveBufferSize,
		BufferSize:                  g.settings.historyBufferSize,
		ReadBatchSize:               g.settings.readBatchSize,
		CheckPointAfterMilliseconds: int32(g.settings.checkpointAfter / time.Millisecond),
		MinCheckPointCount:          g.settings.minCheckpointCount,
		MaxCheckPointCount:          g.settings.maxCheckpointCount,
		RetryBufferCount:            int32(len(g.retry)),
		TotalInFlightMessages:       int32(len(g.inflight)),
		OutstandingMessagesCount:    int32(len(g.inflight)),
		NamedConsumerStrategy:       g.settings.strategy,
		MaxSubscriberCount:          g.settings.maxSubscriberCount,
		ParkedMessageCount:          s.parkedCount(psParkedStream(g.key)),
	}
	if g.checkpoint != nil {
		info.LastCheckpointedEventPosition = g.positionText(g.checkpoint)
	}
	if g.lastKnown != nil {
		info.LastKnownEventPosition = g.positionText(g.lastKnown)
	}
	for _, c := range g.consumers {
		info.Connections = append(info.Connections, &persistent.SubscriptionInfo_ConnectionInfo{
			From:             c.from,
			Username:         c.user,
			ConnectionName:   c.name,
			TotalItems:       c.delivered,
			AvailableSlots:   int32(c.bufferSize - c.inflight),
			InFlightMessages: int32(c.inflight),
			// EventStoreDB reports these only when the group's
			// extra_statistics setting is on.
			ObservedMeasurements: c.latencies.measurements(g.settings.extraStatistics),
		})
	}
	return info
}

// startText is the start of a group in EventStoreDB's text form.
func (g *psGroup) startText() string {
	switch {
	case g.all && g.start.kind == fromStart:
		return "C:0/P:0"
	case g.all && g.start.kind == fromEnd:
		return "C:-1/P:-1"
	case g.all:
		return fmt.Sprintf("C:%d/P:%d", g.start.point, g.start.point)
	case g.start.kind == fromStart:
		return "0"
	case g.start.kind == fromEnd:
		return "-1"
	default:
		return strconv.FormatUint(g.start.point, 10)
	}
}

// positionText is a record's place in the group's source, as text.
func (g *psGroup) positionText(rec *record) string {
	if g.all {
		return fmt.Sprintf("C:%d/P:%d", rec.position, rec.position)
	}
	return strconv.FormatUint(rec.revision, 10)
}
